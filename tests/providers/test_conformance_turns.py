"""Conformance (turns): the tests of `perdure.providers.conformance`."""

from perdure.providers.conformance._turns import *  # noqa: F403
