"""The stage head and its features: invariances the design rests on, the file format, and the verdicts."""

from __future__ import annotations

from dataclasses import replace
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from scipy import signal as sps

from model_runtime.model.shipped import head_path_for
from model_runtime.model.stage_head import FULL_HEAD, PRIOR_HEAD, UNCERTAIN, PriorHead, StageHead
from psg.errors import PSGError
from psg.features.stage_spectra import (
    GAIN_DEPENDENT,
    N_INPUT,
    PRIOR_COLUMNS,
    RAW_NAMES,
    StageFeatures,
    stage_feature_matrix,
    stage_model_input,
)
from psg.montage import EEG_C3, EEG_C4, EMG_CHIN, EOG_L
from psg.recording import ORIGIN, RECORDED, SIMULATED, Recording, Signal

FREE = [i for i, name in enumerate(RAW_NAMES) if name not in GAIN_DEPENDENT]
SHIPPED_HEAD = Path(__file__).resolve().parents[2] / "model_runtime" / "checkpoints" / "sleeplm-small.stage.npz"


@pytest.fixture(scope="module")
def neuro(simulated_recording: Recording) -> Recording:
    keep = (EEG_C3, EEG_C4, EOG_L, EMG_CHIN)
    return Recording("neuro", {k: v for k, v in simulated_recording.signals.items() if k in keep})


def _scaled(recording: Recording, gain: float) -> Recording:
    return Recording("g", {k: Signal(k, v.data * gain, v.fs, v.unit) for k, v in recording.signals.items()})


def _resampled(recording: Recording, fs: float) -> Recording:
    out = {}
    for k, v in recording.signals.items():
        r = Fraction(fs / v.fs).limit_denominator(1000)
        out[k] = Signal(k, sps.resample_poly(v.data, r.numerator, r.denominator), fs, v.unit)
    return Recording("r", out)


def test_model_input_depends_on_the_gain_only_through_the_absolute_amplitude(neuro: Recording) -> None:
    a = stage_feature_matrix(neuro)
    b = stage_feature_matrix(_scaled(neuro, 7.5))
    xa = stage_model_input(a.values, a.available)
    xb = stage_model_input(b.values, b.available)
    assert xa.shape == (neuro.n_epochs, N_INPUT)
    amplitude = [RAW_NAMES[i] for i in FREE].index("eeg_log_amplitude")  # AASM N3 is defined in uV
    others = np.delete(np.arange(N_INPUT), amplitude)
    np.testing.assert_allclose(xa[:, others], xb[:, others], atol=1e-3)
    np.testing.assert_allclose(xb[:, amplitude] - xa[:, amplitude], np.log10(7.5), atol=1e-3)


def test_gain_free_features_agree_at_50_hz_and_256_hz(neuro: Recording) -> None:
    eeg_only = Recording("e", {EEG_C3: neuro.signals[EEG_C3]})
    high = stage_feature_matrix(eeg_only).values[:, FREE]
    low = stage_feature_matrix(_resampled(eeg_only, 50.0)).values[:, FREE]
    # relative band powers (log10) within 0.1 of each other: the analysis band ends below 25 Hz
    assert np.median(np.abs(high[:, :10] - low[:, :10])) < 0.1


def test_missing_groups_are_zero_and_flagged(neuro: Recording) -> None:
    eeg_only = Recording("e", {EEG_C4: neuro.signals[EEG_C3]})
    features = stage_feature_matrix(eeg_only)
    assert features.eeg_ok.all()
    assert not features.available.any()
    no_eeg = stage_feature_matrix(Recording("n", {EOG_L: neuro.signals[EOG_L]}))
    assert not no_eeg.eeg_ok.any()


def test_emg_too_slow_for_its_band_is_not_used(neuro: Recording) -> None:
    slow = _resampled(Recording("m", {EEG_C3: neuro.signals[EEG_C3], EMG_CHIN: neuro.signals[EMG_CHIN]}), 50.0)
    assert not stage_feature_matrix(slow).available[:, 1].any()


