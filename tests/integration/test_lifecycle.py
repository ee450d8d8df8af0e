"""The token lifecycle on real PostgreSQL, one behaviour per test."""

from __future__ import annotations

import json
import uuid

import pytest
from sqlalchemy import select, text

from shared import services
from shared.errors import (
    InsufficientPoints,
    TokenAlreadyRedeemed,
    TokenExpired,
    TokenNotFound,
    TooManyActiveTokens,
)
from shared.persistence.tables import LedgerEntry, OutboxMessage, Token
from shared.services.expire import expire_due


def ledger_sum(deps, user):
    with deps.session_factory() as s:
        return s.execute(
            text("SELECT coalesce(sum(amount), 0) FROM ledger WHERE user_id = :u"), {"u": user}
        ).scalar_one()


def outbox_types(deps, token_id):
    with deps.session_factory() as s:
        return [
            r.event_type
            for r in s.execute(
                select(OutboxMessage.event_type)
                .where(OutboxMessage.payload["token_id"].astext == str(token_id))
                .order_by(OutboxMessage.id)
            )
        ]


def test_credit_creates_the_account_and_a_ledger_row(deps, user):
    assert services.balance(deps, user) == 0
    assert services.credit(deps, user, 100, "welcome") == 100
    assert services.credit(deps, user, 5) == 105
    assert ledger_sum(deps, user) == 105


def test_issue_debits_at_once_and_records_token_issued(deps, user):
    services.credit(deps, user, 100)
    issued = services.issue(deps, user, 30, "coffee")
    assert issued.balance == 70
    assert issued.token.status == "active"
    assert issued.token.expires_in in (179, 180)
    assert len(issued.token.code) >= 22
    assert ledger_sum(deps, user) == 70
    assert outbox_types(deps, issued.token.id) == ["TokenIssued"]


def test_issue_beyond_the_balance_is_refused_and_moves_nothing(deps, user):
    services.credit(deps, user, 10)
    with pytest.raises(InsufficientPoints):
        services.issue(deps, user, 11)
    assert services.balance(deps, user) == 10


def test_a_new_user_cannot_issue(deps, user):
    with pytest.raises(InsufficientPoints):
        services.issue(deps, user, 1)


def test_redeem_uses_the_token_up(deps, user, merchant):
    services.credit(deps, user, 10)
    token = services.issue(deps, user, 10).token
    redeemed = services.redeem(deps, token.code, merchant)
    assert redeemed.status == "redeemed" and redeemed.merchant_id == merchant
    with pytest.raises(TokenAlreadyRedeemed):
        services.redeem(deps, token.code, merchant)
    assert outbox_types(deps, token.id) == ["TokenIssued", "TokenRedeemed"]


def test_redeem_of_an_unknown_code_is_not_found(deps, merchant):
    with pytest.raises(TokenNotFound):
        services.redeem(deps, "no-such-code", merchant)


def test_expiry_restores_once_and_deletes_the_token(fixed_deps, clock, user, merchant):
    deps = fixed_deps
    services.credit(deps, user, 50)
    token = services.issue(deps, user, 20).token
    assert services.expire(deps, token.id).not_due_until == token.expires_at
    clock.advance(180)
    outcome = services.expire(deps, token.id)
    assert outcome.restored is not None and outcome.restored.points == 20
    assert services.expire(deps, token.id).restored is None  # a duplicate changes nothing
    assert services.balance(deps, user) == 50
    with deps.session_factory() as s:
        assert s.get(Token, token.id) is None
    # Its id and its code still answer "expired, 20 points restored".
    with pytest.raises(TokenExpired) as by_id:
        services.get_token(deps, user, token.id)
    assert by_id.value.details == {"points_restored": 20, "reason": "expired"}
    with pytest.raises(TokenExpired):
        services.redeem(deps, token.code, merchant)
    assert outbox_types(deps, token.id) == ["TokenIssued", "TokenExpired"]


def test_redeem_at_the_last_instant_wins_and_one_after_loses(fixed_deps, clock, user, merchant):
    deps = fixed_deps
    services.credit(deps, user, 2)
    first = services.issue(deps, user, 1).token
    second = services.issue(deps, user, 1).token
    clock.advance(179.999999)
    assert services.redeem(deps, first.code, merchant).status == "redeemed"
    clock.advance(0.000001)  # now == expires_at: expired
    with pytest.raises(TokenExpired) as exc:
        services.redeem(deps, second.code, merchant)
    assert exc.value.details["points_restored"] == 1
    assert services.balance(deps, user) == 1  # refunded right there by the redeem


def test_get_token_past_expiry_answers_gone_without_changing_anything(fixed_deps, clock, user):
    deps = fixed_deps
    services.credit(deps, user, 5)
    token = services.issue(deps, user, 5).token
    clock.advance(181)
    with pytest.raises(TokenExpired):
        services.get_token(deps, user, token.id)
    assert services.balance(deps, user) == 0  # a GET changes nothing
    with deps.session_factory() as s:
        assert s.get(Token, token.id) is not None


