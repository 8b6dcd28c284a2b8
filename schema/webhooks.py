"""Webhook endpoints: the types, Practice.webhookEndpoints and the two mutations (sessions with MANAGE_API_TOKENS)."""

from __future__ import annotations

import uuid
from datetime import datetime

import strawberry
from strawberry.types import Info

from models import WebhookDelivery as WebhookDeliveryRow
from models import WebhookEndpoint as WebhookEndpointRow
from models.enums import Permission as P
from models.events import EventType as EventTypeEnum
from models.webhooks import WebhookDeliveryStatus as StatusEnum
from resolvers import api_tokens, events, ids, webhooks
from resolvers.pagination import Page
from schema.api_tokens import ApiToken
from schema.base import Node, PageInfo, connection, page_info
from schema.directives import guard
from schema.events import Event, EventType
from schema.node import node_type

WebhookDeliveryStatus = StatusEnum
strawberry.enum(WebhookDeliveryStatus)
for _value in WebhookDeliveryStatus.__strawberry_definition__.values:  # type: ignore[attr-defined]
    if _value.value == StatusEnum.FAILED.value:
        _value.description = "Every retry failed; the event stays readable in Practice.events."


@strawberry.type
class WebhookDelivery(Node):
    status: WebhookDeliveryStatus
    attempts: int
    last_response_status: int | None = strawberry.field(
        description="The HTTP status of the last attempt; null when there was no answer."
    )
    last_attempt_at: datetime | None
    next_attempt_at: datetime | None
    row: strawberry.Private[WebhookDeliveryRow]

    @classmethod
    def of(cls, row: WebhookDeliveryRow) -> WebhookDelivery:
        pending = row.status == StatusEnum.PENDING
        return cls(
            id=strawberry.ID(ids.encode("WebhookDelivery", row.id)),
            status=row.status,
            attempts=row.attempts,
            last_response_status=row.last_response_status,
            last_attempt_at=row.last_attempt_at,
            next_attempt_at=row.next_attempt_at if pending else None,
            row=row,
        )

    @strawberry.field
    async def event(self, info: Info) -> Event:
        row = await events.get_event(info.context, self.row.event_id)
        if row is None:  # deliveries are listed only where their event is readable (webhooks.visible_deliveries)
            raise LookupError(f"event {self.row.event_id} of a visible delivery is not readable")
        return Event.of(row)


@strawberry.type
class WebhookDeliveryEdge:
    node: WebhookDelivery
    cursor: str


@strawberry.type
class WebhookDeliveryConnection:
    edges: list[WebhookDeliveryEdge]
    page_info: PageInfo

    @classmethod
    def of(cls, page: Page[WebhookDeliveryRow]) -> WebhookDeliveryConnection:
        edges = [
            WebhookDeliveryEdge(node=WebhookDelivery.of(r), cursor=c)
            for r, c in zip(page.items, page.cursors, strict=True)
        ]
        return cls(edges=edges, page_info=page_info(page))


@strawberry.type(
    description="A URL that receives the practice's events as they happen: a JSON POST signed as the Standard "
    "Webhooks\n"
    "specification says (webhook-id, webhook-timestamp, webhook-signature headers), retried with backoff\n"
    "until it answers 2xx. It delivers only what its API token may read, and stops with the token."
)
class WebhookEndpoint(Node):
    url: str
    description: str | None
    event_types: list[EventType]
    created_at: datetime
    row: strawberry.Private[WebhookEndpointRow]

    @classmethod
    def of(cls, row: WebhookEndpointRow) -> WebhookEndpoint:
        return cls(
            id=strawberry.ID(ids.encode("WebhookEndpoint", row.id)),
            url=row.url,
            description=row.description,
            event_types=[EventTypeEnum(t) for t in row.event_types],
            created_at=row.created_at,
            row=row,
        )

    @strawberry.field(description="Whose access decides what is delivered.")
    async def api_token(self, info: Info) -> ApiToken:
        row = await api_tokens.get_token(info.context, self.row.api_token_id)
        if row is None:
            raise LookupError(f"API token {self.row.api_token_id} of an endpoint is not in the viewer's practice")
        return ApiToken.of(row)

    @strawberry.field(description="The most recent deliveries first.")
    async def deliveries(
        self, info: Info, first: int | None = None, after: str | None = None
    ) -> WebhookDeliveryConnection:
        return WebhookDeliveryConnection.of(
            await webhooks.deliveries(info.context, self.row.id, first=first, after=after)
        )