def _random_head(rng: np.random.Generator, dim: int = 8) -> StageHead:
    classes = rng.standard_normal((5, dim))
    classes /= np.linalg.norm(classes, axis=1, keepdims=True)
    free = np.arange(len(FREE))
    return StageHead(
        mean=np.zeros(N_INPUT, np.float32),
        std=np.ones(N_INPUT, np.float32),
        layers=[
            (rng.standard_normal((N_INPUT, 16)).astype(np.float32), np.zeros(16, np.float32)),
            (rng.standard_normal((16, dim)).astype(np.float32), np.zeros(dim, np.float32)),
        ],
        classes=classes.astype(np.float32),
        scale=5.0,
        novelty_mean=np.zeros(len(free)),
        novelty_precision=np.eye(len(free)),
        novelty_threshold=1e9,
        min_probability=0.0,
        novelty_columns=free,
    )


def test_head_round_trips_and_gives_probabilities(tmp_path: Path, neuro: Recording) -> None:
    head = _random_head(np.random.default_rng(0))
    path = head.save(tmp_path / "h.stage.npz")
    loaded = StageHead.load(path)
    staged = loaded.stage_features(stage_feature_matrix(neuro))
    assert staged.probabilities.shape == (neuro.n_epochs, 5)
    np.testing.assert_allclose(staged.probabilities.sum(axis=1), 1.0, atol=1e-5)
    assert staged.verdicts == staged.best  # no threshold can fire
    np.testing.assert_allclose(loaded.probabilities(np.zeros((2, N_INPUT))), head.probabilities(np.zeros((2, N_INPUT))))


def test_uncertain_verdicts_name_their_reason(neuro: Recording) -> None:
    head = _random_head(np.random.default_rng(1))
    head.min_probability = 0.99
    staged = head.stage_features(stage_feature_matrix(neuro))
    assert set(staged.verdicts) == {UNCERTAIN}
    assert all(r.startswith("no stage is likely") for r in staged.reasons)
    head.min_probability, head.novelty_threshold = 0.0, -1.0
    assert all(r.startswith("EEG unlike") for r in head.stage_features(stage_feature_matrix(neuro)).reasons)
    no_eeg = head.stage_features(stage_feature_matrix(Recording("n", {EOG_L: neuro.signals[EOG_L]})))
    assert set(no_eeg.reasons) == {"no usable EEG in this epoch"}


def test_a_foreign_file_is_refused_by_name(tmp_path: Path) -> None:
    bad = tmp_path / "x.stage.npz"
    np.savez(bad, format=np.array("something-else"))
    with pytest.raises(PSGError, match="not a SleepLM stage head"):
        StageHead.load(bad)
    with pytest.raises(PSGError, match="not found"):
        StageHead.load(tmp_path / "none.npz")
    assert head_path_for("/a/b/sleeplm-small.pt") == Path("/a/b/sleeplm-small.stage.npz")


def test_stage_night_reads_the_head_and_reports_uncertain_epochs(tiny_checkpoint: Path, simulated_edf: Path) -> None:
    from model_runtime.serving.model_api import SleepLM
    from model_runtime.serving.night import load_night_input, stage_night

    lm, night = SleepLM.load(tiny_checkpoint, backend="torch"), load_night_input(simulated_edf)
    head = _random_head(np.random.default_rng(2), dim=lm.stage_classes.shape[1])
    head.classes = lm.stage_classes.astype(np.float32)
    head.min_probability = 0.99
    lm.stage_head = head
    result = stage_night(lm, night)
    assert result["stage_source"] == "stage head"
    assert result["stage_head"] == "full"  # a head without the real-prior head (format /1) never gates
    assert result["stages"] == ["uncertain"] * night.n_epochs
    assert [u["epoch"] for u in result["uncertain"]] == list(range(night.n_epochs))
    assert all(s in ("W", "N1", "N2", "N3", "R") for s in result["best_stages"])
    head.prior_head, head.gate_threshold, head.min_probability = PriorHead.for_classes(head.classes), -1.0, 0.0
    gated = stage_night(lm, night)  # our simulator wrote it: the statistic decides
    assert gated["origin"] == SIMULATED
    assert gated["stage_head"] == "real-prior" and gated["stage_source"] == "stage head"
    head.gate_threshold = np.inf
    assert stage_night(lm, night)["stage_head"] == "full"
    night.recording.metadata[ORIGIN] = RECORDED  # the same signals as another writer's file
    gated = stage_night(lm, night)
    assert gated["stage_head"] == "real-prior" and gated["stage_source"] == "stage head"
    assert gated["origin"] == RECORDED
    assert set(gated) >= {"stages", "best_stages", "probabilities", "uncertain", "gaps"}


