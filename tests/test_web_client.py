"""The reference web client (clients/web): its trusted documents manifest is what GraphQL Code Generator writes
from the app's documents and what this server loads and runs, and the Playwright test drives it in Debian's
Chromium against ``groups-api serve`` on another origin (clients/web/e2e). The Node parts need
``npm ci`` in clients/web and /usr/bin/chromium; without them they are skipped, saying so."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from server import observability
from server.settings import Settings
from server.trusted_documents import read_manifest
from tests.conftest import PASSWORD
from tests.factories import sign_up

WEB = Path(__file__).resolve().parent.parent / "clients" / "web"
MANIFEST = WEB / "persisted-documents.json"
CHROMIUM = Path(os.environ.get("GROUPS_WEB_CHROMIUM", "/usr/bin/chromium"))
NPM = shutil.which("npm")

needs_node = pytest.mark.skipif(
    NPM is None or not (WEB / "node_modules").is_dir(),
    reason="the web client's Node packages are not installed: run `npm ci` in clients/web (Node 20.19+)",
)
needs_chromium = pytest.mark.skipif(
    not CHROMIUM.exists(), reason=f"no Chromium at {CHROMIUM}: `apt-get install -y chromium` to run the browser test"
)
# The browser test serves its own SQLite file whatever database the suite is given: one run (the SQLite pass) is enough.
sqlite_pass = pytest.mark.skipif(
    bool(os.environ.get("GROUPS_API_TEST_DATABASE_URL")),
    reason="the browser test runs groups-api serve on a SQLite file of its own: it runs in the SQLite pass",
)


def documents() -> dict[str, str]:
    """Operation name -> document text, from the committed manifest."""
    return {text.split()[1].split("(")[0]: text for text in json.loads(MANIFEST.read_text()).values()}


def npm(*args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    assert NPM is not None
    return subprocess.run([NPM, *args], cwd=WEB, capture_output=True, text=True, timeout=timeout, check=False)


# ------------------------------------------------------------------ the manifest, without Node


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.with_(trusted_documents=(str(MANIFEST),))


def test_the_committed_manifest_holds_the_apps_screens_each_under_its_sha256():
    entries = read_manifest(MANIFEST)  # keys "sha256:<hex>", as the client preset writes them; checked here
    assert all(hashlib.sha256(text.encode()).hexdigest() == hex_id for hex_id, text in entries)
    assert set(documents()) == {
        "LogIn",
        "RefreshSession",
        "LogOut",
        "Dashboard",
        "BillingHistory",
        "RecordPayment",
        "GenerateStatement",
    }


async def test_the_server_loads_the_manifest_and_runs_the_apps_screens_by_id(api, client):
    ids = {name: "sha256:" + hashlib.sha256(text.encode()).hexdigest() for name, text in documents().items()}
    assert set(ids) <= observability.known_operation_names()
    owner = await sign_up(api)

    async def run(name: str, variables: dict | None = None, token: str | None = None) -> dict:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        response = await client.post(
            "/graphql", json={"documentId": ids[name], "variables": variables or {}}, headers=headers
        )
        assert response.status_code == 200 and not response.json().get("errors"), response.text
        return response.json()["data"]

    session = (await run("LogIn", {"input": {"practiceSlug": owner.slug, "email": owner.email, "password": PASSWORD}}))[
        "logIn"
    ]
    dashboard = await run("Dashboard", token=session["accessToken"])
    assert dashboard["practice"]["members"]["totalCount"] == 1 and dashboard["viewer"]["role"] == "OWNER"
    billing = await run("BillingHistory", {"clinicianIds": [owner.id], "first": 50}, session["accessToken"])
    assert billing["practice"]["billing"]["history"]["edges"] == []


# ------------------------------------------------------------------ Node: codegen and the browser


@needs_node
def test_the_committed_manifest_is_what_graphql_codegen_writes_from_the_apps_documents():
    """`npm run manifest` in clients/web regenerates it (and src/gql/, which is not committed)."""
    done = npm("run", "codegen", timeout=180)
    assert done.returncode == 0, done.stdout + done.stderr
    generated = json.loads((WEB / "src" / "gql" / "persisted-documents.json").read_text())
    assert generated == json.loads(MANIFEST.read_text()), (
        "clients/web/persisted-documents.json is stale: run `npm run manifest`"
    )


@needs_node
@needs_chromium
@sqlite_pass
def test_the_reference_web_client_in_chromium():
    """clients/web/e2e/app.spec.ts: sign-in, the httpOnly refresh cookie, reload, two tabs refreshing at once, a payment
    retried after a lost answer landing once, an unlisted origin blocked by CORS, log-out."""
    built = npm("run", "build", timeout=300)
    assert built.returncode == 0, built.stdout + built.stderr
    env = {
        **os.environ,
        "GROUPS_API_BIN": str(Path(sys.executable).with_name("groups-api")),
        "GROUPS_WEB_CHROMIUM": str(CHROMIUM),
        "CI": "1",
    }
    done = subprocess.run(
        ["npx", "playwright", "test"], cwd=WEB, env=env, capture_output=True, text=True, timeout=600, check=False
    )
    assert done.returncode == 0, done.stdout[-20000:] + done.stderr[-5000:]
