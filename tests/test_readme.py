"""Every shell example of the README runs, as pasted, against a started ``groups-api serve``.

The ```sh blocks are taken from README.md in order and run as one bash script (later blocks use what earlier ones
set, e.g. ``$TOKEN``), with ``set -e``, against a server this test starts on a free port over a fresh SQLite file.
Lines that start the server (``... make run &``) are left out, since the test started it with the settings those
lines give, and ``127.0.0.1:8000`` becomes the test server's address. A block preceded by
``<!-- not run by tests/test_readme.py: REASON -->`` is skipped (``make test`` itself, say); nothing else is.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.soak_server import ROOT, Server

README = ROOT / "README.md"
FENCE = re.compile(r"^```sh\n(.*?)^```", re.DOTALL | re.MULTILINE)
SKIP = re.compile(r"<!-- not run by tests/test_readme\.py: (?P<reason>[^>]+) -->\s*\Z")
STARTS_SERVER = re.compile(r"^(?:[A-Z_]+=\S+\s+)*make run &\s*$")
README_ADDRESS = "http://127.0.0.1:8000"
# What the server started by this test gets from the blocks' own ``... make run &`` lines.
SERVER_ENVIRONMENT = {
    "GROUPS_API_CORS_ORIGINS": "http://localhost:5173",
    "GROUPS_API_TRUSTED_DOCUMENTS": str(ROOT / "bench" / "persisted-documents.json"),
}


def shell_blocks(text: str) -> list[tuple[int, str, str | None]]:
    """(line number, code, reason it is skipped or None) of every ```sh block."""
    blocks = []
    for match in FENCE.finditer(text):
        before = text[: match.start()]
        skipped = SKIP.search(before)
        blocks.append((before.count("\n") + 1, match.group(1), skipped.group("reason") if skipped else None))
    return blocks


def script(blocks: list[tuple[int, str, str | None]], address: str) -> str:
    lines = ["set -euo pipefail"]
    for line_number, code, reason in blocks:
        if reason is not None:
            continue
        lines.append(f"echo '=== README.md line {line_number}'")
        for line in code.splitlines():
            if STARTS_SERVER.match(line):
                servers_env = dict(re.findall(r"([A-Z_]+)=(\S+)", line))
                assert all(k in SERVER_ENVIRONMENT for k in servers_env), (
                    f"README.md line {line_number}: the test server lacks {servers_env}; add it to SERVER_ENVIRONMENT"
                )
                continue
            lines.append(line.replace(README_ADDRESS, address))
    return "\n".join(lines) + "\n"


def test_every_shell_block_is_run_or_says_why_not():
    blocks = shell_blocks(README.read_text())
    assert len(blocks) >= 7
    run = [b for b in blocks if b[2] is None]
    assert len(run) >= 4
    for line_number, code, reason in blocks:
        assert reason is None or reason.strip(), line_number
        assert "make test" in code or reason is None, f"README.md line {line_number} is skipped but runs no suite"


class ReadmeServer(Server):
    def environment(self) -> dict[str, str]:
        return {**super().environment(), **SERVER_ENVIRONMENT}


@pytest.fixture
def server(tmp_path):
    started = ReadmeServer(f"sqlite://{tmp_path / 'groups-api.sqlite3'}", log=tmp_path / "server.log")
    started.start()
    try:
        yield started
    finally:
        started.stop()


def test_every_shell_example_of_the_readme_runs_against_a_started_server(server, tmp_path):
    blocks = shell_blocks(README.read_text())
    environment = {k: v for k, v in os.environ.items() if not k.startswith("GROUPS_API_")}
    environment["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{environment.get('PATH', '')}"
    ran = subprocess.run(
        ["bash", "-c", script(blocks, server.url)],
        cwd=tmp_path,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    output = ran.stdout
    assert ran.returncode == 0, f"{output}\n{ran.stderr}\n{server.log.read_text()[-3000:]}"

    answers = [json.loads(line) for line in output.splitlines() if line.startswith("{")]  # one answer a line
    assert answers and not [a for a in answers if a.get("errors")], output
    data = [a["data"] for a in answers]
    # The first session: sign-up, then the viewer with the token of the log-in.
    assert data[0]["signUp"]["member"]["role"] == "OWNER" and data[0]["signUp"]["refreshToken"]
    assert data[1] == {
        "viewer": {"name": "Olive Owner", "role": "OWNER", "email": "olive@example.com"},
        "practice": {"slug": "calm-minds", "kind": "SOLO"},
    }
    # Browser sessions: the preflight is allowed for the app's origin; the refresh token never shows in a body.
    assert "access-control-allow-origin: http://localhost:5173" in output.lower()
    cookie_answers = [d for d in data if {"logIn", "refreshSession"} & d.keys()]
    assert [next(iter(d.values()))["refreshToken"] for d in cookie_answers] == [None, None]
    assert {"logOut": {"loggedOut": True}} in data
    # Trusted documents, by id over POST and GET; safe retries: the retry answers the first payment again.
    assert sum(1 for d in data if "practice" in d and "members" in (d["practice"] or {})) == 2
    payments = [d["recordPayment"] for d in data if "recordPayment" in d]
    assert len(payments) == 2 and payments[0] == payments[1]
