"""The ``exchange-tokens`` console script. Each command group lives in its own module."""

from __future__ import annotations

import click

from cli import (
    api_command,
    db_commands,
    dlq_command,
    jwt_command,
    reconcile_command,
    worker_command,
)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """Exchange tokens: issue, redeem, expire and refund loyalty points exactly once."""


for module in (db_commands, jwt_command, dlq_command, api_command, worker_command, reconcile_command):
    module.register(main)
