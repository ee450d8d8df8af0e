"""A bounded HTTP load generator in pure Python: keep-alive connections, one thread each.

It speaks just enough HTTP/1.1 (pre-encoded requests, Content-Length bodies) to stay cheap
on the client side: the client shares the machine's cores with the server and PostgreSQL.

Three modes:
- closed loop: each connection sends its next request as soon as the answer arrives, for a
  fixed duration: the peak rate;
- one pass: the same, until each connection has sent each of its requests once;
- open loop: requests are sent on a fixed schedule (a rate), and latency is counted from
  the time a request was *due*, not sent, so a stalled server cannot hide its queueing
  (no coordinated omission).
"""

from __future__ import annotations

import socket
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class LoadResult:
    duration_s: float
    latencies_s: list[float] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    errors: int = 0
    # Per connection, how far into its requests it got: the next run's ``begin_at``, so a
    # phase split in parts goes on through the users instead of starting over.
    positions: list[int] = field(default_factory=list)

    @property
    def ok(self) -> int:
        return sum(n for s, n in self.statuses.items() if 200 <= s < 300)

    @property
    def rate(self) -> float:
        return self.ok / self.duration_s if self.duration_s else 0.0

    @classmethod
    def merged(cls, parts: list[LoadResult]) -> LoadResult:
        """Several measured phases as one: their answers over their summed durations."""
        total = cls(sum(p.duration_s for p in parts))
        for p in parts:
            total.latencies_s.extend(p.latencies_s)
            total.statuses.update(p.statuses)
            total.errors += p.errors
        total.positions = list(parts[-1].positions) if parts else []
        return total


def build_request(method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None,
                  host: str = "127.0.0.1") -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}", "Connection: keep-alive"]
    for k, v in (headers or {}).items():
        lines.append(f"{k}: {v}")
    if body or method in ("POST", "PUT", "PATCH"):
        lines += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


class _Conn:
    def __init__(self, port: int) -> None:
        self.port = port
        self.sock: socket.socket | None = None
        self.buf = b""

    def _open(self) -> socket.socket:
        s = socket.create_connection(("127.0.0.1", self.port), timeout=30)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""
        return s

    def roundtrip(self, request: bytes) -> int:
        """Send one request, read the whole answer; returns its status code."""
        if self.sock is None:
            self.sock = self._open()
        try:
            self.sock.sendall(request)
            return self._read_response()
        except OSError:
            self.close()
            raise

    def _read_response(self) -> int:
        assert self.sock is not None
        while b"\r\n\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("server closed the connection")
            self.buf += chunk
        head, _, rest = self.buf.partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        status = int(lines[0].split(b" ", 2)[1])
        length = 0
        close = False
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value.strip())
            elif name == b"connection" and value.strip().lower() == b"close":
                close = True
        while len(rest) < length:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("server closed the connection mid-body")
            rest += chunk
        self.buf = rest[length:]
        if close:
            self.close()
        return status

    def close(self) -> None:
        if self.sock is not None:
            try:
                self.sock.close()
            finally:
                self.sock = None


# Connection index -> the requests it sends, in turn (one per user, say).
RequestFor = Callable[[int], list[bytes]]


def _run(port: int, connections: int, request_for: RequestFor, duration_s: float,
         warmup_s: float, interval_s: float | None, begin_at: list[int] | None,
         once: bool = False) -> LoadResult:
    start = time.monotonic() + 0.2
    measure_from = start + warmup_s
    stop_at = measure_from + duration_s
    results = [LoadResult(duration_s, positions=[begin_at[i] if begin_at else 0])
               for i in range(connections)]
    finished = [start] * connections

    def worker(i: int) -> None:
        conn = _Conn(port)
        requests = request_for(i)
        sent = begin_at[i] if begin_at else 0
        res = results[i]
        # Open loop: stagger the connections' schedules across one interval.
        due = start + (interval_s * i / connections if interval_s else 0.0)
        while True:
            now = time.monotonic()
            if interval_s is not None:
                if due > now:
                    time.sleep(due - now)
                t0 = due  # latency from when the request was due
                due += interval_s
            else:
                t0 = now
            if t0 >= stop_at or (once and sent - res.positions[0] >= len(requests)):
                break
            try:
                status = conn.roundtrip(requests[sent % len(requests)])
                sent += 1
            except (OSError, ValueError, IndexError):
                if t0 >= measure_from:
                    res.errors += 1
                time.sleep(0.01)
                continue
            if t0 >= measure_from:
                res.latencies_s.append(time.monotonic() - t0)
                res.statuses[status] += 1
        conn.close()
        finished[i] = time.monotonic()
        res.positions[0] = sent

    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(connections)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=duration_s + warmup_s + 60)
    # One pass: the rate is over the time until the last connection was through.
    total = LoadResult(max(finished) - measure_from if once else duration_s)
    for r in results:
        total.latencies_s.extend(r.latencies_s)
        total.statuses.update(r.statuses)
        total.errors += r.errors
        total.positions.extend(r.positions)
    return total


def wait_ready(port: int, path: str = "/healthz", timeout: float = 30.0) -> None:
    """Until ``GET path`` answers 200 (gunicorn binds before its workers have booted)."""
    deadline = time.monotonic() + timeout
    request = build_request("GET", path)
    while time.monotonic() < deadline:
        conn = _Conn(port)
        try:
            if conn.roundtrip(request) == 200:
                return
        except (OSError, ValueError, IndexError):
            pass
        finally:
            conn.close()
        time.sleep(0.1)
    raise TimeoutError(f"GET {path} on port {port} did not answer 200 within {timeout} s")


def closed_loop(port: int, connections: int, request_for: RequestFor, duration_s: float,
                warmup_s: float = 1.0, begin_at: list[int] | None = None) -> LoadResult:
    """As fast as the server answers, ``connections`` requests in flight. ``begin_at``:
    where each connection begins in its requests (a previous result's ``positions``)."""
    return _run(port, connections, request_for, duration_s, warmup_s, None, begin_at)


def one_pass(port: int, connections: int, request_for: RequestFor,
             limit_s: float = 120.0) -> LoadResult:
    """As :func:`closed_loop`, until each connection has sent each of its requests once
    (or ``limit_s`` passed)."""
    return _run(port, connections, request_for, limit_s, 0.0, None, None, once=True)


def open_loop(port: int, connections: int, request_for: RequestFor, rate: float,
              duration_s: float, warmup_s: float = 1.0,
              begin_at: list[int] | None = None) -> LoadResult:
    """``rate`` requests a second on a fixed schedule, spread over ``connections``."""
    return _run(port, connections, request_for, duration_s, warmup_s, connections / rate,
                begin_at)
