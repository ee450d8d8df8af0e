"""The shutdown budget: how long a process may take to stop, and how the time is shared.

A worker asked to stop (SIGTERM) must exit within :data:`PROCESS_SECONDS`, the time an
orchestrator waits before it kills. Every wait on the way out is a slice of that budget,
nested so that the innermost gives up first and its caller still has time to close:

    process      PROCESS_SECONDS        SIGTERM -> exit
    worker       WORKER_STOP_SECONDS    every role joined (one deadline for all roles)
    consumer     CONSUMER_GRACE_SECONDS its batch in hand finished; the rest is requeued
    publisher    CONFIRM_SECONDS        confirms still awaited; then counted unconfirmed

Giving up loses nothing: unconfirmed outbox rows stay unsent, unacked messages return
to their queue when the connection closes. ``run-all`` supervises two processes and kills
what is still running :data:`SUPERVISOR_KILL_SECONDS` after it asked them to stop.
"""

from __future__ import annotations

PROCESS_SECONDS = 10.0
WORKER_STOP_SECONDS = PROCESS_SECONDS - 2.0  # left over: closing connections, exiting
CONSUMER_GRACE_SECONDS = WORKER_STOP_SECONDS - 3.0
CONFIRM_SECONDS = 2.0
SUPERVISOR_KILL_SECONDS = 2 * PROCESS_SECONDS
