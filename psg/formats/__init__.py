"""Every annotation and recording format the project reads, into one ``Timeline`` / ``Recording``.

``read_timeline(path)`` picks the reader from the file name:

===============================  ==========================================================
``*.json``                       Dreem DOD-H/DOD-O scorer hypnogram (``dreem``)
``*_stage.txt``                  ucddb stages + events from ``events_by_epoch.csv`` (``ucddb``)
``*.edf.csv``, other ``*.txt``   Sleep-EDF R&K hypnogram, one character per line (``sleep_edf``)
``*.st``, ``*.hea``, ``*.ecg``,  slpdb WFDB record (``slpdb``)
record stem with a ``.st``
``*.npz``                        Apnea-ECG beats and apnea minutes (``apnea_ecg``)
``*.edf``, ``*.bdf``             EDF+/BDF+ annotations, ours or a lab's (``edf``)
``*.xml``                        NSRR XML (``nsrr_xml``)
===============================  ==========================================================

Anything else, or a file a reader cannot make sense of, raises ``psg.errors.FormatError`` naming the
file and the problem.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from psg.errors import FormatError
from psg.formats.apnea_ecg import read_apnea_ecg
from psg.formats.dreem import read_dreem_json
from psg.formats.edf import read_edf, read_mapped_edf, write_edf
from psg.formats.nsrr_xml import read_nsrr_xml, write_nsrr_xml
from psg.formats.scoring import attach_scoring, read_psg
from psg.formats.sleep_edf import read_sleep_edf_hypnogram
from psg.formats.slpdb import read_slpdb
from psg.formats.ucddb import read_ucddb
from psg.timeline import Timeline

__all__ = [
    "read_timeline",
    "read_edf",
    "read_mapped_edf",
    "read_psg",
    "attach_scoring",
    "write_edf",
    "read_nsrr_xml",
    "write_nsrr_xml",
    "read_dreem_json",
    "read_ucddb",
    "read_sleep_edf_hypnogram",
    "read_slpdb",
    "read_apnea_ecg",
]


def read_timeline(path: str | Path) -> Timeline:
    """Read any supported annotation file (see the module docstring) into a ``Timeline``."""
    path = Path(path)
    reader = _reader_for(path)
    if reader is read_slpdb:
        return read_slpdb(path)  # a record stem is not itself a file
    if not path.is_file():
        raise FormatError(path, "no such file")
    if path.stat().st_size == 0:
        raise FormatError(path, "empty file")
    return reader(path)


def _reader_for(path: Path) -> Callable[[Path], Timeline]:
    name = path.name.lower()
    suffix = path.suffix.lower()
    if suffix in (".st", ".hea", ".ecg") or (not suffix and path.with_suffix(".st").is_file()):
        return read_slpdb
    if name.endswith("_stage.txt"):
        return read_ucddb
    if name.endswith(".edf.csv") or suffix == ".txt":
        return read_sleep_edf_hypnogram
    readers: dict[str, Callable[[Path], Timeline]] = {
        ".json": read_dreem_json,
        ".npz": read_apnea_ecg,
        ".edf": _read_edf_timeline,
        ".bdf": _read_edf_timeline,
        ".xml": read_nsrr_xml,
    }
    if suffix not in readers:
        raise FormatError(
            path,
            "unknown annotation format; expected .json (Dreem), _stage.txt (ucddb), .edf.csv/.txt (Sleep-EDF "
            "hypnogram), .st/.hea or a record stem (slpdb), .npz (Apnea-ECG), .edf/.bdf (EDF+/BDF+), .xml (NSRR)",
        )
    return readers[suffix]


def _read_edf_timeline(path: Path) -> Timeline:
    timeline = read_edf(path).timeline
    if timeline is None:
        raise FormatError(path, "EDF file has no stage, event or R-peak annotations")
    return timeline
