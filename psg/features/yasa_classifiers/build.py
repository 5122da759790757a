"""Rebuild this folder's classifiers from the ``yasa`` package: ``python -m psg.features.yasa_classifiers.build``.

Why: serving stages with YASA's shipped LightGBM classifiers (``psg.features.yasa_prior``) but must not install
YASA, whose pickles need ``yasa``, ``joblib`` and scikit-learn's estimator classes to load. Each classifier is
re-saved as LightGBM's own text model (``Booster.save_model``: every tree, all iterations), gzip-compressed, which
``lightgbm.Booster(model_str=...)`` loads alone; ``manifest.json`` keeps what the text model does not: the class
order of its outputs (``clf.classes_``), the source file and its SHA-256, and YASA's version.

Source: YASA 0.8.1 (BSD-3-Clause, Copyright (c) 2018-2025 Raphael Vallat), ``yasa/classifiers/clf_<set>_lgb_0.5.0
.joblib``, the channel sets without demographics. Needs the train extra (which installs ``yasa``). The output is
deterministic for a given YASA and LightGBM (gzip without a timestamp).
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import sys
import warnings
from pathlib import Path

CHANNEL_SETS = ("eeg", "eeg+eog", "eeg+emg", "eeg+eog+emg")
HERE = Path(__file__).resolve().parent


def build(out: Path = HERE) -> dict[str, dict[str, object]]:
    """Write ``clf_<set>.txt.gz`` and ``manifest.json`` into ``out``; return the manifest."""
    import joblib
    import yasa

    source = Path(yasa.__file__).parent / "classifiers"
    manifest: dict[str, dict[str, object]] = {}
    for channel_set in CHANNEL_SETS:
        path = source / f"clf_{channel_set}_lgb_0.5.0.joblib"
        with warnings.catch_warnings():  # the pickles name an older scikit-learn's LabelEncoder; they load fine
            warnings.simplefilter("ignore")
            clf = joblib.load(path)
        text = clf.booster_.model_to_string(num_iteration=-1)
        name = f"clf_{channel_set}.txt.gz"
        (out / name).write_bytes(gzip.compress(text.encode(), compresslevel=9, mtime=0))
        manifest[channel_set] = {
            "file": name,
            "classes": [str(c) for c in clf.classes_],
            "source": f"yasa {yasa.__version__}: yasa/classifiers/{path.name}",
            "source_sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
        }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    return manifest


if __name__ == "__main__":
    built = build(Path(sys.argv[1]) if len(sys.argv) > 1 else HERE)
    for key, entry in built.items():
        print(key, entry["file"], os.path.getsize(HERE / str(entry["file"])) // 1000, "kB")
