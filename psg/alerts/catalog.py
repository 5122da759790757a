"""Data types of the nurse alert engine: priorities, states, thresholds, the alert itself.

They live in the domain kernel because every part speaks them: the alert engine (``psg.alerts``)
raises alerts, the store keeps them, the API validates a bed's thresholds with ``bed_thresholds``.

WHY the thresholds carry onset delays and the config a hysteresis: 87-99 % of bedside monitor alarms
are not actionable (Sendelbach & Funk, AACN Adv Crit Care 2013), and alarm fatigue makes nurses miss the
ones that are. A short dip or a jittering value must not ring a bell, and an alert must not flap on and
off around its threshold, so every sustained condition waits ``*_onset_s`` seconds before it raises
and a non-latched alert stays up until the condition has been clear for ``hysteresis_s`` seconds.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from enum import Enum, StrEnum
from typing import Any, Literal

from psg.errors import PSGError


class AlertError(PSGError):
    """A bad request to the alert engine (unknown or resolved alert id, bad threshold); names the id or field."""


class Priority(StrEnum):
    """High latches and escalates; medium and low auto-resolve; advisory is model/watch-rule output."""

    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"
    ADVISORY = "advisory"


class State(StrEnum):
    RAISED = "raised"
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"


# Alert types the engine raises (advisories and watch findings are "advisory:<type>" / "watch:<rule_id>").
SPO2_CRITICAL = "spo2_critical"
DESATURATION = "desaturation"
BRADYCARDIA = "bradycardia"
TACHYCARDIA = "tachycardia"
ASYSTOLE = "asystole"
APNEA_CLUSTER = "apnea_cluster"
RESPIRATORY_EVENT = "respiratory_event"
TECHNICAL_PREFIX = "technical:"

PRIORITIES: dict[str, Priority] = {
    SPO2_CRITICAL: Priority.HIGH,
    BRADYCARDIA: Priority.HIGH,
    TACHYCARDIA: Priority.HIGH,
    ASYSTOLE: Priority.HIGH,
    DESATURATION: Priority.MEDIUM,
    APNEA_CLUSTER: Priority.MEDIUM,
    RESPIRATORY_EVENT: Priority.LOW,
}


@dataclass(frozen=True)
class Thresholds:
    """Per-bed limits. Defaults: SpO2 < 80 % for 15 s is critical (high); below ``spo2_low`` (88 %, the
    usual target floor) for 15 s is a desaturation (medium); HR < 40 or > 150 bpm for 10 s is high."""

    spo2_critical: float = 80.0
    spo2_critical_onset_s: float = 15.0
    spo2_low: float = 88.0
    spo2_low_onset_s: float = 15.0
    brady_bpm: float = 40.0
    brady_onset_s: float = 10.0
    tachy_bpm: float = 150.0
    tachy_onset_s: float = 10.0

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
                raise AlertError(f"threshold {f.name!r}: expected a finite number, got {value!r}")
            if f.name.endswith("_onset_s") and value < 1:
                raise AlertError(f"threshold {f.name!r}: expected >= 1 s (one aux sample), got {value!r}")
        if self.spo2_critical > self.spo2_low:
            raise AlertError(
                f"threshold 'spo2_critical' ({self.spo2_critical}) must not be above 'spo2_low' ({self.spo2_low})"
            )
        if self.brady_bpm >= self.tachy_bpm:
            raise AlertError(f"threshold 'brady_bpm' ({self.brady_bpm}) must be below 'tachy_bpm' ({self.tachy_bpm})")


@dataclass(frozen=True)
class AlertConfig:
    """Engine-wide settings; ``thresholds`` are the default for beds without ``set_thresholds``.

    ``single_respiratory_events`` is off by default: a patient with an AHI of 30 would get 30 low alerts
    an hour, exactly the non-actionable noise that causes alarm fatigue; the apnea cluster (>= 3 events
    within 5 min) is the respiratory alert a nurse can act on.
    """

    thresholds: Thresholds = field(default_factory=Thresholds)
    hysteresis_s: float = 60.0
    escalate_after_s: float = 120.0
    cluster_count: int = 3
    cluster_window_s: float = 300.0
    single_respiratory_events: bool = False


@dataclass
class Alert:
    """One alert of one bed. ``evidence`` holds ``start``/``end`` (unix s, device clock), ``count`` (how
    many occurrences were merged into it), measured ``values`` and the latest ``caption`` if one was given."""

    id: str
    bed_id: str
    recording_id: str
    type: str
    priority: Priority
    state: State
    raised_at: float
    updated_at: float
    evidence: dict[str, Any] = field(default_factory=dict)
    escalated: bool = False
    escalated_at: float | None = None
    acknowledged_by: str | None = None
    acknowledged_at: float | None = None
    resolved_at: float | None = None
    audit: list[dict[str, Any]] = field(default_factory=list)

    @property
    def active(self) -> bool:
        return self.state is not State.RESOLVED

    @property
    def latched(self) -> bool:
        """High alerts never auto-resolve: they need an acknowledgement and a cleared condition."""
        return self.priority is Priority.HIGH

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Alert:
        """An alert from ``to_dict`` output (or a store row, which has the same fields without ``audit``)."""
        return cls(
            id=str(data["id"]),
            bed_id=str(data["bed_id"]),
            recording_id=str(data["recording_id"]),
            type=str(data["type"]),
            priority=Priority(data["priority"]),
            state=State(data["state"]),
            raised_at=float(data["raised_at"]),
            updated_at=float(data["updated_at"]),
            evidence=copy.deepcopy(dict(data.get("evidence") or {})),
            escalated=bool(data.get("escalated", False)),
            escalated_at=data.get("escalated_at"),
            acknowledged_by=data.get("acknowledged_by"),
            acknowledged_at=data.get("acknowledged_at"),
            resolved_at=data.get("resolved_at"),
            audit=list(data.get("audit") or []),
        )

    def snapshot(self) -> Alert:
        return copy.deepcopy(self)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (enums as their strings, non-finite numbers as None)."""
        return {
            "id": self.id,
            "bed_id": self.bed_id,
            "recording_id": self.recording_id,
            "type": self.type,
            "priority": self.priority.value,
            "state": self.state.value,
            "raised_at": self.raised_at,
            "updated_at": self.updated_at,
            "evidence": _jsonable(self.evidence),
            "escalated": self.escalated,
            "escalated_at": self.escalated_at,
            "acknowledged_by": self.acknowledged_by,
            "acknowledged_at": self.acknowledged_at,
            "resolved_at": self.resolved_at,
            "audit": _jsonable(self.audit),
        }


EventKind = Literal["raised", "updated", "acknowledged", "escalated", "resolved"]


@dataclass(frozen=True)
class AlertEvent:
    """A transition of one alert; ``alert`` is a snapshot taken at the transition."""

    kind: EventKind
    alert: Alert

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "alert": self.alert.to_dict()}


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if hasattr(value, "item"):  # numpy scalar
        return _jsonable(value.item())
    return value


THRESHOLD_FIELDS = frozenset(f.name for f in fields(Thresholds))


def bed_thresholds(values: Mapping[str, float], defaults: Thresholds | None = None) -> Thresholds:
    """``Thresholds`` of a bed from its stored changes; ``AlertError`` naming a field that is unknown or
    makes no sense with the others (the API checks with this before storing, the workers when applying)."""
    unknown = set(values) - THRESHOLD_FIELDS
    if unknown:
        raise AlertError(f"thresholds {sorted(unknown)}: unknown, expected some of {sorted(THRESHOLD_FIELDS)}")
    return replace(defaults or Thresholds(), **{k: float(v) for k, v in values.items()})
