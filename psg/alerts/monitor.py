"""The alert agent's broker-free core: caption records and device events in, ``sleep.alerts`` records out.

``AlertMonitor`` owns the worker's ``AlertEngine`` and ``WatchRules``. What clinicians and nurses change
through the API (per-bed thresholds, watch rules, acknowledgements) reaches it as a ``ControlSnapshot``
read from the store by the agent's sync timer, and the alerts a bed already has are handed back from
the store (``restore``) the first time this worker sees the bed, so a restarted or rebalanced worker
continues the bed's alerts instead of raising them again.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from psg.alerts.catalog import AlertConfig, AlertError, AlertEvent, bed_thresholds
from psg.alerts.engine import AlertEngine
from psg.alerts.facts import facts_from_record
from psg.alerts.watch import CompiledRule, RuleScorer, WatchRules
from psg.errors import MessageError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ControlSnapshot:
    """What the store says now: per-bed threshold changes, enabled watch rules, states of our active alerts."""

    thresholds: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    rules: list[Mapping[str, Any]] = field(default_factory=list)
    alert_states: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)


def alert_record(event: AlertEvent) -> dict[str, Any]:
    """The ``sleep.alerts`` record of one transition (``encode_json`` adds the schema version)."""
    return {"kind": "alert", "event": event.kind, "bed_id": event.alert.bed_id, "alert": event.alert.to_dict()}


class AlertMonitor:
    """See the module docstring."""

    def __init__(self, config: AlertConfig | None = None, scorer: RuleScorer | None = None) -> None:
        self.engine = AlertEngine(config)
        self.watch = WatchRules(scorer)
        self.restored: set[str] = set()
        self._thresholds: dict[str, dict[str, float]] = {}

    def caption(self, record: Mapping[str, Any]) -> list[dict[str, Any]]:
        """One caption record -> the ``sleep.alerts`` records of its transitions. ``MessageError`` when the
        record's alert inputs are malformed."""
        facts = facts_from_record(dict(record))
        findings = self.watch.findings(record)
        captions = record.get("captions") or {}
        advisories = [a for a in record.get("advisories") or [] if isinstance(a, Mapping)]
        events = self.engine.process(facts, advisories, findings, captions.get("stage_event"))
        return [alert_record(e) for e in events]

    def device(self, record: Mapping[str, Any]) -> list[dict[str, Any]]:
        """A technical device event (``sleep.alerts`` kind "technical") -> alert records."""
        try:
            events = self.engine.device_event(
                str(record["bed_id"]),
                str(record["recording_id"]),
                str(record["type"]),
                float(record["at"]),
                str(record.get("stream", "")),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise MessageError(f"device event: {exc!r} (expected bed_id, recording_id, type, at, stream)") from None
        return [alert_record(e) for e in events]

    def restore(self, bed_id: str, alerts: Iterable[Mapping[str, Any]]) -> None:
        """Hand the engine the bed's stored active alerts (once per bed per ownership)."""
        self.engine.restore(alerts)
        self.restored.add(bed_id)

    def forget_beds(self, beds: Iterable[str]) -> None:
        """Beds whose partitions moved to another worker: restore again if they come back."""
        lost = set(beds)
        self.restored -= lost
        self.watch.forget_beds(lost)

    def escalate_overdue(self) -> list[dict[str, Any]]:
        """High alerts unacknowledged for ``escalate_after_s`` of wall time, also on beds that stopped sending."""
        return [alert_record(e) for e in self.engine.escalate_overdue()]

    def active_ids(self) -> list[str]:
        return [a.id for a in self.engine.active()]

    def apply(
        self, snapshot: ControlSnapshot, compiled: Mapping[int, CompiledRule | str] | None = None
    ) -> tuple[list[dict[str, Any]], list[CompiledRule]]:
        """Apply a store snapshot: thresholds, rules (``compiled`` from ``watch.compile_all`` of
        ``watch.pending(snapshot.rules)``, run off the event loop; compiled here when None),
        acknowledgements. Returns the alert records it caused and the rules installed now (their
        calibration is written back to the store)."""
        for bed_id, values in snapshot.thresholds.items():
            if self._thresholds.get(bed_id) != dict(values):
                try:
                    self.engine.set_thresholds(bed_id, bed_thresholds(values, self.engine.config.thresholds))
                    self._thresholds[bed_id] = dict(values)
                except AlertError as exc:
                    log.warning("bed %s keeps its thresholds: %s", bed_id, exc)
        for bed_id in set(self._thresholds) - set(snapshot.thresholds):
            self.engine.set_thresholds(bed_id, self.engine.config.thresholds)
            del self._thresholds[bed_id]
        installed = self.watch.update(snapshot.rules, compiled)
        events = self.engine.adopt(snapshot.alert_states)
        return [alert_record(e) for e in events], installed
