"""Patient charts, their assignments to clinicians, and clinical notes (PHI)."""

from __future__ import annotations

import uuid
from enum import Enum
from typing import TYPE_CHECKING, Any

from tortoise import fields
from tortoise.exceptions import OperationalError
from tortoise.manager import Manager
from tortoise.models import Model
from tortoise.queryset import QuerySet

if TYPE_CHECKING:
    from models.members import Member
    from models.practices import Practice


class ChartStatus(str, Enum):
    ACTIVE = "ACTIVE"
    ARCHIVED = "ARCHIVED"


class Chart(Model):
    id = fields.UUIDField(primary_key=True)
    # RESTRICT everywhere: deleting a practice or member never cascades into patient data.
    practice: fields.ForeignKeyRelation[Practice] = fields.ForeignKeyField(
        "models.Practice", related_name="charts", on_delete=fields.RESTRICT
    )
    practice_id: uuid.UUID
    patient_name = fields.CharField(max_length=200)
    # Lower-cased copy of patient_name, for case-insensitive search with an index (see POSTGRES_SEARCH_INDEX).
    patient_name_search = fields.CharField(max_length=200)
    date_of_birth = fields.DateField(null=True)
    email = fields.CharField(max_length=320, null=True)
    phone = fields.CharField(max_length=40, null=True)
    status = fields.CharEnumField(ChartStatus, max_length=16, default=ChartStatus.ACTIVE)
    created_by: fields.ForeignKeyRelation[Member] = fields.ForeignKeyField(
        "models.Member", related_name="created_charts", on_delete=fields.RESTRICT
    )
    created_by_id: uuid.UUID
    created_at = fields.DatetimeField()

    class Meta:
        table = "charts"
        # (practice, created_at, id) serves the newest-first keyset pages of Practice.charts.
        indexes = (("practice_id", "patient_name_search"), ("practice_id", "created_at", "id"))


class ChartAssignment(Model):
    id = fields.UUIDField(primary_key=True)
    chart: fields.ForeignKeyRelation[Chart] = fields.ForeignKeyField(
        "models.Chart", related_name="assignments", on_delete=fields.RESTRICT
    )
    chart_id: uuid.UUID
    clinician: fields.ForeignKeyRelation[Member] = fields.ForeignKeyField(
        "models.Member", related_name="chart_assignments", on_delete=fields.RESTRICT
    )
    clinician_id: uuid.UUID
    created_at = fields.DatetimeField()

    class Meta:
        table = "chart_assignments"
        unique_together = (("chart_id", "clinician_id"),)
        # (clinician, created_at, id) serves Member.assignedCharts pages, newest assignment first.
        indexes = (("clinician_id", "chart_id"), ("clinician_id", "created_at", "id"))


class AppendOnlyQuerySet(QuerySet):
    """Refuses bulk updates and deletes: clinical notes are never changed or removed once written."""

    def update(self, **kwargs):
        raise OperationalError(f"{self.model.__name__} is append-only")

    def delete(self):
        raise OperationalError(f"{self.model.__name__} is append-only")

    def bulk_update(self, *args, **kwargs):
        raise OperationalError(f"{self.model.__name__} is append-only")


class AppendOnlyManager(Manager):
    def get_queryset(self) -> QuerySet:
        return AppendOnlyQuerySet(self._model)


class ChartNote(Model):
    """Append-only clinical note: the ORM refuses to update or delete a saved note (and so no API can)."""

    id = fields.UUIDField(primary_key=True)
    chart: fields.ForeignKeyRelation[Chart] = fields.ForeignKeyField(
        "models.Chart", related_name="notes", on_delete=fields.RESTRICT
    )
    chart_id: uuid.UUID
    author: fields.ForeignKeyRelation[Member] = fields.ForeignKeyField(
        "models.Member", related_name="chart_notes", on_delete=fields.RESTRICT
    )
    author_id: uuid.UUID
    body = fields.TextField()
    created_at = fields.DatetimeField()

    class Meta:
        table = "chart_notes"
        # (chart, created_at, id) serves Chart.notes pages, newest first.
        indexes = (("chart_id", "created_at", "id"),)
        manager = AppendOnlyManager()

    async def save(self, *args: Any, **kwargs: Any) -> None:
        if self._saved_in_db:
            raise OperationalError("ChartNote is append-only")
        await super().save(*args, **kwargs)

    async def delete(self, *args: Any, **kwargs: Any) -> None:
        raise OperationalError("ChartNote is append-only")


# Patient-name search on PostgreSQL: a trigram GIN index on the lower-cased name, so
# `patient_name_search LIKE '%term%'` (what Practice.charts(search:) runs) is an index scan at any size.
# Tortoise cannot declare an operator-class index portably (the same Meta.indexes also build SQLite), so these
# statements are applied by server.db.install_postgres_indexes after migrations and schema generation.
# pg_trgm is a trusted extension (PostgreSQL 13+): the database owner may create it.
POSTGRES_SEARCH_INDEX = (
    "CREATE EXTENSION IF NOT EXISTS pg_trgm",
    (
        'CREATE INDEX IF NOT EXISTS "idx_charts_patient_name_trgm" ON "charts" '
        'USING GIN ("patient_name_search" gin_trgm_ops)'
    ),
)
