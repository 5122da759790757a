"""The epocher's per-epoch analysis reproduces the golden epochs recorded before it was optimised.

``tests.stream_agents.golden`` says what the fixture holds and how it was made. Tolerances:

* quality flags and events: identical (events are rounded to 0.01 by ``DetectedEvent.to_dict``, so a
  change below that shows only if it flips a rounding, which the optimised code must not do either);
* features: relative 1e-6 (absolute 1e-9 for values at zero). The optimised spectra are sums of the
  same FFT products in another order (float64 round-off ~1e-15 relative) and the fixture keeps 10
  significant digits, so 1e-6 has four orders of margin yet catches any real change of a feature
  (a different window, segment count or band edge moves band powers by > 1e-3);
* aux (SpO2 and HR per second, float32): relative 1e-5, the fixture's 6 significant digits;
* model signals: bit-identical (SHA-1 of the float32 bytes), with mean and std per channel as a
  readable diagnostic when the hash differs.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest

from tests.stream_agents.golden import FIXTURE, NIGHTS, night_chunks, run_epocher, summarise

FEATURE_RTOL, FEATURE_ATOL = 1e-6, 1e-9
AUX_RTOL = 1e-5


@pytest.fixture(scope="module")
def golden() -> dict[str, Any]:
    return json.loads(FIXTURE.read_text())


@pytest.mark.parametrize("name", list(NIGHTS))
def test_epochs_match_golden(name: str, golden: dict[str, Any]) -> None:
    chunks = night_chunks(NIGHTS[name])
    if chunks is None:
        pytest.skip(f"night {name!r} needs the shared data (set SLEEPLM_DATA)")
    expected = golden[name]
    actual = summarise(run_epocher(chunks))
    assert actual["epochs"] == expected["epochs"]
    assert actual["quality_labels"] == expected["quality_labels"]
    for i, epoch in enumerate(expected["epochs"]):
        assert actual["quality"][i] == expected["quality"][i], f"{name} epoch {epoch}: quality"
        assert actual["events"][i] == expected["events"][i], f"{name} epoch {epoch}: events"
    assert sorted(actual["features"]) == sorted(expected["features"])
    for key, values in expected["features"].items():
        _assert_column(name, key, actual["features"][key], values)
    aux_a = np.array(actual["aux"], dtype=float)  # None (NaN) -> nan
    aux_e = np.array(expected["aux"], dtype=float)
    np.testing.assert_allclose(aux_a, aux_e, rtol=AUX_RTOL, atol=0, equal_nan=True, err_msg=f"{name}: aux")
    hashes = zip(expected["epochs"], actual["signals_sha1"], expected["signals_sha1"], strict=True)
    mismatched = [epoch for epoch, a, b in hashes if a != b]
    if mismatched:
        np.testing.assert_allclose(
            np.array(actual["signals_mean"]), np.array(expected["signals_mean"]), rtol=1e-5, atol=1e-6
        )
        np.testing.assert_allclose(np.array(actual["signals_std"]), np.array(expected["signals_std"]), rtol=1e-5)
    assert not mismatched, f"{name}: model signals of epochs {mismatched} are not bit-identical"


def _assert_column(name: str, key: str, actual: list[Any], expected: list[Any]) -> None:
    """One feature over the night: same None / string values, numbers within the feature tolerance."""
    for epoch, (a, e) in enumerate(zip(actual, expected, strict=True)):
        where = f"{name} epoch {epoch} {key}: {a!r} != {e!r}"
        if e is None or isinstance(e, str) or a is None or isinstance(a, str):
            assert a == e, where
        else:
            assert abs(a - e) <= FEATURE_ATOL + FEATURE_RTOL * abs(e), where
