"""Who is calling (pipeline.faces.identity): named keys, the admin key, and JWTs signed with RS256 and ES256
keys made here, against the attacks that matter: a token signed with another key or algorithm, and the
public key used as an HS256 secret (key confusion)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import jwt
import pytest

from pipeline.access import Reader
from pipeline.config import parse_config
from pipeline.errors import ConfigError
from pipeline.faces.identity import Identify, Unauthorized, key_hash

pytestmark = pytest.mark.unit

ISSUER, AUDIENCE = "https://idp.example.test", "ragline"


def keypair(kind: str) -> tuple[Any, bytes]:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    private = rsa.generate_private_key(65537, 2048) if kind == "RS256" else ec.generate_private_key(ec.SECP256R1())
    public = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private, public


def identify(tmp_path: Path, algorithm: str, public: bytes, **access: Any) -> Identify:
    (tmp_path / "idp.pem").write_bytes(public)
    jwt_settings = {"algorithm": algorithm, "public_key_file": str(tmp_path / "idp.pem"), "issuer": ISSUER}
    config = parse_config({"access": {"enabled": True, "jwt": {**jwt_settings, "audience": AUDIENCE}, **access}})
    return Identify(config.access, config.server)


def claims(**extra: Any) -> dict[str, Any]:
    now = int(time.time())
    return {"sub": "alice", "groups": ["hr", "HR Team"], "iss": ISSUER, "aud": AUDIENCE, "exp": now + 600, **extra}


def confused(payload: dict[str, Any], public: bytes) -> str:
    """A token signed with HMAC-SHA256 keyed by the provider's public key, the classic confusion attack (PyJWT
    will not even make one, so it is made by hand)."""
    import base64
    import hashlib
    import hmac
    import json

    def part(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    head = part(json.dumps({"alg": "HS256", "typ": "JWT"}).encode()) + "." + part(json.dumps(payload).encode())
    return head + "." + part(hmac.new(public, head.encode(), hashlib.sha256).digest())


@pytest.mark.parametrize("algorithm", ["RS256", "ES256"])
def test_tokens_signed_by_the_identity_provider(tmp_path: Path, algorithm: str) -> None:
    private, public = keypair(algorithm)
    who = identify(tmp_path, algorithm, public, admins=["group:it"])
    reader = who(jwt.encode(claims(), private, algorithm=algorithm))
    assert reader.visible == ("everyone", "group:HR Team", "group:hr", "user:alice") and reader.name == "alice"
    assert who(jwt.encode(claims(groups=["it"]), private, algorithm=algorithm)).admin
    other, _ = keypair(algorithm)
    with pytest.raises(Unauthorized, match="Signature verification failed"):
        who(jwt.encode(claims(), other, algorithm=algorithm))  # another key
    with pytest.raises(Unauthorized, match="alg"):
        who(confused(claims(), public))
    with pytest.raises(Unauthorized, match="expired"):
        who(jwt.encode(claims(exp=int(time.time()) - 5), private, algorithm=algorithm))


def test_a_key_of_the_wrong_kind_or_no_key_is_refused_at_start(tmp_path: Path) -> None:
    _, ec_public = keypair("ES256")
    with pytest.raises(ConfigError, match="holds no RSA key"):
        identify(tmp_path, "RS256", ec_public)
    with pytest.raises(ConfigError, match="not a PEM public key"):
        identify(tmp_path, "ES256", b"not a key")
    config = parse_config(
        {"access": {"enabled": True, "jwt": {"algorithm": "HS256", "issuer": ISSUER, "audience": AUDIENCE}}}
    )
    with pytest.raises(ConfigError, match="RAGLINE_JWT_SECRET"):
        Identify(config.access, config.server)


def test_named_keys_are_matched_by_their_hash_and_the_admin_key_reads_all() -> None:
    config = parse_config(
        {
            "access": {"keys": [{"name": "ci", "sha256": key_hash("k-ci"), "principals": ["group:eng"]}]},
            "server": {"api_key": "admin-secret"},
        }
    )
    who = Identify(config.access, config.server)
    assert who("k-ci") == Reader(frozenset({"everyone", "group:eng"}), False, "ci")
    assert who("admin-secret").admin
    for bad in ("k-ci ", "K-CI", key_hash("k-ci"), "admin-secret\n"):
        with pytest.raises(Unauthorized, match="unknown API key"):
            who(bad)
    with pytest.raises(Unauthorized, match="missing"):
        who(None)
    open_server = parse_config({})
    assert Identify(open_server.access, open_server.server)(None).admin  # no credential configured: as before
