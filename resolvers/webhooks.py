"""Webhooks: endpoints (created by sessions holding MANAGE_API_TOKENS for a partner token) and their delivery.

Delivery follows the Standard Webhooks specification (signed with the ``standardwebhooks`` package): a JSON POST
``{"type", "timestamp", "data": {"id", "subjectId", "practiceId"}}`` with ``webhook-id`` (the Event's global id,
the same on every retry), ``webhook-timestamp`` and ``webhook-signature`` (``v1,`` + base64 HMAC-SHA256 of
``id.timestamp.body`` under the endpoint's ``whsec_`` secret).

The queue is ``webhook_deliveries``, written in the event's transaction (resolvers/events.py). The serving process
delivers a request's deliveries right after its response (a Starlette background task); ``groups-api webhooks
deliver`` (for a scheduler) delivers whatever is due, retries included. A pass claims due rows with
``FOR UPDATE SKIP LOCKED`` (PostgreSQL) and moves their ``next_attempt_at`` ahead by a lease in the same short
transaction, so concurrent passes, in one process or many, never send a delivery twice; a pass that dies leaves
its claims to expire. Each attempt is a ``webhook_attempts`` row. A failure (no answer within 10 s, a connection
error, a refused address, a non-2xx answer; redirects are not followed) is retried with exponential back-off,
10 s after the first, then x3 up to 4 h between tries, until it has been failing for 24 h: then FAILED.

Who receives what is decided at delivery time, as the endpoint's API token would read it now: nothing once the
token is revoked or expired or its creator deactivated (the delivery is FAILED unsent), and an event the token may
not read (its scopes, its creator's row rules: events.visible_events) is dropped unsent.

SSRF: in production a URL must be https and its host must resolve only to public unicast addresses, checked when
the endpoint is created and again at every delivery; the request then goes to the address that was checked (the
host stays in the Host header and in TLS SNI and certificate checks), so a DNS answer cannot change in between.
Outside production http and loopback addresses are allowed (tests receive on 127.0.0.1). Proxies from the
environment are ignored.
"""

from __future__ import annotations

import asyncio
import base64
import ipaddress
import logging
import secrets
import socket
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

import httpx
import orjson
from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from standardwebhooks import Webhook
from tortoise.expressions import Subquery
from tortoise.queryset import QuerySet
from tortoise.transactions import in_transaction

from auth.viewer import Viewer
from errors import AppError, BadInput, NotFound
from models import ApiToken, Event, Member, Practice, WebhookAttempt, WebhookDelivery, WebhookEndpoint
from models.enums import MemberStatus, TokenScope
from models.events import EventType
from models.webhooks import WebhookDeliveryStatus as Status
from resolvers import api_tokens, audit, events, ids, validation
from resolvers.context import Context, RuleSettings
from resolvers.pagination import Page, paginate, paginate_many

log = logging.getLogger("groups_api.webhooks")

ORDER = ["-created_at", "-id"]  # endpoints and deliveries: newest first
URL_MAX_LENGTH = 2000
DESCRIPTION_MAX = 500
SECRET_PREFIX = "whsec_"

TIMEOUT_SECONDS = 10.0
FIRST_RETRY = timedelta(seconds=10)
BACKOFF_FACTOR = 3
MAX_RETRY_DELAY = timedelta(hours=4)
RETRY_FOR = timedelta(hours=24)
# A claimed delivery is not claimed again before this: far longer than one attempt (10 s) takes.
CLAIM_FOR = timedelta(minutes=2)
BATCH = 20
USER_AGENT = "groups-api-webhooks/1"


class RefusedAddress(Exception):
    """The URL may not be delivered to (production rules): the message says why."""


# ------------------------------------------------------------------ secrets at rest


def _key(secret: str) -> bytes:
    kdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"groups-api webhooks v1")
    return base64.urlsafe_b64encode(kdf.derive(secret.encode()))


def cipher(settings: RuleSettings) -> MultiFernet:
    """Encrypts with the current JWT secret's key; decrypts with it or a retired one still listed."""
    return MultiFernet([Fernet(_key(s)) for s in (settings.jwt_secret, *settings.jwt_previous_secrets) if s])


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


