"""Tortoise models: data and indexes only, no rules. One module per area.

Tortoise discovers the models of the app from this package (``modules={"models": ["models"]}``).
"""

from models.api_tokens import ApiToken
from models.audit import AuditEvent
from models.charts import Chart, ChartAssignment, ChartNote
from models.members import Member, RotatedRefreshToken, Session
from models.practices import Practice

__all__ = [
    "ApiToken",
    "AuditEvent",
    "Chart",
    "ChartAssignment",
    "ChartNote",
    "Member",
    "Practice",
    "RotatedRefreshToken",
    "Session",
]
