"""The declaration these tests share: three factors of two levels and one constraint, which
excludes 2 of the 8 combinations."""

from __future__ import annotations

import copy
from typing import Any

SPRING: dict[str, Any] = {
    "id": "spring", "path_prefix": "/spring", "policy": "thompson",
    "variants": [{"id": "page", "upstream": "variant-a:8000",
                  "params": {"headline": "Base", "cta": "Go", "colors": {"primary": "#111111", "accent": "#222222"}}}],
    "factors": {
        "headline": {"plain": {"headline": "Spring sale"}, "savings": {"headline": "Save 20% this spring"}},
        "cta": {"go": {"cta": "Go"}, "buy-now": {"cta": "Buy now"}},
        "offer": {"none": {}, "cashback": {"badge": "5% cashback", "colors": {"accent": "#333333"}}},
    },
    "constraints": [{"offer": "cashback", "cta": "buy-now"}],
}


def spring(**changes: Any) -> dict[str, Any]:
    """A copy of SPRING with top-level fields replaced (None removes one)."""
    data = copy.deepcopy(SPRING)
    for name, value in changes.items():
        if value is None:
            data.pop(name, None)
        else:
            data[name] = value
    return data
