"""``exchange-tokens reconcile``: clean books exit 0; each kind of corruption, injected by
SQL behind the services' back, exits 1 naming the account or token and the problem;
``--fix`` restores only what the sweep would, and never touches anything else."""

from __future__ import annotations

import json
import threading
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import text

from cli import main
from schemas.events import TokenRedeemed
from shared import services
from shared.bootstrap import Container
from shared.services.deps import Deps
from shared.services.reconcile import reconcile
from shared.services.views import TokenView
from shared.settings import Settings
from tests.integration.reconcile.generated_books import LEDGER_ROWS_PER_USER, generate_books
from tests.support.clock import FixedClock
from tests.support.planted import plant_exchange_request
from tests.support.service_env import service_env

pytestmark = pytest.mark.timeout(120)


def run(settings: Settings, books: Container, *args: str) -> Result:
    env = service_env(settings, DATABASE_URL=books.settings.database_url)
    return CliRunner().invoke(main, ["reconcile", *args], env=env)


def problems(result: Result) -> set[tuple[str, str | None, str | None]]:
    """(kind, user_id, token_id) of each problem in a --json report."""
    report = json.loads(result.stdout)
    return {(p["kind"], p["user_id"], p["token_id"]) for p in report["problems"]}


def sql(books: Container, statement: str, **params: object) -> None:
    with books.engine.begin() as conn:
        conn.execute(text(statement), params)


def past(deps: Deps, ago: timedelta) -> Deps:
    """Services on a clock set back by ``ago``: what they issue is already old."""
    return replace(deps, clock=FixedClock(datetime.now(UTC) - ago), max_active_tokens=100)


def lived_books(books: Container) -> dict[str, TokenView]:
    """Books a few days of real use would leave: every kind of token history."""
    deps = books.deps
    services.credit(deps, "alice", 100, "welcome")
    active = services.issue(deps, "alice", 10).token
    redeemed = services.issue(deps, "alice", 20, "coffee").token
    spent = services.redeem(deps, redeemed.code, "shop")
    services.create_exchange_request(deps, TokenRedeemed(
        token_id=spent.id, user_id="alice", points=20, merchant_id="shop",
        reward="coffee", redeemed_at=spent.redeemed_at,
    ))
    cancelled = services.issue(deps, "alice", 5).token
    services.cancel(deps, "alice", cancelled.id)
    old = past(deps, timedelta(hours=2))
    expired = services.issue(old, "alice", 7).token
    assert services.expire(deps, expired.id).restored is not None
    services.credit(deps, "bob", 50)
    bobs = services.issue(deps, "bob", 50).token
    services.credit(deps, "carol", 30)
    return {"active": active, "redeemed": redeemed, "cancelled": cancelled,
            "expired": expired, "bobs": bobs}


def test_clean_books_exit_0_and_say_so(settings, books):
    lived_books(books)
    result = run(settings, books)
    assert result.exit_code == 0, result.output
    assert result.stdout.strip().endswith(": clean")
    assert "checked 3 account(s), 3 token(s), 10 ledger row(s)" in result.stdout


