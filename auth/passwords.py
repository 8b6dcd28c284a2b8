"""Password hashing with argon2id (argon2-cffi).

Requests hash and check passwords with the ``*_async`` functions, which run argon2 in a thread pool of its own: a
hash takes tens of milliseconds of CPU (and 64 MiB), and on the event loop it held up every other request meanwhile.
The pool is small and separate, so a burst of log-ins waits its turn there (the loop still serving everything else)
rather than taking every thread of the default pool or holding dozens of 64 MiB hashes at once. The plain
functions are for scripts and test data, outside any request.

``strength_async`` scores a new password with zxcvbn (its common-password, name and word lists), in a pool of one
thread of its own: a score of a long password takes tens of milliseconds of CPU, and zxcvbn keeps the user inputs of
the call in a module-level dictionary, so two scores at once in two threads could mix them up.
"""

from __future__ import annotations

import asyncio
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from argon2 import PasswordHasher, profiles
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from zxcvbn import zxcvbn

MIN_LENGTH = 12
MAX_LENGTH = 256
# zxcvbn's own cap: its matching grows quadratically with the length (a second of CPU at 256 characters).
STRENGTH_SCORED_LENGTH = 72

_hasher = PasswordHasher()  # argon2id with the library's current recommended parameters (RFC 9106 low-memory)
# Verified against when the account does not exist, so a failed log-in costs the same either way.
_DUMMY_HASH = _hasher.hash("not-a-real-password-only-for-timing")


def use_cheapest_parameters_for_tests() -> None:
    """argon2-cffi's CHEAPEST profile: still argon2id, but fast enough for a test suite. Never in production."""
    global _hasher, _DUMMY_HASH
    _hasher = PasswordHasher.from_parameters(profiles.CHEAPEST)
    _DUMMY_HASH = _hasher.hash("not-a-real-password-only-for-timing")


# Threads are started only when first needed (none in a process that never hashes).
_pool = ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 1), thread_name_prefix="argon2")


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    try:
        return _hasher.verify(password_hash or _DUMMY_HASH, password) and password_hash is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash: str) -> bool:
    return _hasher.check_needs_rehash(password_hash)


async def hash_password_async(password: str) -> str:
    """``hash_password`` in the password thread pool: the event loop goes on serving other requests meanwhile."""
    return await asyncio.get_running_loop().run_in_executor(_pool, hash_password, password)


async def verify_password_async(password_hash: str | None, password: str) -> bool:
    """``verify_password`` in the password thread pool (the same cost whether the account exists or not)."""
    return await asyncio.get_running_loop().run_in_executor(_pool, verify_password, password_hash, password)


# ------------------------------------------------------------------ strength (zxcvbn)


@dataclass(frozen=True)
class Strength:
    """zxcvbn's score (0 too guessable ... 4 very unguessable) and its feedback."""

    score: int
    warning: str
    suggestions: tuple[str, ...]


_strength_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="zxcvbn")


def strength(password: str, user_inputs: list[str]) -> Strength:
    """zxcvbn on the first ``STRENGTH_SCORED_LENGTH`` characters (its own limit): a longer password is at least as
    strong as its start, so the score is a floor. ``user_inputs``: words of the person and the practice that make a
    password easy to guess for whoever knows them."""
    result = zxcvbn(password[:STRENGTH_SCORED_LENGTH], user_inputs=user_inputs, max_length=STRENGTH_SCORED_LENGTH)
    feedback = result.get("feedback") or {}
    return Strength(int(result["score"]), feedback.get("warning") or "", tuple(feedback.get("suggestions") or ()))


async def strength_async(password: str, user_inputs: list[str]) -> Strength:
    """``strength`` in its own one-thread pool (off the event loop; one score at a time, see the module's docstring)."""
    return await asyncio.get_running_loop().run_in_executor(_strength_pool, strength, password, user_inputs)
