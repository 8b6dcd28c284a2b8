"""Password hashing with argon2id (argon2-cffi).

Requests hash and check passwords with the ``*_async`` functions, which run argon2 in a thread pool of its own: a
hash takes tens of milliseconds of CPU (and 64 MiB), and on the event loop it held up every other request meanwhile.
The pool is small and separate, so a burst of log-ins waits its turn there (the loop still serving everything else)
rather than taking every thread of the default pool or holding dozens of 64 MiB hashes at once. The plain
functions are for scripts and test data, outside any request.
"""

from __future__ import annotations

import asyncio
import os
from concurrent.futures import ThreadPoolExecutor

from argon2 import PasswordHasher, profiles
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

MIN_LENGTH = 12
MAX_LENGTH = 1024

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
