"""Refusals the HTTP server makes itself, before the app: through the real API process,
each answers the contract's JSON error body with its status, never an HTML or plain-text
page, never a 500, and says ``Connection: close`` whenever it drops the connection."""

from __future__ import annotations

import socket

import pytest

from tests.support.api_process import api_process
from tests.support.raw_http import closed_by_peer, exchange, read_answer


@pytest.fixture(scope="module")
def api(settings, tmp_path_factory):
    with api_process(settings, tmp_path_factory.mktemp("api"), WEB_CONCURRENCY="1") as proc:
        yield proc


def _get(path: str = "/healthz", extra: str = "") -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: x\r\n{extra}\r\n".encode()


def _post(framing: str, body: bytes) -> bytes:
    return (f"POST /api/exchange-tokens/ HTTP/1.1\r\nHost: x\r\nContent-Type: application/json"
            f"\r\n{framing}\r\n").encode() + body


CASES = {
    "100 KB bearer token": (_get("/api/exchange-tokens/status/",
                                 f"Authorization: Bearer {'a' * 100_000}\r\n"),
                            431, "request_header_fields_too_large"),
    "one header of 9 KB": (_get(extra=f"X-Big: {'b' * 9000}\r\n"),
                           431, "request_header_fields_too_large"),
    "101 headers": (_get(extra="".join(f"X-H{i}: v\r\n" for i in range(101))),
                    431, "request_header_fields_too_large"),
    "10 KB path": (_get("/" + "p" * 10_000), 414, "uri_too_long"),
    "Content-Length with Transfer-Encoding": (
        _post("Content-Length: 5\r\nTransfer-Encoding: chunked\r\n", b"0\r\n\r\n"),
        400, "bad_request"),
    "unknown transfer coding": (_post("Transfer-Encoding: gzip, chunked\r\n", b"0\r\n\r\n"),
                                501, "not_implemented"),
    "lowercase method": (b"get /healthz HTTP/1.1\r\nHost: x\r\n\r\n", 400, "bad_request"),
    "bad chunk size": (_post("Transfer-Encoding: chunked\r\n", b"zz\r\nhello\r\n0\r\n\r\n"),
                       400, "bad_request"),
    "bad chunk extension": (_post("Transfer-Encoding: chunked\r\n",
                                  b"5;\x00=\x01\r\nhello\r\n0\r\n\r\n"), 400, "bad_request"),
    "chunk without its CRLF": (_post("Transfer-Encoding: chunked\r\n", b"5\r\nhelloXX0\r\n\r\n"),
                               400, "bad_request"),
    "body over 2 MiB announced": (_post("Content-Length: 3000000\r\n", b"{"),
                                  413, "payload_too_large"),
}


@pytest.mark.parametrize(("raw", "status", "code"), CASES.values(), ids=CASES.keys())
def test_a_refusal_by_the_server_is_the_contracts_json_and_closes(api, raw, status, code):
    with socket.create_connection(("127.0.0.1", api.port), timeout=10) as s:
        s.sendall(raw)
        answer = read_answer(s)
        assert answer.status == status, answer
        assert answer.headers["content-type"].startswith("application/json")
        error = answer.json()["error"]
        assert error["code"] == code and error["message"] and isinstance(error["details"], dict)
        assert answer.headers.get("connection", "").lower() == "close"
        assert closed_by_peer(s)
    # The server is unharmed: the next client is served.
    assert exchange(api.port, _get()).status == 200


# Under WEB_WORKER=gthread, gunicorn's own refusals of a request's head are JSON too. (Its
# body framing errors surface only when the app reads the body, and an app 413 still drops
# the connection: reasons waitress is the default.)
HEAD_CASES = ("100 KB bearer token", "one header of 9 KB", "101 headers", "10 KB path",
              "Content-Length with Transfer-Encoding", "lowercase method")


@pytest.fixture(scope="module")
def gthread_api(settings, tmp_path_factory):
    with api_process(settings, tmp_path_factory.mktemp("gthread"), WEB_CONCURRENCY="1",
                     WEB_WORKER="gthread") as proc:
        yield proc


@pytest.mark.parametrize("case", HEAD_CASES)
def test_gthreads_refusals_of_a_head_are_the_contracts_json(gthread_api, case):
    raw, status, code = CASES[case]
    answer = exchange(gthread_api.port, raw)
    assert answer.status == status, answer
    assert answer.headers["content-type"] == "application/json"
    assert answer.json()["error"]["code"] == code
    assert answer.headers["connection"].lower() == "close"


def test_a_413_from_the_app_keeps_the_connection_usable(api):
    # Before: the 413 said keep-alive and the server dropped the connection, so a pooled
    # client's next request on it got no answer.
    body = b'{"points": 1}'.ljust(70_000)
    with socket.create_connection(("127.0.0.1", api.port), timeout=10) as s:
        s.sendall(_post(f"Content-Length: {len(body)}\r\n", body))
        first = read_answer(s)
        assert first.status == 413 and first.json()["error"]["code"] == "payload_too_large"
        if first.headers.get("connection", "").lower() == "close":
            assert closed_by_peer(s)
            return
        s.sendall(_get())
        assert read_answer(s).status == 200