@pytest.fixture(scope="module")
def shipped() -> StageHead:
    if not SHIPPED_HEAD.is_file():
        pytest.skip(f"no shipped stage head at {SHIPPED_HEAD}")
    head = StageHead.load(SHIPPED_HEAD)
    if head.prior_head is None:
        pytest.skip("the shipped stage head has no domain gate (format /1)")
    return head


@pytest.fixture(scope="module")
def neuro_features(neuro: Recording) -> StageFeatures:
    features = stage_feature_matrix(neuro)  # with YASA's prior
    assert features.prior is not None and features.prior[:, -1].all()
    return features


def test_the_gate_keeps_the_full_head_on_a_held_out_simulated_night(shipped: StageHead, shared_data: Path) -> None:
    """A validation timeline of the corpus rendered with a seed training never used (as
    benchmarks/stage_head_eval.py's nights). Not the ``neuro`` night: ``psg.simulate``'s synthetic
    timelines lie farther from the training nights than the gate allows (measured: mean novelty 5.8-11.4),
    so the gate gives them to the real-prior head (benchmarks/RESULTS.md, "Real signals (issue 12)")."""
    from model_runtime.training.corpus import NightSpec, render

    timeline = shared_data / "slpdb" / "slp01a.st"
    if not timeline.is_file():
        pytest.skip(f"no {timeline}")
    features = stage_feature_matrix(render(NightSpec(str(timeline), seed=7, artifacts=True)))
    x = features.model_input()
    assert shipped.recording_novelty(x, features.eeg_ok) < shipped.gate_threshold
    staged = shipped.stage_features(features)
    assert staged.head == FULL_HEAD
    np.testing.assert_allclose(staged.probabilities, shipped.probabilities(x), atol=1e-6)


def test_the_gate_sends_shifted_spectral_features_to_the_real_prior_head(
    shipped: StageHead, neuro_features: StageFeatures
) -> None:
    # every gain-free spectral measurement moved (as on a real amplifier), the recording-relative z-scores
    # and YASA's probabilities unchanged
    values = neuro_features.values.copy()
    values[:, FREE] += 0.6
    shifted = StageFeatures(values, neuro_features.available, neuro_features.eeg_ok, neuro_features.prior)
    x = shifted.model_input()
    assert shipped.recording_novelty(x, shifted.eeg_ok) > shipped.gate_threshold
    staged = shipped.stage_features(shifted)
    assert staged.head == PRIOR_HEAD
    yasa = neuro_features.prior[:, :5].argmax(axis=1)
    assert (staged.probabilities.argmax(axis=1) == yasa).all()  # nearest prompt = YASA's most likely stage
    np.testing.assert_allclose(staged.probabilities.sum(axis=1), 1.0, atol=1e-6)
    assert not any(r.startswith("EEG unlike") for r in staged.reasons)  # it does not read those features
    no_yasa = StageFeatures(values, neuro_features.available, neuro_features.eeg_ok, None)
    assert shipped.stage_features(no_yasa).head == FULL_HEAD  # nothing to fall back on


def test_a_recorded_file_goes_to_the_real_prior_head_and_others_read_the_statistic(
    shipped: StageHead, neuro_features: StageFeatures
) -> None:
    values = neuro_features.values.copy()
    values[:, FREE] += 0.6  # beyond the gate, as in the test above
    beyond = replace(neuro_features, values=values)
    assert shipped.recording_novelty(beyond.model_input(), beyond.eeg_ok) > shipped.gate_threshold
    never_gates = replace(shipped, gate_threshold=np.inf)
    for origin in (SIMULATED, None):  # simulated or unknown: the statistic decides
        assert shipped.stage_features(replace(beyond, origin=origin)).head == PRIOR_HEAD
        assert never_gates.stage_features(replace(beyond, origin=origin)).head == FULL_HEAD
    recorded = never_gates.stage_features(replace(neuro_features, origin=RECORDED))
    assert recorded.head == PRIOR_HEAD  # a recorded file: YASA's prior, whatever the statistic says
    yasa = neuro_features.prior[:, :5].argmax(axis=1)
    assert (recorded.probabilities.argmax(axis=1) == yasa).all()
    no_yasa = replace(neuro_features, prior=None, origin=RECORDED)
    assert shipped.stage_features(no_yasa).head == FULL_HEAD  # nothing to fall back on


