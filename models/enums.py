"""Enumerations shared by the models, the rules and the schema (the schema wraps them with strawberry.enum)."""

from enum import Enum


class PracticeKind(str, Enum):
    SOLO = "SOLO"
    GROUP = "GROUP"


class Role(str, Enum):
    OWNER = "OWNER"
    CLINICIAN = "CLINICIAN"
    ADMINISTRATOR = "ADMINISTRATOR"


class Permission(str, Enum):
    VIEW_ALL_CHARTS = "VIEW_ALL_CHARTS"
    ASSIGN_CHARTS = "ASSIGN_CHARTS"
    VIEW_BILLING = "VIEW_BILLING"
    MANAGE_BILLING = "MANAGE_BILLING"
    MANAGE_MEMBERS = "MANAGE_MEMBERS"
    MANAGE_SUBSCRIPTION = "MANAGE_SUBSCRIPTION"
    VIEW_AUDIT_LOG = "VIEW_AUDIT_LOG"
    MANAGE_API_TOKENS = "MANAGE_API_TOKENS"


class MemberStatus(str, Enum):
    ACTIVE = "ACTIVE"
    DEACTIVATED = "DEACTIVATED"


class TraineeStatus(str, Enum):
    NONE = "NONE"
    NON_PRESCRIBER_TRAINEE = "NON_PRESCRIBER_TRAINEE"
    PRESCRIBER_TRAINEE = "PRESCRIBER_TRAINEE"


class TokenScope(str, Enum):
    READ_MEMBERS = "READ_MEMBERS"
    READ_CHARTS = "READ_CHARTS"
    WRITE_CHARTS = "WRITE_CHARTS"
    READ_CHART_NOTES = "READ_CHART_NOTES"
    WRITE_CHART_NOTES = "WRITE_CHART_NOTES"
    READ_BILLING = "READ_BILLING"
    WRITE_BILLING = "WRITE_BILLING"
    READ_AUDIT_LOG = "READ_AUDIT_LOG"


class PlanCategory(str, Enum):
    THERAPIST = "THERAPIST"
    PRESCRIBER = "PRESCRIBER"


ALL_PERMISSIONS = frozenset(Permission)
ALL_SCOPES = frozenset(TokenScope)
