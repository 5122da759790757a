"""Channel names, units, device rates and the model montage.

Two views of the same channels:

* the *device* view: what a PSG amplifier (or our simulator) records, each channel at its own rate and
  in its physical unit, with the EDF labels below;
* the *model* view (SleepLM): 30-s epochs at 64 Hz, 1920 samples, 10 channels in ``MODEL_CHANNELS``
  order; SpO2 and HR travel beside it as auxiliary channels.

Digital ranges (``physical_min``/``physical_max``) are those a typical amplifier would use; values
outside them are clipped when written to EDF, which is how real clipping looks.
"""

from __future__ import annotations

from dataclasses import dataclass

EPOCH_S = 30.0
MODEL_FS = 64.0
MODEL_EPOCH_SAMPLES = int(EPOCH_S * MODEL_FS)


@dataclass(frozen=True)
class ChannelSpec:
    """One recorded channel: EDF label, physical unit, default device rate and EDF physical range."""

    label: str
    unit: str
    fs: float
    physical_min: float
    physical_max: float
    modality: str


ECG = "ECG"
ABD = "ABD"
THX = "THX"
AF = "AF"
EOG_L = "EOG-L"
EOG_R = "EOG-R"
EEG_C3 = "EEG C3-A2"
EEG_C4 = "EEG C4-A1"
EMG_CHIN = "EMG Chin"
POS = "POS"
SPO2 = "SpO2"
HR = "HR"

#: Device-side channels in EDF order, with the rates the simulator renders them at.
CHANNELS: dict[str, ChannelSpec] = {
    spec.label: spec
    for spec in (
        ChannelSpec(ECG, "mV", 256.0, -5.0, 5.0, "cardiac"),
        ChannelSpec(ABD, "a.u.", 32.0, -5.0, 5.0, "respiratory"),
        ChannelSpec(THX, "a.u.", 32.0, -5.0, 5.0, "respiratory"),
        ChannelSpec(AF, "a.u.", 32.0, -5.0, 5.0, "respiratory"),
        ChannelSpec(EOG_L, "uV", 256.0, -800.0, 800.0, "brain"),
        ChannelSpec(EOG_R, "uV", 256.0, -800.0, 800.0, "brain"),
        ChannelSpec(EEG_C3, "uV", 256.0, -500.0, 500.0, "brain"),
        ChannelSpec(EEG_C4, "uV", 256.0, -500.0, 500.0, "brain"),
        ChannelSpec(EMG_CHIN, "uV", 256.0, -250.0, 250.0, "somatic"),
        ChannelSpec(POS, "", 1.0, -1.0, 4.0, "somatic"),
        ChannelSpec(SPO2, "%", 1.0, 0.0, 100.0, "respiratory"),
        ChannelSpec(HR, "bpm", 1.0, 0.0, 250.0, "cardiac"),
    )
}

#: The SleepLM model input, in this exact order.
MODEL_CHANNELS: tuple[str, ...] = (ECG, ABD, THX, AF, EOG_L, EOG_R, EEG_C3, EEG_C4, EMG_CHIN, POS)
#: Channels the alarms and captions need that the model does not take.
AUX_CHANNELS: tuple[str, ...] = (SPO2, HR)

#: Body position codes on the POS channel.
POSITIONS: dict[int, str] = {-1: "unknown", 0: "right", 1: "left", 2: "supine", 3: "prone", 4: "upright"}
