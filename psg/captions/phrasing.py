"""Choosing a phrasing and writing numbers: the two things every caption sentence does.

Captions come in two styles. ``canonical`` always takes the first phrasing of each sentence, so the
nurse display and tests see stable text; ``varied`` draws one of several equivalent phrasings from a
seeded generator, so a model trained on the captions learns the physiology rather than one template
(SleepLM, Xu et al. 2026, trains on template captions for the same reason).

Numbers are formatted in exactly one place (``fmt``) with a fixed number of decimals per quantity, so
a caption's number can be checked against the feature it came from: bpm with one decimal, RMSSD in ms
with two (as in SleepLM's captions), relative band powers as percentages with one decimal.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Literal

import numpy as np

from psg.errors import PSGError

Style = Literal["canonical", "varied"]
STYLES: tuple[str, ...] = ("canonical", "varied")

#: Decimals per feature key; relative band powers (``c3_delta`` ...) are written as percentages.
DECIMALS: dict[str, int] = {
    "hr_bpm": 1,
    "hr_min_bpm": 1,
    "hr_max_bpm": 1,
    "rmssd_ms": 2,
    "n_beats": 0,
    "resp_rate_bpm": 1,
    "resp_rate_abd_bpm": 1,
    "resp_rate_thx_bpm": 1,
    "resp_rate_af_bpm": 1,
    "flow_amplitude": 2,
    "flow_flatness": 2,
    "spo2_mean": 1,
    "spo2_min": 1,
    "spo2_trend": 2,
    "eog_slow_power": 1,
    "eog_rapid_power": 1,
    "eog_lr_correlation": 2,
    "emg_tone_uv": 2,
    "emg_median_freq_hz": 1,
    "slow_wave_pct": 1,
    "band_pct": 1,
}


class Phraser:
    """Picks one phrasing per sentence: the first (canonical) or a seeded random one (varied)."""

    def __init__(self, style: Style = "canonical", rng: np.random.Generator | None = None) -> None:
        if style not in STYLES:
            raise PSGError(f"caption style must be one of {STYLES}, got {style!r}")
        if style == "varied" and rng is None:
            raise PSGError("caption style 'varied' needs a seeded rng (np.random.default_rng(seed)) to be reproducible")
        self.style = style
        self.rng = rng

    def pick(self, options: Sequence[str], **values: str) -> str:
        """One of ``options`` (``str.format`` templates) filled with ``values``."""
        if self.style == "canonical" or self.rng is None:  # __init__ gives 'varied' an rng
            template = options[0]
        else:
            template = options[int(self.rng.integers(len(options)))]
        return template.format(**values)


def fmt(key: str, value: float | int) -> str:
    """``value`` of feature ``key`` written with that feature's fixed decimals (``DECIMALS``)."""
    if key not in DECIMALS:
        raise PSGError(f"no number format for feature {key!r}; add it to psg.captions.phrasing.DECIMALS")
    return f"{float(value):.{DECIMALS[key]}f}"


def fmt_signed(key: str, value: float) -> str:
    """Like ``fmt`` but with an explicit sign, for trends (``+0.15``, ``-0.40``)."""
    return f"{float(value):+.{DECIMALS[key]}f}"


def fmt_band(value: float) -> str:
    """A relative band power (0..1) as a percentage: 0.4523 -> ``45.2%``."""
    return f"{100.0 * float(value):.{DECIMALS['band_pct']}f}%"


def all_present(features: Mapping[str, object], *keys: str) -> bool:
    """True if every key has a value (features are None where a channel was missing or flat)."""
    return all(features.get(k) is not None for k in keys)


#: Words starting with a vowel letter that are read with a consonant sound ("a unilateral ...").
_CONSONANT_SOUND = ("uni", "use", "eu", "one")
#: Initialisms read letter by letter that start with a vowel sound ("an EEG", "an REM", "an SpO2 drop").
_VOWEL_SOUND_INITIALS = ("eeg", "eog", "emg", "ecg", "rem", "spo2", "n1", "n2", "n3", "hr")


def article(phrase: str) -> str:
    """'a' or 'an' for ``phrase`` by its first sound: 'an obstructive apnea', 'a hypopnea', 'an EEG arousal'."""
    word = phrase.split(" ", 1)[0].lower()
    if word.startswith(_VOWEL_SOUND_INITIALS):
        return "an"
    if word.startswith(_CONSONANT_SOUND):
        return "a"
    return "an" if word[:1] in "aeiou" else "a"


def with_article(phrase: str) -> str:
    """``phrase`` after its article: 'an obstructive hypopnea'."""
    return f"{article(phrase)} {phrase}"


def capitalise(text: str) -> str:
    """``text`` with its first letter upper case and the rest untouched ('SpO2' stays 'SpO2')."""
    return text[:1].upper() + text[1:]


def plural(count: int | float, singular: str, many: str | None = None) -> str:
    """'1 beat', '32 beats': the noun agreeing with ``count``."""
    return singular if abs(float(count)) == 1 else (many or f"{singular}s")