def test_another_users_token_is_not_found(deps, user):
    services.credit(deps, user, 5)
    token = services.issue(deps, user, 5).token
    with pytest.raises(TokenNotFound):
        services.get_token(deps, "someone-else", token.id)
    with pytest.raises(TokenNotFound):
        services.cancel(deps, "someone-else", token.id)


def test_cancel_restores_at_once_and_then_answers_gone(deps, user):
    services.credit(deps, user, 40)
    token = services.issue(deps, user, 15).token
    cancelled = services.cancel(deps, user, token.id)
    assert (cancelled.points_restored, cancelled.balance) == (15, 40)
    with pytest.raises(TokenExpired) as exc:
        services.cancel(deps, user, token.id)
    assert exc.value.details == {"points_restored": 15, "reason": "cancelled"}
    assert outbox_types(deps, token.id) == ["TokenIssued", "TokenCancelled"]


def test_cancel_of_a_redeemed_token_is_refused(deps, user, merchant):
    services.credit(deps, user, 5)
    token = services.issue(deps, user, 5).token
    services.redeem(deps, token.code, merchant)
    with pytest.raises(TokenAlreadyRedeemed):
        services.cancel(deps, user, token.id)
    assert services.balance(deps, user) == 0


def test_status_sweeps_first_and_lists_in_order(fixed_deps, clock, user, merchant):
    deps = fixed_deps
    services.credit(deps, user, 100)
    old = services.issue(deps, user, 10).token
    clock.advance(100)
    later = services.issue(deps, user, 20).token
    soon = services.issue(deps, user, 5).token
    services.redeem(deps, soon.code, merchant)
    clock.advance(90)  # `old` is now expired, `later` is not
    status = services.status(deps, user)
    assert [t.id for t in status.active] == [later.id]
    assert [t.id for t in status.redeemed] == [soon.id]
    assert [(r.token_id, r.points, r.reason) for r in status.restored] == [(old.id, 10, "expired")]
    assert status.balance == 100 - 20 - 5


def test_issue_sweeps_the_users_expired_tokens_even_when_refused(fixed_deps, clock, user):
    deps = fixed_deps
    services.credit(deps, user, 10)
    services.issue(deps, user, 10)
    clock.advance(200)
    with pytest.raises(InsufficientPoints):
        services.issue(deps, user, 11)
    assert services.balance(deps, user) == 10  # the sweep committed despite the refusal


def test_redeeming_a_restored_tokens_code_sweeps_its_owner_too(fixed_deps, clock, user,
                                                               merchant):
    """Validating a code sweeps its owner's expired tokens, also when the code is that of
    a token already restored (its owner is known from the refund); it did not, and the
    ledger state machine found the difference."""
    services.credit(fixed_deps, user, 10)
    cancelled = services.issue(fixed_deps, user, 2).token
    services.cancel(fixed_deps, user, cancelled.id)
    expired = services.issue(fixed_deps, user, 3).token
    clock.advance(181)
    with pytest.raises(TokenExpired) as gone:
        services.redeem(fixed_deps, cancelled.code, merchant)
    assert gone.value.details == {"points_restored": 2, "reason": "cancelled"}
    assert services.balance(fixed_deps, user) == 10  # the expired one came back with it
    assert services.expire(fixed_deps, expired.id).restored is None  # restored once


def test_too_many_active_tokens(container, user):
    from dataclasses import replace

    deps = replace(container.deps, max_active_tokens=2)
    services.credit(deps, user, 10)
    services.issue(deps, user, 1)
    services.issue(deps, user, 1)
    with pytest.raises(TooManyActiveTokens):
        services.issue(deps, user, 1)
    assert services.balance(deps, user) == 8


def test_the_ledger_refuses_updates_and_deletes(deps, user):
    services.credit(deps, user, 1)
    with deps.session_factory() as s, pytest.raises(Exception, match="append-only"):
        s.execute(text("DELETE FROM ledger WHERE user_id = :u"), {"u": user})


def test_a_second_refund_row_for_one_token_is_refused_by_the_database(deps, user):
    token_id = uuid.uuid4()
    with deps.session_factory() as s, pytest.raises(Exception, match="ledger_token_kind"):
        for _ in range(2):
            s.add(LedgerEntry(user_id=user, amount=1, kind="refund", token_id=token_id))
            s.flush()


def test_expire_due_restores_only_the_due_tokens_of_a_batch_once(fixed_deps, clock, user):
    deps = fixed_deps
    services.credit(deps, user, 30)
    first = services.issue(deps, user, 10).token
    clock.advance(100)
    second = services.issue(deps, user, 20).token
    clock.advance(80)  # first is due, second has 100 s left
    restored = expire_due(deps, [first.id, second.id, uuid.uuid4()]).restored
    assert [(r.token_id, r.points) for r in restored] == [(first.id, 10)]
    assert expire_due(deps, [first.id, second.id]).restored == []  # a redelivered batch
    assert expire_due(deps, []).restored == []
    assert services.balance(deps, user) == 10


