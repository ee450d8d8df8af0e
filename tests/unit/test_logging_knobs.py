"""shared/logs.py turns off record fields we never print through logging's module-level
knobs (the logging HOWTO's "Optimization" section). Fail if the stdlib drops one of them:
the assignment would then silently do nothing."""

from __future__ import annotations

import logging

from shared.logs import configure_logging


def test_the_knobs_exist_and_configure_logging_turns_them_off() -> None:
    saved = {name: getattr(logging, name) for name in
             ("_srcfile", "logThreads", "logProcesses", "logMultiprocessing")}
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        configure_logging("INFO")
        assert logging._srcfile is None
        assert not (logging.logThreads or logging.logProcesses or logging.logMultiprocessing)
        record = logging.getLogger("x").makeRecord("x", logging.INFO, "f", 1, "m", None, None)
        assert record.threadName is None and record.processName is None
    finally:
        for name, value in saved.items():
            setattr(logging, name, value)
        root.handlers[:] = handlers
        root.setLevel(level)
