"""The assignment core: every transport's decision is made here.

NGINX's decide subrequest (``router/decide.py``), the channels API
(``router/channels.py``), the batch assignment of customer lists (``router/batch.py``)
and the beacon only parse their input and format their
answer; in between they share this one path (DESIGN §7):

- the experiment's state → a fixed variant (ended: its winner; paused: control;
  a bot: control), nothing drawn or counted;
- token verification with its rejection metric, under the experiment's tenant keys;
- where a visitor's context places them (segment, contextual features);
- the draw from the snapshot's allocation (one visitor, or many at once for a batch),
  without the variants whose capacity this router has used up (``router/capacity.py``),
  and the queued assignment with every arm's probability (the propensities the
  off-policy estimators read);
- the signed token of an assignment.

Drawing and recording are separate steps because the channels API records only
after its claim on the customer won: concurrent first calls for one customer
must count one trial. Reads only the in-memory snapshot; never awaits.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np

from croupier.router.capacity_leases import CapacityLeases
from croupier.router.context import DEVICES, Context, feature_indices
from croupier.router.experiments import Experiment, Variant
from croupier.router.metrics import Metrics
from croupier.router.recorder import AssignmentRecorder
from croupier.router.segments import segment_id
from croupier.router.settings import Settings
from croupier.router.snapshot import Arms, SnapshotKeeper
from croupier.router.store import AssignmentRecord
from croupier.router.tenants import TenantKeys
from croupier.router.token import Assignment, TokenError, sign, verify


@dataclass(frozen=True, slots=True)
class Placement:
    """Where a visitor's context puts them in an experiment: the segment whose bandit assigns
    them ('' for the experiment-wide one), the hashed features a contextual policy used, the
    split to draw from (None: the experiment-wide split), and the visitor's device class,
    counted with the assignment for the monitor's traffic-mix check ('' not known)."""

    segment: str = ""
    features: tuple[int, ...] = ()
    arms: Arms | None = None
    device: str = ""


NOWHERE = Placement()  # no context: the experiment-wide split, no segment
_BY_DEVICE = {device: Placement(device=device) for device in DEVICES}


def by_device(device: str) -> Placement:
    """The placement of a visitor in an experiment that reads no context: the experiment-wide
    split, and the device class alone, so its traffic's mix is counted too. Shared instances:
    nothing is built per decision."""
    return _BY_DEVICE.get(device) or Placement(device=device)


@dataclass(frozen=True, slots=True)
class Drawn:
    """A drawn arm, whether it came from the holdout, and the split it came from."""

    variant: Variant
    in_holdout: bool
    arms: Arms


def fixed_variant(experiment: Experiment, bot: bool = False) -> tuple[Variant, str] | None:
    """The variant everyone gets while ``experiment`` is not assigning, and why; None while it is.

    An ended experiment serves its winner, a paused one (and any bot) its control; none of
    these is an assignment, so nothing is drawn, signed or counted."""
    if experiment.status == "ended":
        return experiment.variant(experiment.winner) or experiment.control_variant, "ended"
    if experiment.status == "paused":
        return experiment.control_variant, "paused"
    if bot:
        return experiment.control_variant, "bot"
    return None


