"""Per-request DataLoaders (resolvers/context.py): one caller's cancellation never reaches the others."""

from __future__ import annotations

import asyncio

from resolvers.context import Loaders


async def test_a_cancelled_caller_leaves_the_shared_result_to_the_others():
    """graphql-core cancels the siblings of a field whose error nulls their parent. A sibling cancelled while it
    awaits a key must not cancel the key for a field elsewhere in the response that awaits it too: with a plain
    DataLoader that field received CancelledError and the request never completed."""
    release = asyncio.Event()
    batches: list[list[str]] = []

    async def batch(keys: list[str]) -> list[str]:
        batches.append(list(keys))
        await release.wait()
        return [key.upper() for key in keys]

    loader = Loaders().get("test", batch)
    sibling = asyncio.ensure_future(loader.load("a"))
    elsewhere = asyncio.ensure_future(loader.load("a"))
    await asyncio.sleep(0.01)  # the batch is running, both callers wait
    sibling.cancel()
    await asyncio.sleep(0)
    release.set()
    assert await asyncio.wait_for(elsewhere, 1) == "A"
    assert sibling.cancelled()
    assert batches == [["a"]]
    assert await loader.load("a") == "A"  # the cached result is intact


async def test_a_cancelled_load_many_leaves_its_keys_to_the_others():
    release = asyncio.Event()

    async def batch(keys: list[str]) -> list[str]:
        await release.wait()
        return [key.upper() for key in keys]

    loader = Loaders().get("test", batch)
    sibling = asyncio.ensure_future(loader.load_many(["a", "b"]))
    elsewhere = asyncio.ensure_future(loader.load("b"))
    await asyncio.sleep(0.01)
    sibling.cancel()
    await asyncio.sleep(0)
    release.set()
    assert await asyncio.wait_for(elsewhere, 1) == "B"
    assert await loader.load_many(["a", "b"]) == ["A", "B"]
