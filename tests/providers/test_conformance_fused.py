"""Conformance (fused acks): the tests of `perdure.providers.conformance`."""

from perdure.providers.conformance._fused import *  # noqa: F403
