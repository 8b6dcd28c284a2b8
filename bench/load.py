"""Bounded load generators: a fixed number of connections, each run stopped by a request count and a time limit.

``wrk`` (Debian's package) is used when installed: it costs the machine little CPU, which matters when it shares
two cores with the server. Otherwise an asyncio loop of httpx clients stands in (it needs more CPU per request,
so its figures are lower). Both only ever talk to the loopback address the bench's server listens on.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

LOOPBACK = "127.0.0.1"


@dataclass(frozen=True)
class Request:
    path: str
    body: bytes
    headers: dict[str, str]


@dataclass(frozen=True)
class Run:
    """One bounded run: completed requests, elapsed seconds, latency percentiles, failed responses."""

    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    failed: int

    @property
    def per_second(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


def combine(runs: list[Run]) -> Run:
    """Several runs of one request as one: summed counts and time; percentiles weighted by each run's requests."""
    total = sum(r.requests for r in runs)
    weight = [r.requests / total if total else 0 for r in runs]
    return Run(
        requests=total,
        seconds=sum(r.seconds for r in runs),
        p50_ms=sum(w * r.p50_ms for w, r in zip(weight, runs, strict=True)),
        p99_ms=sum(w * r.p99_ms for w, r in zip(weight, runs, strict=True)),
        failed=sum(r.failed for r in runs),
    )


def generator_name() -> str:
    return "wrk" if shutil.which("wrk") else "httpx"


async def run(port: int, request: Request, *, connections: int, seconds: float, max_requests: int) -> Run:
    """Load ``request`` over ``connections`` connections until ``max_requests`` are answered or ``seconds`` pass."""
    if shutil.which("wrk"):
        return await asyncio.to_thread(
            _wrk, port, request, connections=connections, seconds=seconds, max_requests=max_requests
        )
    return await _httpx(port, request, connections=connections, seconds=seconds, max_requests=max_requests)


# ------------------------------------------------------------------ wrk

_WRK_SCRIPT = """
local limit = tonumber(os.getenv("BENCH_LIMIT"))
local body_file = io.open(os.getenv("BENCH_BODY"), "rb")
wrk.method = "POST"
wrk.body = body_file:read("*a")
body_file:close()
for name, value in string.gmatch(os.getenv("BENCH_HEADERS"), "([^\\n:]+): ([^\\n]*)") do
  wrk.headers[name] = value
end
local threads = {}
function setup(thread) table.insert(threads, thread) end
seen = 0
failed = 0
function response(status, headers, body)
  seen = seen + 1
  if status ~= 200 or string.find(body, '"errors"', 1, true) then failed = failed + 1 end
  if seen >= limit then wrk.thread:stop() end
end
function done(summary, latency, requests)
  local bad = 0
  for _, thread in ipairs(threads) do bad = bad + thread:get("failed") end
  local e = summary.errors
  io.write(string.format('BENCH {"requests": %d, "duration_us": %d, "p50_us": %.1f, "p99_us": %.1f, "failed": %d}\\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    bad + e.connect + e.read + e.write + e.timeout))
end
"""


def _wrk(port: int, request: Request, *, connections: int, seconds: float, max_requests: int) -> Run:
    with tempfile.TemporaryDirectory() as tmp:
        script, body = Path(tmp) / "bench.lua", Path(tmp) / "body.json"
        script.write_text(_WRK_SCRIPT)
        body.write_bytes(request.body)
        headers = "\n".join(f"{k}: {v}" for k, v in request.headers.items())
        env = {**os.environ, "BENCH_LIMIT": str(max_requests), "BENCH_BODY": str(body), "BENCH_HEADERS": headers}
        command = [
            "wrk",
            "-t1",
            f"-c{connections}",
            f"-d{max(1, round(seconds))}s",
            "--timeout",
            "10s",
            "-s",
            str(script),
            f"http://{LOOPBACK}:{port}{request.path}",
        ]
        out = subprocess.run(command, env=env, capture_output=True, text=True, timeout=seconds + 60, check=True).stdout
    line = next(line for line in out.splitlines() if line.startswith("BENCH "))
    figures = json.loads(line[len("BENCH ") :])
    return Run(
        figures["requests"],
        figures["duration_us"] / 1e6,
        figures["p50_us"] / 1000,
        figures["p99_us"] / 1000,
        figures["failed"],
    )


# ------------------------------------------------------------------ httpx (when wrk is not installed)


async def _httpx(port: int, request: Request, *, connections: int, seconds: float, max_requests: int) -> Run:
    latencies: list[float] = []
    failed = 0
    headers = request.headers
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    async with httpx.AsyncClient(base_url=f"http://{LOOPBACK}:{port}", limits=limits, timeout=10) as client:
        started = time.perf_counter()
        deadline = started + seconds

        async def worker() -> None:
            nonlocal failed
            while time.perf_counter() < deadline and len(latencies) < max_requests:
                sent = time.perf_counter()
                response = await client.post(request.path, content=request.body, headers=headers)
                latencies.append((time.perf_counter() - sent) * 1000)
                if response.status_code != 200 or b'"errors"' in response.content:
                    failed += 1

        await asyncio.gather(*(worker() for _ in range(connections)))
        elapsed = time.perf_counter() - started
    if not latencies:
        return Run(0, elapsed, 0.0, 0.0, failed)
    cuts = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else latencies * 99
    return Run(len(latencies), elapsed, statistics.median(latencies), cuts[98], failed)
