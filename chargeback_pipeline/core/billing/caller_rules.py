"""Allocation rules by caller (the pricing file's `callers:`): for APIs that need no subscription key.

A request to such an API has no APIM product (`unassigned`); when a configured trace-record key named its
caller (core/callers.py), the pricing file may say which product that caller is charged to, and which
cost centre it belongs to:

    callers:
      0b5c6f1e-2d4a-4c59-9e21-7a3f8d6b1c01:   # the Entra application id (`appid` claim)
        product: search-platform
        cost_centre: CC-4711

A rule moves only `unassigned` requests: a request made with a subscription stays with its product (the
subscription key is the stronger evidence). The cost centre is written into the FOCUS tags of the
caller's charges (`chargeback/cost-centre`).
"""

from pydantic import BaseModel, ConfigDict, Field, model_validator

from chargeback_pipeline.core.billing.schemas import RESERVED_PRODUCTS
from chargeback_pipeline.storage.schemas import UNASSIGNED_PRODUCT


class CallerRule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    product: str | None = Field(default=None, min_length=1, max_length=256)
    cost_centre: str | None = Field(default=None, min_length=1, max_length=256)

    @model_validator(mode="after")
    def _says_something(self) -> "CallerRule":
        if self.product is None and self.cost_centre is None:
            raise ValueError("a caller rule names a product, a cost_centre or both")
        if self.product in {*RESERVED_PRODUCTS, UNASSIGNED_PRODUCT}:
            raise ValueError(f"product {self.product!r} is one of the chargeback's own lines")
        return self


def charged_product(product_id: str, caller_id: str | None, rules: dict[str, CallerRule]) -> str:
    """The product a line is charged to: its caller's rule's product when it has none of its own."""
    rule = rules.get(caller_id) if caller_id is not None else None
    if product_id == UNASSIGNED_PRODUCT and rule is not None and rule.product is not None:
        return rule.product
    return product_id


def cost_centre(caller_id: str | None, rules: dict[str, CallerRule]) -> str | None:
    rule = rules.get(caller_id) if caller_id is not None else None
    return rule.cost_centre if rule is not None else None
