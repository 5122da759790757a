"""Modality-level captions: what the brain, heart, breathing and body signals measured in one epoch.

These are SleepLM's channel-level ("low-level") captions: each sentence reports measured features of
one modality, with every number taken from the features dict (``psg.features.epoch_features``) and
written by ``psg.captions.phrasing.fmt``. A feature that is None (channel missing or flat) turns its
sentence into "not measurable", never a made-up value. A group of channels the recording does not have at
all (``groups``, see ``psg.captions.availability``; None: every group) gets one plain sentence ("No SpO2
recorded.") instead, so a caption never describes a channel that is not there. The few qualitative words (dominant band,
conjugate eye movements, reduced airflow) are fixed functions of the same numbers, with the threshold
and its source stated where it is defined.
"""

from __future__ import annotations

from collections.abc import Mapping

from psg.captions.availability import MISSING_SENTENCES, bad_group_sentence
from psg.captions.phrasing import Phraser, all_present, fmt, fmt_band, fmt_signed, plural
from psg.errors import PSGError
from psg.features.neuro import BANDS, EEG_PREFIXES

Features = Mapping[str, float | int | str | None]
Groups = set[str] | frozenset[str] | None
#: Groups whose every channel is flagged bad, with their flags (``availability.quality_groups``).
BadGroups = Mapping[str, list[str]] | None


def unavailable(group: str, groups: Groups, bad: BadGroups) -> str | None:
    """The sentence a level writes instead of describing ``group`` (not recorded, or flagged bad), else None."""
    if groups is not None and group not in groups:
        return MISSING_SENTENCES[group]
    if bad and group in bad:
        return bad_group_sentence(group, bad[group])
    return None


def _number(features: Features, key: str) -> float:
    """Feature ``key``'s number; callers check ``all_present`` first, so None or text here is a features bug."""
    value = features[key]
    if value is None or isinstance(value, str):
        raise PSGError(f"caption feature {key!r} must be a number, got {value!r}")
    return value


def _maybe_number(features: Features, key: str) -> float | None:
    """Feature ``key``'s number, or None where the feature is absent or not measurable."""
    return None if features.get(key) is None else _number(features, key)


#: E1/E2 correlation at or below this: conjugate (out-of-phase) eye movements; at or above the opposite:
#: in-phase deflections, i.e. frontal EEG on both leads (AASM EOG derivations E1-M2 / E2-M2).
CONJUGATE_CORRELATION = -0.5
#: Airflow amplitude relative to the night baseline: below 0.1 absent (AASM apnea: >= 90 % drop),
#: below 0.7 reduced (AASM hypopnea: >= 30 % drop).
FLOW_ABSENT = 0.1
FLOW_REDUCED = 0.7


def brain_caption(features: Features, phraser: Phraser, groups: Groups = None, bad: BadGroups = None) -> str:
    """EEG band powers and slow waves per central derivation, then the eye movements."""
    eeg = unavailable("eeg", groups, bad)
    if eeg is None:
        sentences = [_eeg_sentence(features, label, prefix, phraser) for label, prefix in EEG_PREFIXES.items()]
    else:
        sentences = [eeg]
    sentences.append(unavailable("eog", groups, bad) or _eog_sentence(features, phraser))
    return " ".join(sentences)


def _eeg_sentence(features: Features, label: str, prefix: str, phraser: Phraser) -> str:
    keys = [f"{prefix}_{band}" for band in BANDS]
    name = label.removeprefix("EEG ")
    if not all_present(features, *keys, f"{prefix}_slow_wave_pct"):
        return phraser.pick(
            ("EEG {name} was not measurable in this epoch.", "No usable EEG on {name} in this epoch."), name=name
        )
    values = {band: fmt_band(_number(features, f"{prefix}_{band}")) for band in BANDS}
    dominant = max(BANDS, key=lambda band: _number(features, f"{prefix}_{band}"))
    return phraser.pick(
        (
            "EEG {name}: relative power delta {delta}, theta {theta}, alpha {alpha}, sigma {sigma}, "
            "beta {beta}, dominated by {dominant} activity; slow waves cover {swa}% of the epoch.",
            "On {name} the EEG is {dominant}-dominant (delta {delta}, theta {theta}, alpha {alpha}, "
            "sigma {sigma}, beta {beta}), with high-amplitude slow waves over {swa}% of the epoch.",
            "{name} band powers: {delta} delta, {theta} theta, {alpha} alpha, {sigma} sigma and {beta} beta; "
            "{dominant} leads, and slow waves fill {swa}% of the 30 seconds.",
        ),
        name=name,
        dominant=dominant,
        swa=fmt("slow_wave_pct", _number(features, f"{prefix}_slow_wave_pct")),
        **values,
    )


