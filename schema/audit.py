"""The audit log: the AuditEvent type, Practice.auditLog, and the extension that writes deferred events."""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any

import strawberry
from graphql import FieldNode, GraphQLError
from strawberry.extensions import SchemaExtension
from strawberry.types import Info

from errors import Forbidden
from models import AuditEvent as AuditEventRow
from models.enums import Permission as P
from models.enums import TokenScope as S
from resolvers import api_tokens, audit, ids, members
from schema.api_tokens import ApiToken
from schema.base import Node, PageInfo, connection
from schema.directives import guard
from schema.node import node_type

if TYPE_CHECKING:
    from schema.members import Member

log = logging.getLogger("groups_api.audit")


@strawberry.type
class AuditEvent(Node):
    action: str = strawberry.field(
        description="What happened, e.g. chart.read, billing.payment_recorded, member.permissions_changed."
    )
    target_id: strawberry.ID | None = strawberry.field(
        description="The global ID of what it happened to, where there is one."
    )
    created_at: datetime
    row: strawberry.Private[AuditEventRow]

    @classmethod
    def of(cls, row: AuditEventRow) -> AuditEvent:
        return cls(
            id=strawberry.ID(ids.encode("AuditEvent", row.id)),
            action=row.action,
            target_id=strawberry.ID(row.target_id) if row.target_id is not None else None,
            created_at=row.created_at,
            row=row,
        )

    @strawberry.field(description="Null for events with no signed-in member, e.g. a failed log-in.")
    async def actor(self, info: Info) -> Annotated["Member", strawberry.lazy("schema.members")] | None:  # noqa: UP037
        from schema.members import Member

        if self.row.actor_id is None:
            return None
        row = await members.get_member(info.context, self.row.actor_id)
        return Member.of(row) if row else None

    @strawberry.field(description="The token the actor used; shown to sessions holding MANAGE_API_TOKENS, else null.")
    async def api_token(self, info: Info) -> ApiToken | None:
        if self.row.api_token_id is None or not audit.can_see_api_tokens(info.context.viewer):
            return None
        row = await api_tokens.get_token(info.context, self.row.api_token_id)
        return ApiToken.of(row) if row else None


@strawberry.input
class AuditFilter:
    actor_id: strawberry.ID | None = None
    target_id: strawberry.ID | None = None
    action: str | None = strawberry.field(default=None, description="Exact action, e.g. auth.login_failed.")
    api_token_id: strawberry.ID | None = None
    from_: datetime | None = strawberry.field(default=None, name="from", description="Inclusive.")
    to: datetime | None = strawberry.field(default=None, description="Exclusive.")


@strawberry.type
class AuditEventEdge:
    node: AuditEvent
    cursor: str


@strawberry.type
class AuditEventConnection:
    edges: list[AuditEventEdge]
    page_info: PageInfo
    total_count: int | None = strawberry.field(description="Null where counting would cost more than serving the page.")


@strawberry.type
class PracticeAuditFields:
    """Mixed into Practice: ``auditLog``."""

    @strawberry.field(
        description="The practice's audit log, newest first.",
        extensions=guard(permission=P.VIEW_AUDIT_LOG, scope=S.READ_AUDIT_LOG),
    )
    async def audit_log(
        self, info: Info, first: int | None = None, after: str | None = None, filter: AuditFilter | None = None
    ) -> AuditEventConnection | None:
        f = filter or AuditFilter()
        page = await audit.list_events(
            info.context,
            first=first,
            after=after,
            actor_id=f.actor_id,
            target_id=f.target_id,
            action=f.action,
            api_token_id=f.api_token_id,
            since=f.from_,
            until=f.to,
        )
        return connection(AuditEventConnection, AuditEventEdge, page, AuditEvent.of)


@node_type("AuditEvent", permission=P.VIEW_AUDIT_LOG, scope=S.READ_AUDIT_LOG)
async def _audit_event_node(info: Info, pk: uuid.UUID) -> AuditEvent | None:
    row = await audit.get_event(info.context, pk)
    return AuditEvent.of(row) if row else None


# ------------------------------------------------------------------ the extension


def denials(errors: list[GraphQLError] | None) -> list[audit.PendingEvent]:
    """One ``auth.denied`` event per denied field name (FORBIDDEN errors), naming the field, the path and reason of
    its first denial, and how many times it was denied: 50 aliases (or 50 list items) of a denied field are one
    event, so a cheap request cannot flood the log."""
    by_field: dict[str, dict[str, Any]] = {}
    for error in errors or ():
        if not isinstance(error.original_error, Forbidden):
            continue
        name = _field_name(error)
        if name in by_field:
            by_field[name]["count"] += 1
        else:
            by_field[name] = {
                "field": name,
                "path": ".".join(str(p) for p in error.path or ()),
                "reason": error.message,
                "count": 1,
            }
    return [audit.PendingEvent("auth.denied", None, details) for details in by_field.values()]


def _field_name(error: GraphQLError) -> str:
    """The schema name of the denied field (not its alias); the last key of its path when it has no node."""
    for node in error.nodes or ():
        if isinstance(node, FieldNode):
            return node.name.value
    return next((str(key) for key in reversed(error.path or ()) if isinstance(key, str)), "")


class AuditTrail(SchemaExtension):
    """After the operation: queue its denials, then write every deferred event (reads, denials).

    This runs once the request's own transactions are over, so these events are kept when the request fails.
    If they cannot be written, the response is withheld: nothing read goes out unrecorded.
    """

    async def on_operation(self) -> AsyncIterator[None]:
        yield
        ctx = self.execution_context.context
        result = self.execution_context.result
        if ctx is None:
            return
        if ctx.viewer is not None:
            audit.defer(ctx, denials(getattr(result, "errors", None)))
        try:
            await audit.flush(ctx)
        except Exception:
            log.exception("could not write audit events (request %s): response withheld", ctx.request_id)
            if result is not None:
                result.data = None
                result.errors = [GraphQLError("internal error", extensions={"code": "INTERNAL"})]
