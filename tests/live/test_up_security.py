"""`sleeplm up` as a lab's IT would probe it (issue 14): no patient data or token in any log after a search,
an owner-only data dir, every listener on loopback but liblsl's (whose data sockets LSL's own configuration
cannot bind to an address: README, "Security and threat model"), and every part given the shipped LSL
configuration that keeps stream discovery on this machine."""

from __future__ import annotations

import configparser
import os
import socket
import subprocess
import sys
import uuid
from pathlib import Path

import httpx
import pytest

from device_bridges.lsl_config import SHIPPED_LSL_CONFIG, configure_lsl
from tests.live.helpers import up_serving

SECRET_QUERY = "zebra-secret patient words"
SECRET_TOKEN = "slm_" + "Qu3ryT0ken" * 4


def _lsl_config(path: Path) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(inline_comment_prefixes=(";",), comment_prefixes=(";",), strict=False)
    parser.optionxform = str  # keep liblsl's key case
    parser.read(path)
    return parser


def _assert_machine_only(path: Path) -> None:
    config = _lsl_config(path)
    assert config.get("multicast", "ResolveScope") == "machine", path
    assert config.get("multicast", "ListenAddress") == "127.0.0.1", path
    assert config.get("lab", "KnownPeers").replace(" ", "") == "{127.0.0.1}", path


def test_the_shipped_lsl_config_keeps_discovery_on_this_machine() -> None:
    _assert_machine_only(SHIPPED_LSL_CONFIG)


