"""Conformance (deploy): the tests of `perdure.providers.conformance`."""

from perdure.providers.conformance._deploy import *  # noqa: F403
