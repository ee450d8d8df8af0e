"""Fingerprints of library code that a speed patch relies on.

A speed patch (api/speedups.py, shared/messaging/amqp_speedups.py) reaches into a
library's internals. Its tests compare the bytes it produces with the library's own, and
also pin the source of each internal it relies on: when an upgrade changes one, the test
names it, so someone re-reads the patch against the new code before updating the print.
"""

from __future__ import annotations

import hashlib
import inspect
from typing import Any


def fingerprint(obj: Any) -> str:
    return hashlib.sha256(inspect.getsource(obj).encode()).hexdigest()[:16]


def changed(expected: dict[str, tuple[Any, str]]) -> list[str]:
    """The names whose source no longer has its recorded fingerprint."""
    return [f"{name}: now {fingerprint(obj)}, recorded {want}"
            for name, (obj, want) in expected.items() if fingerprint(obj) != want]
