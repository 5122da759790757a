"""No serving process imports torch: the base install (no torch, transformers or sentence-transformers) serves.

Nor YASA and what it drags (MNE, antropy, numba): staging's YASA prior runs on its NumPy port
(``psg.features.yasa_features``) and the shipped LightGBM classifiers; ``yasa`` is the train extra. Nor
pandas, scikit-learn, NeuroKit2 or wfdb (issue 18: ~190 MB of the base install): YASA's smoothing and
NeuroKit2's R-peak detector run on NumPy ports, and WFDB records (the ``wfdb`` extra) are never served.
LightGBM imports pandas and scikit-learn whenever they are installed (its optional integrations), so the
script hides those four as the base install lacks them, records every attempt to import them, and
requires the serving paths to work without them, with no attempt but LightGBM's guarded ones.

The dev environment has torch installed (the train extra), so "not installed" cannot be tested here; what is
tested is the stronger half that makes the lean install work: a fresh interpreter that runs the serving code
paths - the offline commands (stage, describe, query, detect, report) through the real entry point, the live
worker's model runtime, and the API answering a night search with the model - never imports them. The lean
install itself is measured in benchmarks/RESULTS.md (benchmarks/lean_serving.py).
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

TRAIN_ONLY = ("torch", "transformers", "sentence_transformers", "yasa", "mne", "numba", "antropy")

SCRIPT = textwrap.dedent(
    """
    import json, sys, time
    from pathlib import Path

    TRAIN_ONLY = ("torch", "transformers", "sentence_transformers", "yasa", "mne", "numba", "antropy")
    ABSENT = ("pandas", "sklearn", "neurokit2", "wfdb")  # installed here, not in the base install
    out, seen, attempts = Path(sys.argv[1]), {}, set()

    class Absent:  # fails every import of ABSENT as a missing package does, noting the module that asked
        def find_spec(self, name, path=None, target=None):
            if name.partition(".")[0] not in ABSENT:
                return None
            frame = sys._getframe(1)
            while frame.f_code.co_filename.startswith("<frozen"):
                frame = frame.f_back
            attempts.add((name.partition(".")[0], frame.f_globals.get("__name__", "?").partition(".")[0]))
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)

    sys.meta_path.insert(0, Absent())

    def note(step):
        seen[step] = [m for m in TRAIN_ONLY + ABSENT if sys.modules.get(m) is not None]

    from psg.formats.edf import write_edf
    from psg.simulate import simulate
    from psg.synthetic import synthetic_timeline

    night = out / "night.edf"
    write_edf(simulate(synthetic_timeline(hours=0.25, seed=3, ahi=30), seed=3), night)
    note("simulate")

    from sleeplm.cli import main

    codes = {}
    for args in (["stage", str(night), "--json"], ["describe", str(night), "--json"],
                 ["query", str(night), "obstructive apnea during REM", "--json"], ["detect", str(night), "--json"],
                 ["report", str(night), "--out", str(out / "report.json")]):
        sys.argv = ["sleeplm", *args]
        try:
            main()
            codes[args[0]] = 0
        except SystemExit as done:
            codes[args[0]] = int(done.code or 0)
        note(args[0])

    from model_runtime.serving.runtimes import load_runtime

    runtime = load_runtime("sleeplm")  # what the live worker serves
    note("worker runtime")

    from dashboards.api.app import create_app
    from dashboards.api.server import ApiServer
    from plumbing.broker import free_port
    from plumbing.settings import Settings
    from store import Store
    from tests.records import make_record
    import httpx, threading

    settings = Settings(_env_file=None, data_dir=out / "data", kafka=None, api_port=free_port())
    server = ApiServer(create_app(settings), "127.0.0.1", settings.api_port, log_level="warning")
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    texts = ["Wake with eyes open.", "An obstructive apnea with oxygen desaturation.", "Deep N3 sleep."]
    # an event search returns only epochs whose own caption names the event (dashboards.api.search)
    shown = ["Light sleep (N2). No events.", "Light sleep (N2). Obstructive apnea 3.0-15.0 s.",
             "Light sleep (N2). No events."]
    with Store(settings.database_url) as store:
        token = store.create_token("lean", "viewer")[0]
        store.insert_epochs([make_record(i, "bed-1", "rec-1", "N2", embedding=runtime.lm.embed_text(t).tolist(),
                                         captions={"stage_event": c, "brain": "x", "cardiac": "x",
                                                   "respiratory": "x", "somatic": "x"})
                             for i, (t, c) in enumerate(zip(texts, shown))])
    with httpx.Client(base_url=f"http://127.0.0.1:{settings.api_port}", timeout=120,
                      headers={"Authorization": f"Bearer {token}"}) as client:
        found = client.get("/api/beds/bed-1/query", params={"q": "obstructive apnea", "top": 3}).json()
    server.stop()
    note("api search")
    print(json.dumps({"imported": seen, "codes": codes, "search": found, "attempts": sorted(attempts)}))
    """
)


@pytest.mark.slow
def test_serving_paths_never_import_torch(tmp_path: Path) -> None:
    root = Path(__file__).resolve().parents[1]
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=900,
        cwd=root,
        env={**_env(), "PYTHONPATH": str(root)},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["codes"] == dict.fromkeys(("stage", "describe", "query", "detect", "report"), 0), done.stderr[-3000:]
    assert result["search"]["method"] == "model" and result["search"]["matches"][0]["epoch"] == 1
    steps = result["imported"]
    assert list(steps) == ["simulate", "stage", "describe", "query", "detect", "report", "worker runtime", "api search"]
    assert {step: found for step, found in steps.items() if found} == {}, f"train-only modules imported: {steps}"
    # only LightGBM's optional integrations (it runs on without them) may try pandas or scikit-learn
    assert {who for _, who in result["attempts"]} <= {"lightgbm"}, result["attempts"]


def _env() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if not k.startswith("SLEEPLM_")} | {"MPLBACKEND": "Agg"}
