"""The web app and the API as real HTTP servers on separate origins, for a real browser.

Each site is a pair: the pages (an app with ``WEB_APP_ENABLED``) on one origin, calling
the API on another, as a deployed front end would, so CORS is exercised by Chromium
itself. Two sites: tokens that live long enough for a sale, and tokens that expire
within seconds (the lifetime is the service's setting, not the request's).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from werkzeug.serving import BaseWSGIServer, make_server

from api.app import create_app
from shared.bootstrap import Container
from shared.services.deps import Deps
from shared.settings import Settings

SHORT_TTL_SECONDS = 5  # enough to create a token and show it; short enough to wait for


@dataclass(frozen=True)
class Site:
    api: str  # the API's origin
    pages: str  # the origin of the web app's pages, allowed by the API's CORS_ORIGINS


def _bind() -> BaseWSGIServer:
    server = make_server("127.0.0.1", 0, lambda environ, start: [], threaded=True)
    server.daemon_threads = True
    return server


def _origin(server: BaseWSGIServer) -> str:
    return f"http://127.0.0.1:{server.server_port}"


@contextmanager
def serve_sites(settings: Settings, container: Container) -> Iterator[dict[str, Site]]:
    """``{"sale": Site, "expiry": Site}``, served until the block ends."""
    # Sockets first: each side's settings name the other's origin.
    servers = {name: (_bind(), _bind()) for name in ("sale", "expiry")}
    origins = ",".join(_origin(pages) for _, pages in servers.values())
    sites = {}
    for name, (api, pages) in servers.items():
        ttl = 180 if name == "sale" else SHORT_TTL_SECONDS
        deps = Deps(session_factory=container.deps.session_factory, clock=container.deps.clock,
                    token_ttl_seconds=ttl)
        own = Container(settings=settings, engine=container.engine, deps=deps)
        api.app = create_app(settings.model_copy(update={"cors_origins": origins}), own)
        pages.app = create_app(settings.model_copy(update={
            "web_app_enabled": True, "web_app_api_url": _origin(api)}), own)
        sites[name] = Site(api=_origin(api), pages=_origin(pages))
    threads = [threading.Thread(target=server.serve_forever, daemon=True)
               for pair in servers.values() for server in pair]
    for thread in threads:
        thread.start()
    try:
        yield sites
    finally:
        for pair in servers.values():
            for server in pair:
                server.shutdown()
                server.server_close()
