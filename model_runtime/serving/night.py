"""SleepLM on files: read one night (EDF/EDF+, NSRR XML beside it) and stage, describe or query it.

``SleepLM`` works on model-input arrays; this module is the file-level layer the CLI and notebooks share,
so ``sleeplm stage NIGHT.edf --json`` and ``stage_night(lm, load_night_input(path))`` return the same
dict. Every function returns exactly the JSON shape its command prints.

>>> night = load_night_input("night.edf")
>>> stage_night(lm, night)["stages"][:3]
>>> describe_night(lm, night, slice(10, 20), "cardiac")["captions"][0]["text"]
>>> query_night(lm, night, "obstructive apnea during REM", top=5)["matches"]
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from model_runtime.model.prompts import STAGE_LABELS
from model_runtime.model.stage_head import UNCERTAIN, StagedEpochs
from model_runtime.serving.model_api import SleepLM, respiratory_evidence
from model_runtime.serving.night_gaps import GAP_VERDICT, recorded_epochs, with_gaps
from psg.captions import MODALITIES
from psg.captions.availability import channel_groups, recorded_events
from psg.captions.gaps import gap_sentence
from psg.captions.grounding import consistent_words, grounded_stage_event, stage_of
from psg.channel_map_format import ChannelMapFile
from psg.channels import ChannelReport
from psg.channels import require_eeg as check_eeg
from psg.detectors import detect_events
from psg.errors import PSGError
from psg.features.eeg_bandwidth import beta_slope, low_passed_everywhere
from psg.features.yasa_prior import yasa_inputs
from psg.formats import read_psg
from psg.formats.scoring import SCORING_KEY
from psg.json_codec import to_jsonable
from psg.montage import EPOCH_S
from psg.recording import ORIGIN, Recording
from psg.timeline import Stage, first_epochs

#: Epochs per model call when progress is shown: small enough for a live bar, large enough to batch well.
CHUNK_EPOCHS = 128
#: What ``--modality`` accepts: one caption level, or ``all`` (every level of each epoch, in this order).
MODALITY_CHOICES: tuple[str, ...] = (*MODALITIES, "all")
_EPOCH_RANGE = re.compile(r"^\s*(\d*)\s*(?::\s*(\d*)\s*)?$")


@dataclass
class NightInput:
    """One night ready for the model: the recording, its model input, measured features and scored truth.

    ``truth`` holds the scored stage label of each epoch ('W', 'N1', 'N2', 'N3', 'R'; '?' unscored) when the
    night has scoring (its EDF+ annotations, ``--scoring``, an NSRR XML or a Sleep-EDF hypnogram beside
    it: ``psg.formats.scoring``), else None.
    """

    path: Path
    recording: Recording
    x: np.ndarray  # (n, 10, 1920) float32, the live path's exact input
    features: list[dict]  # psg.features.epoch_features, plain Python numbers
    truth: list[str] | None
    channels: ChannelReport | None = None  # which file channel feeds each montage slot

    @property
    def n_epochs(self) -> int:
        return int(self.x.shape[0])

    @property
    def scoring(self) -> str | None:
        """The separate scoring file the truth came from (``psg.formats.scoring``), None for the EDF's own."""
        return self.recording.metadata.get(SCORING_KEY)

    def accuracy(self, stages: list[str]) -> float | None:
        """Fraction of the scored epochs (truth not '?') whose stage in ``stages`` equals the truth."""
        if self.truth is None:
            return None
        pairs = [(s, t) for s, t in zip(stages, self.truth, strict=False) if t != Stage.UNSCORED.label]
        return sum(s == t for s, t in pairs) / len(pairs) if pairs else None

    def truth_indices(self) -> np.ndarray | None:
        """Scored stages as indices into ``STAGE_LABELS`` (-1 unscored), the probe's labels; None if unscored."""
        if self.truth is None:
            return None
        index = {label: i for i, label in enumerate(STAGE_LABELS)}
        return np.array([index.get(label, -1) for label in self.truth], dtype=np.int64)


