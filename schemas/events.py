"""Events: the messages the outbox publishes and the workers consume.

Every event has ``event_id``, ``type``, ``schema_version``, ``occurred_at``, ``token_id``,
``user_id`` and ``points``; each type adds what it needs. ``type`` is also the routing key.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

SCHEMA_VERSION = 1


def _now() -> datetime:
    return datetime.now(UTC)


class _Event(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    event_id: uuid.UUID = Field(default_factory=uuid.uuid4)
    schema_version: int = SCHEMA_VERSION
    occurred_at: datetime = Field(default_factory=_now)
    token_id: uuid.UUID
    user_id: str = Field(min_length=1)
    points: int = Field(ge=1, le=1_000_000_000)


class TokenIssued(_Event):
    type: Literal["TokenIssued"] = "TokenIssued"
    expires_at: datetime


class TokenRedeemed(_Event):
    type: Literal["TokenRedeemed"] = "TokenRedeemed"
    merchant_id: str = Field(min_length=1)
    reward: str | None = None
    redeemed_at: datetime | None = None


class TokenCancelled(_Event):
    type: Literal["TokenCancelled"] = "TokenCancelled"


class TokenExpired(_Event):
    """Two uses, one schema: the delayed message a worker schedules at issue time (it
    dead-letters at ``expires_at``), and the fact the expire service records once the
    points are back (``restored`` set)."""

    type: Literal["TokenExpired"] = "TokenExpired"
    expires_at: datetime
    restored: bool = False


Event = Annotated[
    TokenIssued | TokenRedeemed | TokenCancelled | TokenExpired, Field(discriminator="type")
]
EVENT_ADAPTER: TypeAdapter[Event] = TypeAdapter(Event)


def parse_event(body: bytes | str) -> Event:
    """Parse and validate a message body; raises ``pydantic.ValidationError`` if it is not one."""
    return EVENT_ADAPTER.validate_json(body)
