"""Conformance (occurrence): the tests of `perdure.providers.conformance`."""

from perdure.providers.conformance._occurrence import *  # noqa: F403
