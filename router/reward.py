"""What an experiment optimises: conversions (the default), engaged page views, or a stated
weighted combination of the two.

One definition, used everywhere a reward is counted: the policy's evidence
(``croupier.router.snapshot.arm_stats``), the statistics and off-policy evaluation's
per-row rewards. A visitor's reward is ``conversion * c + engaged * e`` with ``c + e = 1``,
so it stays in [0, 1] and the Beta-Bernoulli policies read the summed rewards as
(fractional) successes, the usual treatment of a bounded reward in Thompson sampling
(Agrawal & Goyal 2012: a reward in [0, 1] through a Bernoulli trial of that mean has the
same regret guarantees).

An engaged view is the page's (``croupier.router.engagement``): at least 10 s active, a
second interaction or a conversion. A visitor whose page never reported counts as not
engaged, as a visitor who never converted counts as not converted.

Pure: parsing and arithmetic only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from croupier.router.records import InvalidExperiment

NAMED = {"conversion": (1.0, 0.0), "engaged": (0.0, 1.0)}
FIELDS = ("conversion", "engaged")


@dataclass(frozen=True, slots=True)
class Reward:
    conversion: float = 1.0  # weight of a conversion of the experiment's goal
    engaged: float = 0.0  # weight of an engaged page view

    @property
    def needs_engagement(self) -> bool:
        return self.engaged > 0

    def successes(self, conversions: float, engaged_views: float, trials: float) -> float:
        """The summed reward of an arm (or segment) from its counts; engaged views are capped
        at the trials, as a visitor is engaged at most once per assignment for the policy."""
        return self.conversion * conversions + self.engaged * min(engaged_views, trials)

    def of_row(self, converted: float, engaged: float) -> float:
        """One visitor's reward (off-policy evaluation's rows)."""
        return self.conversion * converted + self.engaged * engaged

    def to_json(self) -> str | dict[str, float]:
        for name, weights in NAMED.items():
            if (self.conversion, self.engaged) == weights:
                return name
        return {"conversion": self.conversion, "engaged": self.engaged}


def parse_reward(value: Any, label: str = "reward") -> Reward:
    """``"conversion"``, ``"engaged"``, or ``{"conversion": c, "engaged": e}`` with ``c + e = 1``."""
    if value is None:
        return Reward()
    if isinstance(value, str):
        if value not in NAMED:
            raise InvalidExperiment(f"{label}: must be one of {', '.join(NAMED)} or an object of weights "
                                    f"{{\"conversion\": c, \"engaged\": e}}, got {value!r}")
        return Reward(*NAMED[value])
    if not isinstance(value, dict):
        raise InvalidExperiment(f"{label}: must be a string or an object of weights")
    unknown = sorted(set(value) - set(FIELDS))
    if unknown:
        raise InvalidExperiment(f"{label}.{unknown[0]}: unknown field (accepted: {', '.join(FIELDS)})")
    weights = []
    for name in FIELDS:
        w = value.get(name, 0.0)
        if isinstance(w, bool) or not isinstance(w, (int, float)) or not math.isfinite(w) or not 0 <= w <= 1:
            raise InvalidExperiment(f"{label}.{name}: must be a number in [0, 1]")
        weights.append(float(w))
    if abs(sum(weights) - 1.0) > 1e-9:
        raise InvalidExperiment(f"{label}: the weights must add up to 1, got {sum(weights):g}")
    return Reward(*weights)
