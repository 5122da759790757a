"""Whole-night sleep and breathing report: the numbers a sleep physician reads first, and their caption.

Definitions follow the "Sleep scoring data" and "Respiratory" reporting parameters of the AASM Manual
for the Scoring of Sleep and Associated Events (Berry et al., v2.6, 2020):

* TIB (here the total recording time, lights out to lights on = the whole recording);
* TST = minutes scored N1, N2, N3 or R;
* sleep efficiency = TST / TIB x 100;
* sleep-onset latency = lights out to the first epoch of any sleep stage;
* R latency = sleep onset to the first epoch of stage R;
* WASO = TIB - sleep-onset latency - TST (so it includes wake after the final awakening and
  unscored time after sleep onset, as the manual's formula does);
* stage minutes and % of TST;
* AHI = (apneas + hypopneas) x 60 / TST; ODI = oxygen desaturations (>= 3 %, the AASM recommended
  hypopnea criterion) x 60 / TST; arousal index = arousals x 60 / TST. Only events whose onset falls
  in an epoch scored as sleep count, because the indices are "per hour of sleep";
* SpO2 mean, minimum and time below 90 % (T90) during sleep epochs. Samples outside 50-100 % are
  probe artifacts (a detached probe reads 0) and are excluded.

A discontinuous recording (EDF+D) has gaps with no data. An epoch that touches a gap and that no scorer
staged is not time in bed: it counts in neither TIB, the latencies, WASO nor the unscored minutes, and
``gap_min`` (the gap time to the second) and ``gaps`` (the stretches, seconds from recording start) say how
much was missing. SpO2 samples inside a gap are never read. Latencies are then recorded time (gap epochs
left out), so TIB = sleep-onset latency + TST + WASO still holds.

Every index is ``None`` where it is undefined (no sleep, no SpO2) rather than a misleading 0. An index
whose channels the recording does not have (``groups``, ``psg.captions.availability``) is None too, and
``not_recorded`` says why: ``{"ahi": "respiratory channels not recorded", ...}`` (empty when nothing is).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from psg.recording import Signal
from psg.timeline import EPOCH_S, RESPIRATORY_EVENT_TYPES, Event, Stage

SLEEP_STAGES = (Stage.N1, Stage.N2, Stage.N3, Stage.R)
#: Plausible SpO2 range; readings outside it are probe artifacts, not physiology.
SPO2_VALID = (50.0, 100.0)
#: Hypoxaemia threshold for T90 (time with SpO2 below 90 %), the conventional nocturnal oximetry cut-off.
T90_THRESHOLD = 90.0
#: AHI severity cut-offs (AASM clinical practice guideline, Kapur et al., J Clin Sleep Med 2017):
#: < 5 normal, 5-15 mild, 15-30 moderate, >= 30 severe obstructive sleep apnea.
AHI_SEVERITY = ((5.0, "within normal limits"), (15.0, "mild"), (30.0, "moderate"), (float("inf"), "severe"))

#: One summary value: an index or count (None where undefined or not recorded), the ``not_recorded``
#: reasons, the ``gaps`` stretches, or the caption and source words the report adds.
SummaryValue = float | int | str | dict[str, str] | list[list[float]] | None
Summary = dict[str, SummaryValue]

#: Summary keys that need a channel group, and the reason they are None without it.
NEEDS_GROUP: dict[str, tuple[tuple[str, ...], str]] = {
    "respiratory": (("apnea_count", "hypopnea_count", "ahi"), "respiratory channels not recorded"),
    "spo2": (("desaturation_count", "odi", "spo2_mean", "spo2_min", "t90_min", "t90_pct_tst"), "no SpO2 recorded"),
}
NOT_RECORDED = "not recorded"

#: Decimals kept in the summary: finer than any clinical report prints, and coarse enough that EDF
#: quantisation (an 86 % SpO2 sample reads back as 85.9998) does not leak into the numbers.
REPORT_DECIMALS = 2


def night_summary(
    stages: np.ndarray,
    events: Iterable[Event],
    spo2: Signal | None,
    epoch_s: float = EPOCH_S,
    *,
    arousals_scored: bool = True,
    groups: set[str] | frozenset[str] | None = None,
    gaps: Iterable[tuple[float, float]] = (),
) -> Summary:
    """The night's sleep architecture, respiratory indices and oximetry (see the module docstring).

    ``stages`` holds one ``Stage`` code per epoch; ``events`` are scored or detected events in seconds
    from recording start; ``spo2`` is the oximetry channel or None. ``arousals_scored=False`` says the
    events come from a source that does not score arousals (the rule detectors): the arousal count and
    index are then None, not a reassuring 0. ``groups``: the channel groups the recording has (None: all);
    indices of a missing group are None with the reason under ``not_recorded``. ``gaps``: the recording's
    gaps (``Recording.gaps``), see the module docstring.
    """
    stages = np.asarray(stages, dtype=np.int64)
    gaps = sorted((float(a), min(float(b), stages.size * epoch_s)) for a, b in gaps if a < stages.size * epoch_s)
    epoch_min = epoch_s / 60.0
    asleep = np.isin(stages, [int(s) for s in SLEEP_STAGES])
    unrecorded = _gap_epochs(gaps, stages.size, epoch_s) & (stages == Stage.UNSCORED)
    recorded_before = np.concatenate([[0], np.cumsum(~unrecorded)])  # recorded epochs before each index
    tib = float(stages.size - unrecorded.sum()) * epoch_min
    tst = float(asleep.sum()) * epoch_min
    onset = int(np.argmax(asleep)) if asleep.any() else None
    rem = np.flatnonzero(stages == Stage.R)
    sol = None if onset is None else float(recorded_before[onset]) * epoch_min
    rem_latency = (
        None
        if onset is None or rem.size == 0
        else float(recorded_before[int(rem[0])] - recorded_before[onset]) * epoch_min
    )

    summary: Summary = {
        "n_epochs": int(stages.size),
        "tib_min": tib,
        "tst_min": tst,
        "sleep_efficiency_pct": 100.0 * tst / tib if tib > 0 else None,
        "sleep_onset_latency_min": sol,
        "rem_latency_min": rem_latency,
        "waso_min": None if sol is None else tib - sol - tst,
        "w_min": float(np.sum(stages == Stage.W)) * epoch_min,
        "unscored_min": float(np.sum((stages == Stage.UNSCORED) & ~unrecorded)) * epoch_min,
        "gap_min": sum(b - a for a, b in gaps) / 60.0,
    }
    for stage in SLEEP_STAGES:
        minutes = float(np.sum(stages == stage)) * epoch_min
        summary[f"{stage.label.lower()}_min"] = minutes
        summary[f"{stage.label.lower()}_pct_tst"] = 100.0 * minutes / tst if tst > 0 else None

    in_sleep = [e for e in events if _onset_in_sleep(e, asleep, epoch_s)]
    counts: dict[str, int] = {
        "apnea_count": sum(e.type in RESPIRATORY_EVENT_TYPES and e.type != "hypopnea" for e in in_sleep),
        "hypopnea_count": sum(e.type == "hypopnea" for e in in_sleep),
        "desaturation_count": sum(e.type == "desaturation" for e in in_sleep),
        "arousal_count": sum(e.type == "arousal" for e in in_sleep),
    }
    summary.update(counts)
    summary["ahi"] = _per_hour(counts["apnea_count"] + counts["hypopnea_count"], tst)
    summary["odi"] = _per_hour(counts["desaturation_count"], tst)
    summary["arousal_index"] = _per_hour(counts["arousal_count"], tst)
    if not arousals_scored:
        summary["arousal_count"] = summary["arousal_index"] = None
    summary.update(_oximetry(spo2, asleep, epoch_s, gaps))
    not_recorded: dict[str, str] = {}
    for group, (keys, reason) in NEEDS_GROUP.items():
        if groups is not None and group not in groups:
            for key in keys:
                summary[key] = None
                not_recorded[key] = reason
    summary["not_recorded"] = not_recorded
    summary["gaps"] = [[round(a, REPORT_DECIMALS), round(b, REPORT_DECIMALS)] for a, b in gaps]
    return {k: round(v, REPORT_DECIMALS) if isinstance(v, float) else v for k, v in summary.items()}


def _gap_epochs(gaps: list[tuple[float, float]], n: int, epoch_s: float) -> np.ndarray:
    """Per epoch, True when any of it falls in one of ``gaps`` (as ``Recording.gap_epochs``)."""
    flags = np.zeros(n, dtype=bool)
    for start, end in gaps:
        flags[int(start // epoch_s) : int(np.ceil(end / epoch_s))] = True
    return flags


def _onset_in_sleep(event: Event, asleep: np.ndarray, epoch_s: float) -> bool:
    i = int(event.onset_s // epoch_s)
    return 0 <= i < asleep.size and bool(asleep[i])


def _per_hour(count: int, tst_min: float) -> float | None:
    return count * 60.0 / tst_min if tst_min > 0 else None


def _oximetry(
    spo2: Signal | None, asleep: np.ndarray, epoch_s: float, gaps: Sequence[tuple[float, float]] = ()
) -> Summary:
    """SpO2 mean, minimum and T90 over valid samples that fall in sleep epochs and outside the gaps."""
    empty: Summary = {"spo2_mean": None, "spo2_min": None, "t90_min": None, "t90_pct_tst": None}
    if spo2 is None or not asleep.any():
        return empty
    epoch_of_sample = (np.arange(spo2.data.size) / spo2.fs // epoch_s).astype(np.int64)
    in_night = epoch_of_sample < asleep.size
    sleeping = np.zeros(spo2.data.size, dtype=bool)
    sleeping[in_night] = asleep[epoch_of_sample[in_night]]
    for start, end in gaps:
        sleeping[int(np.floor(start * spo2.fs)) : int(np.ceil(end * spo2.fs))] = False
    values = spo2.data[sleeping]
    values = values[np.isfinite(values) & (values >= SPO2_VALID[0]) & (values <= SPO2_VALID[1])]
    if values.size == 0:
        return empty
    t90_min = float(np.sum(values < T90_THRESHOLD)) / spo2.fs / 60.0
    valid_min = values.size / spo2.fs / 60.0
    return {
        "spo2_mean": float(values.mean()),
        "spo2_min": float(values.min()),
        "t90_min": t90_min,
        "t90_pct_tst": 100.0 * t90_min / valid_min,
    }


def ahi_severity(ahi: float) -> str:
    """Severity words for an AHI (``AHI_SEVERITY``)."""
    return next(label for limit, label in AHI_SEVERITY if ahi < limit)


def summary_number(summary: Summary, key: str) -> float | None:
    """``summary[key]`` as the index or count it is (None where undefined); TypeError naming the key
    if it holds words or a list, so arithmetic on it fails here rather than far away."""
    value = summary[key]
    if value is None or isinstance(value, (int, float)):
        return value
    raise TypeError(f"summary {key!r}: expected a number or None, got {type(value).__name__}")


def summary_not_recorded(summary: Summary) -> dict[str, str]:
    """Why indices are None (``not_recorded``): empty when the summary has no reasons."""
    reasons = summary.get("not_recorded")
    return reasons if isinstance(reasons, dict) else {}


def summary_caption(summary: Summary) -> str:
    """The night in a few sentences, every number taken from ``summary`` (one decimal throughout)."""
    parts = [f"Time in bed was {summary['tib_min']:.1f} min with a total sleep time of {summary['tst_min']:.1f} min"]
    if summary["sleep_efficiency_pct"] is not None:
        parts[0] += f" (sleep efficiency {summary['sleep_efficiency_pct']:.1f}%)"
    parts[0] += "."
    if summary.get("gap_min"):
        parts.append(
            f"{summary['gap_min']:.1f} min were not recorded (recording gaps) and are not counted as time in bed."
        )
    if summary["sleep_onset_latency_min"] is None:
        parts.append("No sleep during the recording.")
        return " ".join(parts + _oximetry_sentences(summary))
    rem_latency = summary["rem_latency_min"]
    parts.append(
        f"Sleep onset latency was {summary['sleep_onset_latency_min']:.1f} min, "
        + ("no REM sleep occurred" if rem_latency is None else f"REM latency {rem_latency:.1f} min")
        + f", and wake after sleep onset {summary['waso_min']:.1f} min."
    )
    parts.append(
        "Stage distribution: "
        + ", ".join(
            f"{stage.label} {summary[f'{stage.label.lower()}_min']:.1f} min "
            f"({summary[f'{stage.label.lower()}_pct_tst']:.1f}% of sleep)"
            for stage in SLEEP_STAGES
        )
        + "."
    )
    ahi = summary_number(summary, "ahi")
    arousals = (
        "no arousal index (arousals not assessed)"
        if summary["arousal_index"] is None
        else f"the arousal index {summary['arousal_index']:.1f}/h"
    )
    not_recorded = summary_not_recorded(summary)
    if ahi is None or summary["odi"] is None:
        breathing = (
            f"No apnea-hypopnea index ({not_recorded.get('ahi', 'respiratory channels not recorded')})"
            if ahi is None
            else f"The apnea-hypopnea index was {ahi:.1f} events/h ({ahi_severity(ahi)}; "
            f"{summary['apnea_count']} apneas, {summary['hypopnea_count']} hypopneas)"
        )
        odi = (
            f"no oxygen desaturation index ({not_recorded.get('odi', 'no SpO2 recorded')})"
            if summary["odi"] is None
            else f"the oxygen desaturation index {summary['odi']:.1f}/h"
        )
        parts.append(f"{breathing}; {odi}; {arousals}.")
        return " ".join(parts + _oximetry_sentences(summary))
    parts.append(
        f"The apnea-hypopnea index was {ahi:.1f} events/h ({ahi_severity(ahi)}; "
        f"{summary['apnea_count']} apneas, {summary['hypopnea_count']} hypopneas), "
        f"the oxygen desaturation index {summary['odi']:.1f}/h and {arousals}."
    )
    return " ".join(parts + _oximetry_sentences(summary))


def _oximetry_sentences(summary: Summary) -> list[str]:
    reason = summary_not_recorded(summary).get("spo2_mean")
    if reason:  # "no SpO2 recorded", or why a scoring file has none
        return [f"{reason[0].upper()}{reason[1:]}."]
    if summary["spo2_mean"] is None:
        return ["SpO2 during sleep was not measurable."]
    return [
        f"SpO2 during sleep averaged {summary['spo2_mean']:.1f}% with a lowest value of "
        f"{summary['spo2_min']:.1f}% and {summary['t90_min']:.1f} min below 90%."
    ]
