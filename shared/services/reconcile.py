"""The reconciler: prove the books balance, or say exactly what is wrong and where.

Every check is one set-based SQL statement (hash aggregates and joins, no loop over rows
in Python), so it stays fast on millions of ledger rows; only the problem rows come back.
Both statements read one REPEATABLE READ snapshot: every service commits its whole state
change in one transaction, so any snapshot of a healthy system satisfies every check,
even while workers, the API and sweeps run.

Per account:
  balance_differs_from_ledger  balance ≠ sum of the account's ledger rows
  points_not_conserved         credits ≠ balance + points of active and redeemed tokens

Per token (the ledger keeps one debit per token, and one refund once it is restored):
  live_token_debit_mismatch       an active or redeemed token without exactly one debit of
                                  its points, by its owner
  restored_token_still_live       a token with a refund that is still active or redeemed
  restored_token_debit_mismatch   a refund without exactly one debit, or of another amount
  multiple_refunds                more than one refund for one token
  restored_token_redeemed         a refunded token that also has an exchange request
  debit_without_token             a debit whose token is neither live nor refunded: its
                                  points were neither redeemed nor restored
  overdue_active_token            still active more than the grace period past expires_at
                                  (a lost timer the sweep has not caught yet): `--fix`
  redeemed_without_request        redeemed more than the grace period ago and still no
                                  exchange request: its TokenRedeemed is stuck (unsent in
                                  the outbox, or parked as a dead letter to replay)

Per exchange request:
  request_without_redeemed_token  no token redeemed by that merchant, for that owner and
                                  those points, backs the request (never existed, still
                                  active, refunded, or another's): a request from nothing
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field, replace
from datetime import datetime
from functools import partial
from typing import Any

from sqlalchemy import text

from shared.batches import until_short
from shared.expiry_rules import due_sql
from shared.persistence.transactions import unit_of_work
from shared.services.deps import Deps
from shared.services.sweep import sweep, sweep_all
from shared.services.views import Refund

DEFAULT_GRACE_SECONDS = 60.0
MAX_PROBLEMS = 10_000  # per check family: enough to act on, bounded if the books are wrecked
UNBOUNDED = 2**62  # for --fix, when the bounded report was cut short
OVERDUE = "overdue_active_token"
SWEEP_BATCH = 500

# Each statement evaluates every check once per row in one WHERE (a cheap scan), and
# names the failed checks only for the few rows that fail.
ACCOUNT_CHECKS = """
WITH per_user AS (
    SELECT user_id,
           sum(amount) AS ledger_sum,
           coalesce(sum(amount) FILTER (WHERE kind = 'credit'), 0) AS credits
    FROM ledger GROUP BY user_id
), live AS (
    SELECT user_id,
           coalesce(sum(points) FILTER (WHERE status = 'active'), 0) AS active,
           coalesce(sum(points) FILTER (WHERE status = 'redeemed'), 0) AS redeemed
    FROM exchange_tokens GROUP BY user_id
), books AS (
    SELECT coalesce(a.user_id, l.user_id, t.user_id) AS user_id,
           a.balance,
           coalesce(l.ledger_sum, 0) AS ledger_sum,
           coalesce(l.credits, 0) AS credits,
           coalesce(t.active, 0) AS active,
           coalesce(t.redeemed, 0) AS redeemed
    FROM accounts a
    FULL JOIN per_user l ON l.user_id = a.user_id
    FULL JOIN live t ON t.user_id = coalesce(a.user_id, l.user_id)
), failing AS (
    SELECT b.*,
           ARRAY[CASE WHEN coalesce(b.balance, 0) <> b.ledger_sum
                      THEN 'balance_differs_from_ledger' END,
                 CASE WHEN b.credits <> coalesce(b.balance, 0) + b.active + b.redeemed
                      THEN 'points_not_conserved' END] AS kinds
    FROM books b
    WHERE coalesce(b.balance, 0) <> b.ledger_sum
       OR b.credits <> coalesce(b.balance, 0) + b.active + b.redeemed
    LIMIT :max_problems
)
SELECT kind, user_id, balance, ledger_sum, credits, active, redeemed
FROM failing, unnest(kinds) AS kind
WHERE kind IS NOT NULL
ORDER BY user_id, kind
"""

LIFECYCLE_CHECKS = """
WITH per_token AS (
    SELECT token_id,
           count(*) FILTER (WHERE kind = 'debit') AS debits,
           count(*) FILTER (WHERE kind = 'refund') AS refunds,
           -- min/max, not sum: by-value aggregates, far cheaper per group than sum's
           -- numeric state; a token with several debits or refunds is flagged anyway
           coalesce(-min(amount) FILTER (WHERE kind = 'debit'), 0) AS debited,
           coalesce(max(amount) FILTER (WHERE kind = 'refund'), 0) AS refunded,
           -- whose rows they are, as integer hashes: aggregating the text itself costs
           -- more than the rest of the statement (a collision would hide a mismatch
           -- with odds of 1 in 4 billion)
           min(hashtext(user_id)) AS user_hash,
           min(hashtext(user_id)) <> max(hashtext(user_id)) AS several_users
    FROM ledger WHERE token_id IS NOT NULL GROUP BY token_id
), tokens AS (
    SELECT coalesce(t.id, p.token_id) AS token_id,
           t.user_id,
           t.status, t.points, t.expires_at, t.redeemed_at,
           coalesce(p.debits, 0) AS debits, coalesce(p.refunds, 0) AS refunds,
           coalesce(p.debited, 0) AS debited, coalesce(p.refunded, 0) AS refunded,
           p.user_hash, coalesce(p.several_users, false) AS several_users,
           r.token_id IS NOT NULL AS has_request
    FROM per_token p
    FULL JOIN exchange_tokens t ON t.id = p.token_id
    LEFT JOIN exchange_requests r ON r.token_id = coalesce(t.id, p.token_id)
), checked AS (
    SELECT k.*,
           k.status IS NOT NULL AND (k.debits <> 1 OR k.debited <> k.points
               OR k.several_users OR k.user_hash IS DISTINCT FROM hashtext(k.user_id))
               AS live_token_debit_mismatch,
           k.status IS NOT NULL AND k.refunds > 0 AS restored_token_still_live,
           k.refunds > 0 AND (k.debits <> 1 OR k.refunded <> k.debited
               OR k.several_users) AS restored_token_debit_mismatch,
           k.refunds > 1 AS multiple_refunds,
           k.refunds > 0 AND k.has_request AS restored_token_redeemed,
           k.status IS NULL AND k.debits > 0 AND k.refunds = 0 AS debit_without_token,
           """ + due_sql("now() - make_interval(secs => :grace)", alias="k") + """
               AS overdue_active_token,
           k.status = 'redeemed' AND NOT k.has_request
               AND k.redeemed_at <= now() - make_interval(secs => :grace)
               AS redeemed_without_request
    FROM tokens k
), failing AS (
    SELECT c.*,
           ARRAY[CASE WHEN live_token_debit_mismatch THEN 'live_token_debit_mismatch' END,
                 CASE WHEN restored_token_still_live THEN 'restored_token_still_live' END,
                 CASE WHEN restored_token_debit_mismatch
                      THEN 'restored_token_debit_mismatch' END,
                 CASE WHEN multiple_refunds THEN 'multiple_refunds' END,
                 CASE WHEN restored_token_redeemed THEN 'restored_token_redeemed' END,
                 CASE WHEN debit_without_token THEN 'debit_without_token' END,
                 CASE WHEN overdue_active_token THEN 'overdue_active_token' END,
                 CASE WHEN redeemed_without_request
                      THEN 'redeemed_without_request' END] AS kinds
    FROM checked c
    WHERE live_token_debit_mismatch OR restored_token_still_live
       OR restored_token_debit_mismatch OR multiple_refunds OR restored_token_redeemed
       OR debit_without_token OR overdue_active_token OR redeemed_without_request
    LIMIT :max_problems
)
SELECT kind, token_id, user_id, status, points, expires_at, redeemed_at, debits, refunds,
       debited, refunded, has_request
