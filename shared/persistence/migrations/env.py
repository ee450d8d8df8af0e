"""Alembic environment: the URL comes from the Config the CLI builds (never from a file)."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine, pool

from shared.persistence.tables import Base

config = context.config
target_metadata = Base.metadata


def run_migrations_online() -> None:
    connectable = config.attributes.get("connection")
    if connectable is not None:
        context.configure(connection=connectable, target_metadata=target_metadata)
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = create_engine(str(config.get_main_option("sqlalchemy.url")), poolclass=pool.NullPool)
    with engine.connect() as connection:
        context.configure(connection=connection, target_metadata=target_metadata)
        with context.begin_transaction():
            # Several `migrate` copies may start at once (compose replicas): serialise them.
            connection.exec_driver_sql("SELECT pg_advisory_xact_lock(727100001)")
            context.run_migrations()


if context.is_offline_mode():
    raise SystemExit("offline migrations are not supported; run `exchange-tokens migrate`")
run_migrations_online()
