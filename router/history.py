"""Time-bucketed counters as arrays: what charts, period statistics and
non-stationary policies read. Pure."""

from __future__ import annotations

import numpy as np

Buckets = dict[int, dict[str, dict[str, float]]]  # bucket start → variant → counter → total


def bucket_arrays(buckets: Buckets, variant_ids: list[str], counters: list[str],
                  since: int | None = None) -> tuple[list[int], dict[str, np.ndarray]]:
    """Bucket starts (oldest first) and, per counter, an array of shape ``(B, K)``."""
    starts = sorted(b for b in buckets if since is None or b >= since)
    arrays = {c: np.zeros((len(starts), len(variant_ids))) for c in counters}
    for i, start in enumerate(starts):
        row = buckets[start]
        for k, vid in enumerate(variant_ids):
            values = row.get(vid, {})
            for c in counters:
                arrays[c][i, k] = values.get(c, 0.0)
    return starts, arrays
