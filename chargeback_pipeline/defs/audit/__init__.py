"""The audit (`chargeback_audit` and its checks): the published chargeback judged against evidence computed
by `core.audit` alone. Imports Dagster, `core`, `storage` and `defs` only, like every `defs` room."""
