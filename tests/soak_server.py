"""The real server for the soak and crash tests: ``groups-api serve`` as a subprocess on a free 127.0.0.1 port,
over a throwaway PostgreSQL database the tests make on GROUPS_API_TEST_DATABASE_URL's server
(server.db.throwaway_postgres_database).

The server runs from this checkout (``python -m server.cli serve``, the same entry point as ``groups-api``) in its
own process group, so that stopping or killing it reaches its uvicorn workers too.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
JWT_SECRET = "soak-secret-" + "s" * 40  # fixed, so tokens outlive a restart


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Server:
    """One ``serve`` process (its migrations run first, as in production). ``log`` collects its output."""

    def __init__(self, database_url: str, *, workers: int = 1, log: Path, log_level: str = "WARNING") -> None:
        self.database_url = database_url
        self.workers = workers
        self.log = log
        self.log_level = log_level
        self.port = free_port()
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def environment(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("GROUPS_API_")}
        return {
            **env,
            "GROUPS_API_ENV": "development",
            "GROUPS_API_JWT_SECRET": JWT_SECRET,
            "GROUPS_API_RATE_LIMIT_POINTS": str(10**9),
            "GROUPS_API_LOG_LEVEL": self.log_level,
            "PYTHONPATH": str(ROOT),
        }

    def start(self, timeout: float = 90) -> None:
        """Start and wait until /readyz answers (migrations included)."""
        command = [
            sys.executable,
            "-m",
            "server.cli",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--database-url",
            self.database_url,
            "--workers",
            str(self.workers),
        ]
        with self.log.open("ab") as output:
            self.process = subprocess.Popen(
                command,
                cwd=ROOT,
                env=self.environment(),
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the server exited with {self.process.returncode}; see {self.log}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200:
                    return
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"the server did not get ready in {timeout} s; see {self.log}")

    def kill(self) -> None:
        """SIGKILL the server's process group: no shutdown, no flush, transactions cut where they are."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def stop(self, timeout: float = 20) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()


def audit_verify(database_url: str) -> subprocess.CompletedProcess:
    """``groups-api audit verify`` against the database (exit 0 when every chain holds)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GROUPS_API_")}
    env.update({"GROUPS_API_JWT_SECRET": JWT_SECRET, "GROUPS_API_LOG_LEVEL": "WARNING", "PYTHONPATH": str(ROOT)})
    return subprocess.run(
        [sys.executable, "-m", "server.cli", "audit", "verify", "--database-url", database_url],
        check=False,
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
