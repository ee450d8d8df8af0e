"""Service results (shared/services/views.py) as the contract's JSON."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from shared.services.views import (
    Cancelled,
    ExchangeRequestView,
    Issued,
    Refund,
    Status,
    TokenView,
)


def rfc3339(moment: datetime) -> str:
    """RFC 3339 in UTC, always with a ``Z`` and microseconds, whatever the session zone."""
    return moment.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def token(t: TokenView) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": str(t.id), "code": t.code, "points": t.points, "reward": t.reward,
        "status": t.status, "created_at": rfc3339(t.created_at),
        "expires_at": rfc3339(t.expires_at), "expires_in": t.expires_in,
    }
    if t.redeemed_at is not None:
        out["redeemed_at"] = rfc3339(t.redeemed_at)
    return out


def issued(result: Issued) -> dict[str, Any]:
    return {"token": token(result.token), "balance": result.balance}


def restored(r: Refund) -> dict[str, Any]:
    return {"token_id": str(r.token_id), "points": r.points, "reason": r.reason,
            "restored_at": rfc3339(r.restored_at)}


def status(s: Status) -> dict[str, Any]:
    return {"balance": s.balance, "active": [token(t) for t in s.active],
            "redeemed": [token(t) for t in s.redeemed],
            "restored": [restored(r) for r in s.restored]}


def cancelled(c: Cancelled) -> dict[str, Any]:
    return {"token_id": str(c.token_id), "points_restored": c.points_restored,
            "balance": c.balance}


def exchange_request(r: ExchangeRequestView) -> dict[str, Any]:
    return {"id": str(r.id), "token_id": str(r.token_id), "points": r.points,
            "reward": r.reward, "merchant_id": r.merchant_id,
            "created_at": rfc3339(r.created_at)}
