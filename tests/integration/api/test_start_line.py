"""At start the API logs one line saying where it answers, where its docs pages and its
metrics are; gunicorn's empty ``Listening at:`` is gone. Each place it names answers."""

from __future__ import annotations

import json
import time

import requests

from tests.support.api_process import api_process


def start_lines(log_text: str) -> list[dict]:
    records = [json.loads(line) for line in log_text.splitlines() if line.strip()]
    return [r for r in records if str(r.get("event", "")).startswith("API at ")]


def test_one_start_line_names_the_api_its_docs_and_metrics(settings, tmp_path):
    with api_process(settings, tmp_path, WEB_CONCURRENCY="2") as api:
        time.sleep(0.5)  # both workers booted
        text = api.stderr.read_text()
        [line] = start_lines(text)
        assert "Listening at:  (" not in text
        base = f"http://localhost:{api.port}"
        assert line["api"] == f"{base}/api/" and line["api"] in line["event"]
        assert line["docs"] in line["event"] and line["metrics"] in line["event"]
        assert requests.get(line["docs"], timeout=5).status_code == 200
        assert "exchange_tokens_" in requests.get(line["metrics"], timeout=5).text
        # /api/ itself is not a route, but the address is the API's: its JSON 404.
        assert requests.get(line["api"], timeout=5).headers["Content-Type"].startswith(
            "application/json")
