"""With PostgreSQL away the API answers 503 within 5 s and recovers without a restart;
with RabbitMQ away it keeps serving and only /readyz says so."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

from sqlalchemy import text

from api.app import create_app
from shared.bootstrap import bootstrap
from tests.integration.api.test_auth_and_errors import assert_error

CLOSED = "postgresql://postgres@127.0.0.1:1/nothing_here"


def terminate(settings, pids: list[int]) -> None:
    """Terminate these server backends and wait until they are gone: pg_terminate_backend
    only signals, and the FATAL message and the close reach our sockets a moment later."""
    admin = bootstrap(settings, pool_size=1)
    try:
        with admin.engine.begin() as conn:
            killed = conn.execute(text(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                " WHERE pid = ANY(:pids)"), {"pids": pids}).scalar_one()
        assert killed == len(pids)
        deadline = time.monotonic() + 5
        while True:
            with admin.engine.begin() as conn:
                alive = conn.execute(text(
                    "SELECT count(*) FROM pg_stat_activity WHERE pid = ANY(:pids)"),
                    {"pids": pids}).scalar_one()
            if alive == 0:
                return
            assert time.monotonic() < deadline, "the backends did not exit within 5 s"
            time.sleep(0.02)
    finally:
        admin.close()


def test_database_down_answers_503_within_5_seconds(settings, auth, user):
    down = settings.model_copy(update={"database_url": CLOSED})
    app = create_app(down)
    client = app.test_client()
    try:
        for method, path, body in (("GET", "/api/accounts/me", None),
                                   ("POST", "/api/exchange-tokens/", {"points": 1}),
                                   ("GET", "/api/exchange-tokens/status/", None)):
            started = time.monotonic()
            r = client.open(path, method=method, json=body, headers=auth(user))
            assert time.monotonic() - started < 5
            assert_error(r, 503, "service_unavailable")
        started = time.monotonic()
        r = client.get("/readyz")
        assert time.monotonic() - started < 5
        assert r.status_code == 503
        assert r.get_json()["error"]["details"]["checks"] == {"database": "unavailable",
                                                              "broker": "ok"}
    finally:
        app.extensions["container"].close()


def test_the_api_recovers_when_its_connections_are_killed(settings, auth, user):
    container = bootstrap(settings.model_copy(update={"log_level": "INFO"}), pool_size=2)
    client = create_app(settings, container).test_client()
    try:
        assert client.get("/api/accounts/me", headers=auth(user)).status_code == 200
        # Given every server backend of this app terminated, as a PostgreSQL restart would.
        with container.engine.connect() as conn:
            pid = conn.execute(text("SELECT pg_backend_pid()")).scalar_one()
        terminate(settings, [pid])
        # Then the next requests succeed: the checkout check finds the connection closed
        # by the server and the pool replaces it (no request sees the dead one).
        for _ in range(3):
            r = client.get("/api/accounts/me", headers=auth(user))
            assert r.status_code == 200, r.get_json()
    finally:
        container.close()


def test_issuing_recovers_when_every_pooled_connection_was_killed(settings, auth, user):
    # The issue's hot path takes driver connections from the pool (single_statement): it
    # must get the same protection as sessions, for every connection the pool holds.
    container = bootstrap(settings, pool_size=3)
    client = create_app(settings, container).test_client()
    try:
        assert client.post(f"/api/accounts/{user}/credits", json={"points": 50},
                           headers=auth("admin-z", "admin")).status_code == 201
        # Given three connections in the pool, all terminated by the server (a restart).
        conns = [container.engine.connect() for _ in range(3)]
        pids = [c.execute(text("SELECT pg_backend_pid()")).scalar_one() for c in conns]
        for c in conns:
            c.close()
        terminate(settings, pids)
        # Then every issue succeeds, none answered 503.
        for _ in range(5):
            r = client.post("/api/exchange-tokens/", json={"points": 1}, headers=auth(user))
            assert r.status_code == 201, r.get_json()
    finally:
        container.close()


def test_a_second_app_on_a_reachable_database_serves_while_one_is_cut_off(settings, auth,
                                                                          user, client):
    down = create_app(settings.model_copy(update={"database_url": CLOSED}))
    try:
        assert down.test_client().get("/api/accounts/me",
                                      headers=auth(user)).status_code == 503
        assert client.get("/api/accounts/me", headers=auth(user)).status_code == 200
    finally:
        down.extensions["container"].close()


def test_broker_down_keeps_the_api_working_and_readyz_says_503(settings, auth, user):
    away = settings.model_copy(update={"amqp_url": "amqp://guest:guest@127.0.0.1:1/%2F"})
    app = create_app(away)
    client = app.test_client()
    try:
        admin = auth("admin-y", "admin")
        assert client.post(f"/api/accounts/{user}/credits", json={"points": 5},
                           headers=admin).status_code == 201
        r = client.post("/api/exchange-tokens/", json={"points": 5}, headers=auth(user))
        assert r.status_code == 201  # the event waits in the outbox
        r = client.get("/readyz")
        assert r.status_code == 503
        assert r.get_json()["error"]["details"]["checks"] == {"database": "ok",
                                                              "broker": "unavailable"}
    finally:
        app.extensions["container"].close()


def test_the_same_app_answers_503_while_the_database_is_away_and_recovers_after(settings,
                                                                                auth, user):
    from tests.support.tcp_proxy import TcpProxy

    proxy = TcpProxy.in_front_of(settings.sqlalchemy_url, 5432)
    proxy.up()
    via_proxy = proxy.url_for(settings.sqlalchemy_url)
    app = create_app(settings.model_copy(update={"database_url": via_proxy}))
    client = app.test_client()
    try:
        assert client.get("/api/accounts/me", headers=auth(user)).status_code == 200
        # When PostgreSQL goes away (every connection reset, new ones refused)...
        proxy.down()
        for _ in range(2):
            started = time.monotonic()
            r = client.get("/api/accounts/me", headers=auth(user))
            assert time.monotonic() - started < 5
            assert_error(r, 503, "service_unavailable")
        # ...and comes back, the same app serves again: no restart.
        proxy.up()
        deadline = time.monotonic() + 10
        while (r := client.get("/api/accounts/me", headers=auth(user))).status_code != 200:
            assert time.monotonic() < deadline, r.get_json()
            time.sleep(0.2)
    finally:
        proxy.down()
        app.extensions["container"].close()


def test_a_hung_database_answers_503_within_5_seconds_and_the_app_recovers_after(settings,
                                                                                 auth, user):
    # A database that hangs (stopped, or behind a network that stalls but acknowledges)
    # sends neither an error nor a close: its statement_timeout cannot fire, nor can TCP
    # keepalives. The API's engine bounds each round trip itself (wait_for_server).
    from tests.support.tcp_proxy import TcpProxy

    proxy = TcpProxy.in_front_of(settings.sqlalchemy_url, 5432)
    proxy.up()
    app = create_app(settings.model_copy(
        update={"database_url": proxy.url_for(settings.sqlalchemy_url)}))
    engine = app.extensions["container"].engine
    issue = ("POST", "/api/exchange-tokens/", {"points": 1})
    me = ("GET", "/api/accounts/me", None)

    def call(request):
        method, path, body = request
        started = time.monotonic()
        r = app.test_client().open(path, method=method, json=body, headers=auth(user))
        return r, time.monotonic() - started

    pool = ThreadPoolExecutor(2)
    try:
        assert app.test_client().post(f"/api/accounts/{user}/credits", json={"points": 50},
                                      headers=auth("admin-h", "admin")).status_code == 201
        assert call(issue)[0].status_code == 201
        # Given three connections in the app's pool, opened before the database hangs.
        conns = [engine.connect() for _ in range(3)]
        for c in conns:
            c.execute(text("SELECT 1"))
            c.close()
        proxy.freeze()
        # When the issue's driver cursor and a session each wait on a pooled connection,
        # then each answers 503 within 5 s...
        answers = list(pool.map(call, (issue, me), timeout=10))
        # ...and so does a request that needs a new connection (the hung ones were dropped).
        answers.append(call(me))
        for r, elapsed in answers:
            assert elapsed < 5.0, elapsed
            assert_error(r, 503, "service_unavailable")
        # When the database answers again, the same app serves from its first request:
        # no restart, and no broken connection was handed back to the pool.
        proxy.thaw()
        r, _ = call(issue)
        assert r.status_code == 201, r.get_json()
        r, _ = call(me)
        assert r.status_code == 200, r.get_json()
    finally:
        proxy.down()  # also frees a request still waiting on the hung proxy
        pool.shutdown()
        app.extensions["container"].close()
