"""Reading the books straight from PostgreSQL, for invariants shared by several tests."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker


@dataclass(frozen=True)
class Books:
    """One account as the database sees it."""

    balance: int
    ledger_sum: int
    credits: int
    active: int  # points held by active tokens
    redeemed: int  # points of redeemed tokens


def books_of(factory: sessionmaker[Session], users: list[str]) -> dict[str, Books]:
    with factory() as s:
        rows = s.execute(
            text("""
                SELECT a.user_id, a.balance,
                  (SELECT coalesce(sum(amount), 0) FROM ledger l WHERE l.user_id = a.user_id),
                  (SELECT coalesce(sum(amount), 0) FROM ledger l
                    WHERE l.user_id = a.user_id AND kind = 'credit'),
                  (SELECT coalesce(sum(points), 0) FROM exchange_tokens t
                    WHERE t.user_id = a.user_id AND status = 'active'),
                  (SELECT coalesce(sum(points), 0) FROM exchange_tokens t
                    WHERE t.user_id = a.user_id AND status = 'redeemed')
                FROM accounts a WHERE a.user_id = ANY(:users)
            """),
            {"users": users},
        ).all()
    return {r[0]: Books(*(int(v) for v in r[1:])) for r in rows}


def assert_books_balance(factory: sessionmaker[Session], users: list[str]) -> dict[str, Books]:
    """Points conserved, balance = sum of the ledger, no negative balance; no token both
    redeemed and restored, at most one refund and one debit per token."""
    books = books_of(factory, users)
    for user, b in books.items():
        assert b.balance >= 0, (user, b)
        assert b.balance == b.ledger_sum, (user, b)
        assert b.credits == b.balance + b.active + b.redeemed, (user, b)
    with factory() as s:
        doubled = s.execute(
            text("""
                SELECT token_id, kind, count(*) FROM ledger
                WHERE user_id = ANY(:users) AND token_id IS NOT NULL
                GROUP BY token_id, kind HAVING count(*) > 1
            """),
            {"users": users},
        ).all()
        both = s.execute(
            text("""
                SELECT t.id FROM exchange_tokens t JOIN ledger l
                  ON l.token_id = t.id AND l.kind = 'refund'
                WHERE t.user_id = ANY(:users)
            """),
            {"users": users},
        ).all()
    assert doubled == [], f"token with several rows of one kind: {doubled}"
    assert both == [], f"token both live (redeemed or active) and restored: {both}"
    return books
