"""The audit log: append-only, hash-chained per practice.

``record`` appends events inside the caller's transaction (so a write and its events commit together).
``defer`` queues events of reads and denials; ``flush`` writes them after the request has run, in a transaction
of their own, so they are kept even when the request fails. Appends of one practice are serialised by locking
its chain head (models.AuditHead; SQLite serialises writes anyway). ``defer_once`` queues an event once per
request (reads: one event per chart per request, however many aliases return it). ``verify_all`` checks every
chain (links, head, sign-up event) and reports events of practice ids that are no practice.
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
from tortoise.expressions import Subquery
from tortoise.functions import Count
from tortoise.queryset import QuerySet
from tortoise.transactions import in_transaction

from auth.viewer import Viewer
from errors import BadInput
from models import AuditEvent, AuditHead, Practice
from models.enums import Permission
from resolvers import validation
from resolvers.context import Context
from resolvers.ids import decode, encode
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
                id=event_id,
                practice=practice,
                sequence=sequence,
                actor=actor,
                api_token=api_token,
                action=pending.action,
                target=pending.target_id,
                request=ctx.request_id,
                details=pending.details,
                at=at,
            )
            digest = event_hash(previous, protected)
            rows.append(
                {
                    "id": event_id,
                    "practice_id": practice,
                    "sequence": sequence,
                    "actor_id": actor,
                    "api_token_id": api_token,
                    "action": pending.action,
                    "target_id": pending.target_id,
                    "request_id": ctx.request_id,
                    "details": _DETAILS.to_db_value(pending.details, AuditEvent),
                    "created_at": now,
                    "previous_hash": previous,
                    "hash": digest,
                }
            )
            previous = digest
        await _insert(conn, rows)
        # The event feed (and its webhook deliveries) is written here, with the head still locked: see
        # resolvers/events.py.
        from resolvers import events as feed  # events reads through the areas, which record through this module

        await feed.emit(
            ctx, conn, practice_id, [(row["sequence"], p) for row, p in zip(rows, events, strict=True)], now
        )
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


def defer(ctx: Context, events: list[PendingEvent]) -> None:
    """Queue events of the viewer that must outlive the request's outcome (reads, denials): ``flush`` writes them.

    Queued events are written after execution in one batch, outside every write transaction of the request,
    so a failing or rolled-back request keeps them, and a request with many reads appends to the chain once.
    """
    if events:
        ctx.state.audit_deferred.extend(events)


def defer_once(ctx: Context, events: Iterable[PendingEvent]) -> None:
    """``defer`` each event unless one with the same action and target was already queued in this request.

    For reads: however many aliases, lists or node() calls return a chart, the request read it once.
    """
    seen = ctx.state.audit_deferred_once
    fresh = []
    for event in events:
        key = (event.action, event.target_id)
        if key not in seen:
            seen.add(key)
            fresh.append(event)
    defer(ctx, fresh)


async def flush(ctx: Context) -> None:
    """Write the events ``defer`` queued (one chained batch). Raises when they cannot be written."""
    events, ctx.state.audit_deferred = ctx.state.audit_deferred, []
    if events:
        await record_many(ctx, events)


# ------------------------------------------------------------------ reading the log


def practice_events(viewer: Viewer) -> QuerySet[AuditEvent]:
    """The one access query for audit events: the viewer's practice, nothing else."""
    return AuditEvent.filter(practice_id=viewer.practice.id)


def can_see_api_tokens(viewer: Viewer | None) -> bool:
    """The tokens named in events are shown where Practice.apiTokens would show them: sessions with
    MANAGE_API_TOKENS."""
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
    # A time without a zone is read as UTC, as the database reads it (and as comparing it with one that has a zone
    # needs).
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
SIGNED_UP = "practice.signed_up"


@dataclass
class _Walk:
    """What walking one chain found: its first broken link (if any), its first event, and where it ends."""

    broken: tuple[AuditEvent | None, str] | None = None
    first: AuditEvent | None = None
    last_sequence: int = 0
    last_hash: str = GENESIS


async def _walk(practice_id: uuid.UUID | None) -> _Walk:
    """Walk one practice's chain in sequence order, in batches, to its end or its first broken link."""
    walk = _Walk()
    expected = 1
    while True:
        batch = (
            await AuditEvent.filter(practice_id=practice_id, sequence__gt=walk.last_sequence)
            .order_by("sequence")
            .limit(VERIFY_BATCH)
        )
        if not batch:
            return walk
        walk.first = walk.first or batch[0]
        walk.broken = first_broken_link(batch, previous=walk.last_hash, expected_sequence=expected)
        if walk.broken is not None:
            return walk
        walk.last_hash, expected, walk.last_sequence = batch[-1].hash, batch[-1].sequence + 1, batch[-1].sequence


