"""`dlq purge`: drops dead letters for good, only when someone confirmed it."""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path

from tests.integration.dlq.builders import issued, logged, redeemed
from tests.support.service_env import service_env

EXE = Path(sys.executable).with_name("exchange-tokens")


def ids_in_parking(cli):
    return [r["id"] for r in json.loads(cli("list", "--json").stdout)["messages"]]


def test_purge_with_yes_drops_exactly_those_ids(cli, broker):
    event = redeemed()
    ids = [broker.park(event), broker.park(issued()), broker.park(issued())]

    result = cli("purge", "--id", ids[0], "--id", ids[2], "--yes")

    assert result.exit_code == 0, result.output
    assert "purged 2 message(s)" in result.stdout
    assert ids_in_parking(cli) == [ids[1]]
    lines = [e for e in logged(result) if e["event"] == "message purged"]
    assert {e["message_id"] for e in lines} == {ids[0], ids[2]}
    first = next(e for e in lines if e["message_id"] == ids[0])
    assert first["type"] == "TokenRedeemed" and first["token_id"] == event["token_id"]


def test_purge_all_with_yes_empties_the_parking_queue(cli, broker):
    for _ in range(3):
        broker.park(issued())
    broker.park_by_broker(redeemed())

    result = cli("purge", "--all", "--yes")

    assert result.exit_code == 0, result.output
    assert broker.depth() == 0


def test_purge_without_yes_asks_on_stdin_and_no_answer_purges_nothing(cli, broker):
    """The contract: purge asks for confirmation unless --yes, also without a terminal: a
    closed stdin (cron) is a no, at once; `echo y |` is a yes."""
    dead_letter_id = broker.park(issued())

    started = time.monotonic()
    result = cli("purge", "--id", dead_letter_id, input="")

    assert result.exit_code != 0
    assert "nothing purged" in result.output
    assert time.monotonic() - started < 5
    assert ids_in_parking(cli) == [dead_letter_id]

    result = cli("purge", "--id", dead_letter_id, input="n\n")
    assert result.exit_code != 0 and ids_in_parking(cli) == [dead_letter_id]

    result = cli("purge", "--id", dead_letter_id, input="y\n")
    assert result.exit_code == 0, result.output
    assert ids_in_parking(cli) == []


def test_several_ids_after_one_id_flag(cli, broker):
    """The contract writes `--id ID...`: `--id A B` names both, as `--id A --id B` does."""
    first, second, kept = (broker.park(issued()) for _ in range(3))

    result = cli("purge", "--id", first, second, "--yes")

    assert result.exit_code == 0, result.output
    assert ids_in_parking(cli) == [kept]
    assert cli("purge", kept, "--yes").exit_code != 0  # an id needs --id before it
    assert ids_in_parking(cli) == [kept]


def test_purge_of_an_unknown_id_changes_nothing(cli, broker):
    known = broker.park(issued())

    result = cli("purge", "--id", known, "--id", "nope", "--yes")

    assert result.exit_code != 0
    assert "unknown dead-letter id(s): nope" in result.output
    assert ids_in_parking(cli) == [known]


def _purge_at_a_terminal(dlq_settings, args: list[str], answer: bytes) -> str:
    """Run the real console script with a pseudo-terminal as stdin and answer its prompt."""
    env = service_env(dlq_settings, inherit=True, EXCHANGE_TOKENS_ACTOR="tty-operator")
    main_fd, terminal_fd = pty.openpty()
    process = subprocess.Popen(
        [str(EXE), "dlq", "purge", *args], stdin=terminal_fd, stdout=terminal_fd,
        # stderr on the terminal too: without the readline module, Python's input() writes
        # the prompt there.
        stderr=terminal_fd, env=env, close_fds=True,
    )
    os.close(terminal_fd)
    seen = b""
    try:
        deadline = time.monotonic() + 30
        while b"[y/N]" not in seen:
            assert time.monotonic() < deadline and process.poll() is None, f"no prompt: {seen!r}"
            if select.select([main_fd], [], [], 0.5)[0]:
                seen += os.read(main_fd, 4096)
        os.write(main_fd, answer)
        process.wait(timeout=30)
        while select.select([main_fd], [], [], 0.2)[0]:
            try:
                chunk = os.read(main_fd, 4096)
            except OSError:  # the terminal closed with the process
                break
            if not chunk:
                break
            seen += chunk
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        os.close(main_fd)
    return seen.decode(errors="replace")


def test_purge_at_a_terminal_asks_first_and_no_keeps_the_message(dlq_settings, cli, broker):
    dead_letter_id = broker.park(issued())

    output = _purge_at_a_terminal(dlq_settings, ["--id", dead_letter_id], b"n\n")

    assert f"Purge 1 dead letter(s): {dead_letter_id}?" in output
    assert "not confirmed: nothing purged" in output
    assert ids_in_parking(cli) == [dead_letter_id]


def test_purge_all_at_a_terminal_confirmed_drops_what_was_shown(dlq_settings, cli, broker):
    for _ in range(2):
        broker.park(issued())

    output = _purge_at_a_terminal(dlq_settings, ["--all"], b"y\n")

    assert "Purge all 2 dead letter(s)" in output
    assert "purged 2 message(s)" in output
    assert broker.depth() == 0
