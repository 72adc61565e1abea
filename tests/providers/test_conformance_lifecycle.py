"""Conformance (lifecycle): the tests of `perdure.providers.conformance`."""

from perdure.providers.conformance._lifecycle import *  # noqa: F403
