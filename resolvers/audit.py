"""The audit log: append-only, hash-chained per practice.

``record`` appends events inside the caller's transaction (so a write and its events commit together).
``defer`` queues events of reads and denials; ``flush`` writes them after the request has run, in a transaction
of their own, so they are kept even when the request fails. Appends of one practice are serialised by locking
its chain head (models.AuditHead; SQLite serialises writes anyway). ``verify_all`` checks every chain.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from tortoise.exceptions import IntegrityError
from tortoise.queryset import QuerySet
from tortoise.transactions import in_transaction

from auth.viewer import Viewer
from models import AuditEvent, AuditHead, Practice
from models.enums import Permission
from resolvers import validation
from resolvers.context import Context
from resolvers.errors import BadInput
from resolvers.ids import decode
from resolvers.pagination import Page, paginate

GENESIS = "0" * 64
NO_PRACTICE = uuid.UUID(int=0)


@dataclass(frozen=True)
class PendingEvent:
    action: str
    target_id: str | None = None
    details: dict[str, Any] | None = None


def event_hash(previous_hash: str, fields: dict[str, Any]) -> str:
    payload = orjson.dumps(fields, option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(previous_hash.encode() + payload).hexdigest()


def chain_fields(
    *,
    id: str,
    practice: str | None,
    sequence: int,
    actor: str | None,
    api_token: str | None,
    action: str,
    target: str | None,
    request: str | None,
    details: Any,
    at: str,
) -> dict[str, Any]:
    """What the chain protects: every column but the hashes, in text form."""
    return {
        "id": id,
        "practice": practice,
        "sequence": sequence,
        "actor": actor,
        "api_token": api_token,
        "action": action,
        "target": target,
        "request": request,
        "details": details,
        "at": at,
    }


def _text(value: uuid.UUID | None) -> str | None:
    return str(value) if value else None


def hashed_fields(event: AuditEvent) -> dict[str, Any]:
    return chain_fields(
        id=str(event.id),
        practice=_text(event.practice_id),
        sequence=event.sequence,
        actor=_text(event.actor_id),
        api_token=_text(event.api_token_id),
        action=event.action,
        target=event.target_id,
        request=event.request_id,
        details=event.details,
        at=event.created_at.isoformat(),
    )


_DETAILS = AuditEvent._meta.fields_map["details"]


async def record_many(
    ctx: Context,
    events: list[PendingEvent],
    *,
    practice_id: uuid.UUID | None = None,
    actor_id: uuid.UUID | None = None,
    connection: Any = None,
) -> None:
    """Append ``events`` for the viewer (or the given practice/actor) in one chained batch."""
    if not events:
        return
    viewer = ctx.viewer
    if practice_id is None and viewer is not None:
        practice_id = viewer.practice.id
    if actor_id is None and viewer is not None:
        actor_id = viewer.member.id
    api_token_id = viewer.api_token.id if viewer is not None and viewer.api_token is not None else None
    practice, actor, api_token = _text(practice_id), _text(actor_id), _text(api_token_id)
    now = ctx.clock.now()
    at = now.isoformat()
    async with in_transaction() as conn:
        head = await _locked_head(conn, practice_id)
        sequence, previous = head.sequence, head.hash
        rows = []
        for pending in events:
            sequence += 1
            event_id = str(uuid.uuid4())
            protected = chain_fields(
                id=event_id, practice=practice, sequence=sequence, actor=actor, api_token=api_token,
                action=pending.action, target=pending.target_id, request=ctx.request_id, details=pending.details, at=at,
            )
            digest = event_hash(previous, protected)
            rows.append({
                "id": event_id, "practice_id": practice, "sequence": sequence, "actor_id": actor,
                "api_token_id": api_token, "action": pending.action, "target_id": pending.target_id,
                "request_id": ctx.request_id, "details": _DETAILS.to_db_value(pending.details, AuditEvent),
                "created_at": now, "previous_hash": previous, "hash": digest,
            })
            previous = digest
        await _insert(conn, rows)
        await AuditHead.filter(practice_id=head.practice_id).using_db(conn).update(sequence=sequence, hash=previous)


async def _locked_head(conn: Any, practice_id: uuid.UUID | None) -> AuditHead:
    """The practice's chain head, locked until the caller's transaction ends (created at the first event)."""
    key = practice_id or NO_PRACTICE
    head = await AuditHead.select_for_update().using_db(conn).filter(practice_id=key).first()
    if head is not None:
        return head
    try:
        async with in_transaction() as savepoint:
            await AuditHead.create(practice_id=key, sequence=0, hash=GENESIS, using_db=savepoint)
    except IntegrityError:
        pass  # created by a concurrent first append: lock theirs
    return await AuditHead.select_for_update().using_db(conn).get(practice_id=key)


async def _insert(conn: Any, rows: list[dict[str, Any]]) -> None:
    """Insert ready column values with the statement Tortoise prepared for the model.

    ``bulk_create`` would build, validate and convert a model instance per row: most of the cost of recording
    the reads of a 50-chart page. The values here are already in the form its converters would give.
    """
    executor = conn.executor_class(model=AuditEvent, db=conn)
    await conn.execute_many(executor.insert_query, [[row[c] for c in executor.regular_columns] for row in rows])


async def record(ctx: Context, action: str, target_id: str | None = None, **details: Any) -> None:
    await record_many(ctx, [PendingEvent(action, target_id, details or None)])


# ------------------------------------------------------------------ deferred events (reads, denials)

_DEFERRED = "audit.deferred"


def defer(ctx: Context, events: list[PendingEvent]) -> None:
    """Queue events of the viewer that must outlive the request's outcome (reads, denials): ``flush`` writes them.

    Queued events are written after execution in one batch, outside every write transaction of the request,
    so a failing or rolled-back request keeps them, and a request with many reads appends to the chain once.
    """
    if events:
        ctx.state.setdefault(_DEFERRED, []).extend(events)


async def flush(ctx: Context) -> None:
    """Write the events ``defer`` queued (one chained batch). Raises when they cannot be written."""
    events = ctx.state.pop(_DEFERRED, None)
    if events:
        await record_many(ctx, events)


# ------------------------------------------------------------------ reading the log


def practice_events(viewer: Viewer) -> QuerySet[AuditEvent]:
    """The one access query for audit events: the viewer's practice, nothing else."""
    return AuditEvent.filter(practice_id=viewer.practice.id)


