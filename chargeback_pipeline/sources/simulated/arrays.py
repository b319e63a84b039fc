"""Vectorized helpers: weighted choices over numpy arrays, and numpy codes turned into Arrow columns.

Everything here works on whole columns at once, without Python loops over rows: a simulated day can
hold millions of requests.
"""

import numpy as np
import pyarrow as pa

from chargeback_pipeline.storage.schemas import UTC_TIMESTAMP


def cumulative(weights) -> np.ndarray:
    """Cumulative distribution of weights along the last axis, last column exactly 1 (no rounding gap)."""
    weights = np.asarray(weights, dtype=float)
    cumulative = np.cumsum(weights / weights.sum(axis=-1, keepdims=True), axis=-1)
    cumulative[..., -1] = 1.0
    return cumulative


def choose(cumulative: np.ndarray, uniform: np.ndarray) -> np.ndarray:
    """Inverse-CDF choice: index of the bucket each uniform draw falls in (one CDF for all rows)."""
    return np.searchsorted(cumulative, uniform, side="right")


def choose_per_row(cumulative_rows: np.ndarray, uniform: np.ndarray) -> np.ndarray:
    """Inverse-CDF choice where every row has its own CDF (cumulative_rows[i] for uniform[i])."""
    return (uniform[:, None] >= cumulative_rows).sum(axis=1)


_HEX_DIGITS = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
_GUID_DIGIT_POSITIONS = np.array([i for i in range(36) if i not in (8, 13, 18, 23)])


def hex_strings(id_bytes: np.ndarray, *, guid: bool) -> pa.Array:
    """16 bytes per row -> lowercase hex text (8-4-4-4-12 GUID or 32 plain digits), built without Python loops."""
    rows = id_bytes.shape[0]
    digits = np.empty((rows, 32), dtype=np.uint8)
    digits[:, 0::2] = _HEX_DIGITS[id_bytes >> 4]
    digits[:, 1::2] = _HEX_DIGITS[id_bytes & 0x0F]
    if guid:
        text = np.full((rows, 36), ord("-"), dtype=np.uint8)
        text[:, _GUID_DIGIT_POSITIONS] = digits
    else:
        text = digits
    width = text.shape[1]
    offsets = np.arange(0, (rows + 1) * width, width, dtype=np.int32)
    return pa.Array.from_buffers(pa.string(), rows, [None, pa.py_buffer(offsets), pa.py_buffer(text)])


def labels(values) -> pa.Array:
    """An Arrow string array to `take` from with integer codes: how codes become column values."""
    return pa.array(list(values), type=pa.string())


def timestamps(time_us: np.ndarray) -> pa.Array:
    return pa.array(time_us, type=UTC_TIMESTAMP)
