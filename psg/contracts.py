"""The JSON records of the live path's topics, one typed definition each.

``sleep.captions`` and ``sleep.embeddings`` records are built by the inference step
(``model_runtime.serving.caption_records``), required by the Faust agents when they decode them
(``CAPTION_REQUIRED``), validated by the store (``store.records``), read by the alert engine
(``psg.alerts.facts``) and described to API clients (``dashboards.api.schemas``): all of them take
their field names and types from here, so a field added or renamed in one place is a type error in the
others. TypedDicts, not classes: the records travel as plain JSON objects and are built and read as dicts
on the hot path (500 beds: ~17 records per second per worker), with the types checked by mypy.

Kept free of heavy imports (no NumPy, no ``psg.captions``): the API imports it at start.
"""

from __future__ import annotations

from typing import Any

from typing_extensions import TypedDict  # pydantic reads TypedDicts from typing_extensions on Python < 3.12


class Captions(TypedDict):
    """The five targeted caption levels of an epoch (SleepLM's multilevel captions)."""

    stage_event: str
    brain: str
    cardiac: str
    respiratory: str
    somatic: str


#: Caption levels, in the order captions are written and shown.
CAPTION_LEVELS: tuple[str, ...] = tuple(Captions.__annotations__)


class AuxSeries(TypedDict):
    """Per-second SpO2 (%) and heart rate (bpm) of the epoch; None where the device gave none."""

    spo2: list[float | None]
    hr: list[float | None]


class WaveformPreview(TypedDict):
    """The epoch's model-montage traces for the bed view: float16, base64, ``fs`` Hz."""

    fs: float
    channels: list[str]
    data_b64: str


class CaptionRecord(TypedDict):
    """``sleep.captions``: one record per bed and epoch (``schema`` is added by ``psg.json_codec.encode_json``)."""

    bed_id: str
    recording_id: str
    epoch: int
    start_time: float
    epoch_s: float
    stage: str
    stage_source: str | None
    probabilities: list[float] | None
    captions: Captions
    features: dict[str, Any]
    quality: dict[str, list[str]]
    events: list[dict[str, Any]]
    advisories: list[dict[str, Any]]
    end_received_at: float | None
    runtime: str
    aux: AuxSeries
    embedding: list[float] | None
    waveform: WaveformPreview | None
    stage_measurements: dict[str, Any] | None


#: Fields a consumer of ``sleep.captions`` refuses a record without (older producers may lack the rest).
CAPTION_REQUIRED: tuple[str, ...] = (
    "bed_id",
    "recording_id",
    "epoch",
    "start_time",
    "stage",
    "captions",
    "end_received_at",
)


class EmbeddingRecord(TypedDict):
    """``sleep.embeddings``: an epoch's joint-space vector, keyed like its caption record."""

    bed_id: str
    recording_id: str
    epoch: int
    start_time: float
    runtime: str
    embedding: list[float]
