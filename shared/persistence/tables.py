"""The schema as SQLAlchemy 2 typed models. Migrations (``migrations/``) are the source of
truth in databases; these models mirror them for queries, and tests compare the two."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    Float,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


TS = DateTime(timezone=True)


class Account(Base):
    __tablename__ = "accounts"
    __table_args__ = (CheckConstraint("balance >= 0", name="balance_not_negative"),)

    user_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    balance: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default="0")
    created_at: Mapped[datetime] = mapped_column(TS, nullable=False, server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(TS, nullable=False, server_default=func.now())


class LedgerEntry(Base):
    """Append-only (a trigger refuses UPDATE and DELETE). One row per balance change."""

    __tablename__ = "ledger"
    __table_args__ = (
        CheckConstraint("kind IN ('credit', 'debit', 'refund')", name="ledger_kind"),
        CheckConstraint(
            "(kind = 'credit' AND amount > 0) OR (kind = 'debit' AND amount < 0)"
            " OR (kind = 'refund' AND amount > 0)",
            name="ledger_amount_sign",
        ),
        # The second belt behind the conditional UPDATE/DELETE: one debit and at most one
        # refund per token, whatever redelivery or race tries.
        UniqueConstraint("token_id", "kind", name="ledger_token_kind"),
        Index("ix_ledger_user_id", "user_id", "id"),
        Index(
            "ix_ledger_refund_code",
            "token_code",
            unique=True,
            postgresql_where=text("kind = 'refund'"),
        ),
        Index(
            "ix_ledger_user_refunds",
            "user_id",
            "created_at",
            postgresql_where=text("kind = 'refund'"),
        ),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    user_id: Mapped[str] = mapped_column(String(200), nullable=False)
    amount: Mapped[int] = mapped_column(BigInteger, nullable=False)
    kind: Mapped[str] = mapped_column(String(16), nullable=False)
    reason: Mapped[str | None] = mapped_column(Text)
    token_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    token_code: Mapped[str | None] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(TS, nullable=False, server_default=func.now())


class Token(Base):
    """A live token: ``active`` or ``redeemed``. Expired and cancelled tokens are deleted
    once their refund is in the ledger, which keeps their id and code."""

    __tablename__ = "exchange_tokens"
    __table_args__ = (
        CheckConstraint("status IN ('active', 'redeemed')", name="token_status"),
        CheckConstraint("points > 0", name="token_points_positive"),
        CheckConstraint(
            "(status = 'redeemed') = (redeemed_at IS NOT NULL AND merchant_id IS NOT NULL)",
            name="token_redeemed_fields",
        ),
        Index("ix_tokens_active_expiry", "expires_at", postgresql_where=text("status = 'active'")),
        Index(
            "ix_tokens_user_active",
            "user_id",
            "expires_at",
            postgresql_where=text("status = 'active'"),
        ),
        Index(
            "ix_tokens_user_redeemed",
            "user_id",
            "redeemed_at",
            postgresql_where=text("status = 'redeemed'"),
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    code: Mapped[str] = mapped_column(String(128), nullable=False, unique=True)
    user_id: Mapped[str] = mapped_column(String(200), nullable=False)
    points: Mapped[int] = mapped_column(BigInteger, nullable=False)
    reward: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), nullable=False, server_default="active")
    created_at: Mapped[datetime] = mapped_column(TS, nullable=False)
    expires_at: Mapped[datetime] = mapped_column(TS, nullable=False)
    redeemed_at: Mapped[datetime | None] = mapped_column(TS)
    merchant_id: Mapped[str | None] = mapped_column(String(200))


class ExchangeRequest(Base):
    __tablename__ = "exchange_requests"
    __table_args__ = (Index("ix_requests_user_created", "user_id", "created_at"),)

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    token_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), nullable=False, unique=True)
    user_id: Mapped[str] = mapped_column(String(200), nullable=False)
    merchant_id: Mapped[str] = mapped_column(String(200), nullable=False)
    points: Mapped[int] = mapped_column(BigInteger, nullable=False)
    reward: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(TS, nullable=False, server_default=func.now())


class OutboxMessage(Base):
    """Events waiting for the relay. ``published_at`` is set once the broker confirmed."""

    __tablename__ = "outbox"
    __table_args__ = (
        Index("ix_outbox_unpublished", "id", postgresql_where=text("published_at IS NULL")),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    event_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), nullable=False, unique=True)
    event_type: Mapped[str] = mapped_column(String(64), nullable=False)
    payload: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False)
    headers: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False, server_default="{}")
    created_at: Mapped[datetime] = mapped_column(TS, nullable=False, server_default=func.now())
    published_at: Mapped[datetime | None] = mapped_column(TS)
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    # After a failed publish: not claimed again before then (the relay, shared/persistence/outbox.py).
    next_attempt_at: Mapped[datetime | None] = mapped_column(TS)


class ProcessedMessage(Base):
    """Idempotent consumers: the effect and this row commit together."""

    __tablename__ = "processed_messages"

    consumer: Mapped[str] = mapped_column(String(100), primary_key=True)
    message_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    processed_at: Mapped[datetime] = mapped_column(TS, nullable=False, server_default=func.now())


class IdempotencyKey(Base):
    __tablename__ = "idempotency_keys"
    __table_args__ = (Index("ix_idempotency_created", "created_at"),)

    # A key is the caller's, whatever the endpoint (docs/api.md; migration 0006).
    caller: Mapped[str] = mapped_column(String(200), primary_key=True)
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    endpoint: Mapped[str] = mapped_column(String(200), nullable=False)
    request_hash: Mapped[str] = mapped_column(String(64), nullable=False)
    response_status: Mapped[int] = mapped_column(Integer, nullable=False)
    response_body: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False)
    created_at: Mapped[datetime] = mapped_column(TS, nullable=False, server_default=func.now())


class RedeemFailures(Base):
    """Failed redeem attempts of one merchant in one minute (abuse limit)."""

    __tablename__ = "redeem_failures"

    merchant_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    window_start: Mapped[datetime] = mapped_column(TS, primary_key=True)
    failures: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")


class DlqAudit(Base):
    """One row per dead-letter replay or purge."""

    __tablename__ = "dlq_audit"
    __table_args__ = (Index("ix_dlq_audit_at", "at"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(TS, nullable=False, server_default=func.now())
    actor: Mapped[str] = mapped_column(String(200), nullable=False)
    action: Mapped[str] = mapped_column(String(32), nullable=False)
    dry_run: Mapped[bool] = mapped_column(nullable=False, server_default=text("false"))
    message_ids: Mapped[list[str]] = mapped_column(JSONB, nullable=False)
    result: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False)


class OpsJob(Base):
    """A replay or purge started from the ops console, run by a worker's ``ops`` role."""

    __tablename__ = "ops_jobs"
    __table_args__ = (
        CheckConstraint("kind IN ('replay', 'purge')", name="ops_job_kind"),
        CheckConstraint("status IN ('queued', 'running', 'done', 'failed')",
                        name="ops_job_status"),
        CheckConstraint("rate > 0", name="ops_job_rate_positive"),
        Index("ix_ops_jobs_open", "id", postgresql_where=text("status IN ('queued', 'running')")),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(16), nullable=False)
    actor: Mapped[str] = mapped_column(String(200), nullable=False)
    selection: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False)
    rate: Mapped[float] = mapped_column(Float, nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False, server_default="queued")
    total: Mapped[int | None] = mapped_column(Integer)
    done: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    failed: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    message_ids: Mapped[list[str] | None] = mapped_column(JSONB)
    outcomes: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False, server_default="{}")
    error: Mapped[str | None] = mapped_column(Text)
    audit_id: Mapped[int | None] = mapped_column(BigInteger)
    claimed_by: Mapped[str | None] = mapped_column(String(200))
    heartbeat_at: Mapped[datetime | None] = mapped_column(TS)
    created_at: Mapped[datetime] = mapped_column(TS, nullable=False, server_default=func.now())
    started_at: Mapped[datetime | None] = mapped_column(TS)
    finished_at: Mapped[datetime | None] = mapped_column(TS)


class OpsSample(Base):
    """The console's figures at one moment, for its charts of the last hour."""

    __tablename__ = "ops_samples"

    at: Mapped[datetime] = mapped_column(TS, primary_key=True, server_default=func.now())
    figures: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False)
