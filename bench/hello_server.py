"""``python -m bench.hello_server``: the hello-world app under the very same gunicorn
configuration as ``exchange-tokens api`` (api/server.py: workers, threads, worker class,
keep-alive, JSON logging), only the app differs."""

from __future__ import annotations

from typing import Any

from api.server import ApiServer
from shared.settings import load_settings


class HelloServer(ApiServer):
    def load(self) -> Any:
        from bench.hello_app import app

        return app


if __name__ == "__main__":
    HelloServer(load_settings()).run()