def load_night_input(
    path: str | Path,
    progress: bool = False,
    overrides: dict[str, str] | None = None,
    lab_map: ChannelMapFile | None = None,
    require_eeg: bool = False,
    scoring: str | Path | None = None,
) -> NightInput:
    """Read ``path`` and compute everything the model and the captions need; clear errors for bad files.

    Channels are recognised onto the montage (``psg.channels``; ``overrides`` label -> slot and ``lab_map``
    win); an annotation-only file or one shorter than an epoch is refused first (``require_analysable``, the
    rule every command shares); ``require_eeg`` then refuses a file with no EEG channel (staging), naming the
    labels it has. ``scoring`` (or the file ``psg.formats.scoring`` finds beside it) becomes the truth.
    """
    from psg.features import epoch_features
    from psg.model_input import recording_model_epochs

    path = Path(path)
    if not path.is_file():
        raise PSGError(f"{path}: no such file (expected an EDF/EDF+ night)")
    with tqdm(total=3, desc=f"reading {path.name}", unit="step", leave=False, disable=not progress) as bar:
        recording, channels = read_psg(path, scoring, overrides, lab_map)
        if require_eeg:
            check_eeg(channels, str(path))
        bar.update()
        x = recording_model_epochs(recording)
        bar.update()
        features = [to_jsonable(f) for f in epoch_features(recording)]
        bar.update()
    n = min(len(x), len(features))
    return NightInput(path, recording, x[:n], features[:n], _truth(recording, n), channels)


def stage_night(lm: SleepLM, night: NightInput, smooth: bool = True, progress: bool = False) -> dict:
    """Zero-shot stages of every epoch: ``{"stages", "best_stages", "probabilities", "uncertain", "stage_source",
    "stage_head", "origin"}``.

    With the checkpoint's stage head (``model_runtime.model.stage_head``) the stages come from the recording's
    spectral staging features, nearest stage prompt in the shared text space; an epoch the head cannot
    vouch for is ``"uncertain"`` in ``stages`` (its most likely stage stays in ``best_stages`` and the
    reason in ``uncertain``). Without a head, the signal encoder's embeddings are staged (``smooth``: the
    causal smoothing, so an epoch's stage equals what a live bed showed when the epoch arrived). An epoch
    in a recording gap (EDF+D) is ``"gap"`` in ``stages`` and ``best_stages`` with zero probabilities, listed
    in ``gaps``, and never read by the model (``model_runtime.serving.night_gaps``). ``stage_head`` says which of the
    stage head's two heads the domain gate chose for the recording: ``"full"`` (our spectral features with
    YASA's prior, for what our simulator made) or ``"real-prior"`` (YASA's prior alone, for a recorded file,
    or one of unknown origin whose spectral features lie beyond the simulated ones); None without a stage
    head. ``origin`` is what the gate was told (``psg.recording.ORIGIN``: "simulated", "recorded" or None).
    """
    staged = _staged(lm, night, smooth, progress)
    return {
        "stages": staged.verdicts,
        "best_stages": staged.best,
        "probabilities": staged.probabilities.tolist(),
        "uncertain": [{"epoch": i, "reason": r} for i, r in enumerate(staged.reasons) if r],
        "gaps": [i for i, verdict in enumerate(staged.verdicts) if verdict == GAP_VERDICT],
        "stage_source": _stage_source(lm),
        "stage_head": staged.head if lm.stage_head is not None else None,
        "origin": night.recording.metadata.get(ORIGIN),
    }


