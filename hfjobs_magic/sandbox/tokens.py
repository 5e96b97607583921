"""The sandbox's tokens, and who may reach it.

A sandbox runs jobs as local processes of the user who started it, so its write
token is the key to a shell on this machine. There is no well-known default:
tokens not given are random, made once per data dir and kept there in a file
only the owner can read, so a restart on the same data dir keeps them.
"""

from __future__ import annotations

import contextlib
import getpass
import ipaddress
import json
import os
import secrets
import string
from pathlib import Path

TOKENS_FILE = "tokens.json"
ROLES = ("token", "read_token", "other_token")  # the user's write and read tokens, the second user's
_OWNER_ONLY = 0o600
_ALPHABET = string.ascii_letters + string.digits


def new_token() -> str:
    """A random token shaped like the Hub's, `hf_` and 34 letters or digits (~200 bits).

    Letters and digits only, not `token_urlsafe`'s `-` and `_`: the masking of logs
    and the token-literal checks recognise tokens by the Hub's shape.
    """
    return "hf_" + "".join(secrets.choice(_ALPHABET) for _ in range(34))


def stored_tokens(data_dir: Path) -> dict[str, str]:
    """The data dir's random tokens, made on first use; every role in `ROLES` has one."""
    path = data_dir / TOKENS_FILE
    if not path.exists():
        _create(path, {role: new_token() for role in ROLES})
    os.chmod(path, _OWNER_ONLY)  # a copy restored with looser rights is closed again
    tokens = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(tokens, dict) or not all(isinstance(tokens.get(role), str) and tokens[role] for role in ROLES):
        raise ValueError(f"{path} is not a sandbox token file; delete it to get new tokens")
    return {role: tokens[role] for role in ROLES}


def _create(path: Path, tokens: dict[str, str]) -> None:
    """Write the file readable by its owner only; a sandbox starting at the same time may win the race."""
    tmp = path.with_name(f".{TOKENS_FILE}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, _OWNER_ONLY)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(tokens, handle)
        with contextlib.suppress(FileExistsError):
            os.link(tmp, path)  # never replaces tokens another sandbox already handed out
    finally:
        tmp.unlink(missing_ok=True)


def is_loopback(host: str) -> bool:
    """Whether binding `host` keeps the sandbox on this machine (`localhost`, 127.0.0.0/8, ::1)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to any interface


def exposure_problem(host: str, token: str | None) -> str | None:
    """Why the sandbox must not start: a non-loopback address with a token nobody chose."""
    if is_loopback(host) or token:
        return None
    return (f"--host {host} would let anyone who reaches this machine run code as user {_os_user()}; "
            "give the write token yourself with --token (a long random one), or bind 127.0.0.1")


def exposure_warning(host: str) -> str | None:
    """What to tell the person starting a sandbox that listens beyond this machine."""
    if is_loopback(host):
        return None
    return (f"WARNING: listening on {host}, beyond this machine: jobs run as user {_os_user()} on this "
            "machine, for anyone who can reach the port and holds the token")


def _os_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return f"uid {os.getuid()}"
