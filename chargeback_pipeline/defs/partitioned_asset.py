"""The decorators every asset of the pipeline is declared with: what all of them share, said once.

Every asset is partitioned (hours, days or months, `partitions.Calendar`); a backfill materializes it
in one ranged run (`BackfillPolicy.single_run`: the hours' set-based work needs the whole range in one
step); the FinOps data team owns it (`OWNERS`); and its checks are partitioned like it, one result per
partition (`partition_checks.spec`). An asset's module says only what is its own: key, partitions,
upstream, group, kinds, description, its checks (name -> description) and, where it has them, a
freshness policy or a pool. `test_definitions.py` holds every asset of the definitions to the four.
"""

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import dagster as dg

from chargeback_pipeline.defs import partition_checks

# Every asset is owned by the FinOps data team (shown in the UI, and who alerts go to).
OWNERS = ["team:finops-data"]
NO_CHECKS: Mapping[str, str] = {}


def _check_specs(
    key: dg.AssetKey, partitions_def: dg.PartitionsDefinition, checks: Mapping[str, str]
) -> list[dg.AssetCheckSpec]:
    return [partition_checks.spec(name, key, partitions_def, description) for name, description in checks.items()]


def partitioned_asset(
    key: dg.AssetKey,
    partitions_def: dg.PartitionsDefinition,
    *,
    checks: Mapping[str, str] = NO_CHECKS,
    **asset_args: Any,
) -> Callable[..., dg.AssetsDefinition]:
    """`dg.asset` for one asset `key`, with `checks` (check name -> description) judged per partition.
    `asset_args` are the asset's own `dg.asset` arguments (`deps`, `group_name`, `kinds`, ...)."""
    return dg.asset(
        key=key,
        partitions_def=partitions_def,
        backfill_policy=dg.BackfillPolicy.single_run(),
        owners=OWNERS,
        check_specs=_check_specs(key, partitions_def, checks),
        **asset_args,
    )


def partitioned_multi_asset(
    name: str,
    partitions_def: dg.PartitionsDefinition,
    specs: Sequence[dg.AssetSpec],
    *,
    checked: dg.AssetKey,
    checks: Mapping[str, str] = NO_CHECKS,
) -> Callable[..., dg.AssetsDefinition]:
    """`dg.multi_asset` for assets written by one step (`specs`, owned here), `checks` judging `checked`."""
    return dg.multi_asset(
        name=name,
        specs=[spec.replace_attributes(owners=OWNERS) for spec in specs],
        partitions_def=partitions_def,
        backfill_policy=dg.BackfillPolicy.single_run(),
        check_specs=_check_specs(checked, partitions_def, checks),
    )
