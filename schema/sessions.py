"""Signing up and in, sessions, and what the caller is: viewer, viewerAccess, node."""

from __future__ import annotations

from datetime import datetime

import strawberry
from strawberry.types import Info

from auth.permissions import require_viewer
from auth.viewer import Viewer
from models import enums
from resolvers import sessions
from schema.api_tokens import ApiToken
from schema.base import Node, Permission, TokenScope
from schema.directives import guard
from schema.members import Member
from schema.node import resolve_node


@strawberry.type
class AuthPayload:
    access_token: str
    refresh_token: str | None = strawberry.field(
        description="Null when the refresh token travels in an httpOnly cookie instead."
    )
    access_token_expires_at: datetime
    member: Member

    @classmethod
    def of(cls, info: Info, signed_in: sessions.SignedIn) -> AuthPayload:
        """The payload shows its caller what they signed in as. Nothing else changes: the request keeps its viewer
        (a credential mutation is the only field of its operation: schema/limits.CredentialMutationAlone)."""
        member = signed_in.member
        return cls(
            access_token=signed_in.access_token,
            # In a browser on a listed origin the refresh token travels in an httpOnly cookie instead (any mutation
            # answering an AuthPayload: server/graphql.py sets the cookie from the Context after the operation).
            refresh_token=info.context.browser.hand_over(signed_in.refresh_token, signed_in.session_expires_at),
            access_token_expires_at=signed_in.access_token_expires_at,
            member=Member.of(member, shown_to=Viewer(member=member, practice=member.practice)),
        )


@strawberry.type(description="What the caller may do, so clients can show only the actions that will succeed.")
class ViewerAccess:
    member: Member
    effective_permissions: list[Permission]
    scopes: list[TokenScope] = strawberry.field(
        description="Every scope for a session; the token's scopes for a partner API token."
    )
    api_token: ApiToken | None = strawberry.field(description="The partner API token in use, if any.")


@strawberry.input
class SignUpInput:
    practice_name: str
    name: str
    email: str
    password: str
    plan_code: str


@strawberry.input
class LogInInput:
    practice_slug: str
    email: str
    password: str


@strawberry.input(
    description="refreshToken: taken from the session cookie when left out and the server runs with cookie sessions."
)
class RefreshSessionInput:
    refresh_token: str | None = None


@strawberry.input
class LogOutInput:
    refresh_token: str | None = None


@strawberry.type
class LogOutPayload:
    logged_out: bool


@strawberry.type
class Query:
    @strawberry.field(extensions=guard(authenticated=True))
    def viewer(self, info: Info) -> Member | None:
        return Member.of(require_viewer(info).member)

    @strawberry.field(
        description="What the caller may do: effective permissions, scopes, the token in use.",
        extensions=guard(authenticated=True),
    )
    def viewer_access(self, info: Info) -> ViewerAccess | None:
        viewer = require_viewer(info)
        return ViewerAccess(
            member=Member.of(viewer.member),
            effective_permissions=sorted(viewer.permissions, key=list(enums.Permission).index),
            scopes=sorted(viewer.scopes, key=list(enums.TokenScope).index),
            api_token=ApiToken.of(viewer.api_token) if viewer.api_token else None,
        )

    @strawberry.field(
        description="Any object the caller may reach through the fields above, with the same guards; null otherwise.",
        extensions=guard(authenticated=True),
    )
    async def node(self, info: Info, id: strawberry.ID) -> Node | None:
        return await resolve_node(info, id)


@strawberry.type
class Mutation:
    @strawberry.mutation(
        description=(
            "Creates a solo practice with the caller as its owner, on the chosen plan, and starts its one free trial."
        ),
        extensions=guard(mutation=True),
    )
    async def sign_up(self, info: Info, input: SignUpInput) -> AuthPayload | None:
        return AuthPayload.of(
            info,
            await sessions.sign_up(
                info.context,
                practice_name=input.practice_name,
                name=input.name,
                email=input.email,
                password=input.password,
                plan_code=input.plan_code,
            ),
        )

    @strawberry.mutation(extensions=guard(mutation=True))
    async def log_in(self, info: Info, input: LogInInput) -> AuthPayload | None:
        return AuthPayload.of(
            info,
            await sessions.log_in(
                info.context, practice_slug=input.practice_slug, email=input.email, password=input.password
            ),
        )

    @strawberry.mutation(extensions=guard(mutation=True))
    async def refresh_session(self, info: Info, input: RefreshSessionInput) -> AuthPayload | None:
        return AuthPayload.of(info, await sessions.refresh_session(info.context, input.refresh_token))

    @strawberry.mutation(extensions=guard(mutation=True))
    async def log_out(self, info: Info, input: LogOutInput) -> LogOutPayload | None:
        return LogOutPayload(logged_out=await sessions.log_out(info.context, input.refresh_token))
