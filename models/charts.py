"""Patient charts, their assignments to clinicians, and clinical notes (PHI)."""

from enum import Enum

from tortoise import fields
from tortoise.models import Model


class ChartStatus(str, Enum):
    ACTIVE = "ACTIVE"
    ARCHIVED = "ARCHIVED"


class Chart(Model):
    id = fields.UUIDField(primary_key=True)
    # RESTRICT everywhere: deleting a practice or member never cascades into patient data.
    practice = fields.ForeignKeyField("models.Practice", related_name="charts", on_delete=fields.RESTRICT)
    patient_name = fields.CharField(max_length=200)
    # Lower-cased copy of patient_name, for case-insensitive search with an index.
    patient_name_search = fields.CharField(max_length=200)
    date_of_birth = fields.DateField(null=True)
    email = fields.CharField(max_length=320, null=True)
    phone = fields.CharField(max_length=40, null=True)
    status = fields.CharEnumField(ChartStatus, max_length=16, default=ChartStatus.ACTIVE)
    created_by = fields.ForeignKeyField("models.Member", related_name="created_charts", on_delete=fields.RESTRICT)
    created_at = fields.DatetimeField()

    class Meta:
        table = "charts"
        indexes = (("practice", "patient_name_search"), ("practice", "created_at"))


class ChartAssignment(Model):
    id = fields.UUIDField(primary_key=True)
    chart = fields.ForeignKeyField("models.Chart", related_name="assignments", on_delete=fields.RESTRICT)
    clinician = fields.ForeignKeyField("models.Member", related_name="chart_assignments", on_delete=fields.RESTRICT)
    created_at = fields.DatetimeField()

    class Meta:
        table = "chart_assignments"
        unique_together = (("chart", "clinician"),)
        indexes = (("clinician", "chart"),)


class ChartNote(Model):
    """Append-only clinical note."""

    id = fields.UUIDField(primary_key=True)
    chart = fields.ForeignKeyField("models.Chart", related_name="notes", on_delete=fields.RESTRICT)
    author = fields.ForeignKeyField("models.Member", related_name="chart_notes", on_delete=fields.RESTRICT)
    body = fields.TextField()
    created_at = fields.DatetimeField()

    class Meta:
        table = "chart_notes"
        indexes = (("chart", "created_at"),)
