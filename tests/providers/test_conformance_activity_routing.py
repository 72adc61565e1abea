"""Conformance (activity routing): the tests of `perdure.providers.conformance`."""

from perdure.providers.conformance._activity_routing import *  # noqa: F403
