"""Point liblsl at the shipped configuration before pylsl is first imported in a process.

liblsl reads ``LSLAPICFG`` once, when the library loads. The shipped ``lsl_api.cfg`` keeps stream
discovery on this machine (``ResolveScope = machine``, ``KnownPeers = {127.0.0.1}``), so simulated beds,
the bridge and the tests never see or disturb LSL streams elsewhere on the network. A deployment that
bridges real amplifiers on the lab network sets ``LSLAPICFG`` to its own file; that value is kept.

Every module of this package imports ``pylsl`` lazily, inside functions, after ``configure_lsl()``.
"""

from __future__ import annotations

import os
from pathlib import Path
from types import ModuleType

#: The configuration shipped with the package.
SHIPPED_LSL_CONFIG = Path(__file__).resolve().parent / "lsl_api.cfg"


def configure_lsl() -> Path:
    """Set ``LSLAPICFG`` to the shipped file unless already set; returns the file in effect.

    Call it before the first ``import pylsl`` of a process (later calls cannot change a loaded liblsl).
    """
    configured = os.environ.get("LSLAPICFG")
    if configured:
        return Path(configured)
    os.environ["LSLAPICFG"] = str(SHIPPED_LSL_CONFIG)
    return SHIPPED_LSL_CONFIG


def private_lsl_config(folder: Path, session: str) -> Path:
    """The configuration in effect plus an LSL session id of our own, written to ``folder``: liblsl
    resolves only streams of the same session, so simulated beds of another run on this machine (also
    called bed-01, ...) stay invisible to this run's bridge and the other way round."""
    source = Path(os.environ.get("LSLAPICFG") or SHIPPED_LSL_CONFIG).read_text()
    if "[lab]\n" not in source:
        source += "\n[lab]\n"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "lsl_api.cfg"
    path.write_text(source.replace("[lab]\n", f"[lab]\nSessionID = {session}\n", 1))
    return path


def import_pylsl() -> ModuleType:
    """``configure_lsl()`` then ``import pylsl``: the one way this package loads liblsl."""
    configure_lsl()
    import pylsl

    return pylsl
