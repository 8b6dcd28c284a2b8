"""Jobs run from the command line, outside any request: each opens the database, does its work, closes it."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from tortoise import Tortoise

from server.db import tortoise_config
from server.settings import Settings


@contextlib.asynccontextmanager
async def database(settings: Settings) -> AsyncIterator[None]:
    await Tortoise.init(config=tortoise_config(settings.database_url))
    try:
        yield
    finally:
        await Tortoise.close_connections()


async def run_billing(settings: Settings) -> int:
    from resolvers.clock import Clock
    from resolvers.subscriptions import run_billing as close_periods

    async with database(settings):
        return await close_periods(Clock(settings.clock_offset).now())


async def send_mail(settings: Settings) -> int:
    from resolvers.clock import Clock
    from resolvers.outbox import deliver_pending

    async with database(settings):
        return await deliver_pending(settings, Clock(settings.clock_offset).now)


async def verify_audit(settings: Settings) -> list[str]:
    from resolvers.audit import verify_all

    async with database(settings):
        return await verify_all()


async def purge_expired(settings: Settings) -> int:
    from resolvers.clock import Clock
    from resolvers.idempotency import purge

    async with database(settings):
        return await purge(Clock(settings.clock_offset).now())


async def deliver_webhooks(settings: Settings) -> tuple[int, int]:
    """Re-encrypt endpoint secrets under the current key, then deliver every due webhook (retries included).
    Returns (secrets re-encrypted, deliveries attempted)."""
    from resolvers.clock import Clock
    from resolvers.webhooks import deliver_due, rekey

    async with database(settings):
        return await rekey(settings), await deliver_due(settings, Clock(settings.clock_offset).now)


async def purge_events(settings: Settings) -> int:
    """Delete the events older than 30 days (with their webhook deliveries)."""
    from resolvers.clock import Clock
    from resolvers.events import purge as purge_events

    async with database(settings):
        return await purge_events(Clock(settings.clock_offset).now())
