"""Conformance (instance queries, purge): tests of `perdure.providers.conformance`."""

from perdure.providers.conformance._queries import *  # noqa: F403
