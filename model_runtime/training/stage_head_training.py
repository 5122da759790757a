"""Train the stage head on simulated nights perturbed like real labs' recordings (``sleeplm train-stage``).

Everything a lab varies is randomised per excerpt, because the model must not learn any one of them:

* amplifier gain (x0.5-2) and polarity; per-channel gain (x0.8-1.25);
* an aperiodic 1/f^beta background (beta 1-2.5, up to the signal's own size): real EEG is not rhythms on
  silence, and its spectral slope is what made real wake look like slow-wave sleep to a simulator-trained
  model; and a spectral tilt (f^-0.35 .. f^0.35 in amplitude): the simulator's slow waves sit lower (most
  power below 1 Hz) than those of the real N3 we have (most at 1-2 Hz);
* eye movements leaking into the EEG (frontal derivations such as Fpz-Cz carry them), white noise,
  slow drift, electrode pops, 50/60 Hz mains;
* high-pass 0.15-0.7 Hz (first or second order) and low-pass 15-35 Hz filters, and the sampling rate (50-256 Hz);
* which channels exist: one or two EEG derivations, EOG and chin EMG each dropped half the time (EEG-only
  excerpts are what many labs export);
* where the recording starts and how long it is: excerpts of 1 epoch to 2 hours, so the
  recording-relative features are learnt with as little context as real files give.

Validation nights (split by timeline, as the corpus) are perturbed beyond those ranges for calibration:
the temperature that minimises their negative log-likelihood is folded into the logit scale, and the
novelty threshold is their ``NOVELTY_QUANTILE``. The domain gate (``model_runtime.model.stage_head``) is calibrated
on the same perturbed validation excerpts, each one a recording: its threshold is the ``GATE_QUANTILE`` of
their mean novelty. No real recording is used for any of it.

The real-prior head is not calibrated here: its probabilities are YASA's own (scale 1), because YASA's
classifiers were fit on thousands of real, expert-scored nights, the one calibration we have that was learnt
on real signals. On our simulated EEG YASA errs more (0.61 on perturbed validation) and is overconfident, so
the temperature simulated validation chooses (0.76, reported as ``real_prior_head_scale_simulated_nll``) made
the head underconfident on real EEG, where YASA is right more often (benchmarks/RESULTS.md, "YASA's own
probabilities for the real-prior head").
"""

from __future__ import annotations

import json
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import signal as sps
from tqdm import tqdm

from model_runtime.model.prompts import STAGE_LABELS
from model_runtime.model.stage_head import GATE_QUANTILE, NOVELTY_QUANTILE, PriorHead, StageHead
from model_runtime.model.zero_shot import softmax
from model_runtime.training.corpus import NightSpec, render, split_of, timeline_sources
from psg.features.stage_spectra import (
    GAIN_DEPENDENT,
    N_INPUT,
    N_SPECTRAL,
    PRIOR_COLUMNS,
    RAW_NAMES,
    StageFeatures,
    stage_feature_matrix,
)
from psg.montage import EEG_C3, EEG_C4, EMG_CHIN, EOG_L, EOG_R, EPOCH_S
from psg.recording import Recording, Signal

RATES = (50.0, 64.0, 100.0, 128.0, 200.0, 256.0)
#: Excerpt lengths in epochs and how often each is drawn (30-min excerpts are a common export; 2 h is
#: context enough for the recording-relative features, and whole nights would cost most of the rendering).
EXCERPT_EPOCHS = (1, 2, 4, 10, 30, 60, 60, 120, 240)
MIN_PROBABILITY = 0.35
#: Feature dropout: share of training epochs whose spectral block is blanked (the head must stage from the
#: YASA prior alone: on real EEG our spectral features are shifted, YASA's were learnt there) and share
#: whose YASA block is blanked (YASA could not run: the head must stage from its own features). On simulated
#: nights our features beat YASA's, so a head that sees both mostly learns ours; blanking them in 80 % of the
#: epochs is what made it lean on the prior (real epochs 9 -> 15 of 24 at 0.3 -> 0.8; simulated nights
#: unchanged; benchmarks/RESULTS.md, "Real signals (issue 12)").
BLANK_SPECTRAL = 0.8
BLANK_PRIOR = 0.05


