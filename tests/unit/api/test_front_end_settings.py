"""The front-end settings: exact CORS origins (a typo is refused at start-up with its
name, never silently ignored), and the web app's pages, served only when enabled."""

from __future__ import annotations

import pytest

from api.app import create_app
from api.routes.web_app import content_security_policy
from shared.settings import SettingsError, load_settings


def _settings(**values: object):
    return load_settings(app_env="development", **values)


def test_cors_origins_are_split_on_commas_and_trimmed():
    settings = _settings(cors_origins=" https://a.example.com , http://127.0.0.1:8080,,")
    assert settings.cors_origin_list == ["https://a.example.com", "http://127.0.0.1:8080"]
    assert _settings().cors_origin_list == []


@pytest.mark.parametrize("origin", [
    "a.example.com", "https://a.example.com/", "https://a.example.com/app", "*",
    "ftp://a.example.com", "https://a.example.com?x=1", "https://",
])
def test_anything_but_an_exact_origin_is_refused_with_the_setting_named(origin):
    with pytest.raises(SettingsError, match="CORS_ORIGINS"):
        _settings(cors_origins=f"https://ok.example.com,{origin}")


def test_the_web_app_api_url_must_be_an_http_url():
    assert _settings(web_app_api_url="https://api.example.com/").web_app_api_url == \
        "https://api.example.com"
    with pytest.raises(SettingsError, match="WEB_APP_API_URL"):
        _settings(web_app_api_url="api.example.com")


def test_the_pages_are_served_only_when_enabled():
    assert create_app(_settings()).test_client().get("/app/").status_code == 404
    client = create_app(_settings(web_app_enabled=True,
                                  web_app_api_url="https://api.example.com")).test_client()
    page = client.get("/app/")
    assert page.status_code == 200 and page.mimetype == "text/html"
    assert "connect-src 'self' https://api.example.com;" in page.headers["Content-Security-Policy"]
    assert client.get("/app").status_code == 308  # the pages' relative links need the slash
    assert client.get("/app/config.json").get_json() == {"api_url": "https://api.example.com"}
    for name in ("wallet.html", "till.html", "wallet.js", "till.js", "api.js", "i18n.js",
                 "signin.js", "index.js", "app.css"):
        assert client.get(f"/app/{name}").status_code == 200, name
    assert client.get("/app/../setup.cfg").status_code == 404
    assert client.get("/app/%2e%2e/setup.cfg").status_code == 404


def test_the_pages_may_run_only_their_own_scripts():
    policy = content_security_policy("")
    assert "script-src 'self';" in policy and "connect-src 'self';" in policy
    assert "unsafe-inline" not in policy