FROM failing, unnest(kinds) AS kind
WHERE kind IS NOT NULL
ORDER BY kind, user_id, token_id
"""

# Requests are few next to ledger rows; an anti-join on the tokens' primary key.
REQUEST_CHECKS = """
SELECT r.token_id, r.user_id, r.merchant_id, r.points,
       t.status, t.merchant_id AS token_merchant_id, t.user_id AS token_user_id,
       t.points AS token_points
FROM exchange_requests r
LEFT JOIN exchange_tokens t ON t.id = r.token_id
WHERE t.id IS NULL OR t.status <> 'redeemed' OR t.merchant_id IS DISTINCT FROM r.merchant_id
   OR t.user_id <> r.user_id OR t.points <> r.points
ORDER BY r.user_id, r.token_id
LIMIT :max_problems
"""
ORPHAN_REQUEST = "request_without_redeemed_token"

# The owner of a token that is no longer live, for the few failing ones (by index).
OWNERS = """
SELECT token_id, min(user_id) FROM ledger WHERE token_id = ANY(:ids) GROUP BY token_id
"""

# Per-token aggregation over random UUIDs: one sequential scan and a hash beat walking
# an index in token order (random heap reads), which the planner would otherwise pick.
SCAN_SETTINGS = ("enable_indexscan", "enable_indexonlyscan", "enable_bitmapscan")

SIZES = """
SELECT (SELECT count(*) FROM accounts), (SELECT count(*) FROM exchange_tokens),
       (SELECT count(*) FROM ledger), now()
