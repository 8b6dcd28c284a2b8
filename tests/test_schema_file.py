"""The committed schema.graphql (the exported SDL at the repository root) is the live schema."""

from __future__ import annotations

from pathlib import Path

from schema import schema

SCHEMA_FILE = Path(__file__).resolve().parent.parent / "schema.graphql"
REGENERATE = "python -c 'from schema import schema; print(schema.as_str())' > schema.graphql"


def test_the_committed_schema_file_matches_the_live_schema():
    committed = SCHEMA_FILE.read_text() if SCHEMA_FILE.exists() else ""
    assert committed == schema.as_str() + "\n", f"schema.graphql is out of date: regenerate it with `{REGENERATE}`"
