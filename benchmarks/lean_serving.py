"""Issue 18's measurements of an install: ``sleeplm up`` as a user runs it, from a given Python environment.

Launches ``PYTHON -m sleeplm up --beds N --speed X`` (embedded broker, fresh data dir, working directory
outside the checkout so the environment's installed package runs, not the source tree), and reports:

- ``api_up_s``: seconds from launch until ``/api/health`` answers;
- ``first_search_s`` / ``second_search_s``: the night search (``/api/beds/<bed>/query``) once the first bed has
  an epoch with captions stored, and ``method`` (``model`` = the text tower answered, ``text`` = word match);
- per part (api, worker, bridge, beds, broker, launcher): RSS in MB at the end, and whether torch is mapped
  into the process (``libtorch`` in ``/proc/PID/maps``: a process that imported torch has it);
- ``site_packages_mb``: the environment's site-packages (``du --apparent-size``), with and without bytecode;
- ``search_warmup``: in a fresh interpreter, seconds to import the API, load the model and embed a first and
  a second query (what the API's search warm-up does), and the RSS after.

    .venv/bin/python benchmarks/lean_serving.py --python /tmp/lean/bin/python --beds 4 --seconds 90 --json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import psutil
from up_process import collect_output, signed_in, start_up, stop_up

from plumbing.broker import free_port

PARTS = ("api", "worker", "bridge", "beds", "broker")


def site_packages_mb(python: str) -> dict[str, float]:
    """Apparent size of the environment's site-packages, all of it and without ``__pycache__``."""
    where = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()

    def du(*extra: str) -> float:
        out = subprocess.run(["du", "-sm", "--apparent-size", *extra, where], capture_output=True, text=True)
        return float(out.stdout.split()[0])

    return {"all": du(), "without_bytecode": du("--exclude=__pycache__")}


WARMUP = """
import json, sys, time
import psutil
t0 = time.monotonic()
import dashboards.api.app
t1 = time.monotonic()
from model_runtime.serving.model_api import SleepLM
lm = SleepLM.load()
t2 = time.monotonic()
lm.embed_text("obstructive apnea")
t3 = time.monotonic()
lm.embed_text("central apneas during REM")
t4 = time.monotonic()
print(json.dumps({"import_api_s": round(t1 - t0, 2), "load_model_s": round(t2 - t1, 2),
                  "first_embed_s": round(t3 - t2, 2), "next_embed_s": round(t4 - t3, 3),
                  "rss_mb": round(psutil.Process().memory_info().rss / 1e6), "torch": "torch" in sys.modules}))
"""


def search_warmup(python: str) -> dict:
    """What the API's search warm-up costs in a fresh interpreter of the environment: import the API, load the
    model, embed two texts (the first loads the text tower)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLEEPLM_") and k != "PYTHONPATH"}
    done = subprocess.run(
        [python, "-c", WARMUP], capture_output=True, text=True, env=env, cwd=tempfile.mkdtemp(), check=True
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def part_of(process: psutil.Process) -> str:
    try:
        line = process.cmdline()
    except psutil.Error:
        return "?"
    if any("tansu" in a for a in line):
        return "broker"
    if "sleeplm" in line:
        after = line[line.index("sleeplm") + 1 :]
        return after[0] if after else "?"
    return Path(line[0]).name if line else "?"


def has_torch(pid: int) -> bool:
    try:
        return "libtorch" in Path(f"/proc/{pid}/maps").read_text()
    except OSError:
        return False


def processes(launcher: subprocess.Popen) -> dict[str, dict]:
    """RSS (MB) and torch-mapped per part, summed over each part's processes."""
    out: dict[str, dict] = {}
    root = psutil.Process(launcher.pid)
    for process in [root, *root.children(recursive=True)]:
        name = "launcher" if process.pid == launcher.pid else part_of(process)
        try:
            rss = process.memory_info().rss / 1e6
        except psutil.Error:
            continue
        entry = out.setdefault(name, {"rss_mb": 0.0, "processes": 0, "torch": False})
        entry["rss_mb"] = round(entry["rss_mb"] + rss, 1)
        entry["processes"] += 1
        entry["torch"] = entry["torch"] or has_torch(process.pid)
    return out