def test_clean_books_in_json(settings, books):
    lived_books(books)
    result = run(settings, books, "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["clean"] is True and report["problems"] == []
    assert (report["accounts"], report["tokens"], report["ledger_rows"]) == (3, 3, 10)
    assert report["grace_seconds"] == 60


def test_empty_books_are_clean(settings, books):
    assert run(settings, books).exit_code == 0


def test_a_balance_changed_behind_the_ledgers_back_is_reported(settings, books):
    lived_books(books)
    sql(books, "UPDATE accounts SET balance = balance + 7 WHERE user_id = 'alice'")
    result = run(settings, books)
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    assert any(line.split()[:2] == ["balance_differs_from_ledger", "alice"] for line in lines)
    assert "balance=77 ledger_sum=70" in result.stdout
    assert lines[-1].endswith(": 2 problem(s)")  # and points_not_conserved, for alice only
    assert problems(run(settings, books, "--json")) == {
        ("balance_differs_from_ledger", "alice", None),
        ("points_not_conserved", "alice", None),
    }


def test_a_ledger_row_without_its_balance_change_is_reported(settings, books):
    lived_books(books)
    sql(books, "INSERT INTO ledger (user_id, amount, kind, reason)"
               " VALUES ('carol', 5, 'credit', 'bogus')")
    result = run(settings, books, "--json")
    assert result.exit_code == 1
    assert ("balance_differs_from_ledger", "carol", None) in problems(result)


def test_an_account_with_a_ledger_but_no_account_row_is_reported(settings, books):
    lived_books(books)
    sql(books, "INSERT INTO ledger (user_id, amount, kind) VALUES ('ghost', 9, 'credit')")
    result = run(settings, books, "--json")
    assert result.exit_code == 1
    assert ("balance_differs_from_ledger", "ghost", None) in problems(result)


def test_a_token_without_a_debit_is_reported(settings, books):
    lived_books(books)
    token_id = uuid.uuid4()
    sql(books, "INSERT INTO exchange_tokens (id, code, user_id, points, status, created_at,"
               " expires_at) VALUES (:id, 'free-points', 'carol', 4, 'active', now(),"
               " now() + interval '3 minutes')", id=token_id)
    result = run(settings, books, "--json")
    assert result.exit_code == 1
    assert problems(result) == {
        ("live_token_debit_mismatch", "carol", str(token_id)),
        ("points_not_conserved", "carol", None),  # 4 points out of nowhere
    }


def test_a_token_deleted_without_a_refund_is_reported(settings, books):
    tokens = lived_books(books)
    sql(books, "DELETE FROM exchange_tokens WHERE id = :id", id=tokens["bobs"].id)
    result = run(settings, books, "--json")
    assert result.exit_code == 1
    assert problems(result) == {
        ("debit_without_token", "bob", str(tokens["bobs"].id)),  # 50 points vanished
        ("points_not_conserved", "bob", None),
    }


def test_a_debit_erased_from_history_is_reported(settings, books):
    """Someone bypassed the append-only trigger: the reconciler still sees it."""
    tokens = lived_books(books)
    with books.engine.begin() as conn:
        conn.execute(text("ALTER TABLE ledger DISABLE TRIGGER ledger_append_only"))
        conn.execute(text("DELETE FROM ledger WHERE token_id = :id AND kind = 'debit'"),
                     {"id": tokens["active"].id})
        conn.execute(text("ALTER TABLE ledger ENABLE TRIGGER ledger_append_only"))
    result = run(settings, books, "--json")
    assert result.exit_code == 1
    assert problems(result) == {
        ("live_token_debit_mismatch", "alice", str(tokens["active"].id)),
        ("balance_differs_from_ledger", "alice", None),
    }


def test_a_refund_for_a_live_token_is_reported(settings, books):
    tokens = lived_books(books)
    sql(books, "INSERT INTO ledger (user_id, amount, kind, token_id) VALUES"
               " ('alice', 20, 'refund', :id)", id=tokens["redeemed"].id)
    sql(books, "UPDATE accounts SET balance = balance + 20 WHERE user_id = 'alice'")
    result = run(settings, books, "--json")
    assert result.exit_code == 1
    redeemed = str(tokens["redeemed"].id)
    assert problems(result) == {
        ("restored_token_still_live", "alice", redeemed),
        ("restored_token_redeemed", "alice", redeemed),  # it has an exchange request
        ("points_not_conserved", "alice", None),  # redeemed and restored: 20 points twice
    }


def test_a_second_refund_of_one_token_is_reported(settings, books):
    tokens = lived_books(books)
    with books.engine.begin() as conn:
        conn.execute(text("ALTER TABLE ledger DROP CONSTRAINT ledger_token_kind"))
    try:
        sql(books, "INSERT INTO ledger (user_id, amount, kind, token_id) VALUES"
                   " ('alice', 7, 'refund', :id)", id=tokens["expired"].id)
        sql(books, "UPDATE accounts SET balance = balance + 7 WHERE user_id = 'alice'")
        result = run(settings, books, "--json")
        assert result.exit_code == 1
        assert problems(result) == {
            ("multiple_refunds", "alice", str(tokens["expired"].id)),
            ("points_not_conserved", "alice", None),
        }
    finally:
        with books.engine.begin() as conn:
            conn.execute(text("TRUNCATE ledger"))
            conn.execute(text("ALTER TABLE ledger ADD CONSTRAINT ledger_token_kind"
                              " UNIQUE (token_id, kind)"))


def test_a_refund_of_another_amount_than_the_debit_is_reported(settings, books):
    deps = books.deps
    services.credit(deps, "dora", 10)
    token = services.issue(deps, "dora", 10).token
    # A restore done by hand, wrongly: token deleted, 7 refunded instead of 10.
    sql(books, "DELETE FROM exchange_tokens WHERE id = :id", id=token.id)
    sql(books, "INSERT INTO ledger (user_id, amount, kind, token_id) VALUES"
               " ('dora', 7, 'refund', :id)", id=token.id)
    sql(books, "UPDATE accounts SET balance = balance + 7 WHERE user_id = 'dora'")
    result = run(settings, books, "--json")
    assert result.exit_code == 1
    assert problems(result) == {
        ("restored_token_debit_mismatch", "dora", str(token.id)),
        ("points_not_conserved", "dora", None),
    }


def test_a_restored_token_that_also_became_an_exchange_request_is_reported(settings, books):
    tokens = lived_books(books)
    cancelled = tokens["cancelled"]
    plant_exchange_request(books.engine, token_id=cancelled.id, user_id="alice", points=5,
                           merchant_id="shop")
    result = run(settings, books, "--json")
    assert result.exit_code == 1
    assert problems(result) == {("restored_token_redeemed", "alice", str(cancelled.id)),
                                ("request_without_redeemed_token", "alice", str(cancelled.id))}


def test_a_redeemed_token_still_without_its_exchange_request_is_reported(settings, books):
    """A TokenRedeemed stuck (unsent, or parked as a dead letter) leaves the merchant's
    exchange request missing; nothing else notices it."""
    lived_books(books)  # alice's redeemed token has its request: not reported
    services.credit(books.deps, "carol", 5)
    late = services.issue(books.deps, "carol", 5).token
    services.redeem(books.deps, late.code, "shop")
    assert run(settings, books).exit_code == 0  # just redeemed: its event is on its way
    sql(books, "UPDATE exchange_tokens SET redeemed_at = now() - interval '5 minutes'"
        " WHERE id = :id", id=late.id)
    result = run(settings, books, "--json")
    assert result.exit_code == 1
    assert problems(result) == {("redeemed_without_request", "carol", str(late.id))}
    assert run(settings, books, "--grace", "3600").exit_code == 0


def test_an_active_token_overdue_beyond_the_grace_period_is_reported(settings, books):
    lived_books(books)
    lost = services.issue(past(books.deps, timedelta(minutes=10)), "carol", 3).token
    result = run(settings, books)
    assert result.exit_code == 1
    row = next(line for line in result.stdout.splitlines()
               if line.startswith("overdue_active_token"))
    assert row.split()[1:3] == ["carol", str(lost.id)]
    assert "overdue_seconds=" in row
    # Ops may widen the grace period: 10 minutes late is then not (yet) a problem.
    assert run(settings, books, "--grace", "3600").exit_code == 0


def test_a_token_expired_within_the_grace_period_is_not_a_problem(settings, books):
    lived_books(books)
    # Expired 10 s ago: its timer is due now; the workers have 60 s before it is a problem.
    services.issue(past(books.deps, timedelta(seconds=190)), "carol", 3)
    assert run(settings, books).exit_code == 0
    assert run(settings, books, "--grace", "5").exit_code == 1


def test_fix_restores_overdue_tokens_and_the_next_run_is_clean(settings, books):
    lived_books(books)
    old = past(books.deps, timedelta(minutes=10))
    lost = [services.issue(old, "carol", p).token for p in (3, 4)]
    result = run(settings, books, "--fix")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[0] == "fix: restored 2 expired token(s), 7 point(s)"
    assert result.stdout.strip().endswith(": clean")
    assert services.balance(books.deps, "carol") == 30
    for t in lost:
        assert services.expire(books.deps, t.id).restored is None  # restored once, for good
    again = run(settings, books, "--json")
    assert again.exit_code == 0 and json.loads(again.stdout)["clean"] is True


def test_fix_leaves_a_broken_account_alone_even_past_a_truncated_report(books, monkeypatch):
    """The report keeps MAX_PROBLEMS rows per family, in no particular order. --fix took
    'which accounts are broken' from it: with the broken account's row past the cut it
    refunded into that account, and with an overdue row past it, left that one unfixed."""
    from shared.services import reconcile as module

    tokens = lived_books(books)
    old = past(books.deps, timedelta(minutes=10))
    users = [f"late-{i}" for i in range(5)]
    for u in [*users, "alice"]:
        services.credit(books.deps, u, 3)
    late = {u: services.issue(old, u, 3).token for u in users}
    alices = services.issue(old, "alice", 3).token
    plant_exchange_request(books.engine, token_id=tokens["cancelled"].id,  # broken books
                           user_id="alice", points=5, merchant_id="shop")
    monkeypatch.setattr(module, "MAX_PROBLEMS", 1)
    assert module.reconcile(books.deps).truncated

    report = module.reconcile_and_fix(books.deps)

    assert {r.token_id for r in report.fixed} == {t.id for t in late.values()}
    assert report.left_alone == ["alice"]
    assert services.expire(books.deps, alices.id).restored is not None  # was left to a person


def test_fix_never_changes_a_wrong_balance(settings, books):
    lived_books(books)
    old = past(books.deps, timedelta(minutes=10))
    carols = services.issue(old, "carol", 3).token
    services.credit(books.deps, "erin", 8)
    erins = services.issue(old, "erin", 8).token
    sql(books, "UPDATE accounts SET balance = 1000 WHERE user_id = 'carol'")
    with books.engine.connect() as conn:
        ledger_before = conn.execute(text("SELECT count(*) FROM ledger")).scalar()

    result = run(settings, books, "--fix", "--json")

    assert result.exit_code == 1
    report = json.loads(result.stdout)
    # Erin's lost timer is restored; Carol's books are wrong, so nothing of hers is touched.
    assert [f["token_id"] for f in report["fixed"]] == [str(erins.id)]
    assert report["left_alone"] == ["carol"]
    assert problems(result) == {
        ("balance_differs_from_ledger", "carol", None),
        ("points_not_conserved", "carol", None),
        ("overdue_active_token", "carol", str(carols.id)),
    }
    assert services.balance(books.deps, "carol") == 1000
    with books.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM ledger")).scalar() == ledger_before + 1


def test_checking_changes_nothing(settings, books):
    lived_books(books)
    services.issue(past(books.deps, timedelta(minutes=10)), "carol", 3)
    sql(books, "UPDATE accounts SET balance = 1 WHERE user_id = 'bob'")
    snapshot = "SELECT md5(string_agg(t::text, '|' ORDER BY t::text)) FROM {} t"
    tables = ("accounts", "ledger", "exchange_tokens", "exchange_requests", "outbox")

    def fingerprint() -> list[str]:
        with books.engine.connect() as conn:
            return [conn.execute(text(snapshot.format(name))).scalar() for name in tables]

    before = fingerprint()
    assert run(settings, books).exit_code == 1
    assert run(settings, books, "--json").exit_code == 1
    assert fingerprint() == before


def test_books_in_motion_always_reconcile_clean(books):
    """While users issue, redeem and cancel in other threads, every check reads one
    consistent snapshot: a healthy system never reports a false problem."""
    deps = replace(books.deps, max_active_tokens=1000)
    users = [f"busy-{i}" for i in range(3)]
    for u in users:
        services.credit(deps, u, 100_000)
    stop = threading.Event()
    errors: list[BaseException] = []

    def churn(user: str) -> None:
        try:
            while not stop.is_set():
                token = services.issue(deps, user, 3).token
                if token.code[0] < "M":
                    services.redeem(deps, token.code, "shop")
                else:
                    services.cancel(deps, user, token.id)
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            errors.append(exc)

    threads = [threading.Thread(target=churn, args=(u,)) for u in users]
    for t in threads:
        t.start()
    try:
        reports = [reconcile(deps) for _ in range(15)]
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert errors == []
    assert [r.problems for r in reports] == [[]] * len(reports)
    assert reports[-1].ledger_rows > reports[0].ledger_rows  # the books really moved


def test_generated_books_at_scale_are_clean_and_a_planted_error_is_found(settings, books):
    users = 2_000
    with books.engine.begin() as conn:
        generate_books(conn, users)
    with books.engine.connect() as conn:
        conn.execution_options(isolation_level="AUTOCOMMIT").execute(text("ANALYZE"))
    clean = reconcile(books.deps)
    assert clean.clean, clean.problems[:5]
    assert clean.ledger_rows == users * LEDGER_ROWS_PER_USER
    sql(books, "UPDATE accounts SET balance = balance - 1 WHERE user_id = 'gen-1234'")
    found = reconcile(books.deps)
    assert {(p.kind, p.user_id) for p in found.problems} == {
        ("balance_differs_from_ledger", "gen-1234"), ("points_not_conserved", "gen-1234"),
    }


def test_an_unreachable_database_exits_2_not_1(settings):
    """Exit 1 means 'the books have problems': a cron job must tell an outage apart."""
    env = service_env(settings, DATABASE_URL="postgresql://postgres@127.0.0.1:1/nowhere")
    result = CliRunner().invoke(main, ["reconcile"], env=env)
    assert result.exit_code == 2, result.output
    assert "database unavailable" in result.output and "Traceback" not in result.output
