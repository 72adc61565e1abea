"""Conformance (instances): the tests of `perdure.providers.conformance`."""

from perdure.providers.conformance._instances import *  # noqa: F403
