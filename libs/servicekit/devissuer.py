"""The embedded development issuer: an RSA key kept under .data/dev-issuer, and tokens minted with it."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from servicekit.auth import ROLES

ISSUER = "party-dev-issuer"
AUDIENCE = "party-register"


def ensure_keys(directory: Path) -> Path:
    """Create the key pair and its JWKS once; returns the JWKS path."""
    directory.mkdir(parents=True, exist_ok=True)
    private_path = directory / "private.pem"
    jwks_path = directory / "jwks.json"
    if private_path.exists() and jwks_path.exists():
        return jwks_path
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    tmp = private_path.with_suffix(".tmp")
    tmp.write_bytes(pem)
    tmp.chmod(0o600)
    tmp.replace(private_path)
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    jwk.update({"kid": uuid.uuid4().hex[:16], "use": "sig", "alg": "RS256"})
    tmp_jwks = jwks_path.with_suffix(".tmp")
    tmp_jwks.write_text(json.dumps({"keys": [jwk]}, indent=2))
    tmp_jwks.replace(jwks_path)
    return jwks_path


def mint(directory: Path, *, role: str, unit: str | None, subject: str | None = None,
         ttl_s: int = 12 * 3600) -> str:
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}")
    if unit is None and role != "city-admin":
        raise ValueError(f"role {role} needs UNIT=<unit code>")
    jwks_path = ensure_keys(directory)
    kid = json.loads(jwks_path.read_text())["keys"][0]["kid"]
    key = serialization.load_pem_private_key((directory / "private.pem").read_bytes(), password=None)
    now = int(time.time())
    claims = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": subject or f"dev-{role}" + (f"-{unit}" if unit else ""),
        "role": role,
        "iat": now,
        "exp": now + ttl_s,
    }
    if unit:
        claims["unit"] = unit
    return jwt.encode(claims, key, algorithm="RS256", headers={"kid": kid})  # type: ignore[arg-type]


def main() -> None:
    import argparse

    from servicekit.settings import DEFAULT_DATA_DIR

    parser = argparse.ArgumentParser(description="Print a bearer token from the embedded issuer.")
    parser.add_argument("--role", required=True, choices=ROLES)
    parser.add_argument("--unit", default=None)
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    args = parser.parse_args()
    try:
        print(mint(args.data_dir / "dev-issuer", role=args.role, unit=args.unit or None))
    except ValueError as exc:
        parser.error(str(exc))


if __name__ == "__main__":
    main()