class Assigner:
    def __init__(self, settings: Settings, snapshots: SnapshotKeeper, recorder: AssignmentRecorder,
                 metrics: Metrics, rand: random.Random | None = None, capacity: CapacityLeases | None = None) -> None:
        self.snapshots = snapshots
        self.recorder = recorder
        self.metrics = metrics
        self.rand = rand or random.Random()
        self.np_rand = np.random.default_rng(self.rand.getrandbits(64))
        # without reservations (no store), a capped variant is never drawn by this core
        self.capacity = capacity or CapacityLeases()
        self.max_age = settings.cookie_max_age
        # a tenant's tokens are signed with keys derived for that tenant (router/tenants.py)
        self.tenant_keys = TenantKeys(settings.signing_keys(), settings.secret_id)

    # -- tokens -------------------------------------------------------------

    def verify(self, token: str, experiment: Experiment, now: float) -> Assignment:
        """The assignment a token of ``experiment`` holds; ``TokenError`` (counted by reason) when refused."""
        try:
            return verify(token, self.tenant_keys.keys(experiment.tenant), now=int(now), max_age=self.max_age,
                          experiment=experiment.id)
        except TokenError as exc:
            self.metrics.tokens_rejected.labels(exc.reason).inc()
            raise

    def token(self, experiment: Experiment, visitor: str, variant_id: str, issued: int,
              placement: Placement = NOWHERE) -> str:
        """The signed assignment. A placement's segment and features ride in the token, so the
        beacon credits them without a lookup."""
        kid, key = self.tenant_keys.signing(experiment.tenant)
        return sign(Assignment(visitor, experiment.id, variant_id, issued, placement.segment, placement.features),
                    kid, key)

    # -- placing and drawing ------------------------------------------------

    def uses_context(self, experiment: Experiment) -> bool:
        """Whether assignments of ``experiment`` depend on the visitor's context (segments or a contextual policy)."""
        return bool(experiment.segment_keys) or experiment.id in self.snapshots.current.contextual

    def place(self, experiment: Experiment, context: Context) -> Placement:
        """The visitor's segment and features, and the split that assigns them; from the snapshot only.

        A segment without a bandit of its own yet is assigned by the experiment-wide one but
        counted in its segment, so it gets one at the next refresh; once the experiment has
        its cap of segments, other segments are neither given one nor counted apart."""
        snapshot = self.snapshots.current
        segment, arms, features = "", None, ()
        if experiment.segment_keys:
            segment = segment_id(context, experiment.segment_keys)
            table = snapshot.segments.get(experiment.id)
            if table is not None:
                arms = table.arms.get(segment)
                if arms is None and table.full:
                    segment = ""
        contextual = snapshot.contextual.get(experiment.id)
        if contextual is not None:
            features = feature_indices(context, contextual.policy.dimensions)
            arms = contextual.arms_for(features)
        return Placement(segment, features, arms, context.device)

    def draw(self, experiment: Experiment, placement: Placement = NOWHERE) -> Drawn | None:
        """An arm for a new or reassigned assignment, drawn from the snapshot's allocation (the
        placement's split when it has one). None while the experiment has no arms (no active
        variant, or not refreshed yet): the caller serves control, uncounted."""
        arms = placement.arms if placement.arms is not None else self.snapshots.current.arms.get(experiment.id)
        if arms is not None and experiment.capped:
            arms = self.capacity.split(experiment, arms)
        if arms is None:
            return None
        variant, in_holdout = arms.pick(self.rand.random())
        if variant.capacity is not None:
            self.capacity.take(experiment.id, variant.id)
        return Drawn(variant, in_holdout, arms)

    def undraw(self, experiment: Experiment, drawn: Drawn) -> None:
        """A drawn assignment that will not be recorded (another claim won): its capacity unit back."""
        if drawn.variant.capacity is not None:
            self.capacity.give_back(experiment.id, drawn.variant.id)

    def draw_many(self, arms: Arms, n: int) -> tuple[np.ndarray, np.ndarray]:
        """``n`` draws from ``arms`` at once (a batch): variant indices and holdout flags.
        Capacity is the batch's to take, with its claims in Redis (``router/batch.py``)."""
        return arms.pick_many(self.np_rand.random(n))

    def record(self, experiment: Experiment, drawn: Drawn, visitor: str, reason: str, now: float,
               placement: Placement = NOWHERE, channel: str = "") -> None:
        """Queue the assignment (every arm's probability, its segment, features, channel and the
        visitor's device class) for the recorder."""
        self.recorder.add(AssignmentRecord(experiment.id, drawn.variant.id, visitor, reason, drawn.arms.labelled(),
                                           now, placement.segment, placement.features, channel, placement.device))
