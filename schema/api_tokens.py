"""Partner API tokens."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import TYPE_CHECKING, Annotated

import strawberry
from strawberry.types import Info

from models import ApiToken as ApiTokenRow
from models import enums
from models.enums import Permission as P
from resolvers import api_tokens, ids
from schema.base import Node, PageInfo, TokenScope, connection
from schema.directives import guard
from schema.node import node_type

if TYPE_CHECKING:
    from schema.members import Member


@strawberry.type(
    description="A partner integration's credential. It acts as the member who created it, narrowed to its scopes."
)
class ApiToken(Node):
    name: str
    scopes: list[TokenScope]
    created_at: datetime
    expires_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None
    row: strawberry.Private[ApiTokenRow]

    @strawberry.field
    async def created_by(self, info: Info) -> Annotated["Member", strawberry.lazy("schema.members")]:  # noqa: UP037
        from schema.members import Member

        return await Member.named(info, self.row.created_by_id)

    @classmethod
    def of(cls, row: ApiTokenRow) -> ApiToken:
        return cls(
            id=strawberry.ID(ids.encode("ApiToken", row.id)),
            name=row.name,
            scopes=[enums.TokenScope(s) for s in row.scopes],
            created_at=row.created_at,
            expires_at=row.expires_at,
            last_used_at=row.last_used_at,
            revoked_at=row.revoked_at,
            row=row,
        )


@strawberry.type
class ApiTokenEdge:
    node: ApiToken
    cursor: str


@strawberry.type
class ApiTokenConnection:
    edges: list[ApiTokenEdge]
    page_info: PageInfo
    total_count: int


@strawberry.type
class PracticeApiTokensFields:
    """Mixed into Practice: ``apiTokens``."""

    @strawberry.field(extensions=guard(permission=P.MANAGE_API_TOKENS))
    async def api_tokens(
        self, info: Info, include_revoked: bool | None = False, first: int | None = None, after: str | None = None
    ) -> ApiTokenConnection | None:
        page = await api_tokens.list_tokens(
            info.context, include_revoked=bool(include_revoked), first=first, after=after
        )
        return connection(ApiTokenConnection, ApiTokenEdge, page, ApiToken.of)


@node_type("ApiToken", permission=P.MANAGE_API_TOKENS)
async def _api_token_node(info: Info, pk: uuid.UUID) -> ApiToken | None:
    row = await api_tokens.get_token(info.context, pk)
    return ApiToken.of(row) if row else None


# ------------------------------------------------------------------ mutations


@strawberry.input
class CreateApiTokenInput:
    name: str
    scopes: list[TokenScope]
    expires_at: datetime | None = strawberry.field(
        default=None, description="At most a year ahead; a year when left out."
    )


@strawberry.type
class CreateApiTokenPayload:
    api_token: ApiToken
    token: str = strawberry.field(description="Shown once.")


@strawberry.input
class ApiTokenInput:
    api_token_id: strawberry.ID


@strawberry.type
class RevokeApiTokenPayload:
    api_token: ApiToken


@strawberry.type
class Mutation:
    @strawberry.mutation(extensions=guard(permission=P.MANAGE_API_TOKENS, mutation=True))
    async def create_api_token(self, info: Info, input: CreateApiTokenInput) -> CreateApiTokenPayload | None:
        row, secret = await api_tokens.create(
            info.context, name=input.name, scopes=input.scopes, expires_at=input.expires_at
        )
        return CreateApiTokenPayload(api_token=ApiToken.of(row), token=secret)

    @strawberry.mutation(extensions=guard(permission=P.MANAGE_API_TOKENS, mutation=True))
    async def revoke_api_token(self, info: Info, input: ApiTokenInput) -> RevokeApiTokenPayload | None:
        return RevokeApiTokenPayload(api_token=ApiToken.of(await api_tokens.revoke(info.context, input.api_token_id)))