def _where(event: AuditEvent | None) -> str:
    return f"sequence {event.sequence} (event {event.id}, {event.action})" if event else "its start"


async def _findings(practice_id: uuid.UUID | None) -> list[str]:
    """What is wrong with one chain: a broken link; no head, or a head that is not its newest event; for a
    practice, no sign-up event at its start (``None`` is the chain of events without a practice, which may be empty)."""
    findings = []
    walk = await _walk(practice_id)
    if walk.broken is not None:
        event, reason = walk.broken
        findings.append(f"chain broken at {_where(event)}: {reason}")
    head = await AuditHead.filter(practice_id=practice_id or NO_PRACTICE).first()
    if head is None:
        if practice_id is not None or walk.first is not None:
            findings.append("no chain head: it was deleted (with the newest events, maybe: they cannot be checked)")
    elif walk.broken is None and (mismatch := await _check_head(practice_id, head, walk)) is not None:
        event, reason = mismatch
        findings.append(f"chain broken at {_where(event)}: {reason}")
    if practice_id is not None:
        if walk.first is None:
            findings.append(f"no events: its sign-up event ({SIGNED_UP}) is missing (the chain was deleted or moved)")
        elif walk.first.sequence == 1 and (
            walk.first.action != SIGNED_UP or walk.first.target_id != encode("Practice", practice_id)
        ):
            findings.append(
                f"its chain does not start with its sign-up event ({SIGNED_UP}): it starts with {walk.first.action}"
            )
    return findings


async def verify_all() -> list[str]:
    """One line per practice whose chain is wrong, naming the practice and what is wrong (its first broken link, a
    missing or mismatched head, a missing sign-up event), and one per unknown practice id that has events or a head;
    empty when every chain holds.

    The chain shows edited, deleted and reordered events; its head (AuditHead) shows the newest events cut off
    the end, unless the head was rewritten too (an external anchor would be needed against that). Every practice
    has a head and starts with its sign-up event, so a chain deleted whole (with its head) shows too.
    """
    problems = []
    practices = [(p["id"], p["slug"]) for p in await Practice.all().order_by("slug").values("id", "slug")]
    for practice_id, slug in [*practices, (None, None)]:
        findings = await _findings(practice_id)
        if findings:
            owner = f"practice {slug} ({practice_id})" if practice_id else "events without a practice"
            problems.append(f"{owner}: {'; '.join(findings)}")
    problems.extend(await _unknown_practices({p for p, _ in practices}))
    return problems


async def _unknown_practices(known: set[uuid.UUID]) -> list[str]:
    """Events and chain heads of practice ids that are no practice (moved there, or their practice deleted)."""
    rows = (
        await AuditEvent.filter(practice_id__isnull=False)
        .exclude(practice_id__in=Subquery(Practice.all().values("id")))
        .annotate(events=Count("id"))
        .group_by("practice_id")
        .values("practice_id", "events")
    )
    events = {uuid.UUID(str(row["practice_id"])): row["events"] for row in rows}
    heads = {
        uuid.UUID(str(row["practice_id"])): row["sequence"]
        for row in await AuditHead.exclude(practice_id=NO_PRACTICE).values("practice_id", "sequence")
    }
    problems = []
    for practice_id in sorted({*events, *(h for h in heads if h not in known)}, key=str):
        findings = []
        if practice_id in events:
            findings.append(
                f"{events[practice_id]} event(s) of a practice that does not exist (moved there, or its practice "
                "deleted)"
            )
        if practice_id in heads:
            findings.append(f"a chain head (sequence {heads[practice_id]}) of a practice that does not exist")
        problems.append(f"unknown practice {practice_id}: {'; '.join(findings)}")
    return problems


async def _check_head(
    practice_id: uuid.UUID | None, head: AuditHead, walk: _Walk
) -> tuple[AuditEvent | None, str] | None:
    """The chain must end where its head says: otherwise its newest events were cut off (or the head edited)."""
    if head.sequence == walk.last_sequence and head.hash == walk.last_hash:
        return None
    last = await AuditEvent.filter(practice_id=practice_id, sequence=walk.last_sequence).first()
    if head.sequence != walk.last_sequence:
        return last, (
            f"the chain ends at sequence {walk.last_sequence} but its head records {head.sequence}: events are missing "
            "at the end"
        )
    return last, "its head does not match its newest event: the head or the newest event was rewritten"
