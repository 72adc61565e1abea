"""Conformance (heartbeats): the tests of `perdure.providers.conformance`."""

from perdure.providers.conformance._heartbeats import *  # noqa: F403
