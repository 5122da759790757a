"""What a lab's IT finds in the first hour, closed (issue 14): logs without patient data, live feeds that end
on revocation and are capped, 422 (with the security headers) for every invalid body, plausible alert
limits, slow request headers cut off, an owner-only data dir. Every test talks to a real uvicorn on a free
127.0.0.1 port; ``sleeplm api`` runs as the real command in its own process."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from dashboards.api import ApiServer, create_app
from dashboards.api.middleware import SECURITY_HEADERS
from plumbing.broker import free_port
from plumbing.settings import Settings
from store import Store
from tests.api.conftest import RunningApi, make_record

ROOT = Path(__file__).resolve().parents[2]
BED, RECORDING = "Smith-J-bed-7", "MRN-123456"
SECRET_QUERY = "zebra-secret patient words"


def _has_security_headers(response: httpx.Response) -> bool:
    return all(response.headers.get(name.decode()) == value.decode() for name, value in SECURITY_HEADERS)


# --- logs -----------------------------------------------------------------------------------------------------


def _start_sleeplm_api(data_dir: Path, port: int, log_file: Path) -> subprocess.Popen:
    """``sleeplm api`` as ``sleeplm up`` runs it: settings from the environment, stdout+stderr to a log file."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLEEPLM_")}
    env.update(
        {
            "SLEEPLM_DATA_DIR": str(data_dir),
            "SLEEPLM_API_PORT": str(port),
            "SLEEPLM_SEARCH_PRELOAD": "false",
            "PYTHONUNBUFFERED": "1",
        }
    )
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with open(log_file, "ab") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "sleeplm", "api"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=1.0).status_code == 200:
                return process
        except httpx.TransportError:
            pass
        assert process.poll() is None and time.monotonic() < deadline, log_file.read_text()
        time.sleep(0.1)


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def test_sleeplm_api_logs_hold_no_path_query_bed_id_or_token(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    with Store(f"sqlite:///{data_dir / 'sleeplm.db'}") as store:
        store.insert_epochs([make_record(e, bed=BED, recording=RECORDING) for e in range(3)])
        viewer = store.create_token("ward-3-display", "viewer")[0]
    port = free_port()
    log_file = data_dir / "logs" / "api.log"
    process = _start_sleeplm_api(data_dir, port, log_file)
    url = f"http://127.0.0.1:{port}"
    wrong_token = "slm_" + "S3cr3tT0ken" * 4
    try:
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {viewer}"}, timeout=10) as client:
            found = client.get(f"/api/beds/{BED}/query", params={"q": SECRET_QUERY, "recording": RECORDING})
            assert found.status_code == 200 and found.json()["query"] == SECRET_QUERY
            assert client.get(f"/api/beds/{BED}/epochs", params={"recording": RECORDING}).status_code == 200
            assert client.get(f"/api/beds/{BED}/query", params={"q": SECRET_QUERY, "top": "x"}).status_code == 422
            assert client.get(f"/api/{BED}/{SECRET_QUERY}").status_code == 404
        assert httpx.get(f"{url}/api/me", params={"token": wrong_token}).status_code == 401  # no token in a URL
        assert httpx.get(f"{url}/api/me", params={"token": viewer}).status_code == 401
        bad = httpx.get(f"{url}/api/me", headers={"Authorization": f"Bearer {wrong_token}"})
        assert bad.status_code == 401
    finally:
        _stop(process)
    assert process.returncode == 0
    logs = {
        path: path.read_text(errors="replace")
        for path in data_dir.rglob("*")
        if path.is_file() and path.suffix in (".log", ".txt", "")
    }
    written = log_file.read_text()
    assert "GET /api/beds/{bed_id}/query 200" in written and "ward-3-display" in written, written
    assert "GET /api/beds/{bed_id}/epochs 200" in written
    assert "GET /api/me 401" in written  # the refused ?token= call is logged, without its query
    for path, text in logs.items():
        for secret in (BED, RECORDING, "zebra", "secret patient", "S3cr3tT0ken", viewer, "MRN", "Smith"):
            assert secret not in text, f"{secret!r} in {path}:\n{text}"
    assert "\x1b[" not in written  # no terminal colour codes in a log file


def test_an_unhandled_error_is_a_500_with_the_security_headers_and_no_data_in_the_log(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    settings = Settings(_env_file=None, data_dir=tmp_path, kafka=None, api_port=free_port(), search_preload=False)
    app = create_app(settings)

    @app.get("/api/crash/{bed_id}")
    def crash(bed_id: str) -> dict:  # a route failing the way a driver error does: identifiers in the message
        raise RuntimeError(f"INSERT failed [parameters: ({bed_id!r}, {SECRET_QUERY!r})]")

    server = ApiServer(app, "127.0.0.1", settings.api_port, log_level="warning")
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 15
        while not server.started:
            assert thread.is_alive() and time.monotonic() < deadline
            time.sleep(0.02)
        response = httpx.get(f"http://127.0.0.1:{settings.api_port}/api/crash/{BED}", params={"q": SECRET_QUERY})
    finally:
        server.stop()
        thread.join(10)
    assert response.status_code == 500 and _has_security_headers(response)
    assert response.headers["cache-control"] == "no-store"
    assert response.json()["detail"].startswith("internal error")
    _, err = capfd.readouterr()
    assert "unhandled RuntimeError in GET /api/crash/{bed_id}" in err, err
    assert "GET /api/crash/{bed_id} 500" in err
    assert BED not in err and "zebra" not in err and "INSERT failed" not in err, err


# --- request bodies -------------------------------------------------------------------------------------------

INVALID = [
    ("PUT", "/api/beds/bed-1/thresholds", '{"spo2_low": NaN}'),
    ("PUT", "/api/beds/bed-1/thresholds", '{"spo2_low": Infinity}'),
    ("PUT", "/api/beds/bed-1/thresholds", '{"spo2_low": -Infinity}'),
    ("PUT", "/api/beds/bed-1/thresholds", '{"spo2_low": 1e400}'),
    ("PUT", "/api/beds/bed-1/thresholds", '{"spo2_low": 1e308}'),
    ("PUT", "/api/beds/bed-1/thresholds", '{"spo2_low": "low"}'),
    ("PUT", "/api/beds/bed-1/thresholds", '{"brady_onset_s": NaN}'),
    ("PUT", "/api/beds/bed-1/thresholds", "[1, 2]"),
    ("PUT", "/api/beds/bed-1/thresholds", "null"),
    ("PUT", "/api/beds/bed-1/thresholds", '{"spo2_low": 86,'),
    ("POST", "/api/rules", '{"text": "apnea", "min_duration_s": NaN}'),
    ("POST", "/api/rules", '{"text": "apnea", "min_duration_s": 1e400}'),
    ("POST", "/api/rules", '{"text": "apnea", "threshold": Infinity}'),
    ("POST", "/api/rules", '{"text": null}'),
    ("POST", "/api/rules", '{"text": ["apnea"]}'),
    ("POST", "/api/rules", '{"text": "apnea", "enabled": "sometimes"}'),
    ("PATCH", "/api/rules/{rule}", '{"text": null}'),
    ("PATCH", "/api/rules/{rule}", '{"min_duration_s": null}'),
    ("PATCH", "/api/rules/{rule}", '{"enabled": null}'),
    ("PATCH", "/api/rules/{rule}", '{"threshold": NaN}'),
    ("PATCH", "/api/rules/{rule}", '{"min_duration_s": -Infinity}'),
    ("PATCH", "/api/rules/{rule}", '{"text": 7}'),
    ("PATCH", "/api/rules/{rule}", "null"),
    ("PATCH", "/api/rules/{rule}", '"enabled"'),
    ("POST", "/api/tokens", '{"name": NaN, "role": "viewer"}'),
    ("POST", "/api/tokens", '{"name": null, "role": "viewer"}'),
    ("POST", "/api/tokens", '{"name": "x", "role": 3}'),
]


def test_every_invalid_body_is_a_422_with_the_security_headers(api: RunningApi) -> None:
    with api.client("admin") as admin:
        rule = admin.post("/api/rules", json={"text": "central apneas"}).json()["id"]
        for method, path, body in INVALID:
            response = admin.request(
                method, path.format(rule=rule), content=body, headers={"Content-Type": "application/json"}
            )
            assert response.status_code == 422, (method, path, body, response.status_code, response.text)
            assert _has_security_headers(response), (method, path, body, response.headers)
            detail = json.loads(response.text)["detail"]  # valid JSON (no bare NaN) that says what is wrong
            assert detail, (method, path, body)
        assert admin.get(f"/api/rules/{rule}").json()["text"] == "central apneas"  # nothing was changed


@pytest.mark.parametrize(
    ("values", "ok"),
    [
        ({"spo2_critical": 50, "spo2_low": 100}, True),
        ({"spo2_critical": 49.9}, False),
        ({"spo2_low": 100.1}, False),
        ({"spo2_low": 1}, False),
        ({"brady_bpm": 20, "tachy_bpm": 250}, True),
        ({"brady_bpm": 19}, False),
        ({"tachy_bpm": 251}, False),
        ({"tachy_bpm": 1e308}, False),
        ({"spo2_low_onset_s": 0.5}, False),
        ({"brady_onset_s": 7200}, False),
    ],
)
def test_thresholds_must_be_plausible(api: RunningApi, values: dict, ok: bool) -> None:
    with api.client("admin") as admin:
        response = admin.put("/api/beds/bed-1/thresholds", json=values)
        assert response.status_code == (200 if ok else 422), response.text
        assert _has_security_headers(response)
        if not ok:
            assert response.json()["detail"][0]["loc"][:2] == ["body", next(iter(values))]


# --- live feeds -----------------------------------------------------------------------------------------------


def _open_feed(url: str, token: str) -> tuple[httpx.Client, httpx.Response]:
    client = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=30)
    response = client.send(client.build_request("GET", "/api/stream"), stream=True)
    return client, response


def _ends_within(response: httpx.Response, seconds: float) -> float:
    """Read the feed until the server ends it; how long that took (fails after ``seconds``)."""
    started = time.monotonic()
    done = threading.Event()
    lines: list[str] = []

    def read() -> None:
        try:
            for line in response.iter_lines():
                lines.append(line)
        except httpx.HTTPError:
            pass
        done.set()

    threading.Thread(target=read, daemon=True).start()
    assert done.wait(seconds), f"feed still open {seconds} s later"
    assert any("token revoked" in line for line in lines), lines
    return time.monotonic() - started


@pytest.mark.parametrize("revoked_by", ["api", "cli"])
def test_a_revoked_tokens_live_feed_ends_within_5_s(api: RunningApi, store: Store, revoked_by: str) -> None:
    token, record = store.create_token("night-display", "viewer")
    client, feed = _open_feed(api.url, token)
    try:
        assert feed.status_code == 200
        time.sleep(3.0)  # past the token cache and one re-check: the feed is established
        revoked = time.monotonic()
        if revoked_by == "api":
            with api.client("admin") as admin:
                assert admin.delete(f"/api/tokens/{record['id']}").status_code == 200
        else:
            with Store(api.settings.database_url) as other:  # what `sleeplm token revoke` does, another process
                other.revoke_token(record["id"])
        assert _ends_within(feed, 5.0) < 5.0
        while client.get("/api/me").status_code != 401:  # plain requests: within the token cache's 5 s
            assert time.monotonic() - revoked < 5.5
            time.sleep(0.2)
    finally:
        feed.close()
        client.close()


def test_live_feeds_are_capped_per_token_and_in_all(serve) -> None:
    api = serve(feeds_per_token=2, feeds_total=3)
    opened: list[tuple[httpx.Client, httpx.Response]] = []
    try:
        for _ in range(2):
            opened.append(_open_feed(api.url, api.tokens["viewer"]))
            assert opened[-1][1].status_code == 200
        client, third = _open_feed(api.url, api.tokens["viewer"])
        third.read()
        assert third.status_code == 429 and "SLEEPLM_FEEDS_PER_TOKEN" in third.json()["detail"]
        assert _has_security_headers(third) and third.headers["retry-after"]
        client.close()
        opened.append(_open_feed(api.url, api.tokens["nurse"]))  # another token: within the total
        assert opened[-1][1].status_code == 200
        client, fourth = _open_feed(api.url, api.tokens["admin"])
        fourth.read()
        assert fourth.status_code == 429 and "SLEEPLM_FEEDS_TOTAL" in fourth.json()["detail"]
        client.close()
        with api.client("viewer") as viewer:
            assert viewer.get("/api/health").status_code == 200  # the rest of the API still answers
        first_client, first = opened.pop(0)  # closing a feed frees its slot
        first.close()
        first_client.close()
        deadline = time.monotonic() + 5
        while True:
            client, again = _open_feed(api.url, api.tokens["viewer"])
            if again.status_code == 200:
                opened.append((client, again))
                break
            again.read()
            client.close()
            assert time.monotonic() < deadline, again.text
            time.sleep(0.2)
    finally:
        for client, response in opened:
            response.close()
            client.close()


# --- slow headers ---------------------------------------------------------------------------------------------


def _closed_after(sock: socket.socket, limit_s: float, trickle: bytes = b"") -> float:
    """Seconds until the server closes ``sock`` (sending ``trickle`` a byte every 0.2 s meanwhile)."""
    started = time.monotonic()
    sock.settimeout(0.2)
    sent = 0
    while time.monotonic() - started < limit_s:
        try:
            if sock.recv(4096) == b"":
                return time.monotonic() - started
        except TimeoutError:
            pass
        except ConnectionResetError:
            return time.monotonic() - started
        if sent < len(trickle):
            try:
                sock.sendall(trickle[sent : sent + 1])
            except (BrokenPipeError, ConnectionResetError):
                return time.monotonic() - started
            sent += 1
    pytest.fail(f"connection still open after {limit_s} s")


@pytest.fixture
def slow_api(serve) -> RunningApi:
    return serve(api_header_timeout_s=1.0)


def test_partial_request_headers_are_cut_off(slow_api: RunningApi) -> None:
    port = slow_api.settings.api_port
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(b"GET /api/health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        assert 0.8 < _closed_after(sock, 4.0) < 2.5
    with socket.create_connection(("127.0.0.1", port)) as sock:  # connects and says nothing
        assert _closed_after(sock, 4.0) < 2.5
    with socket.create_connection(("127.0.0.1", port)) as sock:  # a header trickled a byte at a time
        trickle = b"GET /api/health HTTP/1.1\r\nHost: localhost\r\nX-Pad: " + b"a" * 40
        assert _closed_after(sock, 4.0, trickle=trickle) < 2.5


def test_a_keep_alive_connection_serves_requests_then_cuts_a_slow_next_one(slow_api: RunningApi) -> None:
    request = b"GET /api/health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    with socket.create_connection(("127.0.0.1", slow_api.settings.api_port)) as sock:
        sock.settimeout(5)
        for _ in range(2):  # headers sent at once: answered, on the same connection
            sock.sendall(request)
            answer = b""
            while b'"status"' not in answer:
                answer += sock.recv(4096)
            assert answer.startswith(b"HTTP/1.1 200")
        sock.sendall(request[:20])  # the next request stalls half-way
        assert _closed_after(sock, 4.0) < 2.5
    with httpx.Client(base_url=slow_api.url) as client:  # ordinary clients are unaffected
        assert client.get("/api/health").status_code == 200


# --- the data dir ---------------------------------------------------------------------------------------------


def _mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


def test_data_dir_is_owner_only_after_a_real_start(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    (data_dir / "logs").mkdir(parents=True)
    os.chmod(data_dir, 0o755)
    os.chmod(data_dir / "logs", 0o755)
    old_log = data_dir / "logs" / "api.log"
    old_log.write_text("an earlier run\n")
    os.chmod(old_log, 0o644)
    keep = tmp_path / "data" / "notes.txt"  # a user's own file in the folder is left as it is
    keep.write_text("mine")
    os.chmod(keep, 0o644)
    port = free_port()
    process = _start_sleeplm_api(data_dir, port, data_dir / "logs" / "api-2.log")
    try:
        with Store(f"sqlite:///{data_dir / 'sleeplm.db'}") as store:  # the API opened it first (WAL mode)
            store.create_token("t", "viewer")
        files = [data_dir / "sleeplm.db", data_dir / "sleeplm.db-wal", old_log]
        assert all(f.exists() for f in files), sorted(p.name for p in data_dir.iterdir())
        assert _mode(data_dir) == 0o700 and _mode(data_dir / "logs") == 0o700
        for f in files:
            assert _mode(f) == 0o600, (f, oct(_mode(f)))
        assert _mode(keep) == 0o644
    finally:
        _stop(process)
    token = subprocess.run(
        [
            sys.executable,
            "-m",
            "sleeplm",
            "token",
            "create",
            "--role",
            "viewer",
            "--name",
            "x",
            "--data-dir",
            str(tmp_path / "fresh"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={k: v for k, v in os.environ.items() if not k.startswith("SLEEPLM_")},
    )
    assert token.returncode == 0, token.stderr
    assert _mode(tmp_path / "fresh") == 0o700 and _mode(tmp_path / "fresh" / "sleeplm.db") == 0o600
