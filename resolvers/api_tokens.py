"""Partner API tokens: issued to a session holding MANAGE_API_TOKENS, shown once, stored as a hash, revocable.

A token acts as the member who created it, narrowed to its scopes (auth/credentials.py, auth/permissions.py).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from functools import partial

from tortoise.queryset import QuerySet
from tortoise.transactions import in_transaction

from auth.tokens import hash_secret, new_api_token
from auth.viewer import Viewer
from errors import BadInput, Conflict, NotFound
from models import ApiToken
from models.enums import TokenScope
from resolvers import audit, validation
from resolvers.context import Context
from resolvers.ids import decode, encode
from resolvers.pagination import Page, paginate

# Tokens live at most a year; a year is also the default.
MAX_LIFETIME = timedelta(days=365)
ORDER = ["-created_at", "-id"]


def practice_tokens(viewer: Viewer) -> QuerySet[ApiToken]:
    """The one access query for API tokens: the viewer's practice, nothing else."""
    return ApiToken.filter(practice_id=viewer.practice.id)


async def list_tokens(ctx: Context, *, include_revoked: bool, first: int | None, after: str | None) -> Page[ApiToken]:
    qs = practice_tokens(ctx.require_viewer())
    if not include_revoked:
        qs = qs.filter(revoked_at=None)
    return await paginate(qs, order=ORDER, first=first, after=after)


async def load_tokens(ctx: Context, ids: Sequence[uuid.UUID]) -> list[ApiToken | None]:
    """DataLoader batch: tokens of the viewer's practice by id (None for anything else)."""
    rows = {t.id: t for t in await practice_tokens(ctx.require_viewer()).filter(id__in=list(ids))}
    return [rows.get(i) for i in ids]


async def get_token(ctx: Context, token_id: uuid.UUID) -> ApiToken | None:
    if ctx.viewer is None:
        return None
    return ctx.own(await ctx.loaders.get("api_tokens.by_id", partial(load_tokens, ctx)).load(token_id))


def expiry(now: datetime, requested: datetime | None) -> datetime:
    """When a new token expires: ``requested``, which must lie in the next year, or a year from now."""
    if requested is None:
        return now + MAX_LIFETIME
    if requested.tzinfo is None:
        raise BadInput("expiresAt needs a time zone (e.g. 2027-01-31T00:00:00Z)", field="input.expiresAt")
    if requested <= now:
        raise BadInput("expiresAt must be in the future", field="input.expiresAt")
    if requested > now + MAX_LIFETIME:
        raise BadInput("expiresAt must be at most a year ahead", field="input.expiresAt")
    return requested


def _scopes(scopes: list[TokenScope]) -> list[str]:
    if not scopes:
        raise BadInput("a token needs at least one scope", field="input.scopes")
    order = list(TokenScope)
    return [s.value for s in sorted({TokenScope(s) for s in scopes}, key=order.index)]


async def create(
    ctx: Context, *, name: str, scopes: list[TokenScope], expires_at: datetime | None
) -> tuple[ApiToken, str]:
    """A new token for the viewer's practice, created by the viewer. Returns the row and the secret (shown once)."""
    viewer = ctx.require_viewer()
    name = validation.text(name, field="input.name")
    granted = _scopes(scopes)
    now = ctx.clock.now()
    expires = expiry(now, expires_at)
    secret = new_api_token()
    async with in_transaction() as conn:
        row = await ApiToken.create(
            id=uuid.uuid4(),
            practice_id=viewer.practice.id,
            created_by_id=viewer.member.id,
            name=name,
            token_hash=hash_secret(secret),
            scopes=granted,
            created_at=now,
            expires_at=expires,
            using_db=conn,
        )
        await audit.record(
            ctx,
            "api_token.created",
            encode("ApiToken", row.id),
            name=name,
            scopes=granted,
            expiresAt=expires.isoformat(),
        )
    return row, secret


async def revoke(ctx: Context, token_id: str) -> ApiToken:
    """Revoke now: the token stops on its next request."""
    token = await get_token(ctx, decode(token_id, "ApiToken", field="input.apiTokenId"))
    if token is None:
        raise NotFound("no such API token")
    now = ctx.clock.now()
    async with in_transaction() as conn:
        updated = await (
            ApiToken.filter(id=token.id, practice_id=ctx.require_viewer().practice.id, revoked_at=None)
            .using_db(conn)
            .update(revoked_at=now)
        )
        if not updated:
            raise Conflict("this API token is already revoked")
        await audit.record(ctx, "api_token.revoked", encode("ApiToken", token.id), name=token.name)
    token.revoked_at = now
    return token
