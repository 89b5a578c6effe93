"""The demo experiment every target serves: the local stack, docker compose and Kubernetes.

Its three variants' pages are the example parameters in ``variants/examples/demo``;
only where each variant runs differs between targets, so the caller says that.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

DEMO_ID = "demo"
DEMO_DIR = Path(__file__).resolve().parent.parent / "variants" / "examples" / "demo"
DEMO_VARIANTS = ("a", "b", "c")  # the first is control


def demo_experiment(upstream: Callable[[str, str], str]) -> dict:
    """The demo's registry record, each variant proxied to ``upstream(experiment id, variant id)``."""
    variants = []
    for vid in DEMO_VARIANTS:
        params = json.loads((DEMO_DIR / f"{vid}.json").read_text())
        variants.append({"id": vid, "name": params.get("name", vid), "upstream": upstream(DEMO_ID, vid),
                         "params": params})
    return {"id": DEMO_ID, "name": "Brightside spring offer", "path_prefix": "/", "goal": "signup",
            "control": DEMO_VARIANTS[0], "variants": variants}