"""


@dataclass(frozen=True)
class Problem:
    kind: str
    user_id: str | None
    token_id: uuid.UUID | None
    details: dict[str, Any]


@dataclass(frozen=True)
class Report:
    problems: list[Problem]
    accounts: int
    tokens: int
    ledger_rows: int
    checked_at: datetime
    grace_seconds: float
    elapsed_ms: float
    truncated: bool = False
    fixed: list[Refund] = field(default_factory=list)  # what --fix restored first
    left_alone: list[str] = field(default_factory=list)  # overdue, but other problems too

    @property
    def clean(self) -> bool:
        return not self.problems


def reconcile(deps: Deps, grace_seconds: float = DEFAULT_GRACE_SECONDS,
              max_problems: int | None = None) -> Report:
    """Check the books in one consistent snapshot; change nothing. At most
    ``max_problems`` (default MAX_PROBLEMS) rows per check family, else ``truncated``."""
    limit = max_problems or MAX_PROBLEMS
    started = time.perf_counter()
    with unit_of_work(deps.session_factory) as session:
        # One snapshot for every statement, read-only; lift the API's per-statement
        # timeout, which is sized for single-row transactions, not for full scans.
        session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
        session.execute(text("SET TRANSACTION READ ONLY"))
        session.execute(text("SET LOCAL statement_timeout = 0"))
        # JIT compiling these plans costs more than it saves below tens of millions of rows;
        # hashing a million ledger rows in memory needs more than the default 4 MB.
        session.execute(text("SET LOCAL jit = off"))
        session.execute(text("SET LOCAL work_mem = '128MB'"))
        accounts, tokens, ledger_rows, now = session.execute(text(SIZES)).one()
        bound = {"max_problems": limit}
        account_rows = session.execute(text(ACCOUNT_CHECKS), bound).all()
        request_rows = session.execute(text(REQUEST_CHECKS), bound).all()
        for name in SCAN_SETTINGS:
            session.execute(text(f"SET LOCAL {name} = off"))
        token_rows = session.execute(
            text(LIFECYCLE_CHECKS), {**bound, "grace": float(grace_seconds)}
        ).all()
        for name in SCAN_SETTINGS:
            session.execute(text(f"SET LOCAL {name} = on"))
        gone = list({r.token_id for r in token_rows if r.user_id is None})
        owners: dict[uuid.UUID, str] = (
            {r[0]: r[1] for r in session.execute(text(OWNERS), {"ids": gone})} if gone
            else {}
        )
    problems = [
        Problem(r.kind, r.user_id, None, {
            "balance": r.balance, "ledger_sum": int(r.ledger_sum), "credits": int(r.credits),
            "active_points": int(r.active), "redeemed_points": int(r.redeemed),
        })
        for r in account_rows
    ] + [
        Problem(r.kind, r.user_id or owners.get(r.token_id), r.token_id, _token_details(r, now))
        for r in token_rows
    ] + [_request_problem(r) for r in request_rows]
    return Report(
        problems=problems,
        accounts=accounts,
        tokens=tokens,
        ledger_rows=ledger_rows,
        checked_at=now,
        grace_seconds=grace_seconds,
        elapsed_ms=(time.perf_counter() - started) * 1000,
        truncated=limit in (
            len({r.user_id for r in account_rows}), len({r.token_id for r in token_rows}),
            len(request_rows),
        ),
    )


def _request_problem(r: Any) -> Problem:
    details: dict[str, Any] = {
        "merchant_id": r.merchant_id, "points": int(r.points),
        "token_status": r.status or "none",
    }
    if r.status is not None:
        details["token_merchant_id"] = r.token_merchant_id
        details["token_user_id"] = r.token_user_id
        details["token_points"] = int(r.token_points)
    return Problem(ORPHAN_REQUEST, r.user_id, r.token_id, details)


def _token_details(r: Any, now: datetime) -> dict[str, Any]:
    details: dict[str, Any] = {
        "status": r.status or "deleted", "debits": r.debits, "refunds": r.refunds,
        "debited": int(r.debited), "refunded": int(r.refunded),
    }
    if r.points is not None:
        details["points"] = int(r.points)
    if r.kind == OVERDUE:
        details["expires_at"] = r.expires_at.isoformat()
        details["overdue_seconds"] = round((now - r.expires_at).total_seconds(), 3)
    if r.kind == "restored_token_redeemed":
        details["exchange_request"] = True
    if r.kind == "redeemed_without_request":
        details["redeemed_at"] = r.redeemed_at.isoformat()
    return details


def reconcile_and_fix(deps: Deps, grace_seconds: float = DEFAULT_GRACE_SECONDS) -> Report:
    """Restore what the sweep would (expired active tokens, each once, through the sweep
    service), then check again. Nothing else is ever changed: a wrong balance or a broken
    ledger needs a person, and the report says where. An account that has other problems
    too is left alone (``left_alone``): refunding into books already known to be wrong
    would only blur what happened."""
    before = reconcile(deps, grace_seconds)
    if before.truncated:
        # The report stops at MAX_PROBLEMS rows in no particular order: an account with
        # other problems may be past the cut, and refunding into it would break the rule
        # below. Which accounts to leave alone must come from every problem.
        before = reconcile(deps, grace_seconds, max_problems=UNBOUNDED)
    overdue = {p.user_id for p in before.problems if p.kind == OVERDUE and p.user_id}
    broken = {p.user_id for p in before.problems if p.kind != OVERDUE and p.user_id}
    fixed: list[Refund] = []
    if overdue and not broken:
        fixed = sweep_all(deps)
    else:
        for user_id in sorted(overdue - broken):  # a few users at most; each set-based
            one_batch = partial(sweep, deps, user_id=user_id, limit=SWEEP_BATCH)
            for batch in until_short(one_batch, SWEEP_BATCH):
                fixed.extend(batch)
    after = reconcile(deps, grace_seconds)
    return replace(after, fixed=fixed, left_alone=sorted(overdue & broken))
