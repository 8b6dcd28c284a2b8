"""The audit log: append-only, hash-chained per practice.

``record`` appends events inside the caller's transaction (so a write and its events commit together).
Events of one practice are serialised by locking the practice row (PostgreSQL; SQLite serialises writes).
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from tortoise.transactions import in_transaction

from models import AuditEvent, Practice
from resolvers.context import Context

GENESIS = "0" * 64


@dataclass(frozen=True)
class PendingEvent:
    action: str
    target_id: str | None = None
    details: dict[str, Any] | None = None


def event_hash(previous_hash: str, fields: dict[str, Any]) -> str:
    payload = orjson.dumps(fields, option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(previous_hash.encode() + payload).hexdigest()


def hashed_fields(event: AuditEvent) -> dict[str, Any]:
    """What the chain protects: every column but the hashes and the id's storage form."""
    return {
        "id": str(event.id),
        "practice": str(event.practice_id) if event.practice_id else None,
        "sequence": event.sequence,
        "actor": str(event.actor_id) if event.actor_id else None,
        "api_token": str(event.api_token_id) if event.api_token_id else None,
        "action": event.action,
        "target": event.target_id,
        "request": event.request_id,
        "details": event.details,
        "at": event.created_at.isoformat(),
    }


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
    now = ctx.clock.now()
    async with in_transaction() as conn:
        if practice_id is not None:
            # FOR NO KEY UPDATE: it serialises the chain's writers, yet does not conflict with the KEY SHARE lock the
            # caller's own inserts took on the practice row (FOR UPDATE would, and two writers would deadlock).
            # .only(), not .values_list(): Tortoise drops the lock clause from values queries.
            await Practice.select_for_update(no_key=True).using_db(conn).filter(id=practice_id).only("id")
        last = (
            await AuditEvent.filter(practice_id=practice_id)
            .using_db(conn)
            .order_by("-sequence")
            .limit(1)
            .values("sequence", "hash")
        )
        sequence, previous = (last[0]["sequence"], last[0]["hash"]) if last else (0, GENESIS)
        rows = []
        for pending in events:
            sequence += 1
            row = AuditEvent(
                id=uuid.uuid4(),
                practice_id=practice_id,
                sequence=sequence,
                actor_id=actor_id,
                api_token_id=api_token_id,
                action=pending.action,
                target_id=pending.target_id,
                request_id=ctx.request_id,
                details=pending.details,
                created_at=now,
                previous_hash=previous,
            )
            row.hash = previous = event_hash(previous, hashed_fields(row))
            rows.append(row)
        await AuditEvent.bulk_create(rows, using_db=conn)


async def record(ctx: Context, action: str, target_id: str | None = None, **details: Any) -> None:
    await record_many(ctx, [PendingEvent(action, target_id, details or None)])


def verify_chain(events: list[AuditEvent]) -> AuditEvent | None:
    """The first event (in sequence order) whose link is broken, or None when the chain holds."""
    previous, expected_sequence = GENESIS, 1
    for event in events:
        if (
            event.sequence != expected_sequence
            or event.previous_hash != previous
            or event.hash != event_hash(previous, hashed_fields(event))
        ):
            return event
        previous, expected_sequence = event.hash, expected_sequence + 1
    return None