def describe_night(
    lm: SleepLM,
    night: NightInput,
    epochs: slice | None = None,
    modality: str = "stage_event",
    progress: bool = False,
) -> dict:
    """Generated captions: ``{"captions": [{"epoch", "start_s", "modality", "text"}, ...]}``.

    Numbers in the text are the epoch's measured features (``psg.features.epoch_features``), never model
    output; the respiratory event the AASM rule detectors measured in each epoch is the decoder's
    evidence prefix (the file's own annotations are never read for it), and the stage_event caption's
    event sentences are the detectors' events, whatever the decoder wrote (``psg.captions.grounding``). The
    decoder's stage prefix is the model's own smoothed zero-shot stage of the whole night, and a stage
    sentence that states another stage gives way to the template's (and the other levels' qualitative words
    follow the numbers their sentences state, ``consistent_words``), so a caption never contradicts
    ``stage_night``; smoothing is causal, so staging up to the slice's end gives exactly the whole
    night's stages for the slice. ``modality='all'`` writes every level per epoch.
    """
    modalities = _modalities(modality)
    start, stop = _resolve(epochs, night.n_epochs)
    staged = _staged(lm, night, smooth=True, progress=progress, stop=stop)
    stages = staged.verdicts
    hypnogram = [stage_of(verdict) for verdict in stages]
    # The decoder's evidence prefix: what the AASM rule detectors measured, never the file's annotations;
    # and the only events a stage_event caption names (psg.captions.grounding)
    detected = detect_events(night.recording)
    evidence = respiratory_evidence([e.to_dict() for e in detected], night.n_epochs)
    events = recorded_events([e.to_event() for e in detected], night.recording)
    groups = channel_groups(night.recording)  # no sentence about a channel group the file does not have
    captions = []
    chunks = list(_chunks(start, stop))
    bar = tqdm(total=stop - start, desc="describing", unit="epoch", leave=False, disable=not progress)
    for a, b in chunks:
        x, features = night.x[a:b], night.features[a:b]
        texts = {
            m: lm.describe(x, features, modality=m, stages=stages[a:b], evidence=evidence[a:b], groups=groups)
            for m in modalities
        }
        for i in range(b - a):
            for m in modalities:
                text = texts[m][i]
                if staged.verdicts[a + i] == GAP_VERDICT:  # nothing recorded: no generated text about it
                    text = gap_sentence(night.recording.gaps, (a + i) * EPOCH_S)
                elif m == "stage_event":
                    text = grounded_stage_event(text, hypnogram, a + i, events)
                    if staged.reasons[a + i]:
                        text = uncertain_caption(text, staged.reasons[a + i])
                else:
                    text, _ = consistent_words(text, features[i])
                captions.append({"epoch": a + i, "start_s": (a + i) * EPOCH_S, "modality": m, "text": text})
        bar.update(b - a)
    bar.close()
    return {"captions": captions}


def uncertain_caption(text: str, reason: str) -> str:
    """A stage_event caption whose stage the model cannot vouch for: its stage sentence (the first, written
    without a stage prefix) gives way to "Stage uncertain: <reason>."; event sentences stay."""
    rest = text.split(". ", 1)[1] if ". " in text else ""
    return f"Stage uncertain: {reason}." + (f" {rest}" if rest else "")