def test_the_real_prior_head_is_yasa_tempered_in_the_text_space(tmp_path: Path) -> None:
    head = _random_head(np.random.default_rng(4))
    head.prior_head, head.gate_threshold = PriorHead.for_classes(head.classes, scale=0.5), 3.0
    x = np.zeros((3, N_INPUT), np.float32)
    p = np.array([[0.7, 0.1, 0.1, 0.05, 0.05], [0.1, 0.1, 0.6, 0.1, 0.1], [0.2, 0.2, 0.2, 0.2, 0.2]])
    x[:, PRIOR_COLUMNS] = np.column_stack([p, np.ones(3)])
    expected = p**0.5 / (p**0.5).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(head.prior_head.probabilities(x, head.classes), expected, atol=1e-5)
    loaded = StageHead.load(head.save(tmp_path / "g.stage.npz"))
    assert loaded.gate_threshold == 3.0 and loaded.prior_head is not None and loaded.prior_head.scale == 0.5
    old = _random_head(np.random.default_rng(5))  # a format /1 file: no gate
    path = old.save(tmp_path / "old.stage.npz")
    z = dict(np.load(path))
    np.savez(path, **(z | {"format": np.array("sleeplm-stage-head/1")}))
    assert StageHead.load(path).prior_head is None


def test_adapt_writes_a_lab_head_that_stage_uses(
    tiny_checkpoint: Path, simulated_edf: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import json
    import shutil
    import sys

    from typer.testing import CliRunner

    from model_runtime.model.lab_head import fit_lab_head
    from model_runtime.serving.model_api import SleepLM
    from sleeplm.cli import app

    checkpoint = Path(shutil.copy(tiny_checkpoint, tmp_path / "tiny.pt"))
    head = _random_head(np.random.default_rng(3), dim=SleepLM.load(checkpoint, backend="torch").stage_classes.shape[1])
    head.classes = SleepLM.load(checkpoint, backend="torch").stage_classes.astype(np.float32)
    head.save(head_path_for(checkpoint))
    runner = CliRunner()
    lab = tmp_path / "lab.npz"
    adapted = runner.invoke(
        app, ["adapt", str(simulated_edf), "--out", str(lab), "--shots", "2", "--checkpoint", str(checkpoint), "--json"]
    )
    assert adapted.exit_code == 0, adapted.output
    report = json.loads(adapted.stdout)
    assert lab.is_file() and report["shots"] == 2 and 0.0 <= report["held_out_accuracy"] <= 1.0
    assert all(n <= 2 for n in report["fit_epochs"].values())
    staged = runner.invoke(
        app, ["stage", str(simulated_edf), "--checkpoint", str(checkpoint), "--lab-head", str(lab), "--json"]
    )
    assert staged.exit_code == 0, staged.output
    assert json.loads(staged.stdout)["stage_source"] == "lab head (2 shots per stage)"
    missing = runner.invoke(
        app, ["stage", str(simulated_edf), "--checkpoint", str(checkpoint), "--lab-head", str(tmp_path / "none.npz")]
    )
    assert missing.exit_code != 0
    # the base install has no scikit-learn (issue 18): staging with the fitted head works the same, fitting
    # one says what to install before any night is embedded
    for name in [m for m in sys.modules if m.split(".")[0] == "sklearn"]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "sklearn", None)  # what `import sklearn` meets where it is not installed
    lean = runner.invoke(
        app, ["stage", str(simulated_edf), "--checkpoint", str(checkpoint), "--lab-head", str(lab), "--json"]
    )
    assert lean.exit_code == 0, lean.output
    assert json.loads(lean.stdout) == json.loads(staged.stdout)
    refused = runner.invoke(
        app, ["adapt", str(simulated_edf), "--out", str(tmp_path / "b.npz"), "--checkpoint", str(checkpoint)]
    )
    assert isinstance(refused.exception, PSGError) and "pip install 'sleeplm[train]'" in str(refused.exception)
    assert "`sleeplm adapt` needs scikit-learn" in str(refused.exception) and not (tmp_path / "b.npz").exists()
    with pytest.raises(PSGError, match="fitting a lab head needs scikit-learn"):
        fit_lab_head(np.eye(5), np.arange(5), shots=1)
