"""Who is calling: the member (loaded fresh on every request), how (session or partner token) and with what scopes."""

from __future__ import annotations

from dataclasses import dataclass

from models import ApiToken, Member, Practice
from models.enums import ALL_PERMISSIONS, ALL_SCOPES, Permission, Role, TokenScope


@dataclass(frozen=True)
class Viewer:
    member: Member
    practice: Practice
    scopes: frozenset[TokenScope] = ALL_SCOPES
    api_token: ApiToken | None = None
    session_id: str | None = None

    @property
    def role(self) -> Role:
        return self.member.role

    @property
    def is_token(self) -> bool:
        return self.api_token is not None

    @property
    def permissions(self) -> frozenset[Permission]:
        return effective_permissions(self.member)

    def has(self, permission: Permission) -> bool:
        return permission in self.permissions

    def has_scope(self, scope: TokenScope) -> bool:
        return scope in self.scopes


def effective_permissions(member: Member) -> frozenset[Permission]:
    """Every permission for the owner; the explicit grants for anyone else."""
    if member.role == Role.OWNER:
        return ALL_PERMISSIONS
    return frozenset(Permission(p) for p in member.permissions or ())
