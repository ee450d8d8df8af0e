"""The Flask app factory: ``create_app(settings)`` wires one container, the blueprints,
the error path, request ids, metrics and the OpenAPI document. No global state: every
part hangs off the app, so tests build as many apps as they like."""

from __future__ import annotations

from flask import Flask

from api import cors, errors, observability
from api.body import MAX_BODY_BYTES
from api.docs import make_spec
from api.docs_pages import register_docs_assets
from api.metrics import Metrics
from api.readiness import Readiness
from api.routes import (
    accounts,
    exchange_requests,
    ops,
    ops_console,
    ops_page,
    qr_codes,
    redeem_preview,
    tokens,
    web_app,
)
from api.speedups import App
from shared.bootstrap import Container, bootstrap
from shared.jwt_tokens import TokenVerifier
from shared.settings import Settings


def api_pool_size(settings: Settings) -> int:
    """Pooled connections of one API worker: one per thread at least. A request holds one
    connection at a time; with fewer in the pool than threads, the busiest threads took
    SQLAlchemy's overflow connections, which are closed when given back: a new server
    process per request past the pool (6 threads on a pool of 5 gave 15 % fewer issues
    a second than 5 threads, `make bench`)."""
    return max(5, settings.web_threads)


def create_app(settings: Settings, container: Container | None = None) -> Flask:
    app = App("exchange_tokens")
    app.config.update(
        JWT_SECRET=settings.jwt_secret,
        MAX_CONTENT_LENGTH=MAX_BODY_BYTES,  # werkzeug answers 413 beyond this
    )
    # Both /path and /path/ reach the view directly: a redirect would turn a POST into a
    # second request that many clients do not repeat with its body.
    app.url_map.strict_slashes = False
    # Nor for doubled slashes: werkzeug would answer a 308 to the merged path, in HTML. A
    # path with one is a path we do not serve: a JSON 404.
    app.url_map.merge_slashes = False
    # A request never waits on a hung database longer than the statement timeout plus a
    # margin: it answers 503 within 5 s (shared/persistence/database.py, wait_for_server).
    container = container or bootstrap(
        settings, bound_server_waits=True, pool_size=api_pool_size(settings))
    app.extensions["container"] = container
    app.extensions["metrics"] = Metrics()
    app.extensions["verifier"] = TokenVerifier(settings.jwt_secret or "")
    app.extensions["readiness"] = Readiness(container.engine, settings.amqp_url)
    # First: its request id, timer and declared-size check come before any other hook
    # (tokens.py answers some 405s and OPTIONS from a hook of its own).
    observability.install(app)
    spec = make_spec()
    for module in (accounts, tokens, redeem_preview, qr_codes, exchange_requests, ops,
                   ops_console):
        app.register_blueprint(module.blueprint(spec))
    app.register_blueprint(ops_page.blueprint())
    if settings.web_app_enabled:
        app.register_blueprint(web_app.blueprint(settings))
    errors.register_error_handlers(app)
    cors.install(app, settings)
    spec.register(app)
    register_docs_assets(app)
    return app
