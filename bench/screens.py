"""The screens a client really asks for: one GraphQL document each, exactly the fields the screen shows.

Shared by the benchmark (bench/__main__.py) and the statement-count test (tests/test_screen_queries.py). Page
sizes are variables (``$first``), so the same document runs at any page size.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

# Clinicians in the benchmark's balances screen (one aliased currentBalance each).
BALANCE_CLINICIANS = 20
# The screens as a trusted documents manifest (GraphQL Code Generator's format): `python -m bench.screens` writes it,
# tests/test_trusted_documents.py checks it matches, GROUPS_API_TRUSTED_DOCUMENTS=bench/persisted-documents.json loads
# it.
MANIFEST = Path(__file__).with_name("persisted-documents.json")

DASHBOARD = """
query Dashboard($first: Int = 50) {
  practice {
    id name slug kind
    members(first: $first) {
      totalCount
      pageInfo { hasNextPage endCursor }
      edges { node { id name role status email plan { code name monthlyPrice { amount currency } } } }
    }
    billing { currentBalance { amount currency } }
  }
}
"""

CHART_LIST = """
query ChartList($first: Int = 50) {
  practice {
    charts(first: $first) {
      totalCount
      pageInfo { hasNextPage endCursor }
      edges { cursor node { id patientName dateOfBirth status createdAt assignedClinicians { id name } } }
    }
  }
}
"""

BILLING_HISTORY = """
query BillingHistory($first: Int = 50) {
  practice {
    billing {
      history(first: $first) {
        pageInfo { hasNextPage endCursor }
        edges {
          cursor
          node { id kind occurredOn description amount { amount currency } patientName clinician { id name } createdAt }
        }
      }
    }
  }
}
"""

RECORD_PAYMENT = """
mutation RecordPayment($input: RecordPaymentInput!) {
  recordPayment(input: $input) {
    entry { id kind occurredOn amount { amount currency } }
    balance { amount currency }
  }
}
"""


def clinician_balances(count: int) -> str:
    """Per-clinician balances in one request: ``count`` aliased ``currentBalance`` fields, one clinician each."""
    variables = ", ".join(f"$c{i}: [ID!]" for i in range(count))
    fields = "\n".join(
        f"      c{i}: currentBalance(filter: {{clinicianIds: $c{i}}}) {{ amount currency }}" for i in range(count)
    )
    return f"query ClinicianBalances({variables}) {{\n  practice {{\n    billing {{\n{fields}\n    }}\n  }}\n}}\n"


def clinician_balance_variables(clinician_ids: list[str]) -> dict[str, list[str]]:
    return {f"c{i}": [clinician_id] for i, clinician_id in enumerate(clinician_ids)}


def payment_variables(clinician_id: str, chart_id: str, occurred_on: str) -> dict:
    return {
        "input": {
            "clinicianIds": [clinician_id],
            "chartId": chart_id,
            "amount": "25.00",
            "occurredOn": occurred_on,
            "description": "Copay",
        }
    }


def documents() -> list[str]:
    """Every document the screens send, as sent."""
    return [DASHBOARD, CHART_LIST, BILLING_HISTORY, RECORD_PAYMENT, clinician_balances(BALANCE_CLINICIANS)]


def manifest() -> dict[str, str]:
    """``{sha256 hex of the text: text}`` for every screen document."""
    return {hashlib.sha256(text.encode()).hexdigest(): text for text in documents()}


def manifest_json() -> str:
    return json.dumps(manifest(), indent=2) + "\n"


if __name__ == "__main__":
    MANIFEST.write_text(manifest_json())
    print(f"wrote {len(manifest())} documents to {MANIFEST}")
