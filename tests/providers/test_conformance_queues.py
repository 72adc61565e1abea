"""Conformance (queues): the tests of `perdure.providers.conformance`."""

from perdure.providers.conformance._queues import *  # noqa: F403