async def signing_secret(settings: RuleSettings, endpoint: WebhookEndpoint) -> str:
    """The endpoint's whsec_ secret. One stored under a retired JWT secret's key is re-encrypted under the current one,
    so that a rotation completes once every endpoint has been through here (``rekey`` does them all)."""
    stored = endpoint.secret_encrypted.encode()
    current = Fernet(_key(cast(str, settings.jwt_secret)))
    try:
        return current.decrypt(stored).decode()
    except InvalidToken:
        plain = cipher(settings).decrypt(stored)  # InvalidToken again when no listed secret opens it
    endpoint.secret_encrypted = current.encrypt(plain).decode()
    await WebhookEndpoint.filter(id=endpoint.id).update(secret_encrypted=endpoint.secret_encrypted)
    return plain.decode()


async def rekey(settings: RuleSettings) -> int:
    """Re-encrypt every endpoint secret stored under a retired key (run before dropping it). Returns how many."""
    moved = 0
    for endpoint in await WebhookEndpoint.filter(deleted_at=None):
        before = endpoint.secret_encrypted
        try:
            await signing_secret(settings, endpoint)
        except InvalidToken:
            log.error("webhook endpoint %s: its secret opens with no configured JWT secret", endpoint.id)
            continue
        moved += endpoint.secret_encrypted != before
    return moved


# ------------------------------------------------------------------ addresses (SSRF)


async def resolve(host: str, port: int) -> list[str]:
    """The addresses ``host`` resolves to (tests replace this to play a DNS that changes)."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def forbidden_address(address: str) -> bool:
    """Loopback, private, link-local, multicast, reserved, unspecified, shared: anything but public unicast."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return not ip.is_global or ip.is_multicast or ip.is_loopback or ip.is_link_local or ip.is_private


def parse_url(url: str, *, production: bool) -> httpx.URL:
    """A URL we may POST to, syntactically: http(s) with a host, no credentials; https in production."""
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError, ValueError):
        raise RefusedAddress("not a valid URL") from None
    if parsed.scheme not in ("https", "http") or not parsed.host:
        raise RefusedAddress("must be an http(s) URL with a host")
    if production and parsed.scheme != "https":
        raise RefusedAddress("must be an https URL")
    if parsed.userinfo:
        raise RefusedAddress("must not carry credentials")
    return parsed


async def pinned_address(url: httpx.URL, *, production: bool) -> str:
    """The address to connect to for ``url``, checked now: in production every address the host resolves to must
    be public (a name that also resolves to a private address is refused)."""
    host = url.raw_host.decode("ascii")
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        addresses = await resolve(host, port)
    except OSError as exc:
        raise RefusedAddress(f"the host does not resolve ({exc})") from None
    if not addresses:
        raise RefusedAddress("the host does not resolve")
    if production and any(forbidden_address(a) for a in addresses):
        raise RefusedAddress("the host resolves to a loopback, private, link-local or multicast address")
    return addresses[0]


# ------------------------------------------------------------------ endpoints


def practice_endpoints(viewer: Viewer) -> QuerySet[WebhookEndpoint]:
    """The one access query for endpoints: the viewer's practice, deleted ones excepted."""
    return WebhookEndpoint.filter(practice_id=viewer.practice.id, deleted_at=None)


async def list_endpoints(ctx: Context, *, first: int | None, after: str | None) -> Page[WebhookEndpoint]:
    return await paginate(practice_endpoints(ctx.require_viewer()), order=ORDER, first=first, after=after)


async def get_endpoint(ctx: Context, pk: uuid.UUID) -> WebhookEndpoint | None:
    if ctx.viewer is None:
        return None

    async def batch(keys: Sequence[uuid.UUID]) -> list[WebhookEndpoint | None]:
        rows = {e.id: e for e in await practice_endpoints(ctx.require_viewer()).filter(id__in=list(keys))}
        return [rows.get(k) for k in keys]

    return ctx.own(await ctx.loaders.get("webhooks.endpoints", batch).load(pk))


def _event_types(token: ApiToken, requested: list[EventType]) -> list[str]:
    if not requested:
        raise BadInput("give at least one event type", field="input.eventTypes")
    kinds = list(dict.fromkeys(EventType(t) for t in requested))
    scopes = {TokenScope(s) for s in token.scopes}
    uncovered = [k.value for k in kinds if events.SCOPES[k] not in scopes]
    if uncovered:
        raise BadInput(f"the API token's scopes do not cover {', '.join(uncovered)}", field="input.eventTypes")
    return [k.value for k in kinds]


