"""Who is calling: a bearer credential (an API key or a JWT) turned into the :class:`Reader` a request runs as.

Every face that answers remote callers (the HTTP API, MCP over HTTP) identifies them here, once per request:

* ``[server] api_key`` (or ``RAGLINE_API_KEY``): the one key of a server from before named keys; an admin.
* ``[access] keys``: named keys, each with its principals; only their SHA-256 is configured, and a key is
  compared against every hash in constant time.
* ``[access.jwt]``: a token from the company's identity provider, verified by PyJWT with the one configured
  algorithm (so ``alg: none`` and an HS256 token signed with an RS256 public key are refused), its signature,
  ``exp`` (required), ``nbf``, ``iss`` and ``aud`` checked; the user and groups claims name the principals.

With no credential configured at all, every caller is an admin (a server on loopback, as before); with access
control on, that is refused at start, since every caller would read everything.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from pathlib import Path
from typing import Any

from pipeline.access import ADMIN, Reader
from pipeline.config import AccessConfig, ServerConfig
from pipeline.errors import ConfigError, RaglineError
from pipeline.faces.guards import api_key


class Unauthorized(RaglineError):
    """The request's credential is missing, unknown, or a token that does not verify (a 401)."""


def key_hash(key: str) -> str:
    """What ``[access] keys`` stores of a key: its SHA-256, hex (a key is random, so no slow hash is needed)."""
    return hashlib.sha256(key.encode()).hexdigest()


class Identify:
    """Turns a request's bearer credential into its reader. Built once per server, from the config."""

    def __init__(self, access: AccessConfig, server: ServerConfig) -> None:
        self.access = access
        self.admin_key = api_key(server)
        self.keys = [(bytes.fromhex(k.sha256), k) for k in access.keys]
        self.jwt_key = _jwt_key(access) if access.jwt.algorithm else None
        if access.enabled and not self.required:
            raise ConfigError(
                "access control is on but no caller can be identified: configure [access] keys "
                "(ragline access key NAME), [access.jwt], or [server] api_key"
            )

    @property
    def required(self) -> bool:
        """Whether a request must bring a credential."""
        return bool(self.admin_key or self.keys or self.jwt_key is not None)

    def __call__(self, credential: str | None) -> Reader:
        if not self.required:
            return ADMIN
        if not credential:
            raise Unauthorized("missing bearer credential (an API key or a token)")
        if self.admin_key and hmac.compare_digest(credential.encode(), self.admin_key.encode()):
            return ADMIN
        digest = hashlib.sha256(credential.encode()).digest()
        found = None
        for stored, key in self.keys:  # every hash is compared, so the time says nothing of which one matched
            if hmac.compare_digest(digest, stored):
                found = key
        if found is not None:
            return Reader.holding(found.principals, self.access.admins, found.name)
        if self.jwt_key is not None and credential.count(".") == 2:
            return self._token(credential)
        raise Unauthorized("unknown API key")

    def _token(self, token: str) -> Reader:
        import jwt

        settings = self.access.jwt
        assert self.jwt_key is not None
        try:
            claims = jwt.decode(
                token,
                self.jwt_key,
                algorithms=[settings.algorithm],
                audience=settings.audience,
                issuer=settings.issuer,
                leeway=settings.leeway_s,
                options={"require": ["exp", "iss", "aud", settings.user_claim]},
            )
        except jwt.PyJWTError as exc:
            raise Unauthorized(f"token refused: {exc}") from None
        user, groups = claims[settings.user_claim], claims.get(settings.groups_claim, [])
        groups = [groups] if isinstance(groups, str) else groups
        if not isinstance(user, str) or not isinstance(groups, list) or not all(isinstance(g, str) for g in groups):
            raise Unauthorized(
                f"token refused: claim {settings.user_claim!r} must be a string and {settings.groups_claim!r} a list"
            )
        try:
            return Reader.person(user, groups, self.access.admins)
        except RaglineError as exc:
            raise Unauthorized(f"token refused: {exc}") from None


def _jwt_key(access: AccessConfig) -> Any:
    settings = access.jwt
    if settings.algorithm == "HS256":
        secret = os.environ.get(settings.secret_env, "")
        if len(secret) < 32:
            raise ConfigError(
                f"[access.jwt] HS256 needs a shared secret of at least 32 bytes in ${settings.secret_env}"
                + (" (it is not set)" if not secret else f" (it has {len(secret)})")
            )
        return secret
    from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePublicKey
    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    path = Path(settings.public_key_file).expanduser()
    try:
        key = load_pem_public_key(path.read_bytes())
    except OSError as exc:
        raise ConfigError(f"[access.jwt] public_key_file {str(path)!r}: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise ConfigError(f"[access.jwt] public_key_file {str(path)!r} is not a PEM public key ({exc})") from None
    kind = RSAPublicKey if settings.algorithm == "RS256" else EllipticCurvePublicKey
    if not isinstance(key, kind):
        raise ConfigError(
            f"[access.jwt] public_key_file {str(path)!r} holds no {'RSA' if kind is RSAPublicKey else 'EC'} key, "
            f"which {settings.algorithm} needs"
        )
    return key
