"""Requests and responses of the HTTP API (docs/api.md).

Request models are strict: ``points`` must be a JSON integer (``1.0``, ``true`` and ``"5"``
are refused), and unknown fields are refused, because a typo in a money request
(``"point": 5``) should fail loudly rather than be ignored. The OpenAPI document is
generated from these models (api/docs.py).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    RootModel,
    StrictInt,
    StrictStr,
)

MAX_POINTS = 1_000_000_000
MAX_CODE_LENGTH = 128


def _storable(value: str) -> str:
    # PostgreSQL text cannot hold NUL, and a lone surrogate cannot be encoded as UTF-8:
    # refused here as a 422 instead of failing in the driver as a 500.
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    if any("\ud800" <= ch <= "\udfff" for ch in value):
        raise ValueError("must be valid Unicode text")
    return value


Points = Annotated[StrictInt, Field(ge=1, le=MAX_POINTS, description="A whole number of points.")]
Text = Annotated[StrictStr, AfterValidator(_storable)]


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CreditRequest(_Request):
    points: Points
    reason: Annotated[Text, Field(max_length=500)] | None = None


class IssueRequest(_Request):
    points: Points
    reward: Annotated[Text, Field(max_length=500)] | None = None


class RedeemRequest(_Request):
    code: Annotated[Text, Field(min_length=1, max_length=MAX_CODE_LENGTH)]


class IdempotencyHeaders(BaseModel):
    """Optional header of the POSTs that create or redeem something (Stripe's semantics)."""

    model_config = ConfigDict(populate_by_name=True)

    idempotency_key: str | None = Field(
        default=None,
        alias="Idempotency-Key",
        min_length=1,
        max_length=255,
        pattern=r"^[\x21-\x7e]+$",
        description="Same key and body within 24 h: the first response again, no second effect.",
    )


class Balance(BaseModel):
    user_id: str
    balance: int


class Token(BaseModel):
    id: uuid.UUID
    code: str
    points: int
    reward: str | None
    status: Literal["active", "redeemed"]
    created_at: datetime
    expires_at: datetime
    expires_in: int = Field(description="Whole seconds left, rounded down; 0 when none.")
    redeemed_at: datetime | None = Field(default=None, description="Only on a redeemed token.")


class Issued(BaseModel):
    token: Token
    balance: int


class RestoredEntry(BaseModel):
    token_id: uuid.UUID
    points: int
    reason: Literal["expired", "cancelled"]
    restored_at: datetime


class StatusResponse(BaseModel):
    balance: int
    active: list[Token]
    redeemed: list[Token]
    restored: list[RestoredEntry]


class CancelResponse(BaseModel):
    token_id: uuid.UUID
    points_restored: int
    balance: int


class Redeemed(BaseModel):
    token: Token
    user_id: str


class ExchangeRequest(BaseModel):
    id: uuid.UUID
    token_id: uuid.UUID
    points: int
    reward: str | None
    merchant_id: str
    created_at: datetime


class ExchangeRequestList(RootModel[list[ExchangeRequest]]):
    """The user's 100 latest, newest first."""


class Health(BaseModel):
    status: Literal["ok"]


class Readiness(BaseModel):
    status: Literal["ok", "unavailable"]
    checks: dict[str, Literal["ok", "unavailable"]]


class ErrorBody(BaseModel):
    code: str
    message: str
    details: dict[str, Any]


class ErrorResponse(BaseModel):
    error: ErrorBody


class IfNoneMatchHeaders(BaseModel):
    """Optional header of a token read: a poll that answers 304 while nothing changed."""

    model_config = ConfigDict(populate_by_name=True)

    if_none_match: str | None = Field(
        default=None,
        alias="If-None-Match",
        description="The ETag of an earlier answer: 304 and no body while the token is unchanged.",
    )
