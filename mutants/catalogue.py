"""The planted bugs: what each changes (the exact text it replaces, which must exist once, so a refactor
cannot turn a mutant into a silent no-op) and what must catch it.

`caught_by`: the checks whose ERROR must make `chargeback backfill` exit 1 on the simulated day (any one of
them), or, where the simulated backfill cannot see the mutant, `test` names the test that must fail
against it (run in the mutated copy).
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class Mutant:
    name: str
    what: str
    path: str
    old: str
    new: str
    caught_by: tuple[str, ...] = ()
    test: str | None = None


MUTANTS = (
    # --- SQL ------------------------------------------------------------------------------------------------
    Mutant(
        "sql_bills_failed_requests",
        "billable no longer requires a successful gateway row",
        "dbt_like_sql/marts/fct_attributed_requests.sql",
        "g.is_success and l.correlation_id is not null as is_billable",
        "l.correlation_id is not null as is_billable",
        caught_by=("chargeback_audit:billed_within_successful_logged_tokens",),
    ),
    Mutant(
        "sql_drops_gateway_dedupe",
        "every trusted gateway row is kept, copies included",
        "dbt_like_sql/staging/stg_apim__gateway_requests.sql",
        "from trusted anti join copied using (partition_hour, CorrelationId)",
        "from trusted",
        # The copies double the logged tokens too (their backends are joined to the LLM requests), so the
        # reconciliation with Azure Monitor blocks the day before the chargeback is built.
        caught_by=(
            "daily_reconciliation:tokens_reconcile_with_azure_monitor",
            "attributed_requests:one_row_per_correlation_id",
            "chargeback_audit:billed_within_successful_logged_tokens",
        ),
    ),
    Mutant(
        "sql_not_billable_joins_on_backend_only",
        "the day's billed tokens are joined to the logged ones on the backend alone, not backend and deployment",
        "dbt_like_sql/marts/fct_daily_logged_not_billable_tokens.sql",
        "on l.backend_id = b.backend_id and l.deployment_name = b.deployment_name",
        "on l.backend_id = b.backend_id",
        caught_by=("chargeback_audit:logged_not_billable_matches_raw_logs",),
    ),
    Mutant(
        "sql_shifts_the_hour_boundary",
        "an hour's gateway rows are taken 5 minutes early (the previous hour's last minutes, from the margin)",
        "dbt_like_sql/staging/stg_apim__gateway_checked.sql",
        "where TimeGenerated >= partition_hour and TimeGenerated < partition_hour + interval 1 hour",
        "where TimeGenerated >= partition_hour - interval 5 minute"
        " and TimeGenerated < partition_hour + interval 55 minute",
        caught_by=("chargeback_audit:billed_within_successful_logged_tokens",),
    ),
    # --- money ----------------------------------------------------------------------------------------------
    Mutant(
        "money_720_hour_months",
        "a monthly PTU reservation is spread over 720 hours whatever the month's length",
        "chargeback_pipeline/core/billing/pricing.py",
        "return calendar.monthrange(moment.year, moment.month)[1] * 24",
        "return 720",
        caught_by=("chargeback_audit:ptu_cost_is_deployed_hours_at_rate",),
    ),
    Mutant(
        "money_rounds_each_line",
        "each pay-as-you-go line is rounded on its own instead of the deployment-day once",
        "chargeback_pipeline/core/billing/paygo_allocation.py",
        "amounts = split_by_largest_remainder(total, [exact[k] for k in keys], [k.order() for k in keys])",
        "amounts = [round(exact[k]) for k in keys]",
        caught_by=("chargeback_audit:costs_within_price_list",),
    ),
    Mutant(
        "money_wrong_output_token_weight",
        "an output token weighs one input token more than the pricing file says",
        "chargeback_pipeline/core/billing/chargeback_lines.py",
        "Decimal(usage.completion_tokens) * weight",
        "Decimal(usage.completion_tokens) * (weight + 1)",
        caught_by=("chargeback_audit:costs_within_price_list",),
    ),
    Mutant(
        "money_loses_the_remainder",
        "the minor units left after flooring each share are never handed out",
        "chargeback_pipeline/core/billing/money.py",
        "        floors[i] += 1\n",
        "        floors[i] += 0\n",
        caught_by=("daily_chargeback:costs_add_up", "chargeback_audit:ptu_cost_is_deployed_hours_at_rate"),
    ),
    Mutant(
        "money_caller_statement_skips_a_day",
        "the statement by caller sums the month's first published day only, not every day the statement does",
        "chargeback_pipeline/core/cost_inputs.py",
        "pa.concat_tables([as_published(table, with_callers=True) for table in tables])",
        "pa.concat_tables([as_published(table, with_callers=True) for table in tables[:1]])",
        # The simulated backfill publishes one day: the test publishes two (with callers) and states the month.
        test="chargeback_pipeline_tests/test_publication_decision.py::test_the_statement_by_caller_is_summed_from_the_published_days_not_a_held_one",
    ),
    # --- sources --------------------------------------------------------------------------------------------
    Mutant(
        "source_drops_the_last_piece",
        "a Log Analytics window split into pieces lands all pieces but the last",
        "chargeback_pipeline/sources/log_analytics/source.py",
        "return [complete[piece] for piece in sorted(complete, key=lambda piece: piece.start)]",
        "return [complete[piece] for piece in sorted(complete, key=lambda piece: piece.start)][:-1]",
        test="chargeback_pipeline_tests/test_log_analytics_source.py::test_a_truncated_hour_is_split_until_every_row_lands_once",
    ),
)
