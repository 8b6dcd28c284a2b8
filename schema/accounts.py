"""Accounts: a forgotten password and a password changed."""

from __future__ import annotations

import strawberry
from strawberry.types import Info

from auth.viewer import Viewer
from resolvers import accounts
from schema.directives import guard
from schema.members import Member
from schema.sessions import AuthPayload


@strawberry.input
class RequestPasswordResetInput:
    practice_slug: str
    email: str


@strawberry.type
class RequestPasswordResetPayload:
    requested: bool = strawberry.field(description="Always true: the answer does not tell whether the account exists.")


@strawberry.input
class ResetPasswordInput:
    token: str = strawberry.field(description="The token from the reset mail: single use, valid for one hour.")
    new_password: str


@strawberry.input
class ChangePasswordInput:
    current_password: str
    new_password: str


@strawberry.type
class ChangePasswordPayload:
    member: Member = strawberry.field(description="Every other session of the account has ended.")


@strawberry.type
class Mutation:
    @strawberry.mutation(extensions=guard(mutation=True))
    async def request_password_reset(
        self, info: Info, input: RequestPasswordResetInput
    ) -> RequestPasswordResetPayload | None:
        requested = await accounts.request_reset(info.context, practice_slug=input.practice_slug, email=input.email)
        return RequestPasswordResetPayload(requested=requested)

    @strawberry.mutation(
        description="Sets the new password and ends every session and refresh token of the account.",
        extensions=guard(mutation=True),
    )
    async def reset_password(self, info: Info, input: ResetPasswordInput) -> AuthPayload | None:
        return AuthPayload.of(
            info, await accounts.reset_password(info.context, token=input.token, new_password=input.new_password)
        )

    @strawberry.mutation(extensions=guard(authenticated=True, mutation=True))
    async def change_password(self, info: Info, input: ChangePasswordInput) -> ChangePasswordPayload | None:
        viewer: Viewer = info.context.viewer
        row = await accounts.change_password(
            info.context, current_password=input.current_password, new_password=input.new_password
        )
        return ChangePasswordPayload(member=Member.of(row, shown_to=viewer))