def _eog_sentence(features: Features, phraser: Phraser) -> str:
    if not all_present(features, "eog_slow_power", "eog_rapid_power"):
        return phraser.pick(("EOG was not measurable in this epoch.", "Eye movements could not be assessed."))
    slow = fmt("eog_slow_power", _number(features, "eog_slow_power"))
    rapid = fmt("eog_rapid_power", _number(features, "eog_rapid_power"))
    corr = _maybe_number(features, "eog_lr_correlation")
    if corr is None:
        return phraser.pick(
            (
                "EOG: slow eye-movement power {slow} µV², rapid eye-movement power {rapid} µV².",
                "Eye movements: {slow} µV² in the slow band and {rapid} µV² in the rapid band.",
            ),
            slow=slow,
            rapid=rapid,
        )
    if corr <= CONJUGATE_CORRELATION:
        coupling = "conjugate eye movements"
    elif corr >= -CONJUGATE_CORRELATION:
        coupling = "in-phase deflections, likely frontal brain activity"
    else:
        coupling = "no clear conjugate eye movement"
    return phraser.pick(
        (
            "EOG: slow eye-movement power {slow} µV², rapid eye-movement power {rapid} µV², "
            "left-right correlation {corr} ({coupling}).",
            "Eye movements: {slow} µV² in the slow band and {rapid} µV² in the rapid band; "
            "the two EOG leads correlate at {corr} ({coupling}).",
            "The EOG shows {rapid} µV² of rapid and {slow} µV² of slow eye-movement power, "
            "with an E1-E2 correlation of {corr} ({coupling}).",
        ),
        slow=slow,
        rapid=rapid,
        corr=fmt("eog_lr_correlation", corr),
        coupling=coupling,
    )


def cardiac_caption(features: Features, phraser: Phraser, groups: Groups = None, bad: BadGroups = None) -> str:
    """Heart rate (mean and range over the epoch's beats) and ultra-short HRV (RMSSD)."""
    plain = unavailable("ecg", groups, bad)
    if plain is not None:
        return plain
    if not all_present(features, "hr_bpm"):
        return phraser.pick(
            (
                "Electrocardiogram: heart rate was not measurable in this epoch.",
                "No reliable heartbeats could be measured on the ECG in this epoch.",
            )
        )
    rate = phraser.pick(
        (
            "Electrocardiogram: estimated beat rate at {hr} bpm",
            "ECG shows a heart rate of {hr} bpm",
            "The heart beats at {hr} bpm on average",
        ),
        hr=fmt("hr_bpm", _number(features, "hr_bpm")),
    )
    if all_present(features, "hr_min_bpm", "hr_max_bpm", "n_beats"):
        rate += phraser.pick(
            (" (range {lo}-{hi} bpm over {n} {beats})", " ({n} {beats}, {lo} to {hi} bpm)"),
            lo=fmt("hr_min_bpm", _number(features, "hr_min_bpm")),
            hi=fmt("hr_max_bpm", _number(features, "hr_max_bpm")),
            n=fmt("n_beats", _number(features, "n_beats")),
            beats=plural(_number(features, "n_beats"), "beat"),
        )
    if not all_present(features, "rmssd_ms"):
        return rate + "; heart-rate variability was not measurable."
    return rate + phraser.pick(
        (
            ", along with an ultra-short HRV (RMSSD) at {rmssd} ms.",
            ", with beat-to-beat variability (RMSSD) of {rmssd} ms.",
            "; RMSSD is {rmssd} ms.",
        ),
        rmssd=fmt("rmssd_ms", _number(features, "rmssd_ms")),
    )


def respiratory_caption(features: Features, phraser: Phraser, groups: Groups = None, bad: BadGroups = None) -> str:
    """Breathing rate per effort/flow channel, airflow amplitude and shape, oxygen saturation."""
    plain = unavailable("respiratory", groups, bad)
    breathing = [plain] if plain else [_rate_sentence(features, phraser), _flow_sentence(features, phraser)]
    spo2 = unavailable("spo2", groups, bad) or _spo2_sentence(features, phraser)
    return " ".join((*breathing, spo2))