@strawberry.type
class WebhookEndpointEdge:
    node: WebhookEndpoint
    cursor: str


@strawberry.type
class WebhookEndpointConnection:
    edges: list[WebhookEndpointEdge]
    page_info: PageInfo
    total_count: int


@strawberry.type
class PracticeWebhooksFields:
    """Mixed into Practice: ``webhookEndpoints``."""

    @strawberry.field(extensions=guard(permission=P.MANAGE_API_TOKENS))
    async def webhook_endpoints(
        self, info: Info, first: int | None = None, after: str | None = None
    ) -> WebhookEndpointConnection | None:
        page = await webhooks.list_endpoints(info.context, first=first, after=after)
        return connection(WebhookEndpointConnection, WebhookEndpointEdge, page, WebhookEndpoint.of)


@node_type("WebhookEndpoint", permission=P.MANAGE_API_TOKENS)
async def _endpoint_node(info: Info, pk: uuid.UUID) -> WebhookEndpoint | None:
    row = await webhooks.get_endpoint(info.context, pk)
    return WebhookEndpoint.of(row) if row else None


@node_type("WebhookDelivery", permission=P.MANAGE_API_TOKENS)
async def _delivery_node(info: Info, pk: uuid.UUID) -> WebhookDelivery | None:
    row = await webhooks.get_delivery(info.context, pk)
    return WebhookDelivery.of(row) if row else None


# ------------------------------------------------------------------ mutations


@strawberry.input
class CreateWebhookEndpointInput:
    api_token_id: strawberry.ID = strawberry.field(
        description="The partner's API token: the endpoint receives only events this token could read."
    )
    url: str = strawberry.field(
        description="https; plain http only outside production. Never a private, loopback or link-local address in "
        "production."
    )
    event_types: list[EventType]
    description: str | None = None


@strawberry.type
class CreateWebhookEndpointPayload:
    webhook_endpoint: WebhookEndpoint
    secret: str = strawberry.field(description="whsec_...: shown once; the key of the webhook-signature header.")


@strawberry.input
class WebhookEndpointInput:
    webhook_endpoint_id: strawberry.ID


@strawberry.type
class DeleteWebhookEndpointPayload:
    webhook_endpoint: WebhookEndpoint


@strawberry.type
class Mutation:
    @strawberry.mutation(extensions=guard(permission=P.MANAGE_API_TOKENS, mutation=True))
    async def create_webhook_endpoint(
        self, info: Info, input: CreateWebhookEndpointInput
    ) -> CreateWebhookEndpointPayload | None:
        row, secret = await webhooks.create(
            info.context,
            api_token_id=input.api_token_id,
            url=input.url,
            event_types=input.event_types,
            description=input.description,
        )
        return CreateWebhookEndpointPayload(webhook_endpoint=WebhookEndpoint.of(row), secret=secret)

    @strawberry.mutation(extensions=guard(permission=P.MANAGE_API_TOKENS, mutation=True))
    async def delete_webhook_endpoint(
        self, info: Info, input: WebhookEndpointInput
    ) -> DeleteWebhookEndpointPayload | None:
        return DeleteWebhookEndpointPayload(
            webhook_endpoint=WebhookEndpoint.of(await webhooks.delete(info.context, input.webhook_endpoint_id))
        )
