"""The ops roles: ``operator`` and ``viewer`` are exact roles, signed by the ``jwt``
command like any other, and a route may accept one of several."""

from __future__ import annotations

import pytest
from click.testing import CliRunner
from flask import Flask

from api.auth import authenticate
from api.errors import ApiError
from cli import main
from shared import jwt_tokens

SECRET = "unit-test-secret-with-enough-bytes-32"


def test_the_jwt_command_signs_operator_and_viewer_tokens():
    result = CliRunner().invoke(main, ["jwt", "--sub", "olga", "--role", "operator",
                                       "--role", "viewer"],
                                env={"JWT_SECRET": SECRET, "APP_ENV": "development"})
    assert result.exit_code == 0, result.output
    principal = jwt_tokens.decode(SECRET, result.stdout.strip())
    assert principal.roles == frozenset({"operator", "viewer"})


@pytest.fixture
def app() -> Flask:
    app = Flask("t")
    app.extensions["verifier"] = jwt_tokens.TokenVerifier(SECRET)
    return app


def check(app: Flask, roles: list[str], role: str, *alternatives: str) -> int:
    bearer = jwt_tokens.encode(SECRET, "x", roles)
    with app.test_request_context(headers={"Authorization": f"Bearer {bearer}"}):
        try:
            authenticate(role, *alternatives)
        except ApiError as exc:
            return exc.status
    return 200


@pytest.mark.parametrize(("roles", "expected"), [
    (["viewer"], 200), (["operator"], 200), (["admin"], 403), (["user"], 403),
    (["merchant", "admin"], 403),
])
def test_reads_accept_either_ops_role_and_nothing_else(app, roles, expected):
    assert check(app, roles, "operator", "viewer") == expected


@pytest.mark.parametrize(("roles", "expected"), [
    (["operator"], 200), (["viewer"], 403), (["admin"], 403),
])
def test_actions_take_operator_exactly(app, roles, expected):
    assert check(app, roles, "operator") == expected