def _rate_sentence(features: Features, phraser: Phraser) -> str:
    if not all_present(features, "resp_rate_bpm"):
        return phraser.pick(("Respiration: breathing rate was not measurable.", "No breathing rate could be measured."))
    per_channel = [
        f"{name} {fmt(key, _number(features, key))}"
        for name, key in (
            ("abdomen", "resp_rate_abd_bpm"),
            ("thorax", "resp_rate_thx_bpm"),
            ("airflow", "resp_rate_af_bpm"),
        )
        if features.get(key) is not None
    ]
    detail = f" ({', '.join(per_channel)})" if per_channel else ""
    return phraser.pick(
        (
            "Respiration: breathing rate {rate} breaths/min{detail}.",
            "Breathing runs at {rate} breaths per minute{detail}.",
            "The respiratory rate is {rate}/min{detail}.",
        ),
        rate=fmt("resp_rate_bpm", _number(features, "resp_rate_bpm")),
        detail=detail,
    )


def _flow_sentence(features: Features, phraser: Phraser) -> str:
    if not all_present(features, "flow_amplitude"):
        return phraser.pick(("Airflow amplitude was not measurable.", "Airflow could not be assessed."))
    amplitude = _number(features, "flow_amplitude")
    level = "absent" if amplitude < FLOW_ABSENT else "reduced" if amplitude < FLOW_REDUCED else "normal"
    flat = _maybe_number(features, "flow_flatness")
    flat_text = "" if flat is None else f", flattening index {fmt('flow_flatness', flat)}"
    return phraser.pick(
        (
            "Airflow amplitude is {amp} of the night baseline ({level}){flat}.",
            "Airflow runs at {amp} times its baseline amplitude ({level}){flat}.",
        ),
        amp=fmt("flow_amplitude", amplitude),
        level=level,
        flat=flat_text,
    )


def _spo2_sentence(features: Features, phraser: Phraser) -> str:
    if not all_present(features, "spo2_mean", "spo2_min"):
        return phraser.pick(("SpO2 was not measurable.", "Oxygen saturation could not be read."))
    trend = _maybe_number(features, "spo2_trend")
    trend_text = "" if trend is None else f", trend {fmt_signed('spo2_trend', trend)}%/min"
    return phraser.pick(
        (
            "SpO2 averages {mean}% (lowest {low}%){trend}.",
            "Oxygen saturation is {mean}% on average with a minimum of {low}%{trend}.",
            "Oximetry: mean {mean}%, nadir {low}%{trend}.",
        ),
        mean=fmt("spo2_mean", _number(features, "spo2_mean")),
        low=fmt("spo2_min", _number(features, "spo2_min")),
        trend=trend_text,
    )


def somatic_caption(features: Features, phraser: Phraser, groups: Groups = None, bad: BadGroups = None) -> str:
    """Chin muscle tone and body position."""
    emg = unavailable("emg", groups, bad)
    if emg is None and all_present(features, "emg_tone_uv", "emg_median_freq_hz"):
        emg = phraser.pick(
            (
                "Chin EMG: tone {tone} µV RMS with median frequency {mf} Hz.",
                "Chin muscle activity measures {tone} µV RMS (median frequency {mf} Hz).",
                "Submental EMG tone is {tone} µV, its median frequency {mf} Hz.",
            ),
            tone=fmt("emg_tone_uv", _number(features, "emg_tone_uv")),
            mf=fmt("emg_median_freq_hz", _number(features, "emg_median_freq_hz")),
        )
    elif emg is None:
        emg = phraser.pick(("Chin EMG was not measurable in this epoch.", "Chin muscle tone could not be measured."))
    name = features.get("position_name")
    position = unavailable("position", groups, bad)
    if position is not None:
        return emg + " " + position
    if name is None:
        return emg + " " + phraser.pick(("Body position was not recorded.", "Position is unavailable."))
    return (
        emg
        + " "
        + phraser.pick(
            ("Body position: {name}.", "Position sensor reads {name}.", "Recorded body position is {name}."),
            name=str(name),
        )
    )
