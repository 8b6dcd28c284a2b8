"""The contract's four authorization directives, and ``guard()``: the one way a field is protected.

The directive printed in the SDL and the check that runs are the same object (a permission class from
auth/permissions.py with its ``_schema_directive`` set), so they cannot drift apart.
"""

from __future__ import annotations

import strawberry
from strawberry.extensions.field_extension import FieldExtension
from strawberry.permission import PermissionExtension
from strawberry.schema_directive import Location

from auth import permissions as p
from models import enums
from schema.base import Permission, Role, TokenScope


@strawberry.schema_directive(
    name="authenticated",
    locations=[Location.FIELD_DEFINITION],
    description="The field needs an authenticated caller: a session from logIn/signUp or a partner API token.",
)
class AuthenticatedDirective:
    pass


@strawberry.schema_directive(
    name="requiresRole",
    locations=[Location.FIELD_DEFINITION],
    description="Only members whose role is one of these may use the field.",
)
class RequiresRoleDirective:
    roles: list[Role]


@strawberry.schema_directive(
    name="requiresPermission",
    locations=[Location.FIELD_DEFINITION],
    description="Only members holding this permission may use the field. The owner holds every permission.",
)
class RequiresPermissionDirective:
    permission: Permission


@strawberry.schema_directive(
    name="requiresScope",
    locations=[Location.FIELD_DEFINITION],
    description=(
        "A caller using a partner API token must hold this scope. Sessions from logIn/signUp hold every scope.\n"
        "For a partner API token, a field guarded by @requiresRole or @requiresPermission that does not also\n"
        "carry @requiresScope is closed, and so is every mutation without @requiresScope: those are for\n"
        "sessions alone."
    ),
)
class RequiresScopeDirective:
    scope: TokenScope


def guard(
    *,
    authenticated: bool = False,
    roles: list[enums.Role] | None = None,
    permission: enums.Permission | None = None,
    scope: enums.TokenScope | None = None,
    mutation: bool = False,
) -> list[FieldExtension]:
    """Field extensions for a guarded field. ``mutation=True`` also closes it to partner tokens unless it has a scope."""
    checks: list = []
    if authenticated:
        check = p.Authenticated()
        check._schema_directive = AuthenticatedDirective()
        checks.append(check)
    if roles is not None:
        check = p.RequiresRole(roles, token_allowed=scope is not None)
        check._schema_directive = RequiresRoleDirective(roles=list(roles))
        checks.append(check)
    if permission is not None:
        check = p.RequiresPermission(permission, token_allowed=scope is not None)
        check._schema_directive = RequiresPermissionDirective(permission=permission)
        checks.append(check)
    if scope is not None:
        check = p.RequiresScope(scope)
        check._schema_directive = RequiresScopeDirective(scope=scope)
        checks.append(check)
    extensions: list[FieldExtension] = []
    if mutation and scope is None:
        extensions.append(PermissionExtension(permissions=[p.SessionOnly()], use_directives=False))
    if checks:
        extensions.append(PermissionExtension(permissions=checks, use_directives=True))
    return extensions