def query_night(
    lm: SleepLM, night: NightInput, text: str, top: int = 10, progress: bool = False, bank: Any = None
) -> dict:
    """Epochs that match ``text``: ``{"matches": [{"epoch", "start_s", "score", "spans": [[a, b], ...]}],
    "threshold", "method"}``, best first, at most ``top``; spans are recording seconds inside the matched
    epoch (language-guided localisation). With the checkpoint's reference ``bank`` only epochs at or above
    the query's calibrated threshold are returned (``model_runtime.serving.night_search``; none: "no epoch
    matches"), a query naming event types only returns epochs where the AASM detectors found one (the
    events a caption of the epoch names), and one naming stages only epochs staged so (``stage_night``'s
    verdicts; a query naming stages and no event is answered by them, best score first, ``method`` 'shown
    stage'); without a bank the ``top`` nearest are ranked and ``method`` says
    'ranked (uncalibrated)'."""
    if not isinstance(text, str) or not text.strip():
        raise PSGError("query text is empty; write what to look for, e.g. 'obstructive apnea during REM'")
    if top < 1:
        raise PSGError(f"--top must be >= 1, got {top}")
    embeddings = _embed(lm, night.x, progress)
    if bank is None:
        matches = lm.query(night.x, text, top=top, embeddings=embeddings)
        found = [(m.epoch, m.score, m.spans) for m in matches]
        threshold, method = None, "ranked (uncalibrated: no reference bank)"
    else:
        from model_runtime.serving.night_search import detector_types, matching_epochs
        from model_runtime.serving.watch_rules import rule_concepts

        stated = detector_types([d.to_dict() for d in detect_events(night.recording)], night.n_epochs)
        # the stages the epochs are shown with, where the query names one (staging reads the whole night)
        shown = _staged(lm, night, True, False).verdicts if rule_concepts(text).stages else None
        order, scores, calibration = matching_epochs(lm, text, embeddings, bank, top, stated, shown)
        spans = lm.localise(night.x[order], lm.embed_text(text)) if len(order) else []
        found = [
            (int(i), float(score), [(i * EPOCH_S + a, i * EPOCH_S + b) for a, b in span])
            for i, score, span in zip(order, scores, spans, strict=True)
        ]
        threshold, method = calibration.threshold, calibration.method
    return {
        "matches": [
            {
                "epoch": epoch,
                "start_s": float(epoch * EPOCH_S),
                "score": score,
                "spans": [[float(a), float(b)] for a, b in span],
            }
            for epoch, score, span in found
        ],
        "threshold": threshold,
        "method": method,
    }


def parse_epochs(text: str | None) -> slice | None:
    """``--epochs`` text -> slice: 'A:B' (B exclusive), 'A:', ':B' or a single epoch 'A'; None for all."""
    if text is None:
        return None
    match = _EPOCH_RANGE.match(text)
    if not match or (match.group(1) == "" and match.group(2) in (None, "")):
        raise PSGError(f"--epochs must be A:B (0-based, B exclusive), A:, :B or A, got {text!r}")
    first = int(match.group(1)) if match.group(1) else 0
    if match.group(2) is None:
        return slice(first, first + 1)
    return slice(first, int(match.group(2)) if match.group(2) else None)


def check_modality(modality: str) -> str:
    """``modality`` if it is a caption level or 'all', else a clear error listing them."""
    if modality not in MODALITY_CHOICES:
        raise PSGError(f"unknown modality {modality!r}; expected one of {', '.join(MODALITY_CHOICES)}")
    return modality


def stage_head_embeddings(lm: SleepLM, night: NightInput) -> np.ndarray:
    """The stage head's unit embeddings (n, E) of every epoch: what a lab head (``sleeplm adapt``) is fit on."""
    from psg.features.stage_spectra import stage_feature_matrix

    if lm.stage_head is None:
        raise PSGError("this checkpoint has no stage head beside it; build one with `sleeplm train-stage`")
    features = stage_feature_matrix(night.recording)
    return lm.stage_head.embed(features.model_input())[: night.n_epochs]


def embed_night(lm: SleepLM, night: NightInput, progress: bool = False) -> np.ndarray:
    """Unit embeddings (n, E) of every epoch (for probes and retrieval), with an optional progress bar."""
    return _embed(lm, night.x, progress)


# --- helpers ------------------------------------------------------------------------------------------
def _staged(lm: SleepLM, night: NightInput, smooth: bool, progress: bool, stop: int | None = None) -> StagedEpochs:
    """Verdicts, stages and probabilities of the night's epochs (at least those before ``stop``): the stage
    head reads the whole recording (its context features look both ways); the signal encoder's causal
    staging needs only the epochs up to ``stop``. Gap epochs are left out and answered "gap" (``night_gaps``)."""
    if lm.stage_head is not None:
        return head_staged(lm, night.recording, night.n_epochs)
    gap = night.recording.gap_epochs()
    # Same as SleepLM.stage, but embedded chunk by chunk so a long night shows progress.
    x = night.x[:stop]
    recorded = ~gap[: len(x)]
    probs = lm.stage_probabilities(_embed(lm, x[recorded] if gap.any() else x, progress))
    if smooth and len(probs):
        probs = lm.smooth(probs)
    labels = [STAGE_LABELS[i] for i in probs.argmax(axis=1)]
    return with_gaps(StagedEpochs(labels, labels, probs, np.zeros(len(probs)), [""] * len(probs)), ~recorded)


