"""Who is calling the sandbox, and what they may read and write.

Mirrors the Hub's rules closely enough for the client to raise the same typed
errors: no or unknown token -> 401, a read token or a namespace the caller
cannot write to -> 403.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass, field

from starlette.exceptions import HTTPException
from starlette.requests import Request

DEFAULT_USER = "alice"
DEFAULT_ORGS = ("alice-lab",)
DEFAULT_READ_ORGS = ("big-corp",)
# A second user, so tests can prove that private repos and foreign namespaces are closed.
OTHER_USER = "bob"


@dataclass(frozen=True)
class Identity:
    name: str
    role: str  # "write" or "read", as whoami-v2 reports auth.accessToken.role
    writable_orgs: tuple[str, ...] = ()
    readable_orgs: tuple[str, ...] = ()

    def can_write(self, namespace: str) -> bool:
        return self.role == "write" and namespace in (self.name, *self.writable_orgs)

    def member_of(self, namespace: str) -> bool:
        return namespace in (self.name, *self.writable_orgs, *self.readable_orgs)


@dataclass
class Accounts:
    """The users and their tokens; no token has a default (see `tokens`: they are random)."""

    token: str
    read_token: str
    other_token: str  # the second user's (`other_user`) write token
    user: str = DEFAULT_USER
    orgs: list[str] = field(default_factory=lambda: list(DEFAULT_ORGS))
    read_orgs: list[str] = field(default_factory=lambda: list(DEFAULT_READ_ORGS))
    other_user: str = OTHER_USER
    fullnames: dict[str, str] = field(default_factory=dict)  # display names of users and orgs, by name

    def identify(self, token: str | None) -> Identity | None:
        """The identity behind a bearer token, or None when the token is unknown."""
        orgs, read_orgs = tuple(self.orgs), tuple(self.read_orgs)
        if not token:
            return None
        if hmac.compare_digest(token.encode(), self.token.encode()):
            return Identity(self.user, "write", orgs, read_orgs)
        if hmac.compare_digest(token.encode(), self.read_token.encode()):
            return Identity(self.user, "read", orgs, read_orgs)
        if hmac.compare_digest(token.encode(), self.other_token.encode()):
            return Identity(self.other_user, "write")
        return None

    def whoami(self, identity: Identity) -> dict:
        """The body of `GET /api/whoami-v2`, shaped like the Hub's."""
        orgs = []
        if identity.name == self.user:
            roles = [(o, "write") for o in self.orgs] + [(o, "read") for o in self.read_orgs]
            orgs = [{"type": "org", "name": o, "fullname": self.fullname(o), "roleInOrg": r} for o, r in roles]
        return {
            "type": "user",
            "id": f"sandbox-{identity.name}",
            "name": identity.name,
            "fullname": self.fullname(identity.name),
            "email": f"{identity.name}@sandbox.invalid",
            "emailVerified": True,
            "canPay": True,
            "isPro": False,
            "orgs": orgs,
            "auth": {
                "type": "access_token",
                "accessToken": {"displayName": f"sandbox-{identity.role}", "role": identity.role},
            },
        }

    def fullname(self, name: str) -> str:
        return self.fullnames.get(name) or name.title()

    def namespaces(self) -> set[str]:
        return {self.user, self.other_user, *self.orgs, *self.read_orgs}


def bearer_token(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None


def caller(request: Request) -> Identity | None:
    """The caller's identity; raises 401 for a token the sandbox does not know."""
    token = bearer_token(request)
    if token is None:
        return None
    identity = request.app.state.sandbox.accounts.identify(token)
    if identity is None:
        raise HTTPException(401, "Invalid credentials in Authorization header")
    return identity


def require_caller(request: Request) -> Identity:
    """The caller's identity; raises 401 when there is no token at all."""
    identity = caller(request)
    if identity is None:
        raise HTTPException(401, "You must be authenticated to access this resource")
    return identity


def require_writer(request: Request, namespace: str) -> Identity:
    """The caller, who must be allowed to write in `namespace` (403 otherwise)."""
    identity = require_caller(request)
    if not identity.can_write(namespace):
        why = "your token is read-only" if identity.role == "read" else f"you cannot write to '{namespace}'"
        raise HTTPException(403, f"Forbidden: {why}")
    return identity
