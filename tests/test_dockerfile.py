"""The image the compose deployment builds is the lean one: multi-stage, pinned base, base install only,
no compilers and no root in the stage that runs.

No Docker engine is here (CI neither), so the Dockerfile is read, not built; the install it performs is the
base install that benchmarks/lean_serving.py measures in a fresh virtual environment.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
COMPILERS = ("gcc", "g++", "clang", "build-essential", "cc ", "make ", "cmake", "rustc", "cargo")


def stages() -> list[dict]:
    """Per ``FROM``: the image, the stage name and its instructions (continuation lines joined)."""
    text = re.sub(r"\\\n\s*", " ", (ROOT / "Dockerfile").read_text())
    args = dict(re.findall(r"^ARG (\w+)=(\S+)", text, flags=re.M))
    out: list[dict] = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        keyword, _, rest = line.partition(" ")
        if keyword == "FROM":
            image, _, name = rest.partition(" AS ")
            image = re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], image.strip())
            out.append({"image": image, "name": name.strip(), "lines": []})
        elif out:
            out[-1]["lines"].append((keyword, rest))
    return out


def test_image_is_multi_stage_on_a_pinned_base() -> None:
    found = stages()
    assert len(found) >= 2, "one stage builds, another runs"
    for stage in found:
        image = stage["image"]
        assert "@sha256:" in image or re.fullmatch(r"python:\d+\.\d+\.\d+-slim-[a-z]+", image), (
            f"{image}: pin an exact Python and Debian release (or a digest), not a moving tag"
        )


def test_runtime_stage_runs_as_a_user_without_compilers_or_installs() -> None:
    runtime = stages()[-1]
    keywords = [k for k, _ in runtime["lines"]]
    users = [rest for k, rest in runtime["lines"] if k == "USER"]
    assert users and users[-1] not in ("root", "0"), "the stage that runs must drop root"
    runs = " ".join(rest for k, rest in runtime["lines"] if k == "RUN")
    assert not [c for c in COMPILERS if c in runs + " "], f"compilers in the runtime stage: {runs}"
    assert "pip install" not in runs and "apt-get install" not in runs, "the runtime stage only copies the venv"
    assert "COPY" in keywords and any("--from=" in rest for k, rest in runtime["lines"] if k == "COPY")


def test_image_installs_the_base_and_refuses_torch() -> None:
    installs = [rest for stage in stages() for k, rest in stage["lines"] if k == "RUN" and "pip install" in rest]
    assert installs, "no pip install in the Dockerfile"
    for command in installs:
        extras = re.findall(r"\.\[([^\]]*)\]", command)
        assert all("train" not in e and "dev" not in e for e in extras), f"torch extras in the image: {command}"
        assert "torch" in command and "sys.exit" in command, "the build checks that torch did not come in"


def test_compose_builds_the_runtime_stage() -> None:
    yaml = pytest.importorskip("yaml", reason="PyYAML is not installed")
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    built = [s["build"] for s in compose["services"].values() if "build" in s]
    assert built and all(b == {"context": ".", "target": stages()[-1]["name"]} for b in built), built
