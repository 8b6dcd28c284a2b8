"""Safe retries: a mutation sent with ``idempotencyKey`` runs once per (practice, caller, key) for 24 hours.

``once(ctx, mutation, input, codec, run)`` is the one helper the mutations call:

- without a key it just runs;
- the first request with a key inserts the key row (practice, caller, SHA-256 of the key, mutation, SHA-256 of the
  canonical input without the key, status RUNNING) and runs the mutation in ONE transaction, then stores what the
  answer is rebuilt from (``codec.dump``: the ids of its objects, and values that are no object, such as the
  balance after a payment) and marks it DONE. A refused request (bad input, forbidden, not found, a conflict, the
  single-clinician rule) rolls back, key row included: the client may fix the input and retry with the same key;
- the same key again, with the same mutation and input, rebuilds the first answer from the stored ids
  (``codec.load``): the same objects, nothing written, no audit event, no charge, no mail. Another input or another
  mutation under the key is CONFLICT;
- two requests racing with one key: the unique (practice, caller, key) makes the later INSERT wait for the first
  transaction (PostgreSQL; SQLite serialises transactions), then fail once the first commits, and the later request
  answers the committed result. Should it ever see the row while the first still runs, it is CONFLICT. Never a
  second write.

A caller is the member for a session, the token for a partner API token. Rows older than ``TTL`` are ignored (and
replaced by a new first request) and deleted by ``purge`` (``groups-api maintenance purge``).
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from enum import Enum
from typing import Any, Generic, TypeVar

import orjson
from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from auth.viewer import Viewer
from errors import BadInput, Conflict
from models import BillingEntry, Chart, IdempotencyKey, Invitation, Invoice, Statement
from models.idempotency import IdempotencyStatus
from resolvers import billing
from resolvers.context import Context, RuleSettings
from resolvers.invitations import Issued
from resolvers.money import Money

TTL = timedelta(hours=24)
KEY_MAX_LENGTH = 255
FIELD = "input.idempotencyKey"

T = TypeVar("T")


# ------------------------------------------------------------------ the key, the caller, the input


def valid_key(value: str) -> str:
    """1-255 printable characters (as given: no trimming; a key is an opaque token)."""
    if not 1 <= len(value) <= KEY_MAX_LENGTH or not value.isprintable():
        raise BadInput(f"idempotencyKey must be 1 to {KEY_MAX_LENGTH} printable characters", field=FIELD)
    return value


def caller(viewer: Viewer) -> str:
    """Whose keys these are: the partner token's own, or the member's (every session of the member shares them)."""
    if viewer.api_token is not None:
        return f"token:{viewer.api_token.id}"
    return f"member:{viewer.member.id}"


def _canonical(value: Any) -> Any:
    """A JSON-able form of an input value that does not depend on spelling: 40 and 40.00 are one amount."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, Enum):
        return _canonical(value.value)
    if isinstance(value, Decimal):
        return format(value.normalize(), "f") if value.is_finite() else str(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, list | tuple):
        return [_canonical(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _canonical(v) for k, v in value.items()}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {
            f.name: _canonical(getattr(value, f.name))
            for f in dataclasses.fields(value)
            if _given(getattr(value, f.name))
        }
    return str(value)


def _given(value: Any) -> bool:
    return type(value).__name__ != "UnsetType"


def input_hash(input: Any) -> str:
    """SHA-256 of the canonical input without its idempotency key."""
    fields = _canonical(input)
    if isinstance(fields, dict):
        fields.pop("idempotency_key", None)
    return hashlib.sha256(orjson.dumps(fields, option=orjson.OPT_SORT_KEYS)).hexdigest()


# ------------------------------------------------------------------ what an answer is rebuilt from


@dataclass(frozen=True)
class Codec(Generic[T]):
    """How one kind of answer is stored (``dump``: JSON of ids and values) and rebuilt (``load``; None when an object
    of it is gone)."""

    dump: Callable[[Context, T], dict[str, Any]]
    load: Callable[[Context, dict[str, Any]], Awaitable[T | None]]


def _id(value: Any) -> uuid.UUID:
    return uuid.UUID(str(value))


async def _entry(ctx: Context, pk: uuid.UUID) -> billing.EntryRecord | None:
    row = (
        await BillingEntry.filter(practice_id=ctx.require_viewer().practice.id, id=pk)
        .select_related(*billing.RELATED)
        .first()
    )
    return billing.EntryRecord.of_row(row) if row is not None else None


async def _invoice(ctx: Context, pk: uuid.UUID) -> Invoice | None:
    return (
        await Invoice.filter(practice_id=ctx.require_viewer().practice.id, id=pk)
        .select_related(*billing.RELATED)
        .first()
    )


def _dump_recorded(ctx: Context, recorded: billing.Recorded) -> dict[str, Any]:
    return {
        "entry": str(recorded.entry.id),
        # The balance right after this entry, as the first answer showed it (later entries move the live one).
        "balance": str(recorded.balance.amount),
        "currency": recorded.balance.currency,
        "invoice": str(recorded.invoice.id) if recorded.invoice is not None else None,
    }


async def _load_recorded(ctx: Context, stored: dict[str, Any]) -> billing.Recorded | None:
    entry = await _entry(ctx, _id(stored["entry"]))
    invoice = await _invoice(ctx, _id(stored["invoice"])) if stored.get("invoice") else None
    if entry is None or (stored.get("invoice") and invoice is None):
        return None
    return billing.Recorded(entry, Money(Decimal(stored["balance"]), stored["currency"]), invoice)


async def _load_statement(ctx: Context, stored: dict[str, Any]) -> Statement | None:
    practice_id = ctx.require_viewer().practice.id
    return (
        await Statement.filter(practice_id=practice_id, id=_id(stored["statement"]))
        .select_related(*billing.RELATED)
        .first()
    )


async def _load_invoice(ctx: Context, stored: dict[str, Any]) -> Invoice | None:
    return await _invoice(ctx, _id(stored["invoice"]))


async def _load_chart(ctx: Context, stored: dict[str, Any]) -> Chart | None:
    return await Chart.filter(practice_id=ctx.require_viewer().practice.id, id=_id(stored["chart"])).first()


def _cipher(settings: RuleSettings) -> MultiFernet:
    """Encrypts an invitation token kept for a replay (with a key of its own, derived from the JWT secret)."""

    def key(secret: str) -> bytes:
        kdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"groups-api idempotency v1")
        return base64.urlsafe_b64encode(kdf.derive(secret.encode()))

    return MultiFernet([Fernet(key(s)) for s in (settings.jwt_secret, *settings.jwt_previous_secrets) if s])


