"""The hello-world baseline: the cheapest Flask route, served by gunicorn with the same
settings as the real API, so the ratio shows what our route costs on top of the server."""

from __future__ import annotations

from flask import Flask

app = Flask(__name__)


@app.post("/api/exchange-tokens/")
def hello() -> tuple[dict[str, str], int]:
    return {"hello": "world"}, 201


@app.get("/healthz")
def healthz() -> dict[str, str]:
    return {"status": "ok"}
