"""The alerts of a ward and their lifecycle: held, acknowledged, escalated, resolved, restored.

``AlertEngine`` (``psg.alerts.engine``) decides *when* a condition raises or clears an alert; this book
keeps what follows from it, the same whoever raised it: one active alert per bed and type, the audit of
every acknowledgement, escalation of a high alert nobody acknowledged, resolution after the hysteresis,
and the state a restarted worker takes over from the store.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from psg.alerts.catalog import (
    TECHNICAL_PREFIX,
    Alert,
    AlertConfig,
    AlertError,
    AlertEvent,
    EventKind,
    Priority,
    State,
    Thresholds,
)

#: Resolved alerts an engine keeps answerable (the store keeps every one).
RESOLVED_KEPT = 1000


@dataclass
class ConditionRun:
    """Consecutive seconds a per-second condition held (None = not holding)."""

    start: float | None = None
    extreme: float = math.nan


@dataclass
class BedState:
    recording_id: str = ""
    last_end: float = -math.inf
    thresholds: Thresholds | None = None
    runs: dict[str, ConditionRun] = field(default_factory=dict)
    #: alert type -> last device time its condition held (for the hysteresis / clear check).
    last_true: dict[str, float] = field(default_factory=dict)
    #: alert type -> active alert.
    active: dict[str, Alert] = field(default_factory=dict)
    #: distinct detector events seen: (type, start, end) in unix s.
    seen: list[tuple[str, float, float]] = field(default_factory=list)


class AlertBook:
    """The alerts one engine holds, by id and by bed, with their lifecycle (see the module docstring)."""

    def __init__(self, config: AlertConfig | None = None, clock: Callable[[], float] = time.time) -> None:
        """``clock`` is the host's wall clock; it only serves ``escalate_overdue`` (everything else runs on
        the epochs' device time)."""
        self.config = config or AlertConfig()
        self.clock = clock
        self._beds: dict[str, BedState] = {}
        self._alerts: dict[str, Alert] = {}
        #: alert id -> wall-clock time this engine first held it (raised or restored).
        self._held_since: dict[str, float] = {}
        #: ids of resolved alerts still kept, oldest first (see ``_retire``).
        self._resolved: OrderedDict[str, None] = OrderedDict()
        #: Every acknowledgement: alert_id, user, at, previous_state.
        self.audit: list[dict[str, Any]] = []
        # Per-call scratch of ``process``: the transitions so far, alerts extended, the caption.
        self._events: list[AlertEvent] = []
        self._touched: set[str] = set()
        self._caption: str | None = None

    def set_thresholds(self, bed_id: str, thresholds: Thresholds | None = None, **changes: float) -> Thresholds:
        """Per-bed limits: a whole ``Thresholds`` or field changes on the bed's current ones
        (e.g. ``set_thresholds("bed1", spo2_low=85)`` for a COPD patient with a lower target)."""
        bed = self._bed(bed_id)
        base = thresholds or bed.thresholds or self.config.thresholds
        try:
            new = replace(base, **changes)
        except TypeError as exc:
            raise AlertError(f"set_thresholds({bed_id!r}): {exc}") from None
        bed.thresholds = new
        return new

    def thresholds(self, bed_id: str) -> Thresholds:
        bed = self._beds.get(bed_id)
        return (bed.thresholds if bed else None) or self.config.thresholds

    def active(self, bed_id: str | None = None) -> list[Alert]:
        """Snapshots of the active (raised or acknowledged) alerts, highest priority first."""
        order = {p: i for i, p in enumerate(Priority)}
        out = [a for a in self._alerts.values() if a.active and (bed_id is None or a.bed_id == bed_id)]
        return [a.snapshot() for a in sorted(out, key=lambda a: (order[a.priority], a.raised_at, a.id))]

    def get(self, alert_id: str) -> Alert:
        if alert_id not in self._alerts:
            raise AlertError(f"alert {alert_id!r}: unknown alert id")
        return self._alerts[alert_id].snapshot()

    def acknowledge(self, alert_id: str, user: str, at: float) -> list[AlertEvent]:
        """A nurse saw the alert: records the audit entry (who, when, previous state). A high alert whose
        condition is already clear resolves at once (second event). Unknown, resolved or already
        acknowledged ids raise ``AlertError`` naming the id."""
        alert = self._alerts.get(alert_id)
        if alert is None:
            raise AlertError(f"alert {alert_id!r}: unknown alert id, cannot acknowledge")
        if alert.state is State.RESOLVED:
            raise AlertError(f"alert {alert_id!r}: already resolved at {alert.resolved_at}, cannot acknowledge")
        if alert.state is State.ACKNOWLEDGED:
            raise AlertError(
                f"alert {alert_id!r}: already acknowledged by {alert.acknowledged_by!r} at {alert.acknowledged_at}"
            )
        if not user:
            raise AlertError(f"alert {alert_id!r}: acknowledge needs a user name for the audit trail")
        entry = {
            "action": "acknowledge",
            "alert_id": alert_id,
            "user": user,
            "at": float(at),
            "previous_state": alert.state.value,
        }
        alert.audit.append(entry)
        self.audit.append(entry)
        alert.state = State.ACKNOWLEDGED
        alert.acknowledged_by, alert.acknowledged_at, alert.updated_at = user, float(at), float(at)
        events = [AlertEvent("acknowledged", alert.snapshot())]
        bed = self._beds[alert.bed_id]
        events += self._maybe_resolve(bed, alert, bed.last_end)
        return events

    def restore(self, alerts: Iterable[Mapping[str, Any]]) -> None:
        """Take over active alerts (``Alert.to_dict`` shape, as the store keeps them) after a worker restart
        or a partition move, so that replayed epochs merge into them instead of raising them again."""
        for data in alerts:
            alert = Alert.from_dict(data)
            if not alert.active or alert.id in self._alerts:
                continue
            bed = self._bed(alert.bed_id)
            bed.recording_id = bed.recording_id or alert.recording_id
            self._alerts[alert.id] = alert
            self._held_since[alert.id] = self.clock()
            bed.active[alert.type] = alert
            end = alert.evidence.get("end")
            if isinstance(end, (int, float)):
                bed.last_true[alert.type] = max(bed.last_true.get(alert.type, -math.inf), float(end))

    def adopt(self, states: Mapping[str, Mapping[str, Any]]) -> list[AlertEvent]:
        """Apply what others wrote to the store (``alert id -> {"state", "acknowledged_by", "acknowledged_at"}``):
        a nurse's acknowledgement through the API is taken as if given here (audited, may resolve a clear
        high alert); an alert the store already has resolved is dropped without a new transition."""
        events: list[AlertEvent] = []
        for alert_id_, stored in states.items():
            alert = self._alerts.get(alert_id_)
            if alert is None or not alert.active:
                continue
            if stored.get("state") == State.RESOLVED.value:
                alert.state = State.RESOLVED
                self._beds[alert.bed_id].active.pop(alert.type, None)
                self._retire(alert.id)
            elif stored.get("state") == State.ACKNOWLEDGED.value and alert.state is State.RAISED:
                events += self.acknowledge(
                    alert_id_,
                    str(stored.get("acknowledged_by") or "unknown"),
                    float(stored.get("acknowledged_at") or alert.updated_at),
                )
        return events

    def _emit(self, kind: EventKind, alert: Alert, only_once: bool = False) -> None:
        if only_once and any(e.alert.id == alert.id and e.kind == kind for e in self._events):
            return
        self._events.append(AlertEvent(kind, alert.snapshot()))

    def escalate_overdue(self) -> list[AlertEvent]:
        """Escalate unacknowledged high alerts held longer than ``escalate_after_s`` of *wall-clock* time.

        Escalation normally runs on device time as epochs arrive; a bed that stops sending (device gone,
        bridge down) brings no more epochs, and its high alert must still escalate. The alert agent
        calls this from its sync timer. The escalation time recorded is the alert's device time plus
        the wall time elapsed since this engine took it."""
        events: list[AlertEvent] = []
        now = self.clock()
        for alert in self._alerts.values():
            held = now - self._held_since.get(alert.id, now)
            if self._escalates(alert, held):
                events.append(self._escalate(alert, alert.raised_at + held))
        return events

    def _escalates(self, alert: Alert, waited_s: float) -> bool:
        return (
            alert.latched
            and alert.state is State.RAISED
            and not alert.escalated
            and waited_s >= self.config.escalate_after_s
        )

    def _escalate(self, alert: Alert, at: float) -> AlertEvent:
        alert.escalated, alert.escalated_at = True, float(at)
        alert.audit.append({"action": "escalate", "alert_id": alert.id, "at": float(at)})
        return AlertEvent("escalated", alert.snapshot())

    def _time_transitions(self, bed: BedState, now: float) -> list[AlertEvent]:
        events: list[AlertEvent] = []
        for alert in list(bed.active.values()):
            if self._escalates(alert, now - alert.raised_at):
                events.append(self._escalate(alert, now))
            events += self._maybe_resolve(bed, alert, min(now, bed.last_end))
        return events

    def _maybe_resolve(self, bed: BedState, alert: Alert, observed: float) -> list[AlertEvent]:
        """Clear for ``hysteresis_s`` of observed data; high alerts additionally need an acknowledgement.
        Technical alerts resolve in ``process`` when the channel is good again."""
        if alert.type.startswith(TECHNICAL_PREFIX) or not alert.active:
            return []
        clear_for = observed - bed.last_true.get(alert.type, -math.inf)
        if clear_for < self.config.hysteresis_s:
            return []
        if alert.latched and alert.state is not State.ACKNOWLEDGED:
            return []
        return [self._resolve(bed, alert, observed, emit=False)]

    def _resolve(self, bed: BedState, alert: Alert, at: float, emit: bool = True) -> AlertEvent:
        alert.state, alert.resolved_at, alert.updated_at = State.RESOLVED, float(at), max(alert.updated_at, at)
        bed.active.pop(alert.type, None)
        self._retire(alert.id)
        event = AlertEvent("resolved", alert.snapshot())
        if emit:
            self._events.append(event)
        return event

    def _retire(self, alert_id: str) -> None:
        """A resolved alert stays answerable (``get``) among the last ``RESOLVED_KEPT``; older ones are
        forgotten so a worker's memory does not grow over a night of alerts (the store keeps them all)."""
        self._resolved[alert_id] = None
        self._held_since.pop(alert_id, None)
        while len(self._resolved) > RESOLVED_KEPT:
            old, _ = self._resolved.popitem(last=False)
            self._alerts.pop(old, None)

    def _bed(self, bed_id: str) -> BedState:
        if not isinstance(bed_id, str) or not bed_id:
            raise AlertError(f"bed_id: expected a non-empty string, got {bed_id!r}")
        return self._beds.setdefault(bed_id, BedState())