@dataclass(frozen=True)
class Perturbation:
    """Ranges of the randomisation; ``strong`` widens them for calibration."""

    gain: tuple[float, float] = (0.5, 2.0)
    background: tuple[float, float] = (0.0, 1.0)
    tilt: tuple[float, float] = (-0.7, 0.7)
    eog_leak: tuple[float, float] = (0.0, 1.0)
    white_uv: tuple[float, float] = (0.0, 4.0)
    mains_uv: tuple[float, float] = (0.0, 15.0)
    drop: float = 0.5


TRAIN = Perturbation()
STRONG = Perturbation(
    gain=(0.35, 2.8),
    background=(0.0, 1.5),
    tilt=(-1.0, 1.0),
    eog_leak=(0.0, 1.3),
    white_uv=(0.0, 8.0),
    mains_uv=(0.0, 30.0),
    drop=0.6,
)


def night_examples(
    spec: NightSpec, excerpts: int, strong: bool, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Model inputs, stage indices (-1 unscored) and excerpt numbers of ``excerpts`` perturbed excerpts of one
    rendered night (an excerpt is one recording to the domain gate)."""
    rng = np.random.default_rng(seed)
    recording = render(spec)
    assert recording.timeline is not None
    stages = recording.timeline.stages
    n = min(recording.n_epochs, len(stages))
    xs, ys, gs = [], [], []
    for k in range(excerpts):
        length = min(int(rng.choice(EXCERPT_EPOCHS)), n)
        start = int(rng.integers(0, n - length + 1))
        part = perturb(crop(recording, start, length), rng, STRONG if strong else TRAIN)
        features = stage_feature_matrix(part)
        keep = features.eeg_ok
        x = features.model_input()
        xs.append(x[keep])
        ys.append(stages[start : start + length][: len(x)][keep])
        gs.append(np.full(int(keep.sum()), k))
    return np.concatenate(xs), np.concatenate(ys).astype(np.int64), np.concatenate(gs)


def crop(recording: Recording, start_epoch: int, n_epochs: int) -> Recording:
    """Epochs [start, start + n) of the EEG, EOG and chin EMG channels."""
    signals = {}
    for label in (EEG_C3, EEG_C4, EOG_L, EOG_R, EMG_CHIN):
        sig = recording.get(label)
        if sig is not None:
            per = int(round(EPOCH_S * sig.fs))
            part = sig.data[start_epoch * per : (start_epoch + n_epochs) * per]
            signals[label] = sig.with_data(part)
    return Recording(recording.record_id, signals)


def perturb(recording: Recording, rng: np.random.Generator, p: Perturbation) -> Recording:
    """One lab's version of ``recording`` (see the module docstring)."""
    gain = float(np.exp(rng.uniform(*np.log(p.gain)))) * (1 if rng.random() < 0.8 else -1)
    fs_out = float(rng.choice(RATES))
    hp = (rng.uniform(0.15, 0.7), int(rng.integers(1, 3))) if rng.random() < 0.6 else None
    lp = rng.uniform(15.0, 35.0) if rng.random() < 0.5 else None
    mains_hz = 50.0 if rng.random() < 0.5 else 60.0
    eog = recording.get(EOG_L)
    eeg_labels = [EEG_C3, EEG_C4] if rng.random() < 0.5 else [str(rng.choice([EEG_C3, EEG_C4]))]
    keep_eog = rng.random() >= p.drop
    keep_emg = rng.random() >= p.drop
    out: dict[str, Signal] = {}
    for label, sig in recording.signals.items():
        is_eeg = label in (EEG_C3, EEG_C4)
        if (is_eeg and label not in eeg_labels) or (label in (EOG_L, EOG_R) and not keep_eog):
            continue
        if label == EMG_CHIN and not keep_emg:
            continue
        x = sig.data.copy()
        if is_eeg:
            x = _tilt(_eeg_background(x, sig.fs, rng, p), sig.fs, rng.uniform(*p.tilt))
            if eog is not None and rng.random() < 0.5:
                x = x + rng.uniform(*p.eog_leak) * eog.data[: x.size]
        x = x * gain * rng.uniform(0.8, 1.25)
        x = _artefacts(x, sig.fs, rng, p, mains_hz)
        x = _filter(x, sig.fs, hp, lp)
        rate = fs_out if label != EMG_CHIN else max(fs_out, 128.0)
        out[label] = Signal(label, _resample(x, sig.fs, rate), rate, sig.unit)
    return Recording(recording.record_id, out)


def _eeg_background(x: np.ndarray, fs: float, rng: np.random.Generator, p: Perturbation) -> np.ndarray:
    """Add 1/f^beta noise scaled to a fraction of the EEG's own standard deviation."""
    level = rng.uniform(*p.background)
    if level <= 0 or x.size < 4:
        return x
    beta = rng.uniform(1.0, 2.5)
    freqs = np.fft.rfftfreq(x.size, 1.0 / fs)
    shape = np.where(freqs > 0.3, freqs, 0.3) ** (-beta / 2.0)
    spectrum = shape * (rng.standard_normal(freqs.size) + 1j * rng.standard_normal(freqs.size))
    noise = np.fft.irfft(spectrum, n=x.size)
    noise *= level * np.std(x) / max(np.std(noise), 1e-12)
    return x + noise


def _tilt(x: np.ndarray, fs: float, exponent: float) -> np.ndarray:
    """Tilt the spectrum by f^exponent around 4 Hz (skull, age, electrodes and filters shift where a
    stage's power sits; simulated slow waves are slower than many real ones)."""
    freqs = np.fft.rfftfreq(x.size, 1.0 / fs)
    gain = (np.maximum(freqs, 0.3) / 4.0) ** (exponent / 2.0)
    return np.fft.irfft(np.fft.rfft(x) * gain, n=x.size)


def _artefacts(x: np.ndarray, fs: float, rng: np.random.Generator, p: Perturbation, mains_hz: float) -> np.ndarray:
    t = np.arange(x.size) / fs
    x = x + rng.uniform(*p.white_uv) * rng.standard_normal(x.size)
    x = x + rng.uniform(0, 30.0) * np.sin(2 * np.pi * rng.uniform(0.02, 0.15) * t + rng.uniform(0, 6.3))
    if mains_hz < fs / 2:
        x = x + rng.uniform(*p.mains_uv) * np.sin(2 * np.pi * mains_hz * t)
    for _ in range(rng.poisson(x.size / fs / 600.0)):  # electrode pops, ~one per 10 min
        i = int(rng.integers(0, x.size))
        x[i:] += rng.normal(0, 100.0) * np.exp(-np.arange(x.size - i) / (0.3 * fs))
    return x


def _filter(x: np.ndarray, fs: float, hp: tuple[float, int] | None, lp: float | None) -> np.ndarray:
    if hp is not None:
        x = sps.sosfilt(sps.butter(hp[1], hp[0], btype="highpass", fs=fs, output="sos"), x)
    if lp is not None and lp < fs / 2:
        x = sps.sosfilt(sps.butter(2, lp, btype="lowpass", fs=fs, output="sos"), x)
    return x


def _resample(x: np.ndarray, fs: float, rate: float) -> np.ndarray:
    if rate == fs:
        return x
    from fractions import Fraction

    r = Fraction(rate / fs).limit_denominator(1000)
    return sps.resample_poly(x, r.numerator, r.denominator)


def _examples(args: tuple[NightSpec, int, bool, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return night_examples(*args)


def build_examples(
    specs: list[NightSpec], excerpts: int, strong: bool, seed: int, workers: int = 2
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Examples of every night (rendered in ``workers`` processes, with a progress bar): inputs, stage
    indices and a recording (excerpt) number per epoch, unique over the nights."""
    jobs = [(spec, excerpts, strong, seed * 100_003 + i) for i, spec in enumerate(specs)]
    xs, ys, gs = [], [], []
    desc = "perturbed validation nights" if strong else "training nights"
    # spawned, not forked: the parent has torch's OpenMP pool running by now, and LightGBM (YASA's prior)
    # in a forked child of it deadlocks
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        for i, (x, y, g) in enumerate(tqdm(pool.map(_examples, jobs), total=len(jobs), desc=desc, unit="night")):
            xs.append(x)
            ys.append(y)
            gs.append(g + i * excerpts)
    return np.concatenate(xs), np.concatenate(ys), np.concatenate(gs)


def train_stage_head(
    data_dir: Path,
    checkpoint: str | Path | None,
    out: Path,
    per_source: int = 10,
    excerpts: int = 10,
    epochs: int = 25,
    seed: int = 0,
    workers: int = 2,
) -> dict:
    """Render, perturb, train, calibrate and save; returns the training report (also ``<out>.json``)."""
    import torch

    from model_runtime.serving.model_api import SleepLM

    classes = SleepLM.load(checkpoint, backend="torch", stage_head=False).stage_classes.astype(np.float32)
    sources = timeline_sources(data_dir, per_source)
    specs = [NightSpec(s, seed=0, artifacts=i % 2 == 1) for i, s in enumerate(sources)]
    train_specs = [s for s in specs if split_of(s.source) == "train"]
    val_specs = [s for s in specs if split_of(s.source) == "validation"]
    x_tr, y_tr, _ = build_examples(train_specs, excerpts, False, seed, workers)
    x_va, y_va, g_va = build_examples(val_specs, excerpts, True, seed + 1, workers)
    scored_tr, scored_va = y_tr >= 0, y_va >= 0
    torch.manual_seed(seed)
    mean, std = x_tr.mean(axis=0), x_tr.std(axis=0) + 1e-3
    absent = (0.0 - mean[PRIOR_COLUMNS]) / std[PRIOR_COLUMNS]
    net, scale = _fit(torch, (x_tr[scored_tr] - mean) / std, y_tr[scored_tr], classes, epochs, absent=absent)
    layers = [
        (lin.weight.detach().numpy().T.copy(), lin.bias.detach().numpy().copy())
        for lin in net
        if isinstance(lin, torch.nn.Linear)
    ]
    head = StageHead(
        mean.astype(np.float32),
        std.astype(np.float32),
        layers,
        classes,
        scale,
        np.zeros(1),
        np.zeros((1, 1)),
        0.0,
        MIN_PROBABILITY,
        _novelty_columns(),
    )
    head.scale = scale * _temperature(head, x_va[scored_va], y_va[scored_va])
    _fit_novelty(head, x_tr, x_va)
    fit_gate(head, x_va, g_va)
    head.save(out)
    report = _report(head, x_va[scored_va], y_va[scored_va], len(train_specs), len(val_specs), len(x_tr))
    report |= gate_report(head, x_va, y_va, g_va)
    out.with_suffix(".json").write_text(json.dumps(report, indent=2))
    return report


def _fit(
    torch,
    x: np.ndarray,
    y: np.ndarray,
    classes: np.ndarray,
    epochs: int,  # noqa: ANN001
    blank: tuple[float, float] = (BLANK_SPECTRAL, BLANK_PRIOR),
    absent: np.ndarray | None = None,
):
    """An MLP into the text space, trained by cross-entropy on scaled cosines to the fixed stage classes.

    ``x`` is standardised; ``absent`` (N_PRIOR,) is the standardised value of a YASA block that is all zeros
    (what the head sees when YASA could not run). Each batch blanks the spectral block of ``blank[0]`` of its
    epochs (to the training mean) or the YASA block of ``blank[1]`` (to ``absent``), never both."""
    dim = classes.shape[1]
    net = torch.nn.Sequential(
        torch.nn.Linear(N_INPUT, 128),
        torch.nn.ReLU(),
        torch.nn.Dropout(0.1),
        torch.nn.Linear(128, 128),
        torch.nn.ReLU(),
        torch.nn.Linear(128, dim),
    )
    log_scale = torch.nn.Parameter(torch.tensor(np.log(10.0), dtype=torch.float32))
    fixed = torch.from_numpy(classes)
    counts = np.bincount(y, minlength=len(STAGE_LABELS)).astype(np.float32)
    weight = torch.from_numpy((counts.sum() / np.maximum(counts, 1)) ** 0.5)
    loss_fn = torch.nn.CrossEntropyLoss(weight=weight / weight.mean(), label_smoothing=0.05)
    opt = torch.optim.AdamW([*net.parameters(), log_scale], lr=2e-3, weight_decay=1e-4)
    xt, yt = torch.from_numpy(x.astype(np.float32)), torch.from_numpy(y)
    absent_t = None if absent is None else torch.from_numpy(absent.astype(np.float32))
    steps = epochs * (len(x) // 512 + 1)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3, total_steps=steps)
    for _ in tqdm(range(epochs), desc="training the stage head", unit="epoch"):
        order = torch.randperm(len(x))
        for i in range(0, len(x), 512):
            idx = order[i : i + 512]
            xb = xt[idx].clone()
            u = torch.rand(len(idx))
            xb[u < blank[0], :N_SPECTRAL] = 0.0
            if absent_t is not None:
                xb[(u >= blank[0]) & (u < blank[0] + blank[1]), PRIOR_COLUMNS] = absent_t
            emb = torch.nn.functional.normalize(net(xb), dim=1)
            loss = loss_fn(log_scale.exp().clamp(max=100) * emb @ fixed.T, yt[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
    net.eval()
    return net, float(log_scale.detach().exp().clamp(max=100))


def _temperature(head: StageHead, x: np.ndarray, y: np.ndarray) -> float:
    """The factor on the logit scale that minimises the negative log-likelihood of perturbed validation epochs."""
    cos = head.embed(x) @ head.classes.T
    best, best_nll = 1.0, np.inf
    for factor in np.exp(np.linspace(np.log(0.1), np.log(3.0), 120)):
        logits = head.scale * factor * cos
        logits -= logits.max(axis=1, keepdims=True)
        nll = -(logits[np.arange(len(y)), y] - np.log(np.exp(logits).sum(axis=1))).mean()
        if nll < best_nll:
            best, best_nll = float(factor), nll
    return best


def _novelty_columns() -> np.ndarray:
    """Model-input columns of the gain-free raw measurements (they come first in ``stage_model_input``)."""
    return np.arange(len([n for n in RAW_NAMES if n not in GAIN_DEPENDENT]))


def _fit_novelty(head: StageHead, x_train: np.ndarray, x_val: np.ndarray) -> None:
    raw = x_train[:, head.novelty_columns].astype(np.float64)
    head.novelty_mean = raw.mean(axis=0)
    cov = np.cov(raw, rowvar=False) + 1e-3 * np.eye(raw.shape[1])
    head.novelty_precision = np.linalg.inv(cov)
    head.novelty_threshold = float(np.quantile(head.novelty(x_val), NOVELTY_QUANTILE))


def fit_gate(head: StageHead, x_va: np.ndarray, g_va: np.ndarray) -> None:
    """The real-prior head (YASA's own probabilities: scale 1, see the module docstring) and the gate threshold,
    from perturbed validation recordings ``g_va`` (excerpt numbers per epoch; only epochs with usable EEG, as
    ``night_examples`` keeps them)."""
    head.prior_head = PriorHead.for_classes(head.classes)
    head.gate_threshold = float(np.quantile(_recording_novelty(head, x_va, g_va), GATE_QUANTILE))


def simulated_prior_temperature(head: StageHead, x_va: np.ndarray, y_va: np.ndarray) -> float:
    """The real-prior head's scale that perturbed simulated validation would choose (least NLL of the epochs YASA
    staged): reported beside the shipped 1, not used, since YASA errs differently on simulated EEG."""
    yasa = (x_va[:, PRIOR_COLUMNS][:, -1] > 0) & (y_va >= 0)
    point = PriorHead.for_classes(head.classes).point(x_va[yasa]) @ head.classes.T.astype(np.float64)
    y = y_va[yasa]
    grid = np.exp(np.linspace(np.log(0.1), np.log(3.0), 120))
    nll = [-np.log(np.maximum(softmax(t * point)[np.arange(len(y)), y], 1e-12)).mean() for t in grid]
    return float(grid[int(np.argmin(nll))])


def _recording_novelty(head: StageHead, x: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """The gate's statistic of every recording YASA staged (a recording it did not is never gated)."""
    out = []
    for g in np.unique(groups):
        m = groups == g
        if (x[m][:, PRIOR_COLUMNS][:, -1] > 0).any():
            out.append(head.recording_novelty(x[m], np.ones(int(m.sum()), bool)))
    return np.array(out)


def gate_report(head: StageHead, x_va: np.ndarray, y_va: np.ndarray, g_va: np.ndarray) -> dict:
    """How the gate and the two heads do on the perturbed validation recordings."""
    correct, gated, total = 0, 0, 0
    for g in np.unique(g_va):
        m = g_va == g
        x, y = x_va[m], y_va[m]
        staged = head.stage_features(_Fixed(x))
        scored = y >= 0
        correct += int((staged.probabilities.argmax(axis=1) == y)[scored].sum())
        total += int(scored.sum())
        gated += staged.head != "full"
    return {
        "gate_threshold_mean_novelty": head.gate_threshold,
        "gate_quantile": GATE_QUANTILE,
        "validation_recordings": int(len(np.unique(g_va))),
        "validation_recordings_to_real_prior_head": gated,
        "validation_accuracy_perturbed_gated": correct / max(total, 1),
        "real_prior_head_scale": head.prior_head.scale if head.prior_head else None,
        "real_prior_head_scale_simulated_nll": simulated_prior_temperature(head, x_va, y_va),
    }


class _Fixed(StageFeatures):
    """``StageFeatures`` of ready model inputs (validation examples), all with usable EEG: ``model_input`` is
    ``x`` itself, so the measurements behind it are not kept (``values`` has no columns)."""

    def __init__(self, x: np.ndarray) -> None:
        n = len(x)
        super().__init__(values=np.zeros((n, 0)), available=np.zeros((n, 2)), eeg_ok=np.ones(n, bool))
        self.x = x

    def model_input(self) -> np.ndarray:
        return self.x


def _report(head: StageHead, x: np.ndarray, y: np.ndarray, n_train: int, n_val: int, n_examples: int) -> dict:
    probs = head.probabilities(x)
    pred = probs.argmax(axis=1)
    confidence = probs.max(axis=1)
    return {
        "train_nights": n_train,
        "validation_nights": n_val,
        "train_epochs": n_examples,
        "validation_epochs": int(len(y)),
        "validation_accuracy_perturbed": float((pred == y).mean()),
        "validation_ece_perturbed": expected_calibration_error(confidence, pred == y),
        "logit_scale": head.scale,
        "novelty_threshold": head.novelty_threshold,
    }


def expected_calibration_error(confidence: np.ndarray, correct: np.ndarray, bins: int = 10) -> float:
    """ECE: the confidence-weighted gap between stated probability and accuracy, over equal-width bins."""
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1]), 0, bins - 1)
    total = 0.0
    for b in range(bins):
        m = which == b
        if m.any():
            total += m.mean() * abs(confidence[m].mean() - correct[m].mean())
    return float(total)
