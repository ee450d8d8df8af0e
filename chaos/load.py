"""A steady, bounded load of issue, redeem and cancel through the API; expiry does the rest.

Every answer is recorded: the tokens issued with a 201 (what the books must account
for), the redeems and cancels answered 200, and per second the requests that succeeded
and those that failed (5xx or no answer: 4xx answers are the contract's refusals and
count as served). Threads of blocking HTTP clients, each with its own keep-alive
connection: the rate is set by a pacing schedule, not by how fast the API answers.
"""

from __future__ import annotations

import http.client
import json
import random
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field

from shared import jwt_tokens

POINTS = 10
CREDIT = 10_000_000  # per user: never the reason for a refusal


@dataclass
class Outcomes:
    lock: threading.Lock = field(default_factory=threading.Lock)
    issued: dict[str, str] = field(default_factory=dict)  # token id -> user
    expires_at: dict[str, str] = field(default_factory=dict)  # token id -> RFC 3339
    redeemed: set[str] = field(default_factory=set)  # answered 200
    cancelled: set[str] = field(default_factory=set)  # answered 200
    served: dict[int, int] = field(default_factory=lambda: defaultdict(int))  # second -> n
    failed: dict[int, int] = field(default_factory=lambda: defaultdict(int))
    statuses: dict[int, int] = field(default_factory=lambda: defaultdict(int))

    def count(self, ok: bool, status: int) -> None:
        second = int(time.time())
        with self.lock:
            (self.served if ok else self.failed)[second] += 1
            self.statuses[status] += 1

    def error_rate(self, start: float, end: float) -> tuple[int, int]:
        """(failed, total) requests in [start, end)."""
        with self.lock:
            seconds = range(int(start), int(end))
            failed = sum(self.failed.get(s, 0) for s in seconds)
            return failed, failed + sum(self.served.get(s, 0) for s in seconds)


class Client:
    def __init__(self, port: int) -> None:
        self.port = port
        self.conn: http.client.HTTPConnection | None = None

    def call(self, method: str, path: str, bearer: str, body: object | None = None
             ) -> tuple[int, dict]:
        """(status, json) or (0, {}) when nothing came back."""
        try:
            if self.conn is None:
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
            headers = {"Authorization": f"Bearer {bearer}", "Content-Type": "application/json"}
            self.conn.request(method, path, None if body is None else json.dumps(body), headers)
            answer = self.conn.getresponse()
            data = answer.read()
            return answer.status, json.loads(data) if data else {}
        except (OSError, http.client.HTTPException, ValueError):
            if self.conn is not None:
                self.conn.close()
            self.conn = None
            return 0, {}


class Load:
    """``rate`` issues a second spread over ``threads``; a share of them redeemed or
    cancelled a little later, the rest left to expire."""

    def __init__(self, port: int, secret: str, rate: float, users: int = 50, threads: int = 8,
                 redeem_share: float = 0.3, cancel_share: float = 0.2) -> None:
        self.port, self.rate, self.threads = port, rate, threads
        self.redeem_share, self.cancel_share = redeem_share, cancel_share
        self.users = [f"chaos-user-{i}" for i in range(users)]
        self.user_jwt = {u: jwt_tokens.encode(secret, u, ["user"], 86400) for u in self.users}
        self.merchant_jwt = jwt_tokens.encode(secret, "chaos-merchant", ["merchant"], 86400)
        self.admin_jwt = jwt_tokens.encode(secret, "chaos-admin", ["admin"], 86400)
        self.outcomes = Outcomes()
        self.stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def credit_everyone(self) -> None:
        client = Client(self.port)
        for user in self.users:
            for _ in range(20):
                status, _ = client.call("POST", f"/api/accounts/{user}/credits", self.admin_jwt,
                                        {"points": CREDIT, "reason": "chaos"})
                if status == 201:
                    break
                time.sleep(0.5)
            else:
                raise RuntimeError(f"could not credit {user}")

    def start(self) -> None:
        for i in range(self.threads):
            thread = threading.Thread(target=self._run, args=(i,), name=f"load-{i}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def finish(self) -> None:
        self.stop.set()
        for thread in self._threads:
            thread.join(30)

    def _run(self, index: int) -> None:
        client = Client(self.port)
        rng = random.Random(index)  # noqa: S311 - load shape only
        interval = self.threads / self.rate
        later: list[tuple[float, str, str, str]] = []  # (due, action, token id, code/user)
        next_issue = time.monotonic() + rng.uniform(0, interval)
        while not self.stop.is_set():
            now = time.monotonic()
            if later and later[0][0] <= now:
                _, action, token_id, extra = later.pop(0)
                self._follow_up(client, action, token_id, extra)
                continue
            if now >= next_issue:
                next_issue += interval
                if next_issue < now - 5:  # fell far behind (an outage): do not burst
                    next_issue = now
                follow = self._issue(client, rng)
                if follow:
                    later.append((now + rng.uniform(0.2, 1.5), *follow))
                    later.sort()
                continue
            wait = next_issue - now
            if later:
                wait = min(wait, later[0][0] - now)
            self.stop.wait(max(0.0, wait))

    def _issue(self, client: Client, rng: random.Random) -> tuple[str, str, str] | None:
        user = rng.choice(self.users)
        status, body = client.call("POST", "/api/exchange-tokens/", self.user_jwt[user],
                                   {"points": POINTS, "reward": "chaos"})
        self.outcomes.count(status in (201, 409), status)
        if status != 201:
            return None
        token = body["token"]
        with self.outcomes.lock:
            self.outcomes.issued[token["id"]] = user
            self.outcomes.expires_at[token["id"]] = token["expires_at"]
        roll = rng.random()
        if roll < self.redeem_share:
            return ("redeem", token["id"], token["code"])
        if roll < self.redeem_share + self.cancel_share:
            return ("cancel", token["id"], user)
        return None

    def _follow_up(self, client: Client, action: str, token_id: str, extra: str) -> None:
        if action == "redeem":
            status, _ = client.call("POST", "/api/exchange-tokens/redeem/", self.merchant_jwt,
                                    {"code": extra})
            target = self.outcomes.redeemed
        else:
            status, _ = client.call("DELETE", f"/api/exchange-tokens/{token_id}",
                                    self.user_jwt[extra])
            target = self.outcomes.cancelled
        # 404/409/410: the token went another way first (a race the contract answers).
        self.outcomes.count(status in (200, 404, 409, 410), status)
        if status == 200:
            with self.outcomes.lock:
                target.add(token_id)
