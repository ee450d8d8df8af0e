"""The two expiry rules: one place says when a token is due and when it is redeemable."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy.dialects import postgresql

from shared.expiry_rules import due, due_sql, is_due, redeemable, seconds_until_due

ROOT = Path(__file__).resolve().parents[2]
NOW = datetime(2030, 1, 1, tzinfo=UTC)


def sql(expr) -> str:  # type: ignore[no-untyped-def]
    return str(expr.compile(dialect=postgresql.dialect(),
                            compile_kwargs={"literal_binds": True}))


def test_due_is_active_and_at_or_past_the_expiry() -> None:
    assert re.fullmatch(r"exchange_tokens\.status = 'active' AND "
                        r"exchange_tokens\.expires_at <= '2030-01-01 00:00:00\+00:00'",
                        sql(due(NOW))), sql(due(NOW))


def test_redeemable_is_active_and_before_the_expiry() -> None:
    assert re.fullmatch(r"exchange_tokens\.status = 'active' AND "
                        r"exchange_tokens\.expires_at > '2030-01-01 00:00:00\+00:00'",
                        sql(redeemable(NOW))), sql(redeemable(NOW))


@pytest.mark.parametrize(("offset", "expected"), [(-1, True), (0, True), (1, False)])
def test_an_active_row_is_due_from_its_expiry_on(offset: int, expected: bool) -> None:
    expires_at = NOW + timedelta(seconds=offset)
    assert is_due("active", expires_at, NOW) is expected
    assert (seconds_until_due(expires_at, NOW) > 0) is not expected  # redeemable otherwise


@pytest.mark.parametrize("status", ["redeemed", "cancelled"])
def test_only_an_active_row_is_ever_due(status: str) -> None:
    assert not is_due(status, NOW - timedelta(days=1), NOW)


def test_the_sql_text_says_what_the_expression_says() -> None:
    assert due_sql() == "status = 'active' AND expires_at <= now()"
    assert due_sql("now() - interval '5 seconds'", alias="k") == (
        "k.status = 'active' AND k.expires_at <= now() - interval '5 seconds'")


# Comparisons of a token's expiry with "now", written out: only the rules module may.
WRITTEN_OUT = re.compile(r"Token\.expires_at\s*(<=|>=|<|>)|expires_at\s*(<=|<|>)\s*now\(\)")


def test_no_caller_writes_the_expiry_comparison_itself() -> None:
    offenders = []
    for package in ("shared", "api", "workers", "cli"):
        for path in (ROOT / package).rglob("*.py"):
            if path.name == "expiry_rules.py" or "migrations" in path.parts:
                continue
            for number, line in enumerate(path.read_text().splitlines(), 1):
                code = line.split("#", 1)[0]
                if WRITTEN_OUT.search(code) and "``" not in code:
                    offenders.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert not offenders, "\n".join(offenders)
