"""Crash safety: the real server on PostgreSQL is killed with SIGKILL in the middle of a burst of writes, started
again, and the database must hold every write it acknowledged and nothing half-written (tests/soak_invariants.py:
no payment without its balance and invoice effect, no invoice without its charges or number, no member without the
invitation that made them, an audit chain that still verifies). The restarted server then takes writes again and
the invariants still hold (numbering goes on without a gap).
"""

from __future__ import annotations

import asyncio
import time

from server.db import throwaway_postgres_database
from tests.conftest import PG_URL, postgres_only
from tests.soak_invariants import check
from tests.soak_load import Soak
from tests.soak_server import Server

CLIENTS = 30
ACKNOWLEDGED_BEFORE_KILL = 150  # writes acknowledged before the kill: it comes mid-burst, not at the start


def acknowledged_writes(soak: Soak) -> int:
    return sum(n for (action, outcome), n in soak.outcomes.counts.items() if outcome == "ok" and action != "setup")


def cut_writes(soak: Soak) -> int:
    """Writes in flight when the server died: their answer never came."""
    return sum(n for (action, outcome), n in soak.outcomes.counts.items() if outcome == "transport")


@postgres_only("crash safety needs PostgreSQL and a real server")
async def test_a_server_killed_mid_burst_leaves_nothing_half_written(tmp_path):
    async with throwaway_postgres_database(PG_URL, "groups_api_crash") as database_url:
        server = Server(database_url, log=tmp_path / "server.log")
        server.start()
        soak = Soak(server.url, seed=7)
        try:
            await soak.set_up()
            burst = asyncio.create_task(soak.run(clients=CLIENTS, seconds=120, mix=Soak.WRITES))
            deadline = time.monotonic() + 90
            while (
                acknowledged_writes(soak) < ACKNOWLEDGED_BEFORE_KILL
                and time.monotonic() < deadline
                and not burst.done()
            ):
                await asyncio.sleep(0.05)
            soak.stopping = True
            server.kill()
            await burst
            before = soak.outcomes
            print(f"\nbefore the kill: {before.summary()}\nwrites cut by the kill: {cut_writes(soak)}")
            assert not before.defects, "\n".join(before.defects[:20])
            assert acknowledged_writes(soak) >= ACKNOWLEDGED_BEFORE_KILL and cut_writes(soak) > 0

            restarted = Server(database_url, log=tmp_path / "server.log")
            restarted.start()
            try:
                problems = await check(database_url, soak.acknowledged)
                assert not problems, "after the crash:\n" + "\n".join(problems[:30])
                await soak.use(restarted.url)
                await soak.run(clients=CLIENTS, seconds=3, mix=Soak.WRITES)
                print(f"after the restart: {soak.outcomes.summary()}")
                assert not soak.outcomes.defects, "\n".join(soak.outcomes.defects[:20])
                assert acknowledged_writes(soak) > 0
            finally:
                restarted.stop()
            problems = await check(database_url, soak.acknowledged)
            assert not problems, "after the restart:\n" + "\n".join(problems[:30])
        finally:
            await soak.aclose()
            server.stop()