def run(python: str, beds: int, speed: float, seconds: float) -> dict:
    # every process here runs from a folder of its own: a relative interpreter path (.venv/bin/python) is made
    # absolute first, or it would be looked up there; a bare name (python3) is still found on PATH
    python = os.path.abspath(python) if os.sep in python else python
    # run from an empty folder of its own: `python -m` puts the working directory first on sys.path, and a
    # shared one (/tmp) may hold any stray module (a `re.py` there broke a run)
    data_dir = Path(tempfile.mkdtemp(prefix="sleeplm-lean-")) / "data"
    api_port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLEEPLM_") and k != "PYTHONPATH"}
    started = time.monotonic()
    launcher = start_up(python, beds, speed, api_port, data_dir, env, cwd=data_dir.parent)
    output, _ = collect_output(launcher)
    result: dict = {"python": python, "beds": beds, "speed": speed, "seconds": seconds, "cores": os.cpu_count()}
    client = httpx.Client(base_url=f"http://127.0.0.1:{api_port}", timeout=120)
    try:
        while time.monotonic() - started < seconds:
            if launcher.poll() is not None:
                raise SystemExit(f"sleeplm up exited with {launcher.returncode}:\n{''.join(output)[-3000:]}")
            try:
                if "api_up_s" not in result and signed_in(client, data_dir):
                    result["api_up_s"] = round(time.monotonic() - started, 2)
                if "api_up_s" in result and "first_search_s" not in result:
                    # the first search the model answers (a bed whose epochs have no stored embedding yet is
                    # answered from caption words: counted, not timed)
                    for bed in client.get("/api/beds").json():
                        t0 = time.monotonic()
                        found = client.get(
                            f"/api/beds/{bed['bed_id']}/query", params={"q": "obstructive apnea during REM", "top": 5}
                        )
                        took = round(time.monotonic() - t0, 3)
                        if found.status_code != 200 or found.json().get("method") == "text":
                            result["searches_before_model"] = result.get("searches_before_model", 0) + 1
                            continue
                        result["first_search_s"], result["search_method"] = took, found.json().get("method")
                        t0 = time.monotonic()
                        client.get(f"/api/beds/{bed['bed_id']}/query", params={"q": "central apneas", "top": 5})
                        result["second_search_s"] = round(time.monotonic() - t0, 3)
                        result["search_at_s"] = round(time.monotonic() - started, 2)
                        break
            except httpx.HTTPError:
                pass
            time.sleep(1.0)
        result["parts"] = processes(launcher)
    finally:
        client.close()
        stop_up(launcher)
    result["site_packages_mb"] = site_packages_mb(python)
    result["search_warmup"] = search_warmup(python)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--python", default=sys.executable, help="interpreter of the environment to measure")
    parser.add_argument("--beds", type=int, default=4)
    parser.add_argument("--speed", type=float, default=10.0)
    parser.add_argument("--seconds", type=float, default=90.0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    result = run(args.python, args.beds, args.speed, args.seconds)
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"{args.python}: sleeplm up --beds {args.beds} --speed {args.speed:g}, {args.seconds:.0f} s")
    print(
        f"  site-packages {result['site_packages_mb']['all']:.0f} MB "
        f"({result['site_packages_mb']['without_bytecode']:.0f} MB without bytecode)"
    )
    print(
        f"  API answers after {result.get('api_up_s')} s; first search {result.get('first_search_s')} s, "
        f"second {result.get('second_search_s')} s ({result.get('search_method')})"
    )
    for name, part in sorted(result.get("parts", {}).items()):
        print(f"  {name:<9} {part['rss_mb']:>8.1f} MB in {part['processes']} process(es), torch: {part['torch']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