def test_sweep_of_one_user_leaves_other_users_alone(fixed_deps, clock, user):
    deps = fixed_deps
    other = f"{user}-other"
    for u in (user, other):
        services.credit(deps, u, 5)
        services.issue(deps, u, 5)
    clock.advance(181)
    assert [r.user_id for r in services.sweep(deps, user_id=user)] == [user]
    assert services.balance(deps, user) == 5 and services.balance(deps, other) == 0


def test_sweep_dry_run_reports_and_changes_nothing(fixed_deps, clock, user):
    deps = fixed_deps
    services.credit(deps, user, 9)
    token = services.issue(deps, user, 9).token
    clock.advance(180)
    seen = services.sweep(deps, user_id=user, dry_run=True)
    assert [(r.token_id, r.points, r.balance) for r in seen] == [(token.id, 9, None)]
    assert services.balance(deps, user) == 0
    assert outbox_types(deps, token.id) == ["TokenIssued"]


def test_sweep_respects_its_limit_and_the_next_call_takes_the_rest(fixed_deps, clock, user):
    deps = fixed_deps
    services.credit(deps, user, 5)
    tokens = []
    for _ in range(5):  # distinct expiries, a second apart, so "oldest first" is defined
        tokens.append(services.issue(deps, user, 1).token)
        clock.advance(1)
    clock.advance(180)
    first = services.sweep(deps, user_id=user, limit=3)
    rest = services.sweep(deps, user_id=user, limit=3)
    assert len(first) == 3 and len(rest) == 2
    assert {r.token_id for r in first + rest} == {t.id for t in tokens}
    # Oldest expiry first: the tokens most overdue come back first.
    assert {r.token_id for r in first} == {t.id for t in tokens[:3]}


def test_every_outbox_event_is_a_valid_event_of_the_schema(deps, user, merchant):
    from schemas.events import parse_event

    services.credit(deps, user, 3)
    kept = services.issue(deps, user, 1).token
    services.redeem(deps, kept.code, merchant)
    dropped = services.issue(deps, user, 1).token
    services.cancel(deps, user, dropped.id)
    with deps.session_factory() as s:
        rows = s.execute(
            select(OutboxMessage.event_type, OutboxMessage.payload, OutboxMessage.event_id)
            .where(OutboxMessage.payload["user_id"].astext == user)
            .order_by(OutboxMessage.id)
        ).all()
    events = [parse_event(json.dumps(r.payload)) for r in rows]
    assert [e.type for e in events] == [r.event_type for r in rows] == [
        "TokenIssued", "TokenRedeemed", "TokenIssued", "TokenCancelled",
    ]
    assert [e.event_id for e in events] == [r.event_id for r in rows]
    assert all(e.user_id == user and e.points == 1 for e in events)


def test_a_duplicated_redemption_event_makes_one_exchange_request(deps, user, merchant):
    from schemas.events import TokenRedeemed

    services.credit(deps, user, 4)
    token = services.redeem(deps, services.issue(deps, user, 4, "tea").token.code, merchant)
    event = TokenRedeemed(token_id=token.id, user_id=user, points=4, merchant_id=merchant,
                          reward="tea", redeemed_at=token.redeemed_at)
    assert services.create_exchange_request(deps, event) is True
    assert services.create_exchange_request(deps, event) is False  # redelivered
    requests = services.list_exchange_requests(deps, user)
    assert [(r.token_id, r.points, r.reward, r.merchant_id) for r in requests] == [
        (token.id, 4, "tea", merchant)
    ]


def test_status_keeps_only_the_20_latest_redeemed_and_restored(fixed_deps, clock, user, merchant):
    deps = fixed_deps
    services.credit(deps, user, 50)
    for _ in range(22):
        services.redeem(deps, services.issue(deps, user, 1).token.code, merchant)
        clock.advance(1)
    for _ in range(22):
        services.cancel(deps, user, services.issue(deps, user, 1).token.id)
        clock.advance(1)
    status = services.status(deps, user)
    assert len(status.redeemed) == 20 and len(status.restored) == 20
    assert [t.redeemed_at for t in status.redeemed] == sorted(
        (t.redeemed_at for t in status.redeemed), reverse=True
    )
    assert [r.restored_at for r in status.restored] == sorted(
        (r.restored_at for r in status.restored), reverse=True
    )
    assert {r.reason for r in status.restored} == {"cancelled"}
    assert status.balance == 50 - 22


def test_each_action_logs_one_line_with_token_user_and_points(deps, user, merchant, caplog):
    caplog.set_level("INFO", logger="exchange_tokens")
    services.credit(deps, user, 2)
    kept = services.issue(deps, user, 1).token
    services.redeem(deps, kept.code, merchant)
    dropped = services.issue(deps, user, 1).token
    services.cancel(deps, user, dropped.id)
    lines = [(r.getMessage(), getattr(r, "token_id", None), getattr(r, "points", None))
             for r in caplog.records if getattr(r, "user_id", None) == user
             and getattr(r, "token_id", None)]
    assert lines == [
        ("token created", str(kept.id), 1),
        ("token redeemed", str(kept.id), 1),
        ("token created", str(dropped.id), 1),
        ("points restored", str(dropped.id), 1),
        ("cancelled token deleted", str(dropped.id), 1),
    ]
