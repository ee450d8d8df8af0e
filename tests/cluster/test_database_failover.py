"""A PostgreSQL failover as the API sees it: a primary that turns read-only or dies, a
standby promoted. The API answers 503 during the switch, never 500, recovers by itself
on the new primary, and loses no commit it confirmed (synchronous replication)."""

from __future__ import annotations

import threading
import time
import uuid

import psycopg2
import pytest

from api.app import create_app
from shared import jwt_tokens
from shared.persistence import migrate
from shared.settings import normalise_database_url


@pytest.fixture
def failover_app(pg_pair, settings):
    url = pg_pair.url(f"exchange_tokens_failover_{uuid.uuid4().hex[:6]}")
    migrate.ensure_database(normalise_database_url(url))
    migrate.upgrade(normalise_database_url(url))
    app = create_app(settings.model_copy(update={"database_url": url, "max_active_tokens": 100000}))
    yield app
    app.extensions["container"].close()


def _headers(settings, sub: str, role: str) -> dict[str, str]:
    token = jwt_tokens.encode(settings.jwt_secret, sub, [role], 600)
    return {"Authorization": f"Bearer {token}"}


def _sql(port: int, statement: str) -> list[tuple]:
    conn = psycopg2.connect(host="127.0.0.1", port=port, user="postgres", dbname="postgres")
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute(statement)
            return cur.fetchall() if cur.description else []
    finally:
        conn.close()


def _issue(client, headers) -> int:
    return client.post("/api/exchange-tokens/", json={"points": 1}, headers=headers).status_code


def test_a_demoted_primary_gives_503_then_the_promoted_standby_serves(
        failover_app, pg_pair, settings):
    client = failover_app.test_client()
    user = f"user-{uuid.uuid4().hex[:8]}"
    mine = _headers(settings, user, "user")
    r = client.post(f"/api/accounts/{user}/credits", json={"points": 1000},
                    headers=_headers(settings, "admin", "admin"))
    assert r.status_code == 201
    assert _issue(client, mine) == 201  # the pool now holds connections to the primary
    assert client.get("/readyz").status_code == 200

    # The primary turns read-only, as a demoted primary does: SELECT 1 still succeeds
    # there, writes fail with SQLSTATE 25006, and no server takes writes yet.
    _sql(pg_pair.primary_port, "ALTER SYSTEM SET default_transaction_read_only = on")
    _sql(pg_pair.primary_port, "SELECT pg_reload_conf()")
    time.sleep(0.5)
    # Never 500: first a transaction through the ORM session on the pooled connection to
    # the demoted server, then the API's single-statement path.
    credit = client.post(f"/api/accounts/{user}/credits", json={"points": 1},
                         headers=_headers(settings, "admin", "admin"))
    assert credit.status_code == 503
    assert _issue(client, mine) == 503
    ready = client.get("/readyz")
    assert ready.status_code == 503
    assert "'database': 'unavailable'" in str(ready.get_json()), ready.get_json()

    # The standby is promoted: the API recovers by itself, on the new primary.
    pg_pair.promote()
    deadline = time.monotonic() + 15
    statuses = []
    while time.monotonic() < deadline:
        statuses.append(_issue(client, mine))
        if statuses[-1] == 201:
            break
        time.sleep(0.2)
    assert statuses[-1] == 201, statuses
    assert set(statuses) <= {201, 503}, statuses
    assert client.get("/readyz").status_code == 200


def test_a_killed_primary_loses_no_confirmed_issue_and_the_api_never_answers_500(
        failover_app, pg_pair, settings):
    admin = _headers(settings, "admin", "admin")
    users = [f"user-{uuid.uuid4().hex[:8]}" for _ in range(4)]
    setup = failover_app.test_client()
    for user in users:
        assert setup.post(f"/api/accounts/{user}/credits", json={"points": 100000},
                          headers=admin).status_code == 201
    confirmed: list[str] = []
    statuses: list[int] = []
    stop = threading.Event()
    lock = threading.Lock()

    def keep_issuing(user: str) -> None:
        client = failover_app.test_client()
        headers = _headers(settings, user, "user")
        while not stop.is_set():
            r = client.post("/api/exchange-tokens/", json={"points": 1}, headers=headers)
            with lock:
                statuses.append(r.status_code)
                if r.status_code == 201:
                    confirmed.append(r.get_json()["token"]["id"])
            if r.status_code != 201:
                time.sleep(0.1)

    threads = [threading.Thread(target=keep_issuing, args=(u,)) for u in users]
    for t in threads:
        t.start()
    try:
        time.sleep(2)
        before = len(confirmed)
        pg_pair.kill_primary()  # kill -9: the host is gone, nothing flushed
        time.sleep(2)
        pg_pair.promote()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            time.sleep(0.5)
            with lock:
                if statuses[-5:] == [201] * 5:
                    break
    finally:
        stop.set()
        for t in threads:
            t.join(30)

    assert before > 0
    assert 500 not in statuses and set(statuses) <= {201, 503}, sorted(set(statuses))
    assert statuses[-5:] == [201] * 5, "the API did not recover on the new primary"
    # Every issue the API confirmed is on the new primary: synchronous replication.
    rows = _sql_in(pg_pair.standby_port, _database_of(failover_app),
                   "SELECT id::text FROM exchange_tokens")
    present = {r[0] for r in rows}
    missing = [t for t in confirmed if t not in present]
    assert missing == [], f"{len(missing)} confirmed issue(s) lost in the failover"


def _database_of(app) -> str:
    container = app.extensions.get("container")
    return container.engine.url.database


def _sql_in(port: int, database: str, statement: str) -> list[tuple]:
    conn = psycopg2.connect(host="127.0.0.1", port=port, user="postgres", dbname=database)
    try:
        with conn.cursor() as cur:
            cur.execute(statement)
            return cur.fetchall()
    finally:
        conn.close()