def test_configure_lsl_sets_the_shipped_config_unless_one_is_given(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LSLAPICFG", raising=False)
    assert configure_lsl() == SHIPPED_LSL_CONFIG and os.environ["LSLAPICFG"] == str(SHIPPED_LSL_CONFIG)
    monkeypatch.setenv("LSLAPICFG", "/etc/lsl_api/lab.cfg")  # a lab's own file for real devices is kept
    assert configure_lsl() == Path("/etc/lsl_api/lab.cfg")


OUTLET = """
import sys, time
import pylsl
outlet = pylsl.StreamOutlet(pylsl.StreamInfo(sys.argv[1], "EEG", 1, 100, "float32", sys.argv[1]))
print("ready", flush=True)
while True:
    outlet.push_sample([1.0])
    time.sleep(0.01)
"""
RESOLVE = "import sys, pylsl; print(len(pylsl.resolve_byprop('name', sys.argv[1], timeout=3.0)))"


def _outlet(config: Path, name: str) -> subprocess.Popen:
    process = subprocess.Popen(
        [sys.executable, "-c", OUTLET, name],
        env={**os.environ, "LSLAPICFG": str(config)},
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout.readline().strip() == "ready"
    return process


def _found(config: Path, name: str) -> bool:
    run = subprocess.run(
        [sys.executable, "-c", RESOLVE, name],
        env={**os.environ, "LSLAPICFG": str(config)},
        capture_output=True,
        text=True,
        timeout=30,
    )
    return run.stdout.strip() == "1"


def test_outlets_answer_discovery_from_this_machine_only(tmp_path: Path) -> None:
    """The way an LSL client elsewhere looks for streams (broadcast and multicast to port 16571, here sent from
    this machine through its own network interface, not loopback) finds outlets without ``ListenAddress``
    and does not find outlets under the shipped configuration; this machine's resolver still finds them."""
    lan = tmp_path / "lan.cfg"
    lan.write_text("[multicast]\nResolveScope = link\nMachineAddresses = {}\n[log]\nlevel = -2\n")
    unbound = tmp_path / "unbound.cfg"
    unbound.write_text(SHIPPED_LSL_CONFIG.read_text().replace("ListenAddress = 127.0.0.1\n", ""))
    name = f"probe-{uuid.uuid4().hex[:8]}"
    control = _outlet(unbound, name)
    try:
        reachable = _found(lan, name)
    finally:
        control.kill()
        control.wait()
    if not reachable:
        pytest.skip("no broadcast or multicast path on this machine's network: nothing to compare with")
    name = f"probe-{uuid.uuid4().hex[:8]}"
    shipped = _outlet(SHIPPED_LSL_CONFIG, name)
    try:
        assert _found(SHIPPED_LSL_CONFIG, name)  # the bridge on this machine still finds it
        assert not _found(lan, name)
    finally:
        shipped.kill()
        shipped.wait()


def _parts_of(data_dir: Path) -> dict[int, dict[str, str]]:
    """pid -> environment of every process whose environment names ``data_dir`` (the parts of ``up``)."""
    parts = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            raw = (entry / "environ").read_bytes()
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if f"SLEEPLM_DATA_DIR={data_dir}".encode() in raw:
            env = dict(item.decode(errors="replace").partition("=")[::2] for item in raw.split(b"\0") if b"=" in item)
            env["_part"] = cmdline[3].decode() if len(cmdline) > 3 else "?"
            parts[int(entry.name)] = env
    return parts


def _listeners(pids: set[int]) -> dict[int, list[tuple[str, int]]]:
    """pid -> (address, port) of its listening TCP sockets, from /proc/net/tcp{,6}."""
    by_inode: dict[str, tuple[str, int]] = {}
    for table, family in (("/proc/net/tcp", socket.AF_INET), ("/proc/net/tcp6", socket.AF_INET6)):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] != "0A":  # LISTEN
                continue
            hex_address, hex_port = fields[1].split(":")
            packed = bytes.fromhex(hex_address)
            packed = b"".join(packed[i : i + 4][::-1] for i in range(0, len(packed), 4))  # per 32-bit word, host order
            by_inode[fields[9]] = (socket.inet_ntop(family, packed), int(hex_port, 16))
    found: dict[int, list[tuple[str, int]]] = {}
    for pid in pids:
        try:
            links = [os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")]
        except OSError:
            continue
        for link in links:
            if link.startswith("socket:["):
                inode = link[8:-1]
                if inode in by_inode:
                    found.setdefault(pid, []).append(by_inode[inode])
    return found


def _loopback(address: str) -> bool:
    return address.startswith("127.") or address == "::1"


def test_up_keeps_logs_files_and_listeners_private(tmp_path: Path) -> None:
    data_dir = (tmp_path / "data").resolve()
    env = {
        **os.environ,
        "SLEEPLM_APP_ID": f"sec-{tmp_path.name[-10:]}",
        "SLEEPLM_SEARCH_PRELOAD": "false",
        "SLEEPLM_RUNTIME": "rules",
    }  # the logs, files and sockets under test do not depend on the model
    env.pop("SLEEPLM_KAFKA", None)
    env.pop("LSLAPICFG", None)  # as a user's shell has it: `up` itself must point its parts at the shipped file
    with up_serving(data_dir, env, 1, hours=0.5) as up:
        api, auth = up.api, up.auth
        bed = up.beds[0]["bed_id"]
        with httpx.Client(base_url=api, headers=auth, timeout=10) as client:
            found = client.get(f"/api/beds/{bed}/query", params={"q": SECRET_QUERY})
            assert found.status_code == 200 and found.json()["query"] == SECRET_QUERY
            assert client.get(f"/api/beds/{bed}/epochs", params={"since": 0}).status_code == 200
        assert httpx.get(f"{api}/api/me", params={"token": SECRET_TOKEN}, timeout=5).status_code == 401

        parts = _parts_of(data_dir)
        names = {env["_part"] for env in parts.values()}
        assert {"api", "worker", "bridge", "beds"} <= names, names
        for pid, part_env in parts.items():  # every part, the beds and the bridge included, runs LSL machine-only
            assert part_env.get("LSLAPICFG"), (pid, part_env["_part"])
            _assert_machine_only(Path(part_env["LSLAPICFG"]))
        listening = _listeners(set(parts))
        api_pid = next(pid for pid, part_env in parts.items() if part_env["_part"] == "api")
        assert listening[api_pid] == [("127.0.0.1", up.port)], listening[api_pid]
        for pid, sockets in listening.items():
            off_loopback = [s for s in sockets if not _loopback(s[0])]
            # liblsl binds its outlets' data sockets to every address whatever its configuration (README)
            assert not off_loopback or parts[pid]["_part"] == "beds", (parts[pid]["_part"], off_loopback)

        assert (data_dir.stat().st_mode & 0o777) == 0o700
        for path in data_dir.rglob("*"):
            if not path.is_symlink():
                assert path.stat().st_mode & 0o077 == 0, (path, oct(path.stat().st_mode & 0o777))
        assert (data_dir / "sleeplm.db").is_file() and (data_dir / "sleeplm.db-wal").is_file()
    out = up.output
    assert up.launcher.returncode == 0, out
    token = auth["Authorization"].split()[-1]
    logs = {path: path.read_text(errors="replace") for path in (data_dir / "logs").glob("*.log")}
    logs[Path("<sleeplm up output>")] = out
    for path, text in logs.items():
        for secret in ("zebra", "secret patient", "Qu3ryT0ken", token):
            assert secret not in text, f"{secret!r} in {path}"
    api_log = logs[data_dir / "logs" / "api.log"]
    assert bed not in api_log, api_log
    assert "GET /api/beds/{bed_id}/query 200" in api_log and "sleeplm-up-admin" in api_log, api_log
    assert "GET /api/me 401" in api_log
