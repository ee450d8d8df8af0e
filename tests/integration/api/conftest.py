"""API fixtures: an app on the session's database, a test client, and bearer tokens."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import pytest
from flask import Flask
from flask.testing import FlaskClient

from api.app import create_app
from shared import jwt_tokens
from shared.bootstrap import Container
from shared.settings import Settings


@pytest.fixture(scope="session")
def app(settings: Settings, container: Container) -> Flask:
    return create_app(settings, container)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


Headers = dict[str, str]


@pytest.fixture
def auth(settings: Settings) -> Callable[..., Headers]:
    """``auth(sub, "user", "merchant")`` -> an Authorization header for those roles."""

    def make(sub: str, *roles: str, ttl: int = 600) -> Headers:
        assert settings.jwt_secret
        token = jwt_tokens.encode(settings.jwt_secret, sub, list(roles) or ["user"], ttl)
        return {"Authorization": f"Bearer {token}"}

    return make


@pytest.fixture
def admin(auth: Callable[..., Headers]) -> Headers:
    return auth(f"admin-{uuid.uuid4().hex[:8]}", "admin")


@pytest.fixture
def credit(client: FlaskClient, admin: Headers) -> Callable[[str, int], int]:
    """Credit points through the API; returns the new balance."""

    def give(user_id: str, points: int) -> int:
        r = client.post(f"/api/accounts/{user_id}/credits", json={"points": points},
                        headers=admin)
        assert r.status_code == 201, r.get_json()
        return int(r.get_json()["balance"])

    return give


@pytest.fixture
def balance_of(client: FlaskClient, auth: Callable[..., Headers]) -> Callable[[str], int]:
    def read(user_id: str) -> int:
        r = client.get("/api/accounts/me", headers=auth(user_id))
        assert r.status_code == 200
        return int(r.get_json()["balance"])

    return read
