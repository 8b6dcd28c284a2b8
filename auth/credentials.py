"""Authorization header -> Viewer. One query per request loads the member, so deactivation, role and permission
changes, log-out and token revocation take effect on the very next request."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from auth.tokens import API_TOKEN_PREFIX, InvalidToken, JwtCodec, hash_secret
from auth.viewer import Viewer
from models import ApiToken, Session
from models.enums import MemberStatus, TokenScope

# lastUsedAt is written at most once a minute per token, so a busy token does not write on every request.
LAST_USED_WRITE_INTERVAL = timedelta(minutes=1)


@dataclass(frozen=True)
class Credentials:
    viewer: Viewer | None
    # Why a presented credential was refused (never more precise than this, to the caller).
    error: str | None = None


def bearer(authorization: str | None) -> str | None:
    if not authorization:
        return None
    scheme, _, value = authorization.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()


async def authenticate(authorization: str | None, *, codec: JwtCodec, now: datetime) -> Credentials:
    token = bearer(authorization)
    if token is None:
        if authorization:
            return Credentials(None, "invalid credentials")
        return Credentials(None)
    if token.startswith(API_TOKEN_PREFIX):
        viewer = await _api_token_viewer(token, now)
    else:
        viewer = await _session_viewer(token, codec, now)
    if viewer is None:
        return Credentials(None, "invalid or expired credentials")
    return Credentials(viewer)


async def _session_viewer(token: str, codec: JwtCodec, now: datetime) -> Viewer | None:
    try:
        claims = codec.verify(token, now=now)
    except InvalidToken:
        return None
    session = (
        await Session.filter(id=claims.session_id, member_id=claims.member_id, revoked_at=None)
        .select_related("member__practice")
        .first()
    )
    if session is None or session.expires_at <= now:
        return None
    member = session.member
    if member.status != MemberStatus.ACTIVE or member.practice_id != claims.practice_id:
        return None
    return Viewer(member=member, practice=member.practice, session_id=str(session.id))


async def _api_token_viewer(token: str, now: datetime) -> Viewer | None:
    api_token = await ApiToken.filter(token_hash=hash_secret(token)).select_related("created_by__practice").first()
    if api_token is None or api_token.revoked_at is not None or api_token.expires_at <= now:
        return None
    member = api_token.created_by
    if member.status != MemberStatus.ACTIVE or member.practice_id != api_token.practice_id:
        return None
    if api_token.last_used_at is None or now - api_token.last_used_at >= LAST_USED_WRITE_INTERVAL:
        # Conditional update: of concurrent requests, at most one writes per interval.
        threshold = now - LAST_USED_WRITE_INTERVAL
        await (
            ApiToken.filter(id=api_token.id).filter(last_used_at__isnull=True).update(last_used_at=now)
        ) or await ApiToken.filter(id=api_token.id, last_used_at__lt=threshold).update(last_used_at=now)
        api_token.last_used_at = now
    scopes = frozenset(TokenScope(s) for s in api_token.scopes)
    return Viewer(member=member, practice=member.practice, scopes=scopes, api_token=api_token)
