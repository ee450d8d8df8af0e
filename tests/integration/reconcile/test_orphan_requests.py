"""An exchange request that no redeemed token backs is a request from nothing: the
reconciler reports each one, whatever the token's state, and the books are not clean."""

from __future__ import annotations

import json
import uuid

import pytest
from click.testing import CliRunner

from cli import main
from shared import services
from shared.bootstrap import Container
from shared.settings import Settings
from tests.support.planted import plant_exchange_request
from tests.support.service_env import service_env

pytestmark = pytest.mark.timeout(120)


def report(settings: Settings, books: Container) -> tuple[int, dict]:
    env = service_env(settings, DATABASE_URL=books.settings.database_url)
    result = CliRunner().invoke(main, ["reconcile", "--json"], env=env)
    return result.exit_code, json.loads(result.stdout)


def test_every_request_without_its_redeemed_token_is_reported(settings, books):
    deps = books.deps
    services.credit(deps, "alice", 100)
    active = services.issue(deps, "alice", 10).token
    redeemed = services.issue(deps, "alice", 20).token
    services.redeem(deps, redeemed.code, "shop")
    assert services.create_exchange_request(deps, _event(redeemed, "shop"))  # the real one
    other_shop = services.issue(deps, "alice", 30).token
    services.redeem(deps, other_shop.code, "shop")
    never = uuid.uuid4()
    # Planted behind the services' back: requests for a token that never existed, one still
    # active, and one redeemed by a different merchant than the request names.
    plant_exchange_request(books.engine, token_id=never, user_id="alice", points=5,
                           merchant_id="shop")
    plant_exchange_request(books.engine, token_id=active.id, user_id="alice", points=10,
                           merchant_id="shop")
    plant_exchange_request(books.engine, token_id=other_shop.id, user_id="alice", points=30,
                           merchant_id="elsewhere")

    code, body = report(settings, books)

    assert code == 1 and body["clean"] is False
    orphans = {p["token_id"]: p["details"] for p in body["problems"]
               if p["kind"] == "request_without_redeemed_token"}
    assert set(orphans) == {str(never), str(active.id), str(other_shop.id)}
    assert orphans[str(never)]["token_status"] == "none"
    assert orphans[str(active.id)]["token_status"] == "active"
    assert orphans[str(other_shop.id)]["token_merchant_id"] == "shop"
    assert all(p["user_id"] == "alice" for p in body["problems"]
               if p["kind"] == "request_without_redeemed_token")


def test_requests_for_redeemed_tokens_keep_the_books_clean(settings, books):
    deps = books.deps
    services.credit(deps, "bob", 10)
    token = services.issue(deps, "bob", 10).token
    services.redeem(deps, token.code, "shop")
    assert services.create_exchange_request(deps, _event(token, "shop"))
    code, body = report(settings, books)
    assert code == 0, body


def _event(token, merchant: str):
    from schemas.events import TokenRedeemed
    return TokenRedeemed(token_id=token.id, user_id=token.user_id, points=token.points,
                         merchant_id=merchant)
