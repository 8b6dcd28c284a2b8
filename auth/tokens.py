"""Access tokens (JWT, 15 minutes, pinned algorithm, rotating keys by kid) and opaque secrets stored as hashes."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime

import jwt

ALGORITHM = "HS256"
REFRESH_TOKEN_BYTES = 32  # 256 bits
API_TOKEN_PREFIX = "gapi_"
API_TOKEN_BYTES = 32  # 256 bits (at least 128 required)
ISSUED_AT_LEEWAY_SECONDS = 60  # clock skew tolerated between the instances that issue and verify


class InvalidToken(Exception):
    """The bearer token is not a valid access token (any reason: we never say which)."""


def key_id(secret: str) -> str:
    """A stable, non-secret name for a signing key, put in the JWT header so keys can rotate."""
    return hashlib.sha256(b"groups-api-kid:" + secret.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class AccessClaims:
    member_id: uuid.UUID
    practice_id: uuid.UUID
    session_id: uuid.UUID
    jti: str
    expires_at: datetime


class JwtCodec:
    """Signs with one key; verifies with the current key and any retired ones still listed."""

    def __init__(self, secret: str, previous: tuple[str, ...] = (), *, issuer: str, audience: str) -> None:
        self.secret = secret
        self.kid = key_id(secret)
        self.keys = {key_id(s): s for s in (*previous, secret)}
        self.issuer = issuer
        self.audience = audience

    def issue(
        self,
        *,
        member_id: uuid.UUID,
        practice_id: uuid.UUID,
        session_id: uuid.UUID,
        now: datetime,
        expires_at: datetime,
    ) -> str:
        claims = {
            "iss": self.issuer,
            "aud": self.audience,
            "sub": str(member_id),
            "pid": str(practice_id),
            "sid": str(session_id),
            "iat": int(now.timestamp()),
            "exp": int(expires_at.timestamp()),
            "jti": secrets.token_urlsafe(16),
        }
        return jwt.encode(claims, self.secret, algorithm=ALGORITHM, headers={"kid": self.kid})

    def verify(self, token: str, *, now: datetime) -> AccessClaims:
        try:
            header = jwt.get_unverified_header(token)
            key = self.keys.get(header.get("kid", ""))
            if key is None or header.get("alg") != ALGORITHM:
                raise InvalidToken
            claims = jwt.decode(
                token,
                key,
                algorithms=[ALGORITHM],
                audience=self.audience,
                issuer=self.issuer,
                options={
                    "require": ["exp", "iat", "iss", "aud", "sub", "jti"],
                    "verify_exp": False,
                    "verify_iat": False,
                },
            )
            # Expiry and issue time are checked against the service clock (which tests and GROUPS_API_CLOCK_OFFSET
            # move), not PyJWT's wall clock: a token issued on a moved clock would otherwise look "not yet valid".
            if int(claims["exp"]) <= now.timestamp() or int(claims["iat"]) > now.timestamp() + ISSUED_AT_LEEWAY_SECONDS:
                raise InvalidToken
            return AccessClaims(
                member_id=uuid.UUID(claims["sub"]),
                practice_id=uuid.UUID(claims["pid"]),
                session_id=uuid.UUID(claims["sid"]),
                jti=claims["jti"],
                expires_at=datetime.fromtimestamp(int(claims["exp"]), tz=now.tzinfo),
            )
        except (jwt.PyJWTError, KeyError, ValueError, TypeError) as exc:
            raise InvalidToken from exc


def new_secret(nbytes: int = REFRESH_TOKEN_BYTES) -> str:
    return secrets.token_urlsafe(nbytes)


def new_api_token() -> str:
    return API_TOKEN_PREFIX + secrets.token_urlsafe(API_TOKEN_BYTES)


def hash_secret(secret: str) -> str:
    """Opaque secrets have 256 bits of entropy: a plain SHA-256 is the right lookup hash (no salt or stretching
    needed)."""
    return hashlib.sha256(secret.encode()).hexdigest()
