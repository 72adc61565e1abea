"""Conformance (instance values): the tests of `perdure.providers.conformance`."""

from perdure.providers.conformance._values import *  # noqa: F403
