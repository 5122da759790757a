"""The stage head: epochs' spectral staging features -> a point in the shared text space -> a stage, or 'uncertain'.

Why it exists: the signal encoder, trained on simulated waveforms only, called real wake N3 with p = 1.00.
Waveform details are where a simulator and a real amplifier differ most; the spectral, gain-free and
recording-relative measurements of ``psg.features.stage_spectra`` are where they agree (YASA, trained on
real nights, stages our simulated EEG at 0.86). So staging reads those measurements, through a small MLP
trained on heavily perturbed simulated nights (``model_runtime.training.stage_head_training``).

It stays zero-shot by text: the MLP's output lives in the model's shared embedding space and a stage is
the text prompt ensemble it is nearest to (the checkpoint's projected stage prompts, fixed during
training), exactly as the signal encoder's embeddings are staged. There is no free classification layer.

Honest uncertainty: the full head's probabilities are temperature-calibrated on validation nights perturbed
beyond the training ranges (the real-prior head's are YASA's, below); an epoch is ``uncertain`` when no stage
reaches ``min_probability`` or when its gain-free measurements lie farther from the training distribution
(Mahalanobis distance) than any but ``NOVELTY_QUANTILE`` of the perturbed validation epochs, or when it has no
usable EEG.

A recording-level domain gate picks between two heads. The full head reads our spectral features and
YASA's probabilities (``psg.features.yasa_prior``); on simulated nights our features are the better half,
on real EEG they are what is shifted. So a recording read from a file that our simulator did not write
(``psg.recording.ORIGIN``: recorded), or any other whose mean novelty (over its epochs with usable EEG)
exceeds ``gate_threshold`` (the ``GATE_QUANTILE`` of perturbed validation recordings), is staged by the
**real-prior head** instead: it reads only YASA's block, and places YASA's log-probabilities in
the shared space along the dual basis of the stage prompts (``PriorHead``), so its dot product with each
stage prompt is YASA's log-probability and the nearest prompt is YASA's most likely stage; its probabilities
are YASA's own (scale 1: YASA's classifiers were calibrated on real nights, which our simulator cannot do
better; ``model_runtime.training.stage_head_training``). It learns nothing from the simulator: a
head trained there on the YASA block learnt the simulator's YASA biases and called real awake EEG N1/N2
(benchmarks/RESULTS.md, "Real signals (issue 12)"). Epochs YASA could not stage keep the full head.

Inference is NumPy only (a few matrix products), so serving needs no torch for it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from model_runtime.model.head_file import load_head_file
from model_runtime.model.lab_head import LabHead
from model_runtime.model.prompts import STAGE_LABELS
from model_runtime.model.zero_shot import softmax
from psg.errors import PSGError
from psg.features.stage_spectra import N_INPUT, PRIOR_COLUMNS, StageFeatures
from psg.recording import RECORDED

FORMAT = "sleeplm-stage-head/2"
#: Formats ``StageHead.load`` reads: /1 has no gate and no real-prior head (the full head stages everything).
READABLE = ("sleeplm-stage-head/1", FORMAT)
UNCERTAIN = "uncertain"
#: Share of perturbed validation epochs whose novelty stays under the threshold.
NOVELTY_QUANTILE = 0.995
#: Share of perturbed validation recordings (excerpts) whose mean novelty stays under the gate: the full
#: head keeps them; recordings beyond it are staged by the real-prior head.
GATE_QUANTILE = 0.95
FULL_HEAD = "full"
PRIOR_HEAD = "real-prior"
_LOG_FLOOR = 1e-4


@dataclass
class PriorHead:
    """The real-prior head: YASA's stage probabilities -> the shared space, nearest stage prompt.

    ``basis`` (5, E) is the dual basis of the stage prompts (``basis @ classes.T`` = identity), so an epoch's
    point ``log p @ basis`` has dot product log p_k with stage prompt k; ``scale`` multiplies those logits
    (1, shipped: the probabilities are YASA's own)."""

    basis: np.ndarray
    scale: float

    @classmethod
    def for_classes(cls, classes: np.ndarray, scale: float = 1.0) -> PriorHead:
        return cls(np.linalg.pinv(np.asarray(classes, np.float64)).T.astype(np.float32), float(scale))

    def point(self, x: np.ndarray) -> np.ndarray:
        """Model inputs (n, N_INPUT) -> (n, E) points in the shared space (not normalised)."""
        p = np.asarray(x, np.float64)[:, PRIOR_COLUMNS][:, : len(STAGE_LABELS)]
        return np.log(np.maximum(p, _LOG_FLOOR)) @ self.basis

    def embed(self, x: np.ndarray) -> np.ndarray:
        h = self.point(x)
        return h / np.maximum(np.linalg.norm(h, axis=1, keepdims=True), 1e-8)

    def probabilities(self, x: np.ndarray, classes: np.ndarray) -> np.ndarray:
        """(n, 5): softmax of the scaled dot products with the stage prompts (YASA's probabilities at scale 1)."""
        return softmax(self.scale * self.point(x) @ np.asarray(classes, np.float64).T)


@dataclass
class StageHead:
    """Weights of the MLP, the text-space stage classes, calibration and the novelty model."""

    mean: np.ndarray  # (N_INPUT,) input standardisation
    std: np.ndarray
    layers: list[tuple[np.ndarray, np.ndarray]]  # (in, out) weights and (out,) biases; ReLU between
    classes: np.ndarray  # (5, E) unit stage-prompt embeddings in STAGE_LABELS order
    scale: float  # calibrated logit scale (temperature already folded in)
    novelty_mean: np.ndarray  # gain-free raw features: mean and inverse covariance
    novelty_precision: np.ndarray
    novelty_threshold: float
    min_probability: float
    novelty_columns: np.ndarray  # indices into the model input of the gain-free raw features
    prior_head: PriorHead | None = None  # None (format /1): the full head stages every recording
    gate_threshold: float = np.inf  # recordings whose mean novelty exceeds it go to ``prior_head``

    def embed(self, x: np.ndarray) -> np.ndarray:
        """Model inputs (n, N_INPUT) -> unit embeddings (n, E) in the shared space."""
        h = (np.asarray(x, np.float32) - self.mean) / self.std
        for i, (w, b) in enumerate(self.layers):
            h = h @ w + b
            if i < len(self.layers) - 1:
                h = np.maximum(h, 0.0)
        return h / np.maximum(np.linalg.norm(h, axis=1, keepdims=True), 1e-8)

    def probabilities(self, x: np.ndarray) -> np.ndarray:
        """(n, 5) calibrated probabilities over W, N1, N2, N3, R."""
        return softmax(self.scale * self.embed(x) @ self.classes.T)

    def novelty(self, x: np.ndarray) -> np.ndarray:
        """Mahalanobis distance of each epoch's gain-free measurements from the training epochs'."""
        d = np.asarray(x, np.float64)[:, self.novelty_columns] - self.novelty_mean
        return np.sqrt(np.einsum("ij,jk,ik->i", d, self.novelty_precision, d))

    def recording_novelty(self, x: np.ndarray, eeg_ok: np.ndarray) -> float:
        """The gate's statistic: mean novelty of the recording's epochs with usable EEG (0 when none)."""
        ok = np.asarray(eeg_ok, bool)
        return float(self.novelty(x[ok]).mean()) if ok.any() else 0.0

    def gate(self, x: np.ndarray, eeg_ok: np.ndarray, origin: str | None = None) -> str:
        """Which head stages this recording: ``PRIOR_HEAD`` when YASA staged some of its epochs and either
        it is a recorded file (``origin``) or its spectral features lie beyond the gate; else ``FULL_HEAD``.

        A recorded file goes to YASA's prior whatever the statistic says: the full head learnt from our
        simulator alone and nothing shows it transfers to a real recording (the 24 real epochs: 15 right
        against YASA's 22), while the statistic sits only 0.2-1.0 above its threshold on real EEG. Among
        simulated recordings the statistic is a true in-domain check (``benchmarks/RESULTS.md``, "Real
        signals": the full head flags many epochs of ``psg.synthetic``'s nights novel, and the gate sends
        those nights to YASA, whose verdicts are the better there)."""
        staged_by_yasa = np.asarray(x)[:, PRIOR_COLUMNS][:, -1] > 0 if len(x) else np.zeros(0, bool)
        if self.prior_head is None or not staged_by_yasa.any():
            return FULL_HEAD
        if origin == RECORDED:
            return PRIOR_HEAD
        return PRIOR_HEAD if self.recording_novelty(x, eeg_ok) > self.gate_threshold else FULL_HEAD

    def stage_features(self, features: StageFeatures, lab: LabHead | None = None) -> StagedEpochs:
        """Stages, probabilities and verdicts of one recording's consecutive epochs; ``lab`` (a lab's
        few-shot head, ``model_runtime.model.lab_head``) replaces the zero-shot probabilities when given (and the
        gate is not consulted: a lab head is fitted on the full head's embeddings of that lab's own epochs)."""
        x = features.model_input()
        head = self.gate(x, features.eeg_ok, features.origin) if lab is None else FULL_HEAD
        return self.judge(x, features.eeg_ok, head, lab)

    def judge(
        self, x: np.ndarray, eeg_ok: np.ndarray, head: str = FULL_HEAD, lab: LabHead | None = None
    ) -> StagedEpochs:
        """Verdicts of model inputs ``x`` (n, N_INPUT) by ``head`` (what ``gate`` chose): the real-prior head
        stages the epochs YASA staged, the full head (or ``lab``) the rest. The live runtime calls it for
        one epoch at a time, its row built from the bed's history (``psg.features.live_stage``)."""
        if not len(x):
            probs = np.zeros((0, len(STAGE_LABELS)))
        else:
            probs = self.probabilities(x) if lab is None else lab.probabilities(self.embed(x))
        novelty = self.novelty(x) if len(x) else np.zeros(0)
        by_prior = np.zeros(len(x), bool)
        if head == PRIOR_HEAD:
            assert self.prior_head is not None
            by_prior = x[:, PRIOR_COLUMNS][:, -1] > 0
            probs[by_prior] = self.prior_head.probabilities(x[by_prior], self.classes)
        best = [STAGE_LABELS[i] for i in probs.argmax(axis=1)] if len(x) else []
        reasons = [  # the real-prior head does not read our spectral features: their novelty is no reason
            _reason(
                bool(ok), float(p.max()), -np.inf if prior else float(n), self.min_probability, self.novelty_threshold
            )
            for ok, p, n, prior in zip(eeg_ok, probs, novelty, by_prior, strict=True)
        ]
        verdicts = [UNCERTAIN if r else s for s, r in zip(best, reasons, strict=True)]
        return StagedEpochs(verdicts, best, probs, novelty, reasons, head)

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        gate = (
            {}
            if self.prior_head is None
            else {
                "prior_basis": self.prior_head.basis,
                "prior_scale": np.array(self.prior_head.scale),
                "gate_threshold": np.array(self.gate_threshold),
            }
        )
        arrays = {f"w{i}": w for i, (w, _) in enumerate(self.layers)} | {
            f"b{i}": b for i, (_, b) in enumerate(self.layers)
        }
        np.savez_compressed(
            path,
            format=np.array(FORMAT),
            mean=self.mean,
            std=self.std,
            classes=self.classes,
            scale=np.array(self.scale),
            novelty_mean=self.novelty_mean,
            novelty_precision=self.novelty_precision,
            novelty_threshold=np.array(self.novelty_threshold),
            min_probability=np.array(self.min_probability),
            novelty_columns=self.novelty_columns,
            n_layers=np.array(len(self.layers)),
            # numpy's stub: a **dict might fill allow_pickle (a bool); these hold only array names
            **arrays,  # type: ignore[arg-type]
            **gate,  # type: ignore[arg-type]
        )
        return path

    @classmethod
    def load(cls, path: str | Path) -> StageHead:
        path = Path(path)
        head = load_head_file(
            path, "stage head", f"build it with `sleeplm train-stage --out {path}`", READABLE, cls._from_arrays
        )
        if head.mean.shape != (N_INPUT,):
            raise PSGError(
                f"{path}: stage head expects {head.mean.shape[0]} inputs, features give {N_INPUT}; retrain it"
            )
        return head

    @classmethod
    def _from_arrays(cls, z: np.lib.npyio.NpzFile) -> StageHead:
        layers = [(z[f"w{i}"], z[f"b{i}"]) for i in range(int(z["n_layers"]))]
        head = cls(
            mean=z["mean"],
            std=z["std"],
            layers=layers,
            classes=z["classes"],
            scale=float(z["scale"]),
            novelty_mean=z["novelty_mean"],
            novelty_precision=z["novelty_precision"],
            novelty_threshold=float(z["novelty_threshold"]),
            min_probability=float(z["min_probability"]),
            novelty_columns=z["novelty_columns"],
        )
        if "prior_basis" in z.files:
            head.prior_head = PriorHead(z["prior_basis"], float(z["prior_scale"]))
            head.gate_threshold = float(z["gate_threshold"])
        return head


@dataclass
class StagedEpochs:
    """One recording staged: the verdict per epoch (a stage or 'uncertain'), the best stage, (n, 5)
    probabilities, novelty, why an epoch is uncertain ('' where it is not) and which head staged it."""

    verdicts: list[str]
    best: list[str]
    probabilities: np.ndarray
    novelty: np.ndarray
    reasons: list[str]
    head: str = FULL_HEAD  # which head staged the recording: FULL_HEAD or PRIOR_HEAD (the domain gate)


def _reason(eeg_ok: bool, top: float, novelty: float, min_probability: float, novelty_threshold: float) -> str:
    if not eeg_ok:
        return "no usable EEG in this epoch"
    if novelty > novelty_threshold:
        return "EEG unlike any the model was trained on"
    if top < min_probability:
        return f"no stage is likely (best {top:.2f})"
    return ""
