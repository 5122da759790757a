"""The broker-free alert engine: epochs (plus model advisories and watch findings) in, alert transitions out.

WHY it is built this way: 87-99 % of bedside monitor alarms are not actionable, and the flood teaches
nurses to ignore them (alarm fatigue). So the engine

* waits an onset delay before a sustained condition raises (a 10-s dip below 80 % SpO2 is a probe
  wiggle far more often than a hypoxaemic patient), counting consecutive seconds across epochs;
* merges a repeat of the same (bed, type) into the active alert instead of raising a new one;
* keeps a non-latched alert up until its condition has been clear for ``hysteresis_s`` so it does not
  flap around its threshold; high alerts latch (a nurse must have seen them) and escalate once when not
  acknowledged within ``escalate_after_s``;
* suppresses clinical alerts whose channel is bad (flat, missing, gap, signal loss): an apnea on a flat
  airflow trace or a desaturation from a probe off the finger is an artifact, and the nurse gets ONE
  technical alert for that channel group instead, resolved when the channel is good again.

All timing uses the device clock of the epochs (``start_time`` + second index), never the wall clock,
so replays and tests are deterministic. Epochs of a bed are expected in order (the epocher releases them
so); an epoch older than the bed's last one is ignored.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import numpy as np

from psg.alerts.book import AlertBook, BedState, ConditionRun
from psg.alerts.catalog import (
    APNEA_CLUSTER,
    ASYSTOLE,
    BRADYCARDIA,
    DESATURATION,
    PRIORITIES,
    RESPIRATORY_EVENT,
    SPO2_CRITICAL,
    TACHYCARDIA,
    TECHNICAL_PREFIX,
    Alert,
    AlertError,
    AlertEvent,
    Priority,
    State,
)
from psg.alerts.facts import EpochFacts
from psg.montage import ABD, AF, ECG, HR, SPO2, THX
from psg.timeline import RESPIRATORY_EVENT_TYPES

#: Quality flags that make a channel unusable for alerts ("clipped"/"noisy" traces still carry the
#: rhythm and the oximeter number, so they do not suppress).
BAD_FLAGS = frozenset({"flat", "missing", "gap"})
#: Channel groups clinical alerts depend on.
GROUPS: dict[str, tuple[str, ...]] = {"spo2": (SPO2,), "cardiac": (ECG, HR), "respiratory": (AF, THX, ABD)}
DEPENDS: dict[str, str] = {
    SPO2_CRITICAL: "spo2",
    DESATURATION: "spo2",
    BRADYCARDIA: "cardiac",
    TACHYCARDIA: "cardiac",
    ASYSTOLE: "cardiac",
    APNEA_CLUSTER: "respiratory",
    RESPIRATORY_EVENT: "respiratory",
}
RESPIRATORY_TYPES = frozenset(RESPIRATORY_EVENT_TYPES)
#: The technical alert of a bed whose device stream(s) stopped arriving.
STREAM_ALERT = f"{TECHNICAL_PREFIX}stream"
#: Two detector events of one type overlapping within this tolerance are the same event seen from two
#: windows (an event spanning an epoch boundary is reported with both epochs).
SAME_EVENT_TOLERANCE_S = 1.0
#: Model advisory types -> the event class one advisory episode stands for. The model flags every class
#: whose score clears its threshold, so one obstructive hypopnea often lights up apnea, hypopnea and
#: desaturation advisories in the same epoch, and the type may change from epoch to epoch within one
#: event: a nurse wants one "possible breathing event" line, not four rows per 30 s.
ADVISORY_CLASSES: dict[str, str] = {
    **dict.fromkeys(("obstructive_apnea", "central_apnea", "mixed_apnea", "hypopnea"), "respiratory"),
    "desaturation": "desaturation",
    "arousal": "arousal",
}
#: An advisory episode ends after this long without its class (device seconds); until then a recurrence
#: extends the one advisory (its ``count`` of epochs and its span) instead of raising another.
ADVISORY_EPISODE_GAP_S = 300.0


def advisory_class(kind: str) -> str:
    """The event class of a model advisory type ('hypopnea' -> 'respiratory'); unknown types are their own."""
    return ADVISORY_CLASSES.get(kind, kind)


def alert_id(bed_id: str, kind: str, raised_at: float) -> str:
    """``<bed>:<type>:<device second it was raised>``: the same data raise the same id, so an alert
    raised again by a replay after a worker restart is the stored one, not a second alert."""
    return f"{bed_id}:{kind}:{int(math.floor(raised_at))}"


def _stream_evidence(start: float, end: float, count: int, streams: list[str]) -> dict[str, Any]:
    lost = sorted(streams)
    text = f"technical: device stream(s) {', '.join(lost)} lost" if lost else "technical: device streams back"
    return {"start": start, "end": end, "count": count, "values": {"streams": lost}, "text": text}


def group_bad(group: str, bad: set[str]) -> bool:
    """Whether a channel group is unusable given the set of bad channel labels.

    * spo2: the SpO2 channel is bad;
    * cardiac: ECG and HR are both bad (HR comes from the monitor or, failing that, from ECG R peaks,
      so either one good keeps the rate trustworthy; a bed without a monitor HR has HR 'missing');
    * respiratory: airflow is bad (a flat AF trace *looks* like an apnea) or both effort belts are bad.
    """
    if group == "spo2":
        return SPO2 in bad
    if group == "cardiac":
        return ECG in bad and HR in bad
    if group == "respiratory":
        return AF in bad or (THX in bad and ABD in bad)
    raise AlertError(f"channel group {group!r}: expected one of {sorted(GROUPS)}")


class AlertEngine(AlertBook):
    """Turns epochs (``EpochFacts``: an ``EpochMessage`` or a caption record's facts) into alert transitions;
    see the module docstring for the rules.

    ``process`` and ``tick`` return ``AlertEvent``s (raised, updated, acknowledged, escalated, resolved)
    with alert snapshots; the caller publishes and stores them.
    """

    # --- device streams -----------------------------------------------------------------------------

    def device_event(self, bed_id: str, recording_id: str, kind: str, at: float, stream: str) -> list[AlertEvent]:
        """A device stream of the bed was lost or resumed (the bridge's events): one technical alert per bed,
        ``technical:stream`` (medium: someone must go to the bed), naming every stream still lost; it
        resolves when the last lost stream is back. Other kinds (spool overflow) raise nothing here."""
        bed = self._bed(bed_id)
        self._events, self._touched, self._caption = [], set(), None
        alert = bed.active.get(STREAM_ALERT)
        at = float(at)
        if kind == "stream_lost" and alert is None:
            alert = Alert(
                id=alert_id(bed_id, STREAM_ALERT, at),
                bed_id=bed_id,
                recording_id=recording_id,
                type=STREAM_ALERT,
                priority=Priority.MEDIUM,
                state=State.RAISED,
                raised_at=at,
                updated_at=at,
                evidence=_stream_evidence(at, at, 1, [stream]),
            )
            self._alerts[alert.id] = alert
            self._held_since[alert.id] = self.clock()
            bed.active[STREAM_ALERT] = alert
            self._emit("raised", alert)
        elif kind == "stream_lost" and alert is not None and stream not in alert.evidence["values"]["streams"]:
            ev = alert.evidence
            alert.evidence = _stream_evidence(ev["start"], at, ev["count"] + 1, [*ev["values"]["streams"], stream])
            alert.updated_at = max(alert.updated_at, at)
            self._emit("updated", alert)
        elif kind == "stream_resumed" and alert is not None:
            ev = alert.evidence
            remaining = [s for s in ev["values"]["streams"] if s != stream]
            alert.evidence = _stream_evidence(ev["start"], max(float(ev["end"]), at), ev["count"], remaining)
            if remaining:
                alert.updated_at = max(alert.updated_at, at)
                self._emit("updated", alert)
            else:
                self._resolve(bed, alert, at)
        return self._events

    # --- time ---------------------------------------------------------------------------------------

    def tick(self, now: float) -> list[AlertEvent]:
        """Time-based transitions at device time ``now``: escalation of unacknowledged high alerts, and
        resolution of alerts clear for long enough by the data seen so far (a bed that stopped sending
        does not resolve anything: silence is not evidence of recovery)."""
        events: list[AlertEvent] = []
        for bed in self._beds.values():
            events += self._time_transitions(bed, now)
        return events

    # --- the epoch ----------------------------------------------------------------------------------

    def process(
        self,
        message: EpochFacts,
        advisories: Iterable[Mapping[str, Any]] = (),
        watch_findings: Iterable[Mapping[str, Any]] = (),
        caption: str | None = None,
    ) -> list[AlertEvent]:
        """One epoch of one bed: evaluate every rule second by second, then the time transitions at the
        epoch's end. ``advisories`` are the model's (dicts with ``type`` and ``score``), ``watch_findings``
        the watch rules' (``rule_id``, ``text``, ``score``); ``caption`` goes into the evidence."""
        bed = self._bed(message.bed_id)
        t0 = float(message.start_time)
        t_end = t0 + float(message.epoch_s)
        if t0 < bed.last_end - 1e-6:
            return []  # a replayed or out-of-order epoch: its seconds were already judged
        if bed.recording_id != message.recording_id or t0 > bed.last_end + 1.0:
            bed.runs.clear()  # new recording or missing epochs: consecutive-second runs break
        bed.recording_id = message.recording_id
        self._events, self._touched, self._caption = [], set(), caption
        recording_start = t0 - message.epoch * float(message.epoch_s)
        bad = {label for label, flags in message.quality.items() if BAD_FLAGS.intersection(flags or ())}
        for event in message.events:
            if event.get("type") == "signal_loss" and event.get("channel"):
                bad.add(str(event["channel"]))
        bad_groups = {g for g in GROUPS if group_bad(g, bad)}

        for group in GROUPS:
            self._technical(bed, message, group, group in bad_groups, t0, t_end, bad)
        aux = np.asarray(message.aux, dtype=float)
        th = self.thresholds(message.bed_id)
        if "spo2" not in bad_groups and aux.shape[0] > 0:
            self._sustained(
                bed,
                message,
                SPO2_CRITICAL,
                aux[0],
                lambda v: v < th.spo2_critical,
                th.spo2_critical_onset_s,
                "min_spo2",
                min,
                t0,
            )
            self._sustained(
                bed, message, DESATURATION, aux[0], lambda v: v < th.spo2_low, th.spo2_low_onset_s, "min_spo2", min, t0
            )
        else:
            self._break_runs(bed, (SPO2_CRITICAL, DESATURATION))
        if "cardiac" not in bad_groups and aux.shape[0] > 1:
            self._sustained(
                bed, message, BRADYCARDIA, aux[1], lambda v: v < th.brady_bpm, th.brady_onset_s, "min_hr", min, t0
            )
            self._sustained(
                bed, message, TACHYCARDIA, aux[1], lambda v: v > th.tachy_bpm, th.tachy_onset_s, "max_hr", max, t0
            )
        else:
            self._break_runs(bed, (BRADYCARDIA, TACHYCARDIA))
        self._detector_events(bed, message, recording_start, bad_groups)
        self._external(bed, message, advisories, watch_findings, t_end)

        bed.last_end = max(bed.last_end, t_end)
        for kind_alert in list(bed.active.values()):
            if kind_alert.id in self._touched:
                self._emit("updated", kind_alert, only_once=True)
        events = self._events
        events += self._time_transitions(bed, t_end)
        return events

    # --- rules --------------------------------------------------------------------------------------

    def _sustained(
        self,
        bed: BedState,
        message: EpochFacts,
        kind: str,
        series: np.ndarray,
        holds: Callable[[float], bool],
        onset_s: float,
        value_name: str,
        pick: Callable[[float, float], float],
        t0: float,
    ) -> None:
        """A per-second condition that must hold ``onset_s`` consecutive seconds; NaN breaks the run."""
        run = bed.runs.setdefault(kind, ConditionRun())
        for i, value in enumerate(series):
            t = t0 + i
            if not math.isfinite(value) or not holds(value):
                run.start, run.extreme = None, math.nan
                continue
            if run.start is None:
                run.start, run.extreme = t, float(value)
            else:
                run.extreme = pick(run.extreme, float(value))
            if t + 1 - run.start >= onset_s - 1e-9:
                self._hold(
                    bed,
                    message,
                    kind,
                    run.start,
                    t + 1,
                    {value_name: run.extreme},
                    new_occurrence=(t + 1 - run.start) < onset_s + 0.5,
                )

    def _break_runs(self, bed: BedState, kinds: Iterable[str]) -> None:
        for kind in kinds:
            bed.runs.pop(kind, None)

    def _detector_events(
        self, bed: BedState, message: EpochFacts, recording_start: float, bad_groups: set[str]
    ) -> None:
        cfg = self.config
        for event in sorted(message.events, key=lambda e: float(e.get("onset_s", 0.0))):
            etype = event.get("type")
            if etype not in RESPIRATORY_TYPES and etype != ASYSTOLE:
                continue  # desaturation/brady/tachy come from the aux series; signal_loss is quality
            group = "respiratory" if etype in RESPIRATORY_TYPES else "cardiac"
            if group in bad_groups:
                continue
            start = recording_start + float(event.get("onset_s", 0.0))
            end = start + max(0.0, float(event.get("duration_s", 0.0)))
            if not self._new_event(bed, etype, start, end):
                continue
            if etype == ASYSTOLE:
                self._hold(bed, message, ASYSTOLE, start, end, {"duration_s": end - start}, new_occurrence=True)
                continue
            if cfg.single_respiratory_events:
                self._hold(bed, message, RESPIRATORY_EVENT, start, end, {"event": etype}, new_occurrence=True)
            recent = [s for s in bed.seen if s[0] in RESPIRATORY_TYPES and start - s[1] <= cfg.cluster_window_s]
            if len(recent) >= cfg.cluster_count:
                # The cluster holds while `cluster_count` events still fit one window: until the oldest of
                # the latest `cluster_count` events leaves it (then the hysteresis starts).
                until = sorted(s[1] for s in recent)[-cfg.cluster_count] + cfg.cluster_window_s
                alert = bed.active.get(APNEA_CLUSTER)
                if alert is None:
                    values = {"events": len(recent), "types": sorted({s[0] for s in recent})}
                    self._hold(
                        bed,
                        message,
                        APNEA_CLUSTER,
                        min(s[1] for s in recent),
                        end,
                        values,
                        new_occurrence=True,
                        until=until,
                    )
                else:  # merge: one more event of the ongoing cluster
                    values = {
                        "events": int(alert.evidence["values"]["events"]) + 1,
                        "types": sorted(set(alert.evidence["values"]["types"]) | {etype}),
                    }
                    self._hold(bed, message, APNEA_CLUSTER, start, end, values, new_occurrence=False, until=until)

    def _new_event(self, bed: BedState, etype: str, start: float, end: float) -> bool:
        horizon = end - max(self.config.cluster_window_s, self.config.hysteresis_s) - 60.0
        bed.seen = [s for s in bed.seen if s[2] >= horizon]
        tol = SAME_EVENT_TOLERANCE_S
        respiratory = etype in RESPIRATORY_TYPES
        for kind, s, e in bed.seen:
            # One event keeps one identity across the epochs (windows) that saw it, even if a window that
            # cut it short typed it differently (a hypopnea in one window, an apnea in the next).
            same = kind == etype or (respiratory and kind in RESPIRATORY_TYPES)
            if same and start <= e + tol and end >= s - tol:
                return False
        bed.seen.append((etype, start, end))
        return True

    def _external(
        self,
        bed: BedState,
        message: EpochFacts,
        advisories: Iterable[Mapping[str, Any]],
        watch_findings: Iterable[Mapping[str, Any]],
        t_end: float,
    ) -> None:
        """Model advisories and watch-rule findings: one advisory alert per bed per event class (or rule) per
        episode. An epoch's advisories of one class count once; a recurrence within
        ``ADVISORY_EPISODE_GAP_S`` extends the episode (span, ``count`` of epochs, ``types`` seen)."""
        t0 = float(message.start_time)
        until = t_end + ADVISORY_EPISODE_GAP_S - self.config.hysteresis_s
        by_class: dict[str, list[Mapping[str, Any]]] = {}
        for adv in advisories:
            by_class.setdefault(advisory_class(str(adv.get("type", "unknown"))), []).append(adv)
        for cls, members in by_class.items():
            kind = f"advisory:{cls}"
            active = bed.active.get(kind)
            types = {str(a.get("type", "unknown")) for a in members}
            types |= set(active.evidence.get("values", {}).get("types") or ()) if active else set()
            scores = [float(a["score"]) for a in members if isinstance(a.get("score"), int | float)]
            values = {"score": max(scores) if scores else None, "types": sorted(types)}
            self._hold(
                bed, message, kind, t0, t_end, values, new_occurrence=True, priority=Priority.ADVISORY, until=until
            )
        for finding in watch_findings:
            kind = f"watch:{finding.get('rule_id', 'unknown')}"
            values = {"score": finding.get("score"), "text": finding.get("text"), "rule_id": finding.get("rule_id")}
            self._hold(
                bed, message, kind, t0, t_end, values, new_occurrence=True, priority=Priority.ADVISORY, until=until
            )

    def _technical(
        self, bed: BedState, message: EpochFacts, group: str, is_bad: bool, t0: float, t_end: float, bad: set[str]
    ) -> None:
        kind = f"{TECHNICAL_PREFIX}{group}"
        if is_bad:
            channels = [c for c in GROUPS[group] if c in bad]
            flags = {c: list(message.quality.get(c, [])) or ["signal_loss"] for c in channels}
            text = f"technical: {'/'.join(GROUPS[group])} signal bad ({', '.join(channels)})"
            self._hold(
                bed,
                message,
                kind,
                t0,
                t_end,
                {"channels": flags, "text": text},
                new_occurrence=False,
                priority=Priority.LOW,
            )
        elif kind in bed.active:  # channel good again: the technical alert resolves at once
            self._resolve(bed, bed.active[kind], t0)

    # --- alert bookkeeping --------------------------------------------------------------------------

    def _hold(
        self,
        bed: BedState,
        message: EpochFacts,
        kind: str,
        start: float,
        end: float,
        values: dict[str, Any],
        new_occurrence: bool,
        priority: Priority | None = None,
        until: float | None = None,
    ) -> None:
        """The condition of ``kind`` holds over [start, end] (and counts as holding until ``until`` when
        given): raise, or merge into the active alert."""
        bed.last_true[kind] = max(bed.last_true.get(kind, -math.inf), end if until is None else until)
        alert = bed.active.get(kind)
        if alert is None:
            alert = Alert(
                id=alert_id(message.bed_id, kind, end),
                bed_id=message.bed_id,
                recording_id=message.recording_id,
                type=kind,
                priority=priority or PRIORITIES[kind],
                state=State.RAISED,
                raised_at=end,
                updated_at=end,
                evidence={"start": start, "end": end, "count": 1, "values": dict(values)},
            )
            if self._caption:
                alert.evidence["caption"] = self._caption
            self._alerts[alert.id] = alert
            self._held_since[alert.id] = self.clock()
            bed.active[kind] = alert
            self._emit("raised", alert)
            return
        ev = alert.evidence
        ev["start"], ev["end"] = min(ev["start"], start), max(ev["end"], end)
        old = ev.get("values", {})
        merged = dict(old)
        for name, value in values.items():
            if name.startswith("min_") and name in old and old[name] is not None:
                merged[name] = min(old[name], value)
            elif name.startswith("max_") and name in old and old[name] is not None:
                merged[name] = max(old[name], value)
            else:
                merged[name] = value
        ev["values"] = merged
        if new_occurrence:
            ev["count"] = int(ev.get("count", 1)) + 1
        if self._caption:
            ev["caption"] = self._caption
        alert.updated_at = max(alert.updated_at, end)
        if not any(e.alert.id == alert.id and e.kind == "raised" for e in self._events):
            self._touched.add(alert.id)
