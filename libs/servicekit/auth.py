"""Bearer-token authentication: JWT verified against an issuer's JWKS; the actor of every command.

Roles (ARCHITECTURE.md §10): reader, clerk, committee, city-admin, each scoped to a unit subtree
(city-admin may be unscoped).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt

ROLES = ("reader", "clerk", "committee", "city-admin")
ROLE_RANK = {role: rank for rank, role in enumerate(ROLES)}


class AuthenticationError(Exception):
    """No token, or one that does not verify."""


class PermissionDenied(Exception):
    """A verified actor whose role or unit scope does not allow the operation."""

    def __init__(self, message: str, *, code: str = "forbidden") -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Actor:
    subject: str
    role: str
    unit_code: str | None

    @property
    def pii_read(self) -> bool:
        return self.role != "reader"

    def at_least(self, role: str) -> bool:
        return ROLE_RANK[self.role] >= ROLE_RANK[role]

    def require(self, role: str) -> None:
        if not self.at_least(role):
            raise PermissionDenied(f"role {self.role} may not do this; {role} or above is required",
                                   code="role-insufficient")

    def label(self) -> str:
        scope = self.unit_code or "*"
        return f"{self.subject} ({self.role}@{scope})"


class TokenVerifier:
    def __init__(self, *, issuer: str, audience: str, jwks_url: str | None = None,
                 jwks_file: Path | None = None) -> None:
        self._issuer = issuer
        self._audience = audience
        self._jwks_url = jwks_url
        self._jwks_file = jwks_file
        self._client = jwt.PyJWKClient(jwks_url, cache_keys=True) if jwks_url else None
        self._file_keys: dict[str, Any] = {}
        self._file_loaded_at = 0.0
        # Verified tokens until they expire: an RS256 check costs more than the rest of a small request.
        self._verified: dict[str, tuple[Actor, float]] = {}

    def _key_for(self, token: str) -> Any:
        if self._client is not None:
            return self._client.get_signing_key_from_jwt(token).key
        header = jwt.get_unverified_header(token)
        kid = str(header.get("kid", ""))
        if kid not in self._file_keys or time.monotonic() - self._file_loaded_at > 60:
            self._load_file()
        try:
            return self._file_keys[kid]
        except KeyError:
            raise AuthenticationError("token signed by an unknown key") from None

    def _load_file(self) -> None:
        if self._jwks_file is None or not self._jwks_file.exists():
            raise AuthenticationError("no JWKS configured")
        keys = json.loads(self._jwks_file.read_text())["keys"]
        self._file_keys = {k["kid"]: jwt.PyJWK(k).key for k in keys}
        self._file_loaded_at = time.monotonic()

    def verify(self, authorization: str | None) -> Actor:
        if not authorization or not authorization.lower().startswith("bearer "):
            raise AuthenticationError("a bearer token is required")
        token = authorization.split(" ", 1)[1].strip()
        cached = self._verified.get(token)
        if cached is not None and cached[1] > time.time():
            return cached[0]
        actor, expires_at = self._verify_token(token)
        if len(self._verified) > 10_000:
            self._verified.clear()
        self._verified[token] = (actor, expires_at)
        return actor

    def _verify_token(self, token: str) -> tuple[Actor, float]:
        try:
            claims = jwt.decode(
                token,
                key=self._key_for(token),
                algorithms=["RS256"],
                audience=self._audience,
                issuer=self._issuer,
                options={"require": ["exp", "sub", "iss", "aud"]},
            )
        except jwt.PyJWTError as exc:
            raise AuthenticationError(f"invalid token: {exc}") from exc
        role = claims.get("role")
        if role not in ROLE_RANK:
            raise AuthenticationError(f"token has no known role (got {role!r})")
        unit = claims.get("unit")
        if unit is None and role != "city-admin":
            raise AuthenticationError(f"role {role} needs a unit scope")
        return Actor(subject=str(claims["sub"]), role=role, unit_code=unit), float(claims["exp"])
