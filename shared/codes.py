"""Token codes: unguessable, URL-safe, short enough for a QR code."""

from __future__ import annotations

import secrets

CODE_BYTES = 20  # 160 bits from the OS's CSPRNG: guessing one live code is hopeless.
MAX_CODE_LENGTH = 128  # the contract's limit on what a merchant may send


def new_code() -> str:
    return secrets.token_urlsafe(CODE_BYTES)
