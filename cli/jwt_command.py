"""``jwt``: a bearer token for local use."""

from __future__ import annotations

import click

from cli.common import settings_or_exit
from shared import jwt_tokens


def register(group: click.Group) -> None:
    group.add_command(jwt)


@click.command()
@click.option("--sub", required=True, help="The user id (the token's subject).")
@click.option("--role", "roles", multiple=True, type=click.Choice(jwt_tokens.ROLES),
              help="A role; repeat for several. Default: user.")
@click.option("--ttl", default=3600, show_default=True, type=click.IntRange(1, 31 * 86400),
              help="Lifetime in seconds.")
def jwt(sub: str, roles: tuple[str, ...], ttl: int) -> None:
    """Print a bearer token signed with JWT_SECRET."""
    if not sub or len(sub) > jwt_tokens.MAX_SUB_LENGTH:
        # The API refuses such a token (401): better said now than printed.
        raise click.BadParameter(
            f"must be 1 to {jwt_tokens.MAX_SUB_LENGTH} characters", param_hint="--sub")
    settings = settings_or_exit()
    assert settings.jwt_secret
    click.echo(jwt_tokens.encode(settings.jwt_secret, sub, list(roles) or ["user"], ttl))