async def create(
    ctx: Context, *, api_token_id: str, url: str, event_types: list[EventType], description: str | None
) -> tuple[WebhookEndpoint, str]:
    """A new endpoint for a live token of the practice. Returns the row and its whsec_ secret (shown once)."""
    viewer, now = ctx.require_viewer(), ctx.clock.now()
    token = await api_tokens.get_token(ctx, ids.decode(api_token_id, "ApiToken", field="input.apiTokenId"))
    if token is None:
        raise NotFound("no such API token")
    if token.revoked_at is not None or token.expires_at <= now:
        raise BadInput("this API token is revoked or expired", field="input.apiTokenId")
    kinds = _event_types(token, event_types)
    text = validation.text(url, field="input.url", max_length=URL_MAX_LENGTH)
    try:
        parsed = parse_url(text, production=ctx.settings.production)
        if ctx.settings.production:
            await pinned_address(parsed, production=True)
    except RefusedAddress as refused:
        raise BadInput(f"url {refused}", field="input.url") from None
    note = validation.text(description, field="input.description", max_length=DESCRIPTION_MAX, required=False)
    secret = new_secret()
    async with in_transaction() as conn:
        row = await WebhookEndpoint.create(
            id=uuid.uuid4(),
            practice_id=viewer.practice.id,
            api_token_id=token.id,
            created_by_id=viewer.member.id,
            url=text,
            description=note,
            event_types=kinds,
            secret_encrypted=cipher(ctx.settings).encrypt(secret.encode()).decode(),
            created_at=now,
            using_db=conn,
        )
        # The URL stays out of the log (its query string may hold a partner's key).
        await audit.record(
            ctx,
            "webhook_endpoint.created",
            ids.encode("WebhookEndpoint", row.id),
            apiToken=ids.encode("ApiToken", token.id),
            eventTypes=kinds,
        )
    return row, secret


async def delete(ctx: Context, endpoint_id: str) -> WebhookEndpoint:
    """Delete an endpoint: nothing more is sent to it (its pending deliveries go with it; past ones stay listed)."""
    endpoint = await get_endpoint(ctx, ids.decode(endpoint_id, "WebhookEndpoint", field="input.webhookEndpointId"))
    if endpoint is None:
        raise NotFound("no such webhook endpoint")
    now = ctx.clock.now()
    async with in_transaction() as conn:
        deleted = await (
            WebhookEndpoint.filter(id=endpoint.id, practice_id=endpoint.practice_id, deleted_at=None)
            .using_db(conn)
            .update(deleted_at=now)
        )
        if not deleted:
            raise NotFound("no such webhook endpoint")
        pending = WebhookDelivery.filter(endpoint_id=endpoint.id, status=Status.PENDING).using_db(conn)
        await WebhookAttempt.filter(delivery_id__in=Subquery(pending.values("id"))).using_db(conn).delete()
        await pending.delete()
        await audit.record(ctx, "webhook_endpoint.deleted", ids.encode("WebhookEndpoint", endpoint.id))
    endpoint.deleted_at = now
    return endpoint


# ------------------------------------------------------------------ deliveries (reading)


def visible_deliveries(viewer: Viewer) -> QuerySet[WebhookDelivery]:
    """Deliveries of the practice whose event the viewer may read (an Event reached here keeps its row rules)."""
    return WebhookDelivery.filter(
        practice_id=viewer.practice.id, event_id__in=Subquery(events.visible_events(viewer).values("id"))
    )


async def deliveries(
    ctx: Context, endpoint_id: uuid.UUID, *, first: int | None, after: str | None
) -> Page[WebhookDelivery]:
    """WebhookEndpoint.deliveries, newest first; the pages of every endpoint of a list in one batch."""

    async def batch(keys: Sequence[tuple[uuid.UUID, int | None, str | None]]) -> list[Page | BaseException]:
        groups: dict[tuple[int | None, str | None], list[uuid.UUID]] = defaultdict(list)
        for endpoint, size, cursor in keys:
            groups[(size, cursor)].append(endpoint)
        results: dict[Hashable, Page | BaseException] = {}
        for (size, cursor), endpoints in groups.items():
            try:
                pages = await paginate_many(
                    visible_deliveries(ctx.require_viewer()),
                    partition="endpoint_id",
                    keys=endpoints,
                    order=ORDER,
                    first=size,
                    after=cursor,
                    count=False,
                )
            except AppError as error:
                results.update({(e, size, cursor): error for e in endpoints})
                continue
            results.update({(e, size, cursor): page for e, page in pages.items()})
        return [results[key] for key in keys]

    page = await ctx.loaders.get("webhooks.deliveries", batch).load((endpoint_id, first, after))
    return cast(Page[WebhookDelivery], page)


