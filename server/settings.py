"""Settings, read from the environment (GROUPS_API_*) and overridden by command-line options."""

from __future__ import annotations

import logging
import os
import re
import secrets
from dataclasses import dataclass, field, replace
from datetime import timedelta
from pathlib import Path

log = logging.getLogger("groups_api.settings")

DEFAULT_DATABASE_URL = "sqlite://groups-api.sqlite3"
_OFFSET = re.compile(r"^\s*([+-]?\d+)\s*([smhdw])\s*$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


class ConfigurationError(Exception):
    """The service cannot start with this configuration."""


def parse_offset(text: str | None) -> timedelta:
    """'10d', '-2h', '30m' -> timedelta. Empty means no offset."""
    if not text:
        return timedelta(0)
    match = _OFFSET.match(text)
    if not match:
        raise ConfigurationError(f"GROUPS_API_CLOCK_OFFSET must look like 10d, -2h or 30m, not {text!r}")
    return timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})


def _integer(name: str, text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise ConfigurationError(f"GROUPS_API_{name} must be a whole number, not {text!r}") from None


TRUSTED_DOCUMENTS_ONLY_VALUES = ("sessions",)

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000
_URL = re.compile(r"^https?://[^/\s?#]+(/[^\s?#]*)?$")
_ORIGIN = re.compile(r"^https?://[^/\s?#*@]+$")


def parse_origins(text: str) -> tuple[str, ...]:
    """GROUPS_API_CORS_ORIGINS: comma-separated exact origins, e.g. ``https://app.example.com,http://localhost:5173``."""
    origins = tuple(o.strip().rstrip("/") for o in text.split(",") if o.strip())
    for origin in origins:
        _check_origin(origin)
    return origins


def _check_origin(origin: str) -> None:
    if "*" in origin:
        raise ConfigurationError(
            "GROUPS_API_CORS_ORIGINS takes exact origins, never a wildcard: browsers would send the session cookie "
            f"from any site ({origin!r})"
        )
    if not _ORIGIN.match(origin):
        raise ConfigurationError(
            "GROUPS_API_CORS_ORIGINS entries are origins such as https://app.example.com (scheme, host, port; no "
            f"path), not {origin!r}"
        )


def serving_url(host: str, port: int) -> str:
    """The base URL of ``serve --host HOST --port PORT`` as a client on this machine reaches it."""
    if host in ("0.0.0.0", "", "::"):
        host = "127.0.0.1" if host != "::" else "[::1]"
    elif ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"http://{host}:{port}"


def _trusted_documents_only(text: str | None) -> str | None:
    if text is None or text in TRUSTED_DOCUMENTS_ONLY_VALUES:
        return text
    raise ConfigurationError(f"GROUPS_API_TRUSTED_DOCUMENTS_ONLY must be 'sessions' or unset, not {text!r}")


@dataclass(frozen=True)
class Settings:
    env: str = "development"
    database_url: str = DEFAULT_DATABASE_URL
    jwt_secret: str | None = None
    # Retired signing secrets that still verify tokens during a key rotation.
    jwt_previous_secrets: tuple[str, ...] = ()
    jwt_issuer: str = "groups-api"
    jwt_audience: str = "groups-api"
    access_token_ttl: timedelta = timedelta(minutes=15)
    # A session ends this long after its last refresh (idle), and at the latest session_max_age after log-in.
    refresh_token_ttl: timedelta = timedelta(days=30)
    session_max_age: timedelta = timedelta(days=90)
    trial_days: int = 30
    invitation_ttl: timedelta = timedelta(days=7)
    clock_offset: timedelta = timedelta(0)
    smtp_url: str | None = None
    mail_from: str = "no-reply@groups-api.local"
    redis_url: str | None = None
    # This API's base (pdfUrl) and the web app's (invitation and password-reset links). Outside production an unset
    # one follows the serving address (``with_serving_address``); production refuses to start without both.
    public_url: str | None = None
    app_url: str | None = None
    # Browser origins (scheme://host[:port], exact) that get CORS and cookie sessions; no wildcard.
    cors_origins: tuple[str, ...] = ()
    rate_limit_points: int = 5000
    # Sign-ups per client address per hour (resolvers/limits.charge_sign_up).
    sign_ups_per_hour: int = 10
    # Bearer token /metrics asks for; in production /metrics is off (404) without one.
    metrics_token: str | None = field(default=None, repr=False)
    max_body_bytes: int = 1_000_000
    # Manifests of trusted documents (server/trusted_documents.py), and who must use them: None (nobody) or
    # "sessions" (anonymous and session requests; partner API tokens may still send any document).
    trusted_documents: tuple[str, ...] = ()
    trusted_documents_only: str | None = None
    extra: dict = field(default_factory=dict)

    @property
    def production(self) -> bool:
        return self.env == "production"

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @classmethod
    def from_env(cls, environ: os._Environ | dict | None = None, **overrides) -> Settings:
        env = os.environ if environ is None else environ

        def get(name: str) -> str | None:
            value = env.get(f"GROUPS_API_{name}")
            return value if value not in (None, "") else None

        values: dict = {}
        if (v := get("ENV")) is not None:
            values["env"] = v
        if (v := get("DATABASE_URL")) is not None:
            values["database_url"] = v
        if (v := get("JWT_SECRET")) is not None:
            values["jwt_secret"] = v
        if (v := get("JWT_PREVIOUS_SECRETS")) is not None:
            values["jwt_previous_secrets"] = tuple(s.strip() for s in v.split(",") if s.strip())
        if (v := get("TRIAL_DAYS")) is not None:
            values["trial_days"] = _integer("TRIAL_DAYS", v)
        if (v := get("CLOCK_OFFSET")) is not None:
            values["clock_offset"] = parse_offset(v)
            values["extra"] = {"clock_offset_text": v}
        if (v := get("SMTP_URL")) is not None:
            values["smtp_url"] = v
        if (v := get("MAIL_FROM")) is not None:
            values["mail_from"] = v
        if (v := get("REDIS_URL")) is not None:
            values["redis_url"] = v
        if (v := get("PUBLIC_URL")) is not None:
            values["public_url"] = v.rstrip("/")
        if (v := get("APP_URL")) is not None:
            values["app_url"] = v.rstrip("/")
        if (v := get("CORS_ORIGINS")) is not None:
            values["cors_origins"] = parse_origins(v)
        if (v := get("RATE_LIMIT_POINTS")) is not None:
            values["rate_limit_points"] = _integer("RATE_LIMIT_POINTS", v)
        if (v := get("SIGN_UPS_PER_HOUR")) is not None:
            values["sign_ups_per_hour"] = _integer("SIGN_UPS_PER_HOUR", v)
        if (v := get("METRICS_TOKEN")) is not None:
            values["metrics_token"] = v
        if (v := get("TRUSTED_DOCUMENTS")) is not None:
            values["trusted_documents"] = tuple(p.strip() for p in v.split(",") if p.strip())
        if (v := get("TRUSTED_DOCUMENTS_ONLY")) is not None:
            values["trusted_documents_only"] = _trusted_documents_only(v)
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)

    def with_(self, **changes) -> Settings:
        return replace(self, **changes)

    @property
    def api_base_url(self) -> str:
        """Base of the links to this API (pdfUrl): GROUPS_API_PUBLIC_URL, else the serving address."""
        return self.public_url or serving_url(DEFAULT_HOST, DEFAULT_PORT)

    @property
    def app_base_url(self) -> str:
        """Base of the links to the web app (invitations, password resets): GROUPS_API_APP_URL, else the serving
        address."""
        return self.app_url or serving_url(DEFAULT_HOST, DEFAULT_PORT)

    @property
    def secure_cookies(self) -> bool:
        """Cookies carry ``Secure`` everywhere but in development (served over plain http on 127.0.0.1)."""
        return self.env != "development"

    def with_serving_address(self, host: str, port: int) -> Settings:
        """Outside production, point the unset link bases at the address ``serve`` listens on."""
        if self.production:
            return self
        base = serving_url(host, port)
        return replace(self, public_url=self.public_url or base, app_url=self.app_url or base)

    def checked(self) -> Settings:
        """Validate for start-up; in development, create and keep a random JWT secret beside the database."""
        _trusted_documents_only(self.trusted_documents_only)
        for origin in self.cors_origins:
            _check_origin(origin)
        for name, url in (("PUBLIC_URL", self.public_url), ("APP_URL", self.app_url)):
            if url is not None and not _URL.match(url):
                raise ConfigurationError(
                    f"GROUPS_API_{name} must be an http(s) URL such as https://example.com, not {url!r}"
                )
        if self.trusted_documents_only and not self.trusted_documents:
            raise ConfigurationError(
                "GROUPS_API_TRUSTED_DOCUMENTS_ONLY=sessions needs GROUPS_API_TRUSTED_DOCUMENTS: without manifests "
                "no anonymous or session request (logIn included) could run"
            )
        if any(len(s.encode()) < 32 for s in self.jwt_previous_secrets):
            raise ConfigurationError("every GROUPS_API_JWT_PREVIOUS_SECRETS entry must be at least 32 bytes")
        if self.production:
            if not self.jwt_secret or len(self.jwt_secret.encode()) < 32:
                raise ConfigurationError("production needs GROUPS_API_JWT_SECRET of at least 32 bytes")
            if self.clock_offset:
                raise ConfigurationError("GROUPS_API_CLOCK_OFFSET is refused in production")
            if not self.public_url or not self.app_url:
                raise ConfigurationError(
                    "production needs GROUPS_API_PUBLIC_URL (this API, for pdfUrl) and GROUPS_API_APP_URL (the web "
                    "app, for invitation and password-reset links)"
                )
            return self
        if self.jwt_secret:
            if len(self.jwt_secret.encode()) < 32:
                raise ConfigurationError("GROUPS_API_JWT_SECRET must be at least 32 bytes")
            return self
        return replace(self, jwt_secret=self._development_secret())

    def _development_secret(self) -> str:
        path = self._secret_path()
        if path is None:
            return secrets.token_urlsafe(48)
        if path.exists():
            secret = path.read_text().strip()
            if len(secret.encode()) < 32:
                raise ConfigurationError(
                    f"{path} holds a JWT secret shorter than 32 bytes: delete it to generate a new one"
                )
            return secret
        secret = secrets.token_urlsafe(48)
        # Created owner-only from the start (no window in which the umask leaves it readable to others).
        with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as file:
            file.write(secret + "\n")
        log.warning("no GROUPS_API_JWT_SECRET set: generated a development secret in %s", path)
        return secret

    def _secret_path(self) -> Path | None:
        if not self.is_sqlite:
            return None
        location = self.database_url.split("://", 1)[1].split("?", 1)[0]
        if location in ("", ":memory:"):
            return None
        return Path(location).resolve().parent / ".groups-api-secret"
