"""A shortened soak on the real stack: 10 beds on an accelerated clock (4x: 6.7 min of night in 100 s, the load
of 40 beds, within what this 2-core box sustains with the broker and the generator on it), two workers,
SQLite. Nothing lost or doubled, latency does not climb, worker memory does not grow after the
warm-up. The full soak (an 8-h night for 20 beds) is `sleeplm bench stream --beds 20 --speed 20
--seconds 1440` in ``benchmarks/RESULTS.md``."""

from __future__ import annotations

from pathlib import Path

from operations.bench_stream import BenchOptions, run_bench


def test_ten_beds_at_four_times_speed_lose_nothing_and_hold_their_memory(tmp_path: Path) -> None:
    options = BenchOptions(
        beds=10,
        seconds=100.0,
        workers=2,
        partitions=4,
        lsl_beds=0,
        nights=2,
        runtime="rules",
        speed=4.0,
        warmup_s=40.0,
        drain_s=45.0,
        sample_s=5.0,
        data_dir=tmp_path / "soak",
    )
    result = run_bench(options, progress=False)
    details = result.details
    assert result.lost_epochs == 0 and result.duplicate_epochs == 0, details
    assert result.epochs >= details["expected_epochs"] >= 10 * 12, details  # 6.7 min of night per bed: 13 epochs
    assert result.sustained, details
    assert details["rss_growth_pct"] is not None and details["rss_growth_pct"] < 10.0, details
