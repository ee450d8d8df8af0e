"""``exchange-tokens api`` as a real process: gunicorn workers serve the app, metrics are
summed across workers, logs are JSON lines, and SIGTERM stops it cleanly."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests

from shared import jwt_tokens
from tests.conftest import TEST_JWT_SECRET
from tests.support.service_env import service_env

CLI = Path(sys.executable).with_name("exchange-tokens")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def server(settings, tmp_path):
    port = free_port()
    env = service_env(
        settings, inherit=True, APP_ENV="production", PORT=str(port), WEB_CONCURRENCY="2",
        WEB_THREADS="2",
        TMPDIR=str(tmp_path),  # where the command makes its metrics directory
    )
    stderr = (tmp_path / "stderr.log").open("w+")
    proc = subprocess.Popen([str(CLI), "api"], env=env, stdout=subprocess.DEVNULL,
                            stderr=stderr)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if requests.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except (requests.ConnectionError, requests.Timeout):
                # Refused before the sockets listen; a read timeout while a worker that
                # already listens (SO_REUSEPORT) still builds its app on a busy machine.
                pass
            assert proc.poll() is None, Path(stderr.name).read_text()
            assert time.monotonic() < deadline, "the API did not come up within 30 s"
            time.sleep(0.2)
        yield proc, base, Path(stderr.name), tmp_path
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
        stderr.close()


def bearer(sub: str, role: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {jwt_tokens.encode(TEST_JWT_SECRET, sub, [role])}"}


def test_the_api_command_serves_counts_across_workers_and_stops_on_sigterm(server, user):
    proc, base, stderr, tmp = server
    [metrics_dir] = tmp.glob("exchange-tokens-metrics-*")
    assert any(metrics_dir.glob("*.db"))  # the workers write their samples there
    # Given points, when a token is issued through gunicorn, then it is answered as usual.
    r = requests.post(f"{base}/api/accounts/{user}/credits", json={"points": 10},
                      headers=bearer("ops", "admin"), timeout=5)
    assert r.status_code == 201
    r = requests.post(f"{base}/api/exchange-tokens/", json={"points": 4},
                      headers=bearer(user, "user"), timeout=5)
    assert r.status_code == 201, r.text
    assert r.headers["X-Request-ID"]
    for _ in range(20):  # spread over both workers
        assert requests.get(f"{base}/healthz", timeout=5).status_code == 200
    # /metrics sums every worker's samples (multiprocess mode), whichever worker answers.
    text = requests.get(f"{base}/metrics", timeout=5).text
    assert re.search(r"^exchange_tokens_tokens_issued_total 1\.0$", text, re.M), text[:2000]
    health = re.search(
        r'^exchange_tokens_http_requests_total\{method="GET",route="/healthz",status="200"\} (\S+)$', text, re.M)
    assert health and float(health.group(1)) >= 21  # 20 + at least one readiness poll

    # When SIGTERM arrives, then gunicorn stops gracefully within 10 s.
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=10) == 0
    assert not metrics_dir.exists()  # removed on exit: the next start begins from zero

    lines = [line for line in stderr.read_text().splitlines() if line.strip()]
    records = [json.loads(line) for line in lines]  # every line is one JSON object
    access = [r for r in records if r.get("event") == "request"
              and r.get("path") == "/api/exchange-tokens/"]
    assert access and access[0]["status"] == 201 and access[0]["user_id"] == user
    assert {"ts", "level", "event", "request_id", "duration_ms", "method"} <= set(access[0])
    assert any(r.get("event") == "token created" and r.get("request_id") for r in records)


def _post_chunked(base: str, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, dict]:
    """POST ``body`` with Transfer-Encoding: chunked (no Content-Length) over a raw socket;
    the status and the JSON body of the answer."""
    host, port = base.rsplit("/", 1)[1].split(":")
    head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    request = (f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
               f"Transfer-Encoding: chunked\r\n{head}\r\n").encode()
    step = 16 * 1024
    for i in range(0, len(body), step):
        chunk = body[i:i + step]
        request += b"%x\r\n%s\r\n" % (len(chunk), chunk)
    request += b"0\r\n\r\n"
    with socket.create_connection((host, int(port)), timeout=10) as s:
        # Sent from a thread: the answer may come before the server has read it all.
        sender = threading.Thread(target=s.sendall, args=(request,), daemon=True)
        sender.start()
        answer = b""
        while b"\r\n\r\n" not in answer:
            data = s.recv(65536)
            assert data, answer
            answer += data
        status_line, _, rest = answer.partition(b"\r\n")
        raw_headers, _, payload = rest.partition(b"\r\n\r\n")
        length = next(int(line.split(b":", 1)[1]) for line in raw_headers.split(b"\r\n")
                      if line.lower().startswith(b"content-length:"))
        while len(payload) < length:
            data = s.recv(65536)
            assert data, payload
            payload += data
        sender.join(timeout=10)
    return int(status_line.split()[1]), json.loads(payload)


@pytest.mark.parametrize("body", [b'{"points": 2}' + b" " * 100_000, b"{" + b" " * (1024 * 1024)],
                         ids=["valid-prefix", "1MiB"])
def test_a_chunked_body_over_64_kib_is_413_through_gunicorn(server, user, body):
    # werkzeug cuts a body without Content-Length at 64 KiB: the first answered 201 and
    # issued a token, the second 400.
    _, base, _, _ = server
    r = requests.post(f"{base}/api/accounts/{user}/credits", json={"points": 10},
                      headers=bearer("ops", "admin"), timeout=5)
    assert r.status_code == 201
    status, answer = _post_chunked(base, "/api/exchange-tokens/", body, bearer(user, "user"))
    assert status == 413, answer
    assert answer["error"]["code"] == "payload_too_large"
    r = requests.get(f"{base}/api/exchange-tokens/status/", headers=bearer(user, "user"),
                     timeout=5)
    assert r.json()["balance"] == 10 and r.json()["active"] == []
    # A chunked body of exactly 64 KiB is served as usual (the check for a byte more
    # meets the end of gunicorn's stream, it does not wait).
    exact = b'{"points": 2}'.ljust(64 * 1024)
    status, answer = _post_chunked(base, "/api/exchange-tokens/", exact, bearer(user, "user"))
    assert status == 201 and answer["balance"] == 8, answer


def _children(pid: int) -> list[int]:
    kids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            kids.append(int(stat.parent.name))
    return kids


def _connections_per_worker(master: int, port: int) -> dict[int, int]:
    """Established connections to ``port`` held by each gunicorn worker (Linux /proc)."""
    inodes = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[3] == "01" and int(fields[1].split(":")[1], 16) == port:  # ESTABLISHED
            inodes.add(fields[9])
    counts = {}
    for pid in _children(master):
        held = 0
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            try:
                target = os.readlink(fd)
            except OSError:
                continue
            held += target.startswith("socket:[") and target[8:-1] in inodes
        counts[pid] = held
    return counts


def test_keep_alive_clients_are_spread_over_every_worker(server):
    # With one shared listening socket, the worker that woke first accepted every new
    # connection: 16 keep-alive clients on one worker, held to one core by its GIL. Each
    # worker has its own socket (SO_REUSEPORT) and the kernel spreads them.
    proc, base, _, _ = server
    port = int(base.rsplit(":", 1)[1])
    clients = []
    try:
        for _ in range(16):
            s = socket.create_connection(("127.0.0.1", port), timeout=5)
            clients.append(s)
        for s in clients:  # one request each, so every connection has been accepted
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: keep-alive\r\n\r\n")
        for s in clients:
            assert s.recv(4096).startswith(b"HTTP/1.1 200")
        per_worker = _connections_per_worker(proc.pid, port)
        assert len(per_worker) == 2
        assert sum(per_worker.values()) == 16
        assert all(n >= 1 for n in per_worker.values()), per_worker
    finally:
        for s in clients:
            s.close()


def test_a_worker_hides_its_long_lived_objects_from_the_collector(settings):
    """What the app is built of lives as long as the worker: frozen, so a full
    collection walks only what requests made since (a 30-90 ms pause otherwise)."""
    import gc

    from api.server import ApiServer

    gc.unfreeze()
    try:
        app = ApiServer(settings).load()
        assert app.name == "exchange_tokens"
        assert gc.get_freeze_count() > 10_000
    finally:
        gc.unfreeze()