def _dump_issued(ctx: Context, issued: Issued) -> dict[str, Any]:
    # The token is shown once, and a lost answer must show it again: kept encrypted, and purged with the key.
    return {
        "invitation": str(issued.invitation.id),
        "token": _cipher(ctx.settings).encrypt(issued.token.encode()).decode(),
    }


async def _load_issued(ctx: Context, stored: dict[str, Any]) -> Issued | None:
    invitation = await Invitation.filter(
        practice_id=ctx.require_viewer().practice.id, id=_id(stored["invitation"])
    ).first()
    if invitation is None:
        return None
    try:
        token = _cipher(ctx.settings).decrypt(stored["token"].encode()).decode()
    except InvalidToken:  # encrypted under a JWT secret no longer listed (a rotation finished since)
        raise Conflict("the token of this invitation can no longer be shown: resend the invitation") from None
    return Issued(invitation, token)


RECORDED: Codec[billing.Recorded] = Codec(_dump_recorded, _load_recorded)
STATEMENT: Codec[Statement] = Codec(lambda ctx, row: {"statement": str(row.id)}, _load_statement)
INVOICE: Codec[Invoice] = Codec(lambda ctx, row: {"invoice": str(row.id)}, _load_invoice)
CHART: Codec[Chart] = Codec(lambda ctx, row: {"chart": str(row.id)}, _load_chart)
ISSUED: Codec[Issued] = Codec(_dump_issued, _load_issued)


# ------------------------------------------------------------------ the helper


class _Taken(Exception):
    """Another request holds (or has just committed) the key."""


async def once(ctx: Context, mutation: str, input: Any, codec: Codec[T], run: Callable[[], Awaitable[T]]) -> T:
    """Run ``run`` once per (practice, caller, ``input.idempotency_key``); see the module's docstring."""
    key = getattr(input, "idempotency_key", None)
    if key is None:
        return await run()
    viewer = ctx.require_viewer()
    scope = {
        "practice_id": viewer.practice.id,
        "caller": caller(viewer),
        "key_hash": hashlib.sha256(valid_key(key).encode()).hexdigest(),
    }
    fingerprint = input_hash(input)
    for _ in range(2):
        now = ctx.clock.now()
        existing = await IdempotencyKey.filter(**scope).first()
        if existing is not None and existing.created_at > now - TTL:
            return await _answer(ctx, existing, mutation, fingerprint, codec)
        if existing is not None:
            # Expired and not yet purged: forgotten, the key starts afresh.
            await IdempotencyKey.filter(id=existing.id, created_at=existing.created_at).delete()
        try:
            async with in_transaction() as conn:
                try:
                    row = await IdempotencyKey.create(
                        id=uuid.uuid4(),
                        **scope,
                        mutation=mutation,
                        input_hash=fingerprint,
                        status=IdempotencyStatus.RUNNING,
                        created_at=now,
                        using_db=conn,
                    )
                except IntegrityError:
                    raise _Taken from None
                result = await run()
                await (
                    IdempotencyKey.filter(id=row.id, practice_id=viewer.practice.id)
                    .using_db(conn)
                    .update(status=IdempotencyStatus.DONE, result=codec.dump(ctx, result))
                )
            return result
        except _Taken:
            continue  # the other request committed first (we waited for it): answer what it stored
    raise Conflict("another request with this idempotencyKey is still running: retry later")


async def _answer(ctx: Context, row: IdempotencyKey, mutation: str, fingerprint: str, codec: Codec[T]) -> T:
    if row.mutation != mutation:
        raise Conflict(f"this idempotencyKey was used for {row.mutation}: use a new key for {mutation}")
    if row.input_hash != fingerprint:
        raise Conflict("this idempotencyKey was used with a different input: use a new key for a new request")
    if row.status != IdempotencyStatus.DONE or row.result is None:
        raise Conflict("another request with this idempotencyKey is still running: retry later")
    answer = await codec.load(ctx, row.result)
    if answer is None:
        raise Conflict("what this idempotencyKey created no longer exists: use a new key")
    return answer


async def purge(now: datetime) -> int:
    """Delete the keys older than ``TTL``; returns how many. Safe to run at any time, and twice at once."""
    return await IdempotencyKey.filter(created_at__lte=now - TTL).delete()