async def get_delivery(ctx: Context, pk: uuid.UUID) -> WebhookDelivery | None:
    if ctx.viewer is None:
        return None
    row = await visible_deliveries(ctx.viewer).filter(id=pk, endpoint__deleted_at=None).first()
    return ctx.own(row)


# ------------------------------------------------------------------ delivering


def deliver_after_response(ctx: Context, delivery_ids: list[uuid.UUID]) -> None:
    """Deliver these (once committed) right after the response: one background pass per request."""
    queued: list[uuid.UUID] = ctx.state.webhooks_queued
    queued.extend(delivery_ids)
    if ctx.after_response is None or ctx.state.webhooks_scheduled:
        return
    settings, now = ctx.settings, ctx.clock.now
    ctx.state.webhooks_scheduled = ctx.defer(lambda: deliver_due_safely(settings, now, queued))


async def deliver_due_safely(
    settings: RuleSettings, now: Callable[[], datetime], only: list[uuid.UUID] | None = None
) -> None:
    """The background pass after a response: it must never fail the request it follows."""
    try:
        await deliver_due(settings, now, only=only)
    except Exception:
        log.exception("webhook delivery pass failed")


async def deliver_due(
    settings: RuleSettings, now: Callable[[], datetime], *, only: list[uuid.UUID] | None = None
) -> int:
    """Deliver every due delivery (or those of ``only`` that are due), a claimed batch at a time. Returns how many
    were attempted."""
    attempted = 0
    async with httpx.AsyncClient(
        timeout=httpx.Timeout(TIMEOUT_SECONDS),
        follow_redirects=False,
        trust_env=False,
        headers={"user-agent": USER_AGENT},
    ) as client:
        while True:
            claimed = await _claim(now(), only)
            results = await asyncio.gather(
                *(_deliver(settings, client, now, d) for d in claimed), return_exceptions=True
            )
            for result in results:
                if isinstance(result, BaseException):
                    log.error("webhook delivery failed unexpectedly", exc_info=result)  # its lease expires: retried
                else:
                    attempted += result
            if len(claimed) < BATCH:
                return attempted


async def _claim(moment: datetime, only: list[uuid.UUID] | None) -> list[uuid.UUID]:
    """Take a lease on up to BATCH due deliveries: rows another pass holds are skipped, not waited for."""
    due = WebhookDelivery.filter(status=Status.PENDING, next_attempt_at__lte=moment)
    if only is not None:
        if not only:
            return []
        due = due.filter(id__in=only)
    async with in_transaction() as conn:
        # .only(), not .values_list(): Tortoise drops the lock from values queries.
        rows = (
            await due.select_for_update(skip_locked=True)
            .using_db(conn)
            .order_by("next_attempt_at", "id")
            .limit(BATCH)
            .only("id")
        )
        claimed = [row.id for row in rows]
        if claimed:
            await WebhookDelivery.filter(id__in=claimed).using_db(conn).update(next_attempt_at=moment + CLAIM_FOR)
    return claimed


@dataclass(frozen=True)
class Target:
    endpoint: WebhookEndpoint
    token: ApiToken
    viewer: Viewer


async def _receiver(endpoint: WebhookEndpoint, moment: datetime) -> Target | str:
    """The endpoint's token as a viewer (its creator narrowed to its scopes), or why nothing may be sent."""
    token = await ApiToken.filter(id=endpoint.api_token_id, practice_id=endpoint.practice_id).first()
    if token is None or token.revoked_at is not None:
        return "the endpoint's API token is revoked"
    if token.expires_at <= moment:
        return "the endpoint's API token has expired"
    member = await Member.filter(id=token.created_by_id, practice_id=token.practice_id).first()
    if member is None or member.status != MemberStatus.ACTIVE:
        return "the API token's creator is deactivated"
    practice = await Practice.get(id=token.practice_id)
    scopes = frozenset(TokenScope(s) for s in token.scopes)
    return Target(endpoint, token, Viewer(member=member, practice=practice, scopes=scopes, api_token=token))


def body(event: Event) -> bytes:
    """What is sent: the event's type, time and ids, nothing else (no patient data)."""
    return orjson.dumps(
        {
            "type": event.type.value,
            "timestamp": event.created_at.isoformat().replace("+00:00", "Z"),
            "data": {
                "id": ids.encode("Event", event.id),
                "subjectId": ids.encode(event.subject_type, event.subject_id),
                "practiceId": ids.encode("Practice", event.practice_id),
            },
        }
    )


