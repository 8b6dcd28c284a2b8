"""The outbox: mail is written in the transaction of the change that causes it and delivered after it commits.

Delivery: by SMTP (aiosmtplib) when ``GROUPS_API_SMTP_URL`` is set (``smtp://user:pass@host:port``, STARTTLS when
the server offers it; ``smtps://`` for implicit TLS), otherwise logged (outside production only: production without
SMTP leaves the mail pending). A request schedules a delivery pass to run after its response; a message that
fails stays pending and is retried by the next pass, up to MAX_ATTEMPTS.

Bodies can carry one-time tokens, which must not rest in the database in clear: they are encrypted (Fernet, with a
key derived from the JWT secret) and emptied once sent.
"""

from __future__ import annotations

import base64
import logging
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from email.message import EmailMessage
from typing import cast
from urllib.parse import unquote, urlsplit

import aiosmtplib
from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.expressions import Q
from tortoise.queryset import QuerySet

from models import OutboxMessage
from models.outbox import OutboxStatus
from resolvers.context import Context, RuleSettings

log = logging.getLogger("groups_api.outbox")

MAX_ATTEMPTS = 10
CLAIM_FOR = timedelta(minutes=5)
RETRY_AFTER = timedelta(minutes=5)
BATCH = 50
SMTP_TIMEOUT_SECONDS = 30


class MailNotConfigured(Exception):
    """Production without GROUPS_API_SMTP_URL: mail is never logged there, so it waits."""


# ------------------------------------------------------------------ encryption at rest


def _key(secret: str) -> bytes:
    kdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"groups-api outbox v1")
    return base64.urlsafe_b64encode(kdf.derive(secret.encode()))


def cipher(settings: RuleSettings) -> MultiFernet:
    """Encrypts with the current JWT secret's key; decrypts with it or a retired one still listed."""
    secrets = [settings.jwt_secret, *settings.jwt_previous_secrets]
    return MultiFernet([Fernet(_key(s)) for s in secrets if s])


# ------------------------------------------------------------------ writing


async def enqueue(
    ctx: Context,
    *,
    recipient: str,
    subject: str,
    body: str,
    practice_id: uuid.UUID | None,
    connection: BaseDBAsyncClient,
) -> OutboxMessage:
    """Add a message in the caller's transaction and have it delivered after the response."""
    message = await OutboxMessage.create(
        id=uuid.uuid4(),
        practice_id=practice_id,
        recipient=recipient,
        subject=subject,
        body_encrypted=cipher(ctx.settings).encrypt(body.encode()).decode(),
        created_at=ctx.clock.now(),
        using_db=connection,
    )
    _deliver_after_response(ctx)
    return message


def _deliver_after_response(ctx: Context) -> None:
    """Once per request: a delivery pass after the response is sent (``ctx.after_response``)."""
    if ctx.after_response is None or ctx.state.outbox_scheduled:
        return
    settings, now = ctx.settings, ctx.clock.now
    ctx.state.outbox_scheduled = ctx.defer(lambda: deliver_pending_safely(settings, now))


# ------------------------------------------------------------------ delivering


def _smtp_options(url: str) -> dict:
    parts = urlsplit(url)
    if parts.scheme not in ("smtp", "smtps"):
        raise ValueError("GROUPS_API_SMTP_URL must start with smtp:// or smtps://")
    implicit_tls = parts.scheme == "smtps"
    return {
        "hostname": parts.hostname or "localhost",
        "port": parts.port or (465 if implicit_tls else 25),
        "username": unquote(parts.username) if parts.username else None,
        "password": unquote(parts.password) if parts.password else None,
        "use_tls": implicit_tls,
        "start_tls": False if implicit_tls else None,
        "timeout": SMTP_TIMEOUT_SECONDS,
    }


async def send(settings: RuleSettings, recipient: str, subject: str, body: str) -> None:
    """Deliver one message: SMTP when configured, else the log (never in production)."""
    if not settings.smtp_url:
        if settings.production:
            raise MailNotConfigured("GROUPS_API_SMTP_URL is not set")
        log.info("mail (not sent: no GROUPS_API_SMTP_URL)\nTo: %s\nSubject: %s\n\n%s", recipient, subject, body)
        return
    email = EmailMessage()
    email["From"] = settings.mail_from
    email["To"] = recipient
    email["Subject"] = subject
    email.set_content(body)
    await aiosmtplib.send(email, **_smtp_options(settings.smtp_url))


async def deliver_pending(settings: RuleSettings, now: Callable[[], datetime]) -> int:
    """Send every message that is due (a batch at a time). Returns how many were sent.

    Each message is claimed with a conditional update first (a lease), so concurrent passes never send one twice;
    one that fails waits RETRY_AFTER x attempts before the next pass tries it again.
    """
    sent = 0
    while True:
        moment = now()
        # Tortoise types a flat values_list as tuples; it is a list of message ids.
        ids = cast(list[uuid.UUID], await _due(moment).order_by("created_at").limit(BATCH).values_list("id", flat=True))
        for message_id in ids:
            if await _claim(message_id, moment):
                sent += await _deliver(settings, message_id, now)
        if len(ids) < BATCH:
            return sent


def _due(moment: datetime) -> QuerySet[OutboxMessage]:
    return OutboxMessage.filter(
        Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=moment), status=OutboxStatus.PENDING
    )


async def _claim(message_id: uuid.UUID, moment: datetime) -> bool:
    return bool(await _due(moment).filter(id=message_id).update(next_attempt_at=moment + CLAIM_FOR))


async def _deliver(settings: RuleSettings, message_id: uuid.UUID, now: Callable[[], datetime]) -> int:
    message = await OutboxMessage.get(id=message_id)
    try:
        body = cipher(settings).decrypt(message.body_encrypted.encode()).decode()
        await send(settings, message.recipient, message.subject, body)
    except (InvalidToken, MailNotConfigured, aiosmtplib.SMTPException, OSError, ValueError) as exc:
        attempts = message.attempts + 1
        # A body this process cannot decrypt may be another's (keys being rotated): it waits like any failure.
        status = OutboxStatus.FAILED if attempts >= MAX_ATTEMPTS else OutboxStatus.PENDING
        log.warning("mail %s to %s not sent (attempt %d): %s", message.id, message.recipient, attempts, exc)
        await OutboxMessage.filter(id=message_id).update(
            attempts=attempts,
            status=status,
            last_error=f"{type(exc).__name__}: {exc}"[:500],
            next_attempt_at=now() + RETRY_AFTER * attempts,
        )
        return 0
    await OutboxMessage.filter(id=message_id).update(
        status=OutboxStatus.SENT,
        sent_at=now(),
        attempts=message.attempts + 1,
        body_encrypted="",
        last_error=None,
        next_attempt_at=None,
    )
    return 1


async def deliver_pending_safely(settings: RuleSettings, now: Callable[[], datetime]) -> None:
    """The background pass after a response: it must never fail the request it follows."""
    try:
        await deliver_pending(settings, now)
    except Exception:
        log.exception("outbox delivery pass failed")
