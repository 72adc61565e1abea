"""Conformance (routing): the tests of `perdure.providers.conformance`."""

from perdure.providers.conformance._routing import *  # noqa: F403
