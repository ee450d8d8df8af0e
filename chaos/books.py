"""The books after a fault, classified as the RabbitMQ team's Jepsen suite classifies
messages: each outcome ok, lost or duplicated.

* refunds: a token that left without being redeemed (expired or cancelled) has exactly
  one refund; none is lost (an active token long past its expiry) or doubled;
* exchange requests: each redeemed token has exactly one; none lost, none doubled;
* every token issued with a 201 exists or was refunded (a confirmed issue never lost),
  every redeem answered 200 stayed redeemed, every cancel answered 200 was refunded;
* points are conserved per account: credits = balance + active + redeemed, and the
  balance equals the ledger's sum;
* the dead-letter queue holds nothing unexplained.

``settled`` is false while a check runs mid-load: tokens whose expiry is less than
``grace`` seconds old, and redeems younger than that, are then "pending", not lost.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import Engine, text

from chaos.load import Outcomes


@dataclass
class Verdict:
    refunds: dict[str, int] = field(default_factory=dict)  # ok / lost / duplicated / pending
    exchange_requests: dict[str, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def check(engine: Engine, outcomes: Outcomes, grace_s: float, dead_letters: int) -> Verdict:
    verdict = Verdict()
    # The answers first, then the database: every answer read here was given before the
    # snapshot, so what it confirmed must be in it.
    with outcomes.lock:
        answers = (list(outcomes.issued), list(outcomes.redeemed), list(outcomes.cancelled))
    # The snapshot of one transaction: the invariants hold at every instant.
    with engine.connect().execution_options(isolation_level="REPEATABLE READ") as conn:
        now = conn.execute(text("SELECT now()")).scalar_one()
        refunds: dict[str, int] = dict(conn.execute(text(
            "SELECT token_id::text, count(*) FROM ledger WHERE kind = 'refund' GROUP BY token_id"
        )).all())
        debits = {r[0] for r in conn.execute(text(
            "SELECT token_id::text FROM ledger WHERE kind = 'debit'")).all()}
        tokens = {r[0]: (r[1], r[2], r[3]) for r in conn.execute(text(
            "SELECT id::text, status, expires_at, redeemed_at FROM exchange_tokens")).all()}
        requests: dict[str, int] = dict(conn.execute(text(
            "SELECT token_id::text, count(*) FROM exchange_requests GROUP BY token_id")).all())
        accounts = conn.execute(text("""
            SELECT a.user_id, a.balance,
              (SELECT coalesce(sum(amount), 0) FROM ledger l WHERE l.user_id = a.user_id),
              (SELECT coalesce(sum(amount), 0) FROM ledger l
                WHERE l.user_id = a.user_id AND kind = 'credit'),
              (SELECT coalesce(sum(points), 0) FROM exchange_tokens t
                WHERE t.user_id = a.user_id AND status IN ('active', 'redeemed'))
            FROM accounts a""")).all()
        conn.rollback()

    _classify_refunds(verdict, now, grace_s, debits, tokens, refunds)
    _classify_requests(verdict, now, grace_s, tokens, requests)
    _check_answers(verdict, answers, tokens, refunds)
    for user, balance, ledger_sum, credits, held in accounts:
        if balance != ledger_sum or credits != balance + held or balance < 0:
            verdict.problems.append(
                f"account {user}: balance {balance}, ledger {ledger_sum}, credits {credits},"
                f" held by tokens {held}")
    if dead_letters:
        verdict.problems.append(f"{dead_letters} message(s) in the dead-letter queue")
    return verdict


def _classify_refunds(verdict: Verdict, now: datetime, grace_s: float, debits: set[str],
                      tokens: dict, refunds: dict[str, int]) -> None:
    counts = {"ok": 0, "lost": 0, "duplicated": 0, "pending": 0}
    for token_id in debits:
        live = tokens.get(token_id)
        n = refunds.get(token_id, 0)
        if n > 1:
            counts["duplicated"] += 1
        elif live is None:
            counts["ok" if n == 1 else "lost"] += 1  # gone without a refund: points lost
        elif n:
            counts["duplicated"] += 1  # refunded and still there (redeemed or active)
        elif live[0] == "active" and (now - live[1]).total_seconds() > grace_s:
            counts["lost"] += 1
        elif live[0] == "active":
            counts["pending"] += 1
        else:
            counts["ok"] += 1  # redeemed, no refund
    verdict.refunds = counts
    if counts["lost"] or counts["duplicated"]:
        verdict.problems.append(f"refunds: {counts}")


def _classify_requests(verdict: Verdict, now: datetime, grace_s: float, tokens: dict,
                       requests: dict[str, int]) -> None:
    counts = {"ok": 0, "lost": 0, "duplicated": 0, "pending": 0}
    for token_id, (status, _expires, redeemed_at) in tokens.items():
        if status != "redeemed":
            continue
        n = requests.get(token_id, 0)
        if n > 1:
            counts["duplicated"] += 1
        elif n == 1:
            counts["ok"] += 1
        elif (now - redeemed_at).total_seconds() > grace_s:
            counts["lost"] += 1
        else:
            counts["pending"] += 1
    orphans = [t for t in requests if t not in tokens or tokens[t][0] != "redeemed"]
    counts["duplicated"] += len(orphans)  # a request for a token not redeemed: paid twice
    verdict.exchange_requests = counts
    if counts["lost"] or counts["duplicated"]:
        verdict.problems.append(f"exchange requests: {counts}")


def _check_answers(verdict: Verdict, answers: tuple[list[str], list[str], list[str]],
                   tokens: dict, refunds: dict[str, int]) -> None:
    issued, redeemed, cancelled = answers
    vanished = [t for t in issued if t not in tokens and t not in refunds]
    if vanished:
        verdict.problems.append(f"{len(vanished)} token(s) answered 201 are nowhere: {vanished[:3]}")
    unredeemed = [t for t in redeemed if tokens.get(t, ("gone",))[0] != "redeemed"]
    if unredeemed:
        verdict.problems.append(f"{len(unredeemed)} redeem(s) answered 200 did not stay: "
                                f"{unredeemed[:3]}")
    uncancelled = [t for t in cancelled if refunds.get(t) != 1]
    if uncancelled:
        verdict.problems.append(f"{len(uncancelled)} cancel(s) answered 200 not refunded once: "
                                f"{uncancelled[:3]}")