async def _drop(delivery_id: uuid.UUID) -> None:
    async with in_transaction() as conn:
        await WebhookAttempt.filter(delivery_id=delivery_id).using_db(conn).delete()
        await WebhookDelivery.filter(id=delivery_id).using_db(conn).delete()


async def _deliver(
    settings: RuleSettings, client: httpx.AsyncClient, now: Callable[[], datetime], delivery_id: uuid.UUID
) -> int:
    """One attempt of one claimed delivery. Returns 1 when a request was attempted, else 0."""
    delivery = await WebhookDelivery.filter(id=delivery_id).select_related("endpoint", "event").first()
    if delivery is None:
        return 0
    endpoint, event, moment = delivery.endpoint, delivery.event, now()
    if endpoint.deleted_at is not None:
        await _drop(delivery_id)
        return 0
    target = await _receiver(endpoint, moment)
    if isinstance(target, str):
        await WebhookDelivery.filter(id=delivery_id).update(
            status=Status.FAILED, last_error=target, next_attempt_at=None
        )
        return 0
    if (
        event.type.value not in endpoint.event_types
        or not await events.visible_events(target.viewer).filter(id=event.id).exists()
    ):
        await _drop(delivery_id)  # not the token's to read now: never sent
        return 0
    started = time.monotonic()
    status_code: int | None = None
    error: str | None = None
    try:
        url = parse_url(endpoint.url, production=settings.production)
        address = await pinned_address(url, production=settings.production)
        content = body(event)
        sent_at = now()
        msg_id = ids.encode("Event", event.id)
        headers = {
            "content-type": "application/json",
            "host": url.netloc.decode("ascii"),
            "webhook-id": msg_id,
            "webhook-timestamp": str(int(sent_at.timestamp())),
            "webhook-signature": Webhook(await signing_secret(settings, endpoint)).sign(msg_id, sent_at, content),
        }
        extensions = {"sni_hostname": url.raw_host.decode("ascii")} if url.scheme == "https" else {}
        request = client.build_request(
            "POST", url.copy_with(host=address), content=content, headers=headers, extensions=extensions
        )
        response = await client.send(request, stream=True)
        await response.aclose()  # the answer's body is not read: its status is all that counts
        status_code = response.status_code
        if not 200 <= status_code < 300:
            error = f"answered {status_code}"
    except RefusedAddress as refused:
        error = f"refused: {refused}"
    except httpx.TimeoutException:
        error = f"no answer within {TIMEOUT_SECONDS:g} s"
    except (httpx.HTTPError, OSError, InvalidToken, ValueError) as exc:
        error = f"{type(exc).__name__}: {exc}"
    await _record(delivery, now(), status_code, error, int((time.monotonic() - started) * 1000))
    return 1


def retry_delay(attempts: int) -> timedelta:
    """After the n-th failed attempt: 10 s, 30 s, 90 s, 4.5 min, ... at most 4 h."""
    return min(FIRST_RETRY * BACKOFF_FACTOR ** (attempts - 1), MAX_RETRY_DELAY)


async def _record(
    delivery: WebhookDelivery, moment: datetime, status_code: int | None, error: str | None, duration_ms: int
) -> None:
    attempts, error = delivery.attempts + 1, error[:500] if error else None
    changes: dict[str, Any] = {
        "attempts": attempts,
        "last_response_status": status_code,
        "last_attempt_at": moment,
        "last_error": error,
    }
    if error is None:
        changes.update(status=Status.SUCCEEDED, next_attempt_at=None)
    elif moment - delivery.created_at >= RETRY_FOR:
        changes.update(status=Status.FAILED, next_attempt_at=None)
    else:
        changes.update(status=Status.PENDING, next_attempt_at=moment + retry_delay(attempts))
    if error is not None:
        log.warning(
            "webhook delivery %s to endpoint %s failed (attempt %d): %s",
            delivery.id,
            delivery.endpoint_id,
            attempts,
            error,
        )
    async with in_transaction() as conn:
        await WebhookAttempt.create(
            id=uuid.uuid4(),
            delivery_id=delivery.id,
            attempted_at=moment,
            response_status=status_code,
            error=error,
            duration_ms=duration_ms,
            using_db=conn,
        )
        await WebhookDelivery.filter(id=delivery.id).using_db(conn).update(**changes)
