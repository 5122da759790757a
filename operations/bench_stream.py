"""``sleeplm bench stream``: the real stack under N beds at device rates, measured end to end.

What runs: a Kafka-protocol broker (the embedded Tansu, or ``SLEEPLM_KAFKA``), ``workers`` worker
processes exactly as ``sleeplm worker`` runs them (epocher, inference with the configured runtime,
sink, alerts), SQLite under a fresh data dir; most beds come from ``operations.loadgen`` straight
to ``psg.samples`` at real time, ``lsl_beds`` of them through real LSL outlets and the real bridge.

What it reports (``BenchResult``): for every epoch whose end (device clock) falls after the warm-up,
latency = stored_at - epoch end, where ``stored_at`` is the sink's commit time: p50/p95/p99; lost epochs
(every generated bed must end with each of its complete epochs stored: expected minus stored, after a
drain of up to ``drain_s``); duplicate epochs (epochs of a bed stored more than once under its recording
id: the store's key forbids it, counted from the rows anyway); CPU of all the processes (percent of one
core, so 200 = both cores busy) and their summed RSS at the end. ``sustained`` means nothing was lost
and the pipeline kept pace: p95 over the last third of the run at most 1 s above the first third's (a
rising latency is a queue that grows), and the generator never fell more than 2 s behind.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import sys
import tempfile
import threading
import time
import uuid
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from plumbing.settings import Settings
from psg.errors import PSGError
from store.engine import sqlite_file

#: Device seconds after the generator starts whose epochs do not count towards latency (workers join
#: the consumer group and load the model meanwhile); they still count towards lost epochs.
WARMUP_S = 45.0
DRAIN_S = 60.0
#: Longest night rendered for the generator (an 8-h night at any speed); longer runs wrap around it.
MAX_NIGHT_S = 8.5 * 3600


@dataclass
class BenchResult:
    beds: int
    seconds: float
    epochs: int
    sustained: bool
    latency_p50_s: float | None
    latency_p95_s: float | None
    latency_p99_s: float | None
    lost_epochs: int
    duplicate_epochs: int
    cpu_percent: float
    rss_mb: float
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class BenchOptions:
    beds: int = 100
    seconds: float = 180.0
    workers: int = 2
    partitions: int = 8
    lsl_beds: int = 2
    nights: int = 4
    runtime: str | None = None
    warmup_s: float = WARMUP_S
    drain_s: float = DRAIN_S
    data_dir: Path | None = None
    keep: bool = False
    speed: float = 1.0
    sample_s: float = 5.0
    #: Hours of night rendered per generated night (None: what the run needs) and the hour the beds start
    #: at: pieces of one accelerated night (``--night-hours 8 --from-hour 3.3``) play the same nights.
    night_hours: float | None = None
    from_hour: float = 0.0


def _percentile(values: np.ndarray, q: float) -> float | None:
    return None if values.size == 0 else round(float(np.percentile(values, q)), 3)


def _process_tree(pids: list[int]) -> list[Any]:
    import psutil

    out = []
    for pid in pids:
        try:
            parent = psutil.Process(pid)
            out += [parent, *parent.children(recursive=True)]
        except psutil.NoSuchProcess:
            continue
    return out


def _parts(stack: Any, broker: Any) -> dict[str, list[int]]:
    """part name -> its process ids (with children): each worker, the bridge, the LSL beds, the broker, and
    this process (the load generator and the sampler)."""
    parts = {c.name: [p.pid for p in _process_tree([c.process.pid])] for c in stack.children}
    if broker is not None:
        parts["broker"] = [broker.process.pid]
    parts["generator"] = [os.getpid()]
    return parts


def _cpu_seconds(processes: list[Any]) -> dict[int, float]:
    import psutil

    out = {}
    for p in processes:
        try:
            times = p.cpu_times()
            out[p.pid] = times.user + times.system
        except psutil.NoSuchProcess:
            continue
    return out


def _rss_mb(processes: list[Any]) -> float:
    import psutil

    total = 0
    for p in processes:
        try:
            total += p.memory_info().rss
        except psutil.NoSuchProcess:
            continue
    return round(total / 2**20, 1)


def stored_rows(db_path: Path) -> list[tuple[str, str, int, float, float, float, float | None]]:
    """(bed, recording, epoch, start_time, epoch_s, stored_at, end_received_at) of every stored epoch."""
    with sqlite3.connect(db_path, timeout=30) as db:
        return db.execute(
            "SELECT bed_id, recording_id, epoch, start_time, epoch_s, stored_at, end_received_at FROM epochs"
        ).fetchall()


def run_bench(options: BenchOptions, progress: bool = True) -> BenchResult:
    """Run the stack under ``options.beds`` beds for ``options.seconds`` and measure it (module docstring)."""
    from confluent_kafka import Producer

    from device_bridges.lsl_config import configure_lsl, private_lsl_config
    from device_bridges.producer import LOADGEN_LINGER_MS, producer_config
    from operations.launcher import LiveStack
    from operations.loadgen import LoadGenerator, plan_beds, render_nights
    from plumbing.broker import start_broker
    from plumbing.metrics import enable_multiprocess
    from plumbing.topics import ensure_topics

    if options.beds < options.lsl_beds or options.beds < 1:
        raise PSGError(f"--beds {options.beds}: expected >= 1 and >= --lsl-beds {options.lsl_beds}")
    device_s = (options.seconds + options.drain_s) * options.speed
    first_second = round(options.from_hour * 3600)
    night_s = options.night_hours * 3600 if options.night_hours else min(first_second + device_s, MAX_NIGHT_S)
    if first_second >= night_s:
        raise PSGError(
            f"--from-hour {options.from_hour:g}: expected less than the {night_s / 3600:g} h of night rendered"
        )
    configure_lsl()
    data_dir = options.data_dir or Path(tempfile.mkdtemp(prefix="sleeplm-bench-"))
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]  # pydantic-settings' documented init kwarg
        data_dir=data_dir,
        db_url=None,  # its own SQLite file, whatever SLEEPLM_DB_URL says: the bench reads the file directly
        partitions=options.partitions,
        app_id=f"bench-{uuid.uuid4().hex[:8]}",
        session_timeout_s=6.0,
        runtime=options.runtime,
        kafka=os.environ.get("SLEEPLM_KAFKA") or None,
    )
    logs = data_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    enable_multiprocess(settings.metrics_dir, fresh=True)
    say = (lambda text: print(text, file=sys.stderr, flush=True)) if progress else (lambda text: None)
    generated = options.beds - options.lsl_beds
    say(f"rendering {min(options.nights, max(generated, 1))} nights ...")
    nights = render_nights(min(options.nights, max(generated, 1)), night_s)
    broker = None
    if settings.kafka is None:
        broker = start_broker(log_path=logs / "broker.log")
        settings.kafka = broker.bootstrap
    ensure_topics(settings.kafka, settings.partitions, samples_retention_hours=settings.samples_retention_hours)
    stack = LiveStack(settings, broker=broker)
    env = stack.child_env()
    env["LSLAPICFG"] = str(private_lsl_config(data_dir / "lsl", f"sleeplm-bench-{uuid.uuid4().hex[:8]}"))
    producer = None
    try:
        for k in range(options.workers):
            stack.spawn(f"worker-{k}", ["worker"], env)
        if options.lsl_beds:
            stack.spawn("bridge", ["bridge"], env)
            stack.spawn(
                "beds",
                [
                    "beds",
                    "--beds",
                    str(options.lsl_beds),
                    "--speed",
                    f"{options.speed:g}",
                    "--hours",
                    f"{device_s / 3600 + 0.05:.3f}",
                    "--nights",
                    "1",
                ],
                env,
            )
        # librdkafka, as the bridge: kafka-python cost ~1.3 ms of the generator's CPU per record (40 % of a
        # core at 100 beds), load that would be charged to the monitor's two cores
        producer = Producer({**producer_config(settings, LOADGEN_LINGER_MS), "client.id": "sleeplm-loadgen"})
        from plumbing.topics import SAMPLES

        delivery = _Deliveries()

        def send(key: bytes, value: bytes) -> None:
            producer.produce(SAMPLES, key=key, value=value, on_delivery=delivery.note)
            producer.poll(0)

        start = time.time() + 1.0
        beds = plan_beds(generated, start, len(nights), first_second=first_second)
        generator = LoadGenerator(beds, nights, send, speed=options.speed)
        watched = _process_tree([c.process.pid for c in stack.children] + ([broker.process.pid] if broker else []))
        watched.append(_self_process())
        parts = _parts(stack, broker)  # where the CPU goes: the load itself (generator, broker) vs the monitor
        cpu_before, wall_before = _cpu_seconds(watched), time.monotonic()
        stop_at = start + options.seconds
        sampler = Sampler(stack, settings, generator, stop_at, options.sample_s, say, broker)
        sampler.start()
        generator.run(stop_at, should_stop=lambda: _dead(stack))
        sampler.join()
        producer.flush(60)
        delivery.check()
        watched = _process_tree([c.process.pid for c in stack.children] + ([broker.process.pid] if broker else []))
        watched.append(_self_process())
        cpu_after, wall = _cpu_seconds(watched), time.monotonic() - wall_before
        rss = _rss_mb(watched)
        expected = {b.bed_id: (b.recording_id, generator.complete_epochs(b)) for b in beds}
        db = _sqlite_path(settings)
        say("draining ...")
        deadline = time.monotonic() + options.drain_s
        while time.monotonic() < deadline and not _complete(db, expected):
            stack.check_children()
            time.sleep(1.0)
        rows = stored_rows(db)
    finally:
        if producer is not None:
            producer.flush(10)
        stack.stop(grace_s=10.0)
    cpu = sum(cpu_after.get(pid, 0.0) - cpu_before.get(pid, 0.0) for pid in cpu_after) / wall * 100.0
    result = _measure(rows, expected, start, options, generator.behind_s, round(cpu, 1), rss, generator.chunks)
    result.details["records_produced"] = generator.messages
    result.details["cpu_percent_by_part"] = {
        part: round(sum(cpu_after.get(pid, 0.0) - cpu_before.get(pid, 0.0) for pid in pids) / wall * 100.0, 1)
        for part, pids in parts.items()
    }
    result.details.update(sampler.memory_report(start + options.warmup_s))
    if not options.keep and options.data_dir is None:
        shutil.rmtree(data_dir, ignore_errors=True)
    else:
        result.details["data_dir"] = str(data_dir)
    return result


def _measure(
    rows: list[tuple],
    expected: dict[str, tuple[str, int]],
    start: float,
    options: BenchOptions,
    behind_s: float,
    cpu: float,
    rss: float,
    messages: int,
) -> BenchResult:
    per_bed: dict[tuple[str, str], list[int]] = defaultdict(list)
    latencies, ends = [], []
    real_time = options.speed == 1.0
    for bed, recording, epoch, start_time, epoch_s, stored_at, received_at in rows:
        per_bed[(bed, recording)].append(epoch)
        end = start_time + epoch_s
        arrived = end if real_time else received_at  # accelerated: the device clock runs ahead of the wall
        if arrived is not None and arrived >= start + options.warmup_s:
            latencies.append(stored_at - arrived)
            ends.append(arrived)
    lost = sum(
        max(0, n - len(set(e for e in per_bed.get((bed, rec), []) if e < n))) for bed, (rec, n) in expected.items()
    )
    duplicates = sum(len(v) - len(set(v)) for v in per_bed.values())
    lat = np.array(latencies)
    order = np.argsort(ends) if ends else np.array([], int)
    third = max(1, len(order) // 3)
    first, last = lat[order[:third]], lat[order[-third:]]
    first_p95, last_p95 = _percentile(first, 95), _percentile(last, 95)
    steady = first_p95 is not None and last_p95 is not None and last_p95 <= first_p95 + 1.0
    lsl = {bed: len(v) for (bed, _), v in per_bed.items() if not bed.startswith("gen-")}
    return BenchResult(
        beds=options.beds,
        seconds=options.seconds,
        epochs=len(rows),
        sustained=bool(lost == 0 and steady and behind_s <= 2.0),
        latency_p50_s=_percentile(lat, 50),
        latency_p95_s=_percentile(lat, 95),
        latency_p99_s=_percentile(lat, 99),
        lost_epochs=int(lost),
        duplicate_epochs=int(duplicates),
        cpu_percent=cpu,
        rss_mb=rss,
        details={
            "workers": options.workers,
            "partitions": options.partitions,
            "lsl_beds": options.lsl_beds,
            "generated_beds": len(expected),
            "expected_epochs": int(sum(n for _, n in expected.values())),
            "latency_epochs": int(lat.size),
            "latency_max_s": _percentile(lat, 100),
            "p95_first_third_s": first_p95,
            "p95_last_third_s": last_p95,
            "generator_behind_s": round(behind_s, 3),
            "chunks_produced": messages,
            "lsl_bed_epochs": lsl,
            "runtime": options.runtime or "default",
            "speed": options.speed,
            "night_hours": options.night_hours,
            "from_hour": options.from_hour,
            "latency_from": "epoch end, device clock" if real_time else "arrival of the epoch's last chunk (wall)",
        },
    )


class _Deliveries:
    """Counts the generator's failed deliveries (librdkafka reports them in a callback, not by raising)."""

    def __init__(self) -> None:
        self.failed = 0
        self.first_error: Any = None

    def note(self, error: Any, _message: Any) -> None:
        if error is not None:
            self.failed += 1
            self.first_error = self.first_error or error

    def check(self) -> None:
        """Raise if any generated record did not reach the broker (the lost-epoch count would lie)."""
        if self.failed:
            raise RuntimeError(
                f"load generator: {self.failed} record(s) not delivered to the broker: {self.first_error}"
            )


