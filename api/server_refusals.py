"""Refusals made by the HTTP server itself, before the app sees a request: a head too
large, a path too long, broken chunked framing, ``Content-Length`` beside
``Transfer-Encoding``, an unknown transfer coding, a lowercase method, a body far too large.

They answer the same JSON error body as the app (``{"error": {"code", "message",
"details"}}``), never waitress's plain-text page, and always with ``Connection: close``:
the server cannot know where the next request on that connection would start.

The limits are gunicorn's (the other server this project runs), so a client sees the
same refusals whichever serves it.
"""

from __future__ import annotations

import json

from waitress.channel import HTTPChannel
from waitress.parser import HTTPRequestParser, ParsingError
from waitress.task import ErrorTask
from waitress.utilities import BadRequest, Error, RequestHeaderFieldsTooLarge

MAX_REQUEST_LINE = 8190  # bytes, the method, path, query and version together
MAX_HEADER_LINE = 8190  # bytes, one header's name and value
MAX_HEADER_COUNT = 100
# The whole head; a larger one is refused while it arrives, without being parsed.
MAX_HEAD_BYTES = 64 * 1024
# The app refuses a body over 64 KiB itself (413, the connection stays usable). This bound
# only keeps a much larger body from being buffered at all.
MAX_BODY_BYTES = 2 * 1024 * 1024

CODES = {
    400: ("bad_request", "The request is malformed."),
    413: ("payload_too_large", "The request body is larger than 64 KiB."),
    414: ("uri_too_long", "The request line is too long."),
    431: ("request_header_fields_too_large", "The request headers are too large or too many."),
    500: ("internal_error", "An unexpected error occurred."),
    501: ("not_implemented", "This transfer coding is not supported."),
}


class UriTooLong(BadRequest):
    code = 414
    reason = "URI Too Long"


def error_body(status: int, reason: str) -> bytes:
    code, text = CODES.get(status, ("bad_request", CODES[400][1]))
    details = {"reason": reason} if reason else {}
    return json.dumps({"error": {"code": code, "message": text, "details": details}}).encode()


class JsonErrorTask(ErrorTask):
    def execute(self) -> None:
        error: Error = self.request.error
        body = error_body(error.code, str(error.body))
        self.status = f"{error.code} {error.reason}"
        self.response_headers.append(("Content-Type", "application/json"))
        self.set_close_on_finish()  # also adds Connection: close
        self.content_length = len(body)
        self.write(body)


def _limit_refusal(head: bytes) -> Error | None:
    lines = head.split(b"\r\n") if b"\r\n" in head else head.split(b"\n")
    if len(lines[0]) > MAX_REQUEST_LINE:
        return UriTooLong(f"request line over {MAX_REQUEST_LINE} bytes")
    if len(lines) - 1 > MAX_HEADER_COUNT:
        return RequestHeaderFieldsTooLarge(f"more than {MAX_HEADER_COUNT} headers")
    if any(len(line) > MAX_HEADER_LINE for line in lines[1:]):
        return RequestHeaderFieldsTooLarge(f"a header over {MAX_HEADER_LINE} bytes")
    return None


class LimitingParser(HTTPRequestParser):
    def parse_header(self, header_plus: bytes) -> None:
        refusal = _limit_refusal(header_plus)
        if refusal is not None:
            # As waitress does for a head too large: a minimal request to answer, no body.
            super().parse_header(b"GET / HTTP/1.0\r\n")
            self.error = refusal
            return
        super().parse_header(header_plus)
        if self.chunked and "CONTENT_LENGTH" in self.headers:
            # Two framings: a proxy in front may pick the other one (request smuggling).
            raise ParsingError("Content-Length with Transfer-Encoding")


class JsonRefusalChannel(HTTPChannel):
    parser_class = LimitingParser
    error_task_class = JsonErrorTask
