"""A database that hangs (stopped, or behind a network that stalls but still acknowledges)
never answers and never closes: neither its statement_timeout nor TCP keepalives fire. The
API's engine gives up on it by itself (wait_for_server), with an error that reads as an
outage, and discards the connection; other engines are not cut short."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError, OperationalError

from shared.persistence.database import HUNG_SERVER_MARGIN_S, make_engine
from shared.persistence.transactions import is_unavailable, single_statement
from tests.support.tcp_proxy import TcpProxy

STATEMENT_TIMEOUT_MS = 300
BOUND_S = STATEMENT_TIMEOUT_MS / 1000 + HUNG_SERVER_MARGIN_S


@pytest.fixture
def proxy(settings) -> Iterator[TcpProxy]:
    p = TcpProxy.in_front_of(settings.sqlalchemy_url, 5432)
    p.up()
    yield p
    p.down()


def engine_through(proxy: TcpProxy, settings, *, bounded: bool, **options) -> Engine:
    return make_engine(proxy.url_for(settings.sqlalchemy_url), pool_size=2, max_overflow=0,
                       statement_timeout_ms=STATEMENT_TIMEOUT_MS, connect_timeout_s=1,
                       bound_server_waits=bounded, **options)


def warm(engine: Engine, n: int) -> None:
    conns = [engine.connect() for _ in range(n)]
    for c in conns:
        assert c.execute(text("SELECT 1")).scalar_one() == 1
        c.close()


def test_a_hung_server_is_an_outage_within_the_bound_and_its_connections_are_dropped(
        proxy, settings):
    engine = engine_through(proxy, settings, bounded=True)
    try:
        warm(engine, 2)  # two connections in the pool, both through the proxy
        proxy.freeze()
        # The driver cursor, on a pooled connection.
        started = time.monotonic()
        with pytest.raises(DBAPIError) as hung, single_statement(engine) as cursor:
            cursor.execute("SELECT 1")
        assert BOUND_S - 0.05 <= time.monotonic() - started < BOUND_S + 1
        assert hung.value.connection_invalidated and is_unavailable(hung.value)
        assert "did not answer" in str(hung.value)
        # A session, on the other pooled connection.
        started = time.monotonic()
        with pytest.raises(OperationalError) as hung, engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        assert time.monotonic() - started < BOUND_S + 1
        assert hung.value.connection_invalidated and is_unavailable(hung.value)
        # A new connection to the hung server: its connect timeout (1 s) bounds the wait.
        started = time.monotonic()
        with pytest.raises(OperationalError) as hung, engine.connect():
            pass
        assert time.monotonic() - started < 2
        assert is_unavailable(hung.value) and "did not connect" in str(hung.value)
        # When the server answers again, the same engine serves: nothing broken was pooled.
        proxy.thaw()
        with single_statement(engine) as cursor:
            cursor.execute("SELECT 1")
            assert cursor.fetchone() == (1,)
        warm(engine, 2)
    finally:
        engine.dispose()


def test_a_slow_server_cancels_the_statement_itself_before_the_bound(proxy, settings):
    engine = engine_through(proxy, settings, bounded=True)
    try:
        with pytest.raises(OperationalError) as slow, engine.connect() as conn:
            conn.execute(text("SELECT pg_sleep(5)"))
        # PostgreSQL's own statement_timeout (query_canceled), and the connection is kept.
        assert slow.value.orig.pgcode == "57014"
        assert not slow.value.connection_invalidated
        with engine.connect() as conn:
            assert conn.execute(text("SELECT 1")).scalar_one() == 1
    finally:
        engine.dispose()


def test_an_unbounded_engine_waits_for_a_long_statement(proxy, settings):
    # The commands' engines: the reconciliation turns statement_timeout off for its long
    # statements, which no client-side bound may cut. Connecting stays bounded.
    engine = engine_through(proxy, settings, bounded=False)
    try:
        with engine.connect() as conn:
            conn.execute(text("SET statement_timeout = 0"))
            started = time.monotonic()
            conn.execute(text("SELECT pg_sleep(:s)"), {"s": BOUND_S + 0.2})
            assert time.monotonic() - started >= BOUND_S + 0.2
            conn.rollback()
        engine.dispose()
        proxy.freeze()
        started = time.monotonic()
        with pytest.raises(OperationalError), engine.connect():
            pass
        assert time.monotonic() - started < 2
    finally:
        engine.dispose()


def test_every_engine_gives_up_on_data_the_network_never_acknowledges(settings):
    """A partition mid-statement leaves sent data unacknowledged: TCP keepalives do not
    probe such a connection and the kernel retransmits for ~15 minutes. Every engine (the
    workers' too) sets libpq's tcp_user_timeout; a stalled network cannot be made here
    without privileges, so the setting itself is what is checked, on a live connection."""
    from shared.persistence.database import TCP_USER_TIMEOUT_MS

    for bounded in (False, True):
        engine = make_engine(settings.sqlalchemy_url, pool_size=1, max_overflow=0,
                             bound_server_waits=bounded)
        try:
            with engine.connect() as conn:
                dsn = conn.connection.dbapi_connection.get_dsn_parameters()  # type: ignore[union-attr]
            assert dsn["tcp_user_timeout"] == str(TCP_USER_TIMEOUT_MS)
        finally:
            engine.dispose()