def _sqlite_path(settings: Settings) -> Path:
    """The bench's own SQLite file (``run_bench`` sets no ``db_url``), which it reads directly."""
    path = sqlite_file(settings.database_url)
    if path is None:
        raise PSGError(f"bench stream needs its SQLite store, got {settings.database_url!r}")
    return path


def _complete(db: Path, expected: dict[str, tuple[str, int]]) -> bool:
    if not db.exists():
        return False
    try:
        with sqlite3.connect(db, timeout=30) as conn:
            counts = dict(conn.execute("SELECT recording_id, COUNT(DISTINCT epoch) FROM epochs GROUP BY recording_id"))
    except sqlite3.OperationalError:
        return False
    return all(counts.get(rec, 0) >= n for rec, n in expected.values())


def _dead(stack: Any) -> bool:
    stack.check_children()  # raises, naming the part and its log, if one died
    return False


def _self_process() -> Any:
    import psutil

    return psutil.Process(os.getpid())


class Sampler(threading.Thread):
    """Every ``every_s``: each worker's RSS, the epochs stored so far (the soak's memory curve) and the
    embedded broker's CPU and RSS (what it holds grows with the run: issue 17), printed as progress."""

    def __init__(
        self,
        stack: Any,
        settings: Settings,
        generator: Any,
        stop_at: float,
        every_s: float,
        say: Any,
        broker: Any = None,
    ):
        super().__init__(name="bench-sampler", daemon=True)
        self.stack, self.generator, self.stop_at, self.every_s, self.say = stack, generator, stop_at, every_s, say
        self.db = _sqlite_path(settings)
        self.broker = _process_tree([broker.process.pid]) if broker is not None else []
        self.samples: list[dict[str, Any]] = []

    def run(self) -> None:
        broker_cpu, at = _cpu_seconds(self.broker), time.monotonic()
        while (left := self.stop_at - time.time()) > 0:
            workers = {c.name: c.process.pid for c in self.stack.children if c.name.startswith("worker")}
            rss = {name: _rss_mb(_process_tree([pid])) for name, pid in workers.items()}
            stored = _count(self.db)
            cpu, now = _cpu_seconds(self.broker), time.monotonic()
            busy = sum(cpu.values()) - sum(broker_cpu.values())
            broker = (
                {"broker_cpu_pct": round(100.0 * busy / max(now - at, 1e-3), 1), "broker_rss_mb": _rss_mb(self.broker)}
                if self.broker
                else {}
            )
            broker_cpu, at = cpu, now
            self.samples.append({"at": time.time(), "stored": stored, "worker_rss_mb": rss, **broker})
            self.say(
                f"  {left:5.0f} s left  records sent {self.generator.messages}  epochs stored {stored}  "
                f"generator behind {self.generator.behind_s:.2f} s  worker RSS {sum(rss.values()):.0f} MB"
                + (f"  broker {broker['broker_cpu_pct']:.0f} % CPU, {broker['broker_rss_mb']:.0f} MB" if broker else "")
            )
            time.sleep(min(self.every_s, max(left, 0.1)))

    def memory_report(self, after: float) -> dict[str, Any]:
        """Worker RSS at the first sample after ``after`` (warm-up) and at the last one; growth in percent."""
        warm = [s for s in self.samples if s["at"] >= after]
        if len(warm) < 2:
            return {"rss_growth_pct": None}
        first, last = warm[0]["worker_rss_mb"], warm[-1]["worker_rss_mb"]
        growth = [100.0 * (last[w] - first[w]) / first[w] for w in first if w in last and first[w] > 0]
        return {
            "rss_growth_pct": round(max(growth), 2) if growth else None,
            "worker_rss_mb_after_warmup": first,
            "worker_rss_mb_at_end": last,
            "samples": [
                {
                    "t": round(s["at"] - self.samples[0]["at"], 1),
                    "stored": s["stored"],
                    "worker_rss_mb": round(sum(s["worker_rss_mb"].values()), 1),
                    **{k: s[k] for k in ("broker_cpu_pct", "broker_rss_mb") if k in s},
                }
                for s in self.samples
            ],
        }


def _count(db: Path) -> int:
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(db, timeout=5) as conn:
            return int(conn.execute("SELECT COUNT(*) FROM epochs").fetchone()[0])
    except sqlite3.OperationalError:
        return 0


def main_json(result: BenchResult) -> str:
    keys = (
        "beds",
        "seconds",
        "epochs",
        "sustained",
        "latency_p50_s",
        "latency_p95_s",
        "latency_p99_s",
        "lost_epochs",
        "duplicate_epochs",
        "cpu_percent",
        "rss_mb",
    )
    data = result.to_dict()
    return json.dumps({**{k: data[k] for k in keys}, "details": data["details"]})