def head_staged(lm: SleepLM, recording: Recording, n_epochs: int) -> StagedEpochs:
    """The stage head's verdicts of ``recording``'s first ``n_epochs`` epochs (it reads the whole recording:
    its context features look both ways); gap epochs answered "gap". The checkpoint must have a head."""
    from psg.features.stage_spectra import stage_feature_matrix

    if lm.stage_head is None:
        raise PSGError("this checkpoint has no stage head beside it; build one with `sleeplm train-stage`")
    gap = recording.gap_epochs()
    recorded = recorded_epochs(recording, gap) if gap.any() else recording
    staged = lm.stage_head.stage_features(stage_feature_matrix(recorded), lab=lm.lab_head)
    return _first(with_gaps(_uncertain_if_low_passed(staged, recorded), gap), n_epochs)


def _uncertain_if_low_passed(staged: StagedEpochs, recording: Recording) -> StagedEpochs:
    """Every epoch ``uncertain`` when every EEG YASA would read was low-passed below its band by the device
    (``psg.features.eeg_bandwidth``): missing beta reads as sleep, and no head can vouch for a stage."""
    reason = low_passed_everywhere([beta_slope(sig) for sig in yasa_inputs(recording.signals)[0]])
    if not reason:
        return staged
    n = len(staged.verdicts)
    return StagedEpochs([UNCERTAIN] * n, staged.best, staged.probabilities, staged.novelty, [reason] * n, staged.head)


def _stage_source(lm: SleepLM) -> str:
    if lm.stage_head is None:
        return "signal encoder"
    return "stage head" if lm.lab_head is None else f"lab head ({lm.lab_head.shots} shots per stage)"


def _first(staged: StagedEpochs, n: int) -> StagedEpochs:
    return StagedEpochs(
        staged.verdicts[:n],
        staged.best[:n],
        staged.probabilities[:n],
        staged.novelty[:n],
        staged.reasons[:n],
        staged.head,
    )


def _embed(lm: SleepLM, x: np.ndarray, progress: bool) -> np.ndarray:
    if not progress:
        return lm.embed(x)
    parts = []
    with tqdm(total=len(x), desc="encoding", unit="epoch", leave=False) as bar:
        for a, b in _chunks(0, len(x)):
            parts.append(lm.embed(x[a:b]))
            bar.update(b - a)
    return np.concatenate(parts) if parts else lm.embed(x)


def _chunks(start: int, stop: int) -> Iterator[tuple[int, int]]:
    for a in range(start, stop, CHUNK_EPOCHS):
        yield a, min(a + CHUNK_EPOCHS, stop)


def _resolve(epochs: slice | None, n: int) -> tuple[int, int]:
    """A slice -> (start, stop) inside [0, n), or a clear error (no silent clipping: a typo should show)."""
    if epochs is None:
        return 0, n
    if epochs.step not in (None, 1):
        raise PSGError(f"--epochs takes a contiguous range, got step {epochs.step}")
    start = 0 if epochs.start is None else int(epochs.start)
    stop = n if epochs.stop is None else int(epochs.stop)
    if not 0 <= start < stop <= n:
        raise PSGError(f"--epochs {start}:{stop} is out of range; the night has epochs 0:{n} (B exclusive)")
    return start, stop


def _modalities(modality: str) -> tuple[str, ...]:
    return MODALITIES if check_modality(modality) == "all" else (modality,)


def _truth(recording: Recording, n: int) -> list[str] | None:
    timeline = recording.timeline
    if timeline is None or not timeline.is_scored:
        return None
    return [Stage(int(s)).label for s in first_epochs(timeline.stages, n)]
