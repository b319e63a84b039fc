"""chargeback_pipeline: token-based chargeback for shared Azure OpenAI deployments, as Dagster assets."""

import warnings

# `backfill_policy` is marked beta in Dagster 1.13 but is the documented way to get ranged backfill
# runs; we use it deliberately, so its warning would only be noise on every load of the code location.
warnings.filterwarnings("ignore", message=r"Parameter `backfill_policy`", module=r"dagster\..*")
