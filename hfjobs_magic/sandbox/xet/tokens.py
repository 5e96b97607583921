"""CAS access tokens: random, short-lived, read or write, issued by the Hub routes' token endpoints."""

from __future__ import annotations

import secrets
import threading
import time
from dataclasses import dataclass

TOKEN_TTL_S = 3600


class TokenRefused(Exception):
    """`status` is 401 (unknown or expired: the client refreshes) or 403 (a read token for a write)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Grant:
    scope: str  # what it was issued for, e.g. "model:alice/demo" or "bucket:alice/data"
    write: bool
    expires: int  # unix seconds


class Tokens:
    def __init__(self, ttl_s: int = TOKEN_TTL_S) -> None:
        self.ttl_s = ttl_s
        self._grants: dict[str, Grant] = {}
        self._lock = threading.Lock()

    def issue(self, scope: str, write: bool) -> tuple[str, Grant]:
        token, now = "xet_" + secrets.token_urlsafe(32), time.time()
        grant = Grant(scope, write, int(now) + self.ttl_s)
        with self._lock:
            self._grants = {t: g for t, g in self._grants.items() if g.expires > now}
            self._grants[token] = grant
        return token, grant

    def check(self, authorization: str | None, *, write: bool) -> Grant:
        """The grant behind an `Authorization: Bearer` header, or TokenRefused."""
        scheme, _, token = (authorization or "").partition(" ")
        grant = self._grants.get(token) if scheme.lower() == "bearer" else None
        if grant is None or grant.expires <= time.time():
            raise TokenRefused(401, "Missing, unknown or expired Xet access token")
        if write and not grant.write:
            raise TokenRefused(403, "This Xet access token is read-only")
        return grant
