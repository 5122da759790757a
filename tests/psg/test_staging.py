"""Rule-based fallback stager: each AASM rule on hand-built features, then accuracy on simulated nights."""

from __future__ import annotations

import numpy as np
import pytest

from psg.features.neuro import neuro_epoch_features
from psg.simulate import simulate
from psg.staging import rule_stages
from psg.synthetic import synthetic_timeline
from psg.timeline import Stage

# Typical relative powers per stage, and chin tone / rapid-EOG power in units of the night's median epoch.
PROFILES = {
    "W": dict(alpha=0.5, delta=0.2, theta=0.08, swa=0.0, tone=2.5, rapid=700.0),
    "W_eyes_open": dict(alpha=0.1, delta=0.3, theta=0.1, swa=0.0, tone=2.5, rapid=700.0),
    "N1": dict(alpha=0.09, delta=0.45, theta=0.38, swa=0.0, tone=1.6, rapid=10.0),
    "N2": dict(alpha=0.04, delta=0.72, theta=0.17, swa=4.0, tone=1.0, rapid=1.0),
    "N3": dict(alpha=0.01, delta=0.92, theta=0.05, swa=30.0, tone=1.0, rapid=0.5),
    "R": dict(alpha=0.12, delta=0.4, theta=0.35, swa=0.0, tone=0.3, rapid=1000.0),
}
EXPECTED = {"W": Stage.W, "W_eyes_open": Stage.W, "N1": Stage.N1, "N2": Stage.N2, "N3": Stage.N3, "R": Stage.R}


def _features(profile: dict[str, float], eeg: bool = True) -> dict[str, float | None]:
    out: dict[str, float | None] = {"emg_tone_uv": 10.0 * profile["tone"], "eog_rapid_power": profile["rapid"]}
    for prefix in ("c3", "c4"):
        for key in ("alpha", "delta", "theta"):
            out[f"{prefix}_{key}"] = profile[key] if eeg else None
        out[f"{prefix}_slow_wave_pct"] = profile["swa"] if eeg else None
    return out


def _night(names: list[str]) -> list[dict[str, float | None]]:
    # Half the night N2 so that the night's median epoch is N2, as in real nights.
    return [_features(PROFILES[n]) for n in names] + [_features(PROFILES["N2"])] * len(names)


def test_each_rule_gives_its_stage() -> None:
    names = [n for n in PROFILES for _ in range(3)]  # runs of 3 so smoothing keeps them
    stages = rule_stages(_night(names))[: len(names)]
    assert [Stage(s) for s in stages] == [EXPECTED[n] for n in names]


def test_missing_eeg_is_unscored_and_missing_emg_never_gives_rem() -> None:
    features = _night(["N2", "N2", "N2"])
    features[1] = _features(PROFILES["N2"], eeg=False)
    assert rule_stages(features)[1] == Stage.UNSCORED
    rem_without_emg = {**_features(PROFILES["R"]), "emg_tone_uv": None}
    assert rule_stages([rem_without_emg] * 3)[1] != Stage.R
    assert rule_stages([]).size == 0


def test_single_epoch_is_smoothed_but_a_brief_awakening_is_kept() -> None:
    stages = rule_stages(_night(["N2", "N2", "N1", "N2", "N2", "W", "N2", "N2"]))
    assert [Stage(s).label for s in stages[:8]] == ["N2", "N2", "N2", "N2", "N2", "W", "N2", "N2"]


@pytest.mark.slow
@pytest.mark.parametrize("seed", [5, 6])
def test_accuracy_on_simulated_nights(seed: int) -> None:
    """Held-out seeds (thresholds were read off seeds 0 and 1). Measured: 0.958 and 0.980 on 8-h nights."""
    recording = simulate(synthetic_timeline(hours=3.0, seed=seed, ahi=10.0), seed=seed)
    features = neuro_epoch_features(recording, recording.n_epochs)
    truth = recording.timeline.stages[: len(features)]
    predicted = rule_stages(features)
    assert np.mean(predicted == truth) > 0.85
    for stage in (Stage.W, Stage.N2, Stage.N3, Stage.R):  # every main stage is found
        assert np.mean(predicted[truth == stage] == stage) > 0.6
