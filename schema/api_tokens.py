"""Partner API tokens."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated

import strawberry
from strawberry.types import Info

from models import ApiToken as ApiTokenRow
from models import enums
from resolvers import ids, members
from schema.base import Node, TokenScope

if TYPE_CHECKING:
    from schema.members import Member


@strawberry.type(description="A partner integration's credential. It acts as the member who created it, narrowed to its scopes.")
class ApiToken(Node):
    name: str
    scopes: list[TokenScope]
    created_at: datetime
    expires_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None
    row: strawberry.Private[ApiTokenRow]

    @strawberry.field
    async def created_by(self, info: Info) -> Annotated["Member", strawberry.lazy("schema.members")]:
        from schema.members import Member

        return Member.of(await members.get_member(info.context, self.row.created_by_id))

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
class PracticeApiTokensFields:
    """Mixed into Practice: ``apiTokens``."""
