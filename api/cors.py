"""CORS for browser apps served from other origins, by flask-cors.

Only the exact origins of ``CORS_ORIGINS`` get CORS headers; any other origin gets none,
so the browser refuses it. No credentials: the API takes bearer tokens, never cookies,
so no other site's page can ride on a user's login. A preflight names what a front end sends
(the bearer token, JSON, an Idempotency-Key, the language of error messages) and is
cached for ``MAX_AGE`` seconds; responses expose the headers a client reads.
"""

from __future__ import annotations

import re

from flask import Flask
from flask_cors import CORS

from shared.settings import Settings

# If-None-Match is not a header browsers send without asking: an app polling its token
# across origins needs it allowed to get its 304s.
ALLOWED_HEADERS = ["Authorization", "Content-Type", "Idempotency-Key", "Accept-Language",
                   "If-None-Match"]
ALLOWED_METHODS = ["GET", "HEAD", "POST", "DELETE", "OPTIONS"]
EXPOSED_HEADERS = ["Retry-After", "X-Request-ID", "ETag", "Idempotent-Replayed"]
MAX_AGE = 600  # Chromium caps a preflight's cache at 2 hours; 10 minutes is plenty


def install(app: Flask, settings: Settings) -> None:
    """Answer CORS for ``settings.cors_origin_list``; nothing at all when it is empty."""
    origins = settings.cors_origin_list
    if not origins:
        return
    CORS(
        app,
        # Exact matches: flask-cors reads a string with regex characters as a pattern,
        # and an IPv6 origin (http://[::1]:8000) has brackets; escaped, it is literal.
        origins=[re.compile(re.escape(origin) + r"\Z", re.IGNORECASE) for origin in origins],
        methods=ALLOWED_METHODS,
        allow_headers=ALLOWED_HEADERS,
        expose_headers=EXPOSED_HEADERS,
        supports_credentials=False,
        max_age=MAX_AGE,
        vary_header=True,
    )
