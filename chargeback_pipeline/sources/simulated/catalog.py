"""Who calls: the products of a profile, their subscriptions and users, and which workloads each calls."""

from datetime import UTC, date, datetime

import numpy as np

from chargeback_pipeline.sources.simulated.arrays import cumulative, hex_strings, labels
from chargeback_pipeline.sources.simulated.hours import US_PER_SECOND
from chargeback_pipeline.sources.simulated.profile import CATALOG_STREAM, SimulationProfile

UNASSIGNED = "unassigned"  # report label for an empty ProductId / ApimSubscriptionId

# Workload mix of the product at position i (cycled); columns follow workloads.WORKLOADS.
_PRODUCT_WORKLOAD_MIXES = (
    (0.15, 0.75, 0.10, 0.00),  # support bot: mostly gpt-4o chat
    (0.30, 0.10, 0.00, 0.60),  # retrieval: embeddings heavy
    (0.70, 0.25, 0.00, 0.05),
    (0.90, 0.00, 0.10, 0.00),
    (0.00, 0.85, 0.15, 0.00),
    (0.60, 0.00, 0.00, 0.40),
)
_UNASSIGNED_WORKLOAD_MIX = (0.40, 0.40, 0.00, 0.20)
_PRODUCT_VOLUME_DECAY = 0.4  # product i gets a share proportional to 0.4**i: a few heavy, some tiny
_SUBSCRIPTION_WEIGHTS = {1: (1.0,), 2: (0.8, 0.2), 3: (0.7, 0.2, 0.1)}


class Catalog:
    """Products, their subscriptions and users, and what each product calls; fixed per profile.

    Subscriptions are numbered globally; the last one is the pseudo-subscription of unassigned calls
    (empty ProductId, ApimSubscriptionId and UserId), whose product index is len(product_ids).
    """

    def __init__(self, profile: SimulationProfile):
        rng = np.random.default_rng([profile.seed, 0, CATALOG_STREAM])
        product_count = len(profile.product_ids)
        subscription_ids: list[str] = []
        user_ids: list[str] = []
        subscription_product: list[int] = []
        self.subscription_offsets = np.zeros(product_count + 1, dtype=np.int64)
        subscription_cumulative = np.ones((product_count + 1, 3))
        for product_index, product_id in enumerate(profile.product_ids):
            count = int(rng.integers(1, 4))
            self.subscription_offsets[product_index] = len(subscription_ids)
            subscription_cumulative[product_index, :count] = cumulative(_SUBSCRIPTION_WEIGHTS[count])
            # The main subscription has a readable name; extra ones carry APIM's generated 32-hex ids.
            subscription_ids.append(f"{product_id}-prod")
            user_ids.append(f"svc-{product_id}")
            for extra in hex_strings(rng.integers(0, 256, (count - 1, 16), dtype=np.uint8), guid=False):
                subscription_ids.append(extra.as_py())
                user_ids.append("1")  # APIM's built-in administrator created these
            subscription_product.extend([product_index] * count)
        self.subscription_offsets[product_count] = len(subscription_ids)
        self.unassigned_subscription = len(subscription_ids)
        subscription_ids.append("")
        user_ids.append("")
        subscription_product.append(product_count)

        self.product_count = product_count
        self.subscription_cumulative = subscription_cumulative
        self.subscription_product = np.array(subscription_product)
        self.product_cumulative = cumulative(_PRODUCT_VOLUME_DECAY ** np.arange(product_count))
        mixes = [_PRODUCT_WORKLOAD_MIXES[i % len(_PRODUCT_WORKLOAD_MIXES)] for i in range(product_count)]
        self.workload_cumulative = cumulative([*mixes, _UNASSIGNED_WORKLOAD_MIX])

        # Arrow label arrays, indexed by the integer codes above.
        self.product_id_labels = labels([*profile.product_ids, ""])
        self.subscription_id_labels = labels(subscription_ids)
        self.user_id_labels = labels(user_ids)
        self.report_product_labels = labels([*profile.product_ids, UNASSIGNED])
        self.report_subscription_labels = labels(s or UNASSIGNED for s in subscription_ids)
        self._surge = surge_of(profile)

    def token_factor(self, product: np.ndarray, hour_start_us: int) -> np.ndarray | None:
        """Per request, what its tokens are multiplied by in this hour (profile.surge_*): None when nothing
        surges then, so the default traffic is untouched."""
        if self._surge is None:
            return None
        index, factor, days, step_from = self._surge
        day = datetime.fromtimestamp(hour_start_us // US_PER_SECOND, UTC).date()
        if day not in days and (step_from is None or day < step_from):
            return None
        return np.where(product == index, factor, 1.0)


def parse_surge_day(text: str) -> tuple[date, bool]:
    """`2026-11-20` (that day) or `2026-11-20..` (that day on): the day, and whether it starts a step."""
    step = text.endswith("..")
    return date.fromisoformat(text.removesuffix("..")), step


def surge_of(profile: SimulationProfile) -> tuple[int, float, frozenset[date], date | None] | None:
    """(product index, factor, single days, first day of a step) of the profile's surge, or None."""
    if not profile.surge_product or profile.surge_factor == 1.0 or not profile.surge_days:
        return None
    if profile.surge_product not in profile.product_ids:
        raise ValueError(f"surge_product {profile.surge_product!r} is not one of {', '.join(profile.product_ids)}")
    if profile.surge_factor < 0:
        raise ValueError(f"surge_factor must be >= 0, got {profile.surge_factor}")
    parsed = [parse_surge_day(text) for text in profile.surge_days]
    steps = [day for day, step in parsed if step]
    days = frozenset(day for day, step in parsed if not step)
    return profile.product_ids.index(profile.surge_product), profile.surge_factor, days, min(steps, default=None)
