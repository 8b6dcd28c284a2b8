"""Charts: types, the chart fields of Practice and Member, and the chart mutations.

Other areas' types are referenced lazily (strawberry.lazy / function-local imports) so the core modules
(schema.practices, schema.members) can import the mixins below without an import cycle.
"""

from __future__ import annotations

import strawberry


@strawberry.type
class PracticeChartsFields:
    """Mixed into Practice: ``charts``."""


@strawberry.type
class MemberChartsFields:
    """Mixed into Member: ``assignedCharts``."""