def can_see_api_tokens(viewer: Viewer | None) -> bool:
    """The tokens named in events are shown where Practice.apiTokens would show them: sessions with MANAGE_API_TOKENS."""
    return viewer is not None and not viewer.is_token and viewer.has(Permission.MANAGE_API_TOKENS)


async def list_events(
    ctx: Context,
    *,
    first: int | None,
    after: str | None,
    actor_id: str | None = None,
    target_id: str | None = None,
    action: str | None = None,
    api_token_id: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> Page[AuditEvent]:
    """Newest first. ``since`` is inclusive, ``until`` exclusive. No total count: the log only grows."""
    qs = practice_events(ctx.require_viewer())
    if actor_id is not None:
        qs = qs.filter(actor_id=decode(actor_id, "Member", field="filter.actorId"))
    if api_token_id is not None:
        qs = qs.filter(api_token_id=decode(api_token_id, "ApiToken", field="filter.apiTokenId"))
    for column, value in (("target_id", target_id), ("action", action)):
        if value is None:
            continue
        if not validation.fits_column(value, AuditEvent, column):
            return Page([], [], False, False, None)  # matches no event
        qs = qs.filter(**{column: value})
    # A time without a zone is read as UTC, as the database reads it (and as comparing it with one that has a zone needs).
    since, until = _as_utc(since), _as_utc(until)
    if since is not None and until is not None and since >= until:
        raise BadInput("from must be before to", field="filter.to")
    if since is not None:
        qs = qs.filter(created_at__gte=since)
    if until is not None:
        qs = qs.filter(created_at__lt=until)
    # The sequence orders a practice's chain and is unique within it: a complete keyset on its own.
    return await paginate(qs, order=["-sequence"], first=first, after=after, count=False)


def _as_utc(moment: datetime | None) -> datetime | None:
    return moment.replace(tzinfo=UTC) if moment is not None and moment.tzinfo is None else moment


async def get_event(ctx: Context, event_id: uuid.UUID) -> AuditEvent | None:
    if ctx.viewer is None:
        return None
    return ctx.own(await practice_events(ctx.viewer).filter(id=event_id).first())


# ------------------------------------------------------------------ verification


def first_broken_link(
    events: Iterable[AuditEvent], *, previous: str = GENESIS, expected_sequence: int = 1
) -> tuple[AuditEvent, str] | None:
    """The first event (in sequence order) whose link is broken and why, or None when the chain holds."""
    for event in events:
        if event.sequence != expected_sequence:
            return event, f"expected sequence {expected_sequence} (an event was deleted or moved)"
        if event.previous_hash != previous:
            return event, "previous_hash does not match the event before it"
        if event.hash != event_hash(previous, hashed_fields(event)):
            return event, "hash does not match the event's contents (edited)"
        previous, expected_sequence = event.hash, expected_sequence + 1
    return None


def verify_chain(events: list[AuditEvent]) -> AuditEvent | None:
    """The first event (in sequence order) whose link is broken, or None when the chain holds."""
    broken = first_broken_link(events)
    return broken[0] if broken else None


VERIFY_BATCH = 1000


async def verify_practice(practice_id: uuid.UUID | None) -> tuple[AuditEvent | None, str] | None:
    """Walk one practice's chain in sequence order, in batches, to the first broken link."""
    previous, expected, last_sequence = GENESIS, 1, 0
    while True:
        batch = (
            await AuditEvent.filter(practice_id=practice_id, sequence__gt=last_sequence)
            .order_by("sequence")
            .limit(VERIFY_BATCH)
        )
        if not batch:
            return await _check_head(practice_id, last_sequence, previous)
        broken = first_broken_link(batch, previous=previous, expected_sequence=expected)
        if broken is not None:
            return broken
        previous, expected, last_sequence = batch[-1].hash, batch[-1].sequence + 1, batch[-1].sequence


async def verify_all() -> list[str]:
    """One line per practice whose chain is broken, naming its first broken link; empty when every chain holds.

    The chain shows edited, deleted and reordered events; its head (AuditHead) shows the newest events cut off
    the end, unless the head was rewritten too (an external anchor would be needed against that).
    """
    problems = []
    practices = [(p["id"], p["slug"]) for p in await Practice.all().order_by("slug").values("id", "slug")]
    for practice_id, slug in [*practices, (None, None)]:
        broken = await verify_practice(practice_id)
        if broken is not None:
            event, reason = broken
            owner = f"practice {slug} ({practice_id})" if practice_id else "events without a practice"
            where = f"sequence {event.sequence} (event {event.id}, {event.action})" if event else "its start"
            problems.append(f"{owner}: chain broken at {where}: {reason}")
    return problems


async def _check_head(practice_id: uuid.UUID | None, last_sequence: int, last_hash: str) -> tuple[AuditEvent | None, str] | None:
    """The chain must end where its head says: otherwise its newest events were cut off (or the head edited)."""
    head = await AuditHead.filter(practice_id=practice_id or NO_PRACTICE).first()
    if head is None or (head.sequence == last_sequence and head.hash == last_hash):
        return None
    last = await AuditEvent.filter(practice_id=practice_id, sequence=last_sequence).first()
    return last, f"the chain ends at sequence {last_sequence} but its head records {head.sequence}: events are missing at the end"
