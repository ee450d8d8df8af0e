"""libpq's multi-host DATABASE_URL, read by SQLAlchemy as psycopg2's several hosts."""

from __future__ import annotations

import psycopg2
from sqlalchemy import make_url
from sqlalchemy.dialects.postgresql import psycopg2 as pg_dialect

from shared.database_hosts import hosts_as_query
from shared.persistence import failover
from shared.settings import normalise_database_url

MULTI = "postgresql://app:pw@db1:5432,db2:5433/tokens?target_session_attrs=read-write"


def test_one_host_is_left_alone():
    url = "postgresql://app:pw@db1:5432/tokens"
    assert hosts_as_query(url) == url


def test_several_hosts_become_psycopg2_hosts_and_ports():
    url = make_url(normalise_database_url(MULTI))
    assert url.database == "tokens" and url.username == "app"
    _, options = pg_dialect.dialect().create_connect_args(url)
    assert options["host"] == "db1,db2" and options["port"] == "5432,5433"
    assert options["target_session_attrs"] == "read-write"


def test_a_read_only_server_error_is_retried_once_only():
    class ReadOnly(psycopg2.Error):
        pgcode = "25006"

    class Deadlock(psycopg2.Error):
        pgcode = "40P01"

    assert failover.is_read_only(ReadOnly())
    assert failover.retry_on_new_primary(ReadOnly(), attempt=1)
    assert not failover.retry_on_new_primary(ReadOnly(), attempt=2)
    assert not failover.retry_on_new_primary(Deadlock(), attempt=1)
