"""Bearer tokens from the embedded issuer verify; anything else is refused."""

from __future__ import annotations

from pathlib import Path

import jwt
import pytest

from servicekit.auth import AuthenticationError, TokenVerifier
from servicekit.devissuer import AUDIENCE, ISSUER, ensure_keys, mint


def verifier(directory: Path) -> TokenVerifier:
    return TokenVerifier(issuer=ISSUER, audience=AUDIENCE, jwks_file=ensure_keys(directory))


def test_a_minted_token_names_its_actor(tmp_path: Path) -> None:
    actor = verifier(tmp_path).verify("Bearer " + mint(tmp_path, role="clerk", unit="00004"))
    assert (actor.role, actor.unit_code) == ("clerk", "00004")
    assert actor.pii_read and not actor.at_least("committee")


def test_only_a_city_admin_may_be_unscoped(tmp_path: Path) -> None:
    assert verifier(tmp_path).verify("Bearer " + mint(tmp_path, role="city-admin", unit=None)).unit_code is None
    with pytest.raises(ValueError):
        mint(tmp_path, role="reader", unit=None)


def test_missing_expired_foreign_and_malformed_tokens_are_refused(
    tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    check = verifier(tmp_path)
    stranger_dir = tmp_path_factory.mktemp("stranger")
    cases = [None, "", "Basic abc", "Bearer not.a.jwt",
             "Bearer " + mint(tmp_path, role="clerk", unit="X", ttl_s=-10),
             "Bearer " + mint(stranger_dir, role="city-admin", unit=None)]
    for header in cases:
        with pytest.raises(AuthenticationError):
            check.verify(header)


def test_a_token_without_a_known_role_is_refused(tmp_path: Path) -> None:
    from cryptography.hazmat.primitives import serialization

    good = mint(tmp_path, role="clerk", unit="X")
    claims = jwt.decode(good, options={"verify_signature": False})
    key = serialization.load_pem_private_key((tmp_path / "private.pem").read_bytes(), password=None)
    kid = jwt.get_unverified_header(good)["kid"]
    forged = jwt.encode({**claims, "role": "emperor"}, key, algorithm="RS256", headers={"kid": kid})  # type: ignore[arg-type]
    with pytest.raises(AuthenticationError, match="role"):
        verifier(tmp_path).verify(f"Bearer {forged}")
