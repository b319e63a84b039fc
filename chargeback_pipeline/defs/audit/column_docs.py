"""Column schema, descriptions and code references of the audit (merged into `defs/column_docs.py`)."""

from chargeback_pipeline.defs.audit.findings import FINDINGS_DESCRIPTIONS, FINDINGS_SCHEMA

AUDIT_COLUMNS = {"chargeback_audit": FINDINGS_SCHEMA}
AUDIT_DESCRIPTIONS = {"chargeback_audit": FINDINGS_DESCRIPTIONS}
AUDIT_CODE = {
    "chargeback_audit": [
        "audit/audit_hour_successful_tokens.sql",
        "audit/audit_hour_logged_request_status.sql",
        "audit/audit_hour_billed_tokens.sql",
        "core/audit/raw_evidence.py",
        "core/audit/price_list.py",
        "core/audit/comparisons.py",
    ]
}
