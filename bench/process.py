"""The server under test: ``groups-api serve`` (with the bench's app, bench/serve.py) as a child process on the
loopback address, and what /proc says about it (CPU time, peak resident memory of each process)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from bench.load import LOOPBACK

ROOT = Path(__file__).resolve().parent.parent
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]


@dataclass(frozen=True)
class Usage:
    cpu_seconds: float
    peak_rss_kb: dict[int, int]


class Server:
    """``python -m bench.serve --database-url URL --workers N`` on a free loopback port, until ``stop``."""

    def __init__(self, database_url: str, *, workers: int, log_path: Path, redis_url: str | None = None) -> None:
        self.port = free_port()
        env = {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "GROUPS_API_ENV": "production",
            "GROUPS_API_JWT_SECRET": "bench-only-signing-secret-" + "x" * 32,
            "GROUPS_API_RATE_LIMIT_POINTS": str(10**12),  # the bench measures speed, not the hourly budget
            "GROUPS_API_LOG_LEVEL": "WARNING",
            "GROUPS_API_PUBLIC_URL": f"http://{LOOPBACK}:{self.port}",
            "GROUPS_API_APP_URL": f"http://{LOOPBACK}:{self.port}",  # production refuses to start without it
        }
        env.pop("GROUPS_API_REDIS_URL", None)
        if redis_url:
            env["GROUPS_API_REDIS_URL"] = redis_url
        command = [
            sys.executable,
            "-m",
            "bench.serve",
            "--database-url",
            database_url,
            "--host",
            LOOPBACK,
            "--port",
            str(self.port),
            "--workers",
            str(workers),
        ]
        self.log = log_path.open("ab")
        self.process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT)
        self.workers = workers
        self.http = httpx.Client(base_url=f"http://{LOOPBACK}:{self.port}", timeout=30)
        self._wait_until_up()

    def _wait_until_up(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the server exited with {self.process.returncode}: see {self.log.name}")
            try:
                if self.http.get("/healthz").status_code == 200 and len(self.pids()) >= self.workers:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"the server did not start in {timeout:.0f} s: see {self.log.name}")

    def pids(self) -> list[int]:
        """The processes that serve requests: the uvicorn process itself with one worker, its children with more."""
        children = _children(self.process.pid)
        return children if self.workers > 1 else [self.process.pid]

    def usage(self) -> Usage:
        """CPU seconds of the serving processes together, and each one's peak resident memory."""
        return Usage(sum(_cpu_seconds(pid) for pid in self.pids()), {pid: _peak_rss_kb(pid) for pid in self.pids()})

    def statements(self) -> int:
        """SQL statements sent so far (one worker: the bench counts them in that process, bench/server.py)."""
        return self.http.get("/bench/stats").json()["sql"]

    def stop(self) -> None:
        self.http.close()
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()


def _children(pid: int) -> list[int]:
    """Worker processes started by uvicorn (multiprocessing's spawn), not its helper processes."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                command = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if int(fields[1]) == pid and b"spawn_main" in command:
                found.append(int(entry.name))
    return sorted(found)


def _cpu_seconds(pid: int) -> float:
    """utime + stime of the process (its threads included: SQLite runs in one), from /proc/PID/stat."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def _peak_rss_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0
