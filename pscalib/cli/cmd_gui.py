"""``dcs web-user``: add a user (salted scrypt password hash) or a token to a users file."""
from __future__ import annotations

import secrets
import sys
from pathlib import Path

import click

from ..errors import InvalidInputError
from ..gui.auth import hash_password, hash_token, set_user
from .app import cli

__all__ = ["web_user"]


@cli.command("web-user")
@click.argument("users_file", type=click.Path(dir_okay=False, path_type=Path))
@click.argument("name")
@click.option("--token", is_flag=True,
              help="Make a random bearer token instead of a password (printed once).")
@click.option("--password-stdin", is_flag=True,
              help="Read the password from the first line of stdin (for scripts).")
@click.option("--scheme", type=click.Choice(["scrypt", "pbkdf2_sha256"]), default="scrypt",
              show_default=True, help="Password hash.")
def web_user(users_file: Path, name: str, token: bool, password_stdin: bool,
             scheme: str) -> None:
    """Add or replace NAME in USERS_FILE, the users file of the web GUI (docs/gui.rst).

    Only hashes are stored (file mode 0600). Without options the password is asked twice.

    \b
    Example:
      dcs web-user /etc/pscalib/users.txt alice
      dcs web-user /etc/pscalib/users.txt ci-bot --token
    """
    if token:
        value = secrets.token_urlsafe(32)
        set_user(users_file, name, hash_token(value))
        click.echo(f"token for {name} (shown once): {value}")
        return
    if password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = click.prompt("password", hide_input=True, confirmation_prompt=True)
    if len(password) < 8:
        raise InvalidInputError("the password must have at least 8 characters")
    set_user(users_file, name, hash_password(password, scheme))
    click.echo(f"{name} added to {users_file}")
