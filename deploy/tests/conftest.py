"""The deployment's end-to-end tests (slow: CI runs them after `make test`, one `make` target each)."""

from chargeback_pipeline_tests.conftest import azurite_connection_string  # noqa: F401  (a fixture)
