"""The one typed configuration object: environment settings + the TOML file (SPEC §3).

Everything is validated here, once, so the rest of the code can trust its inputs. Problems are
collected (not raised one at a time) and reported with the line they come from, which is what
`router check-config` prints.
"""

from __future__ import annotations

import os
import re
import secrets
import string
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import time, timedelta
from functools import cached_property
from importlib import resources
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from agents.config import AGENT_ROLES, AgentConfig, Team
from router.core.refs import PRIORITIES, Priority, as_priority
from sla.calendar import BusinessCalendar, make_calendar
from sla.policy import SlaPolicy, SlaRules

DEFAULT_URGENT_WORDS = (
    "urgent", "asap", "emergency", "immediately", "critical",
    "至急", "緊急", "大至急", "急ぎ",
)

TEMPLATE_FIELDS = {
    "ack": frozenset({"ref", "due", "suggestions"}),
    "ack_no_due": frozenset({"ref", "suggestions"}),
    "ack_subject": frozenset({"ref"}),
}
"""Templates admins may edit (`[templates.NAME]`, one text per language) and their placeholders."""

CANNED_FIELDS = frozenset({"customer_name", "ref", "agent_name", "subject"})
"""Placeholders a canned response may use; filled when an agent inserts it into a reply."""

_DURATION_PART = re.compile(r"(\d+)\s*([smhdw])")
_DURATION_FULL = re.compile(r"^\s*(?:\d+\s*[smhdw]\s*)+$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_SLACK_CHANNEL = re.compile(r"^(#[^\s#,<>|]{1,80}|[CGD][A-Z0-9]{6,})$")
"""`#name` (Slack allows letters of any script) or a channel ID such as `C0123ABCD`."""
_CLOCK_TIME = re.compile(r"^\d{2}:\d{2}$")


class ConfigError(Exception):
    """Raised with every problem found, each already carrying its location."""

    def __init__(self, problems: list[str]):
        super().__init__("\n".join(problems))
        self.problems = problems


def parse_duration(text: str) -> timedelta:
    """Parse `"45s"`, `"30m"`, `"4h"`, `"2d"`, `"1w"` or combinations like `"1h30m"`."""
    if not isinstance(text, str) or not _DURATION_FULL.match(text):
        raise ValueError(f"{text!r} is not a duration like \"45s\", \"30m\", \"4h\", \"2d\" or \"1h30m\"")
    seconds = sum(int(n) * _UNIT_SECONDS[unit] for n, unit in _DURATION_PART.findall(text))
    return timedelta(seconds=seconds)


@dataclass(frozen=True)
class Settings:
    """Process settings from the environment (SPEC §3 Environment)."""

    database_url: str | None
    data_dir: Path
    config_path: Path | None
    http_host: str = "127.0.0.1"
    http_port: int = 8000
    smtp_host: str = "127.0.0.1"
    smtp_port: int = 2525
    public_url: str = "http://127.0.0.1:8000"
    smtp_relay: str | None = None
    secret_key: str = ""
    api_token: str | None = None
    metrics_token: str | None = None  # None: /metrics answers loopback clients only
    trusted_proxies: tuple[str, ...] = ()  # networks whose X-Forwarded-For is believed; () believes none
    http_max_connections: int = 1000  # connections served at once; a request on one more gets 503
    http_keepalive_seconds: int = 5  # an idle connection between requests is closed after this
    http_header_timeout_seconds: float = 10.0  # a request line and headers must arrive within this
    slack_bot_token: str | None = None
    slack_signing_secret: str | None = None
    slack_alert_channel: str | None = None
    slack_api_url: str = "https://slack.com/api/"
    meta_app_secret: str | None = None
    meta_verify_token: str | None = None
    meta_access_token: str | None = None  # sends on Messenger, Instagram and WhatsApp (a system-user token)
    meta_graph_url: str = "https://graph.facebook.com/v19.0"
    telegram_bot_token: str | None = None
    telegram_secret_token: str | None = None
    telegram_api_url: str = "https://api.telegram.org"
    line_channel_secret: str | None = None
    line_channel_token: str | None = None
    line_api_url: str = "https://api.line.me"
    reuse_port: bool = False  # bind HTTP and SMTP with SO_REUSEPORT (`router serve --workers N`, `--reuse-port`)
    listen_database_url: str | None = None
    """A direct DSN for the chat hub's one LISTEN connection when `database_url` goes through a pooler in
    transaction mode (PgBouncer drops notifications there); unset: a connection of the pool."""


@dataclass(frozen=True)
class ServiceConfig:
    timezone: str = "Asia/Tokyo"
    mail_domains: tuple[str, ...] = ("example.com",)
    support_address: str = "support@example.com"
    reopen_window: timedelta = timedelta(days=7)
    ack_rate_limit: timedelta = timedelta(minutes=5)
    release_on_offline: bool = False
    urgent_words: tuple[str, ...] = DEFAULT_URGENT_WORDS
    max_message_bytes: int = 10 * 1024 * 1024
    max_attachment_bytes: int = 10 * 1024 * 1024
    max_attachments: int = 20
    # SMTP intake limits, per process, applied when the SMTP server starts (README "Email"). Large
    # messages parsed at once: the stdlib parser peaks at ~8x a message (74 MB for 9.6 MB) and holds
    # the GIL, so a second turn buys no speed, only memory (bench/intake_memory_bench.py).
    smtp_max_connections: int = 500
    smtp_max_connections_per_ip: int = 20
    smtp_idle_timeout: timedelta = timedelta(seconds=60)
    smtp_large_messages_at_once: int = 1
    smtp_large_message_wait: timedelta = timedelta(minutes=2)


@dataclass(frozen=True)
class Topic:
    name: str
    skill: str | None
    keywords: tuple[str, ...] = ()
    patterns: tuple[re.Pattern[str], ...] = ()
    priority: Priority | None = None
    team: str | None = None


@dataclass(frozen=True)
class CannedResponse:
    """A reply text agents insert (`[[canned]]`); `language` None offers it for every language."""

    name: str
    text: str
    language: str | None = None


@dataclass(frozen=True)
class SlackConfig:
    """`[slack]` plus the Slack parts of `[[teams]]`: where a team's alerts go, the timezone its
    leads read times in, how bursts are grouped and when the daily digest posts."""

    burst_limit: int = 5
    """More new alert messages than this in one minute (per Slack channel) → one summary message."""
    digest_time: time | None = time(9, 0)
    """Local time (each team's timezone) of the daily digest; None: no digest."""
    team_channels: Mapping[str, str] = field(default_factory=dict)
    team_timezones: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ChatConfig:
    """`[chat]`: the live chat widget's limits (per process) and which sites may embed it."""

    max_message_chars: int = 4000
    messages_per_minute: int = 20
    """Per open connection (a burst of 10 goes through at once)."""
    messages_per_minute_per_ip: int = 60
    connections_per_ip: int = 20
    idle_timeout: timedelta = timedelta(minutes=5)
    """A connection that sends nothing (the widget pings while its page is visible) for this long is closed."""
    offline_after: timedelta = timedelta(seconds=60)
    """A reply to a visitor with no widget open for this long goes by email too, when their email is verified."""
    allowed_origins: tuple[str, ...] = ()
    """Sites (`https://shop.example.com`) whose pages may open the chat; ROUTER_PUBLIC_URL always may; "*": any."""


@dataclass(frozen=True)
class CsatConfig:
    """`[csat]`: satisfaction surveys after a ticket stays solved, and NPS (`router.core.csat`)."""

    enabled: bool = True
    delay: timedelta = timedelta(hours=1)
    """How long a ticket must stay solved before its survey goes out (a reopen within it sends none)."""
    link_expiry: timedelta = timedelta(days=14)
    quiet_days: int = 7
    """A customer sent any survey in the last `quiet_days` days is not sent another (0: no quiet period)."""
    nps: bool = False
    nps_every_days: int = 90
    """NPS goes to a customer at most once in this many days, instead of that resolution's CSAT."""


@dataclass(frozen=True)
class WhatsAppTemplate:
    name: str
    language: str
    """WhatsApp's code for the template's language: "ja", "en_US"."""


@dataclass(frozen=True)
class WhatsAppConfig:
    """`[whatsapp]`: outside WhatsApp's 24-hour window a reply goes out as the pre-approved template
    for the ticket's language (`reply_templates.<ja|en>`, English when the language has none), whose
    body's one variable `{{1}}` holds the reply; none configured: such replies are refused.
    `phone_number_id` sends to customers whose latest WhatsApp message names no business number."""

    reply_templates: Mapping[str, WhatsAppTemplate] = field(default_factory=dict)
    phone_number_id: str | None = None


@dataclass(frozen=True)
class Config:
    settings: Settings
    service: ServiceConfig = field(default_factory=ServiceConfig)
    calendars: Mapping[str, BusinessCalendar] = field(default_factory=dict)
    sla_policies: tuple[SlaPolicy, ...] = ()
    teams: tuple[Team, ...] = ()
    agents: tuple[AgentConfig, ...] = ()
    topics: tuple[Topic, ...] = ()
    templates: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    canned: tuple[CannedResponse, ...] = ()
    slack: SlackConfig = field(default_factory=SlackConfig)
    csat: CsatConfig = field(default_factory=CsatConfig)
    chat: ChatConfig = field(default_factory=ChatConfig)
    whatsapp: WhatsAppConfig = field(default_factory=WhatsAppConfig)
    source: str = "built-in demo"

    @cached_property
    def sla(self) -> SlaRules:
        """The policies and calendars as `sla/` takes them (it never imports this module)."""
        return SlaRules(self.sla_policies, self.calendars)

    @property
    def slack_enabled(self) -> bool:
        """Alerts are queued and delivered only with a bot token (SPEC §3: unset → Slack off)."""
        return bool(self.settings.slack_bot_token)

    def slack_channel(self, team: str | None) -> str | None:
        """Where alerts about a team's tickets go: its `slack_channel`, else `SLACK_ALERT_CHANNEL`."""
        return self.slack.team_channels.get(team or "") or self.settings.slack_alert_channel

    def team_timezone(self, team: str | None) -> str:
        """The timezone a team's leads read times in: the team's `timezone`, else the service's."""
        return self.slack.team_timezones.get(team or "") or self.service.timezone


def settings_from_env(env: Mapping[str, str]) -> Settings:
    """Read the environment once; the rest of the code only sees `Settings`."""
    data_dir = Path(env.get("ROUTER_DATA_DIR") or "./var").resolve()
    config_path = env.get("ROUTER_CONFIG")
    if config_path:
        path: Path | None = Path(config_path)
    else:
        path = Path("router.toml") if Path("router.toml").exists() else None
    defaults = Settings(database_url=None, data_dir=data_dir, config_path=path)

    def opt(name: str) -> str | None:
        return env.get(name) or None

    def port(name: str, default: int) -> int:
        value = env.get(name)
        if not value:
            return default
        if not value.isdigit() or not 0 <= int(value) <= 65535:
            raise ConfigError([f"environment: {name}={value!r} is not a TCP port"])
        return int(value)

    def count(name: str, default: int) -> int:
        value = env.get(name)
        if not value:
            return default
        if not (value.isascii() and value.isdigit()) or int(value) == 0:
            raise ConfigError([f"environment: {name}={value!r} is not a positive whole number"])
        return int(value)

    def seconds(name: str, default: float) -> float:
        value = env.get(name)
        if not value:
            return default
        try:
            parsed = float(value)
        except ValueError:
            parsed = 0.0
        if not 0 < parsed < float("inf"):
            raise ConfigError([f"environment: {name}={value!r} is not a positive number of seconds"])
        return parsed

    def networks(name: str) -> tuple[str, ...]:
        import ipaddress

        found = []
        for item in filter(None, (part.strip() for part in env.get(name, "").split(","))):
            try:
                found.append(str(ipaddress.ip_network(item, strict=False)))
            except ValueError:
                raise ConfigError([f"environment: {name}: {item!r} is not an IP address or network"]) from None
        return tuple(found)

    http_host = env.get("ROUTER_HTTP_HOST") or defaults.http_host
    http_port = port("ROUTER_HTTP_PORT", defaults.http_port)
    return Settings(
        database_url=opt("DATABASE_URL"),
        data_dir=data_dir,
        config_path=path,
        http_host=http_host,
        http_port=http_port,
        smtp_host=env.get("ROUTER_SMTP_HOST") or defaults.smtp_host,
        smtp_port=port("ROUTER_SMTP_PORT", defaults.smtp_port),
        public_url=(env.get("ROUTER_PUBLIC_URL") or f"http://{http_host}:{http_port}").rstrip("/"),
        smtp_relay=opt("ROUTER_SMTP_RELAY"),
        secret_key=env.get("ROUTER_SECRET_KEY") or "",
        api_token=opt("ROUTER_API_TOKEN"),
        metrics_token=opt("ROUTER_METRICS_TOKEN"),
        listen_database_url=opt("ROUTER_LISTEN_DATABASE_URL"),
        trusted_proxies=networks("ROUTER_TRUSTED_PROXIES"),
        http_max_connections=count("ROUTER_HTTP_MAX_CONNECTIONS", defaults.http_max_connections),
        http_keepalive_seconds=count("ROUTER_HTTP_KEEPALIVE_SECONDS", defaults.http_keepalive_seconds),
        http_header_timeout_seconds=seconds("ROUTER_HTTP_HEADER_TIMEOUT_SECONDS", defaults.http_header_timeout_seconds),
        slack_bot_token=opt("SLACK_BOT_TOKEN"),
        slack_signing_secret=opt("SLACK_SIGNING_SECRET"),
        slack_alert_channel=opt("SLACK_ALERT_CHANNEL"),
        slack_api_url=env.get("SLACK_API_URL") or defaults.slack_api_url,
        meta_app_secret=opt("META_APP_SECRET"),
        meta_verify_token=opt("META_VERIFY_TOKEN"),
        meta_access_token=opt("META_ACCESS_TOKEN"),
        meta_graph_url=env.get("META_GRAPH_URL") or defaults.meta_graph_url,
        telegram_bot_token=opt("TELEGRAM_BOT_TOKEN"),
        telegram_secret_token=opt("TELEGRAM_SECRET_TOKEN"),
        telegram_api_url=env.get("TELEGRAM_API_URL") or defaults.telegram_api_url,
        line_channel_secret=opt("LINE_CHANNEL_SECRET"),
        line_channel_token=opt("LINE_CHANNEL_TOKEN"),
        line_api_url=env.get("LINE_API_URL") or defaults.line_api_url,
    )


def ensure_secret_key(settings: Settings) -> Settings:
    """`ROUTER_SECRET_KEY` or one generated once into the data dir, so sessions survive restarts."""
    if settings.secret_key:
        return settings
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    key_file = settings.data_dir / "secret_key"
    if not key_file.exists():
        # Written aside, then linked into place: the file appears whole, and if two processes start
        # together the first link wins and both use its key.
        draft = key_file.with_name(f"secret_key.{os.getpid()}.tmp")
        draft.write_text(secrets.token_urlsafe(48))
        draft.chmod(0o600)
        try:
            os.link(draft, key_file)
        except FileExistsError:
            pass
        finally:
            draft.unlink()
    key = key_file.read_text().strip()
    if not key:
        raise ConfigError([f"{key_file}: the secret key file is empty; delete it or set ROUTER_SECRET_KEY"])
    return replace(settings, secret_key=key)


def demo_config_text() -> str:
    return resources.files("router").joinpath("demo.toml").read_text(encoding="utf-8")


def load_config(settings: Settings) -> Config:
    """Load the TOML named by the settings (or the built-in demo) into a validated `Config`."""
    if settings.config_path is None:
        return parse_config(demo_config_text(), settings, source="built-in demo")
    try:
        text = settings.config_path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([f"{settings.config_path}: cannot read: {exc.strerror}"]) from exc
    return parse_config(text, settings, source=str(settings.config_path))


def parse_config(text: str, settings: Settings, source: str = "<config>") -> Config:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"{source}: {exc}"]) from exc
    return _Parser(text, source).build(data, settings)


class _Parser:
    """Turns the TOML tree into dataclasses, collecting problems with their line numbers."""

    def __init__(self, text: str, source: str):
        self.lines = text.splitlines()
        self.source = source
        self.problems: list[str] = []

    # -- locating ---------------------------------------------------------------------------
    def _section_line(self, section: str, index: int | None) -> int | None:
        header = re.compile(rf"^\s*\[\[\s*{re.escape(section)}\s*\]\]" if index is not None
                            else rf"^\s*\[\s*{re.escape(section)}\s*\]")
        seen = -1
        for number, line in enumerate(self.lines, start=1):
            if header.match(line):
                seen += 1
                if index is None or seen == index:
                    return number
        return None

    def _key_line(self, section: str, index: int | None, key: str | None) -> int | None:
        start = self._section_line(section, index)
        if start is None or key is None:
            return start
        key_re = re.compile(rf"^\s*\"?{re.escape(key)}\"?\s*=")
        for number in range(start + 1, len(self.lines) + 1):
            line = self.lines[number - 1]
            if re.match(r"^\s*\[", line):
                break
            if key_re.match(line):
                return number
        return start

    def problem(self, section: str, index: int | None, key: str | None, message: str) -> None:
        line = self._key_line(section, index, key)
        where = f"{section}[{index}]" if index is not None else section
        if key:
            where += f".{key}"
        prefix = f"{self.source}:{line}" if line else self.source
        self.problems.append(f"{prefix}: {where}: {message}")

    # -- typed getters ----------------------------------------------------------------------
    def _get(self, table: Mapping[str, Any], key: str, kind: type | tuple[type, ...], default: Any,
             loc: tuple[str, int | None]) -> Any:
        value = table.get(key, default)
        if value is default:
            return default
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
            self.problem(loc[0], loc[1], key, f"expected {names}, got {type(value).__name__}")
            return default
        return value

    def _strings(self, table: Mapping[str, Any], key: str, loc: tuple[str, int | None]) -> tuple[str, ...]:
        value = table.get(key, [])
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            self.problem(loc[0], loc[1], key, "expected a list of strings")
            return ()
        return tuple(value)

    def _duration(self, table: Mapping[str, Any], key: str, loc: tuple[str, int | None]) -> timedelta | None:
        if key not in table:
            return None
        try:
            value = parse_duration(table[key])
        except ValueError as exc:
            self.problem(loc[0], loc[1], key, str(exc))
            return None
        if value <= timedelta(0):
            self.problem(loc[0], loc[1], key, "must be longer than zero")
            return None
        return value

    def _tables(self, data: Mapping[str, Any], section: str) -> list[Mapping[str, Any]]:
        value = data.get(section, [])
        if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
            self.problem(section, None, None, f"use [[{section}]] tables")
            return []
        return value

    def _unknown_keys(self, table: Mapping[str, Any], allowed: set[str], loc: tuple[str, int | None]) -> None:
        for key in table:
            if key not in allowed:
                self.problem(loc[0], loc[1], key, f"unknown key (allowed: {', '.join(sorted(allowed))})")

    # -- sections ---------------------------------------------------------------------------
    def build(self, data: Mapping[str, Any], settings: Settings) -> Config:
        known = {"service", "calendars", "sla_policies", "teams", "agents", "topics", "templates", "canned",
                 "slack", "csat", "chat", "whatsapp"}
        for key in data:
            if key not in known:
                self.problem(key, None, None, f"unknown section (allowed: {', '.join(sorted(known))})")
        service = self._service(data.get("service", {}))
        calendars = self._calendars(data)
        teams, slack_teams = self._teams(data)
        topics = self._topics(data, {t.name for t in teams})
        config = Config(
            settings=settings,
            service=service,
            calendars=calendars,
            sla_policies=self._policies(data, calendars),
            teams=teams,
            agents=self._agents(data, {t.name for t in teams}),
            topics=topics,
            templates=self._templates(data.get("templates", {})),
            canned=self._canned(data),
            slack=self._slack(data.get("slack", {}), slack_teams),
            csat=self._csat(data.get("csat", {})),
            chat=self._chat(data.get("chat", {})),
            whatsapp=self._whatsapp(data.get("whatsapp", {})),
            source=self.source,
        )
        if self.problems:
            raise ConfigError(self.problems)
        return config

    def _whatsapp(self, table: Mapping[str, Any]) -> WhatsAppConfig:
        loc = ("whatsapp", None)
        if not isinstance(table, dict):
            self.problem("whatsapp", None, None, "must be a table like [whatsapp] phone_number_id = \"1065…\"")
            return WhatsAppConfig()
        self._unknown_keys(table, {"reply_templates", "phone_number_id"}, loc)
        number = self._get(table, "phone_number_id", str, None, loc)
        if number is not None and not number.isdigit():
            self.problem(*loc, "phone_number_id", f"{number!r} is not a WhatsApp phone number ID (digits)")
        templates: dict[str, WhatsAppTemplate] = {}
        for language, entry in self._get(table, "reply_templates", dict, {}, loc).items():
            name = entry.get("name") if isinstance(entry, dict) else None
            code = entry.get("language") if isinstance(entry, dict) else None
            if language not in ("ja", "en") or not isinstance(name, str) or not isinstance(code, str) \
                    or not re.fullmatch(r"[a-z0-9_]{1,512}", name) \
                    or not re.fullmatch(r"[a-z]{2,3}(_[A-Za-z]{2,4})?", code):
                self.problem(*loc, "reply_templates", f"{language}: expected ja or en = {{ name = \"support_reply\","
                             " language = \"ja\" } (a template name in lower case, WhatsApp's language code)")
                continue
            templates[language] = WhatsAppTemplate(name, code)
        return WhatsAppConfig(templates, number if number is not None and number.isdigit() else None)

    def _chat(self, table: Mapping[str, Any]) -> ChatConfig:
        loc = ("chat", None)
        base = ChatConfig()
        if not isinstance(table, dict):
            self.problem("chat", None, None, "must be a table like [chat] connections_per_ip = 20")
            return base
        self._unknown_keys(table, {"max_message_chars", "messages_per_minute", "messages_per_minute_per_ip",
                                   "connections_per_ip", "idle_timeout", "offline_after", "allowed_origins"}, loc)
        origins = tuple(o.rstrip("/") for o in self._strings(table, "allowed_origins", loc))
        for origin in origins:
            if origin != "*" and not re.fullmatch(r"https?://[^/\s]+", origin):
                self.problem(*loc, "allowed_origins", f"{origin!r} is not an origin like \"https://shop.example.com\"")
        return ChatConfig(
            max_message_chars=self._positive(table, "max_message_chars", base.max_message_chars, loc),
            messages_per_minute=self._positive(table, "messages_per_minute", base.messages_per_minute, loc),
            messages_per_minute_per_ip=self._positive(table, "messages_per_minute_per_ip",
                                                      base.messages_per_minute_per_ip, loc),
            connections_per_ip=self._positive(table, "connections_per_ip", base.connections_per_ip, loc),
            idle_timeout=self._duration(table, "idle_timeout", loc) or base.idle_timeout,
            offline_after=self._duration(table, "offline_after", loc) or base.offline_after,
            allowed_origins=origins,
        )

    def _csat(self, table: Mapping[str, Any]) -> CsatConfig:
        loc = ("csat", None)
        base = CsatConfig()
        if not isinstance(table, dict):
            self.problem("csat", None, None, "must be a table like [csat] delay = \"1h\"")
            return base
        self._unknown_keys(table, {"enabled", "delay", "link_expiry", "quiet_days", "nps", "nps_every_days"}, loc)
        quiet_days: int = self._get(table, "quiet_days", int, base.quiet_days, loc)
        if quiet_days < 0:
            self.problem(*loc, "quiet_days", "must be 0 (no quiet period) or more")
            quiet_days = base.quiet_days
        return CsatConfig(
            enabled=self._get(table, "enabled", bool, base.enabled, loc),
            delay=self._duration(table, "delay", loc) or base.delay,
            link_expiry=self._duration(table, "link_expiry", loc) or base.link_expiry,
            quiet_days=quiet_days,
            nps=self._get(table, "nps", bool, base.nps, loc),
            nps_every_days=self._positive(table, "nps_every_days", base.nps_every_days, loc),
        )

    def _service(self, table: Mapping[str, Any]) -> ServiceConfig:
        loc = ("service", None)
        if not isinstance(table, dict):
            self.problem("service", None, None, "must be a table")
            return ServiceConfig()
        self._unknown_keys(table, {
            "timezone", "mail_domains", "support_address", "reopen_window", "ack_rate_limit",
            "release_on_offline", "urgent_words", "max_message_bytes", "max_attachment_bytes",
            "max_attachments", "smtp_max_connections", "smtp_max_connections_per_ip", "smtp_idle_timeout",
            "smtp_large_messages_at_once", "smtp_large_message_wait"}, loc)
        base = ServiceConfig()
        timezone = self._get(table, "timezone", str, base.timezone, loc)
        self._check_timezone(timezone, loc, "timezone")
        domains = tuple(d.lower() for d in self._strings(table, "mail_domains", loc)) or base.mail_domains
        support = self._get(table, "support_address", str, base.support_address, loc).lower()
        if "@" not in support:
            self.problem(*loc, "support_address", f"{support!r} is not an email address")
        elif support.rsplit("@", 1)[1] not in domains:
            self.problem(*loc, "support_address", "its domain must be one of mail_domains")
        words = self._strings(table, "urgent_words", loc) if "urgent_words" in table else base.urgent_words
        return ServiceConfig(
            timezone=timezone,
            mail_domains=domains,
            support_address=support,
            reopen_window=self._duration(table, "reopen_window", loc) or base.reopen_window,
            ack_rate_limit=self._duration(table, "ack_rate_limit", loc) or base.ack_rate_limit,
            release_on_offline=self._get(table, "release_on_offline", bool, base.release_on_offline, loc),
            urgent_words=tuple(w.lower() for w in words),
            max_message_bytes=self._get(table, "max_message_bytes", int, base.max_message_bytes, loc),
            max_attachment_bytes=self._get(table, "max_attachment_bytes", int, base.max_attachment_bytes, loc),
            max_attachments=self._get(table, "max_attachments", int, base.max_attachments, loc),
            smtp_max_connections=self._positive(table, "smtp_max_connections", base.smtp_max_connections, loc),
            smtp_max_connections_per_ip=self._positive(table, "smtp_max_connections_per_ip",
                                                       base.smtp_max_connections_per_ip, loc),
            smtp_idle_timeout=self._duration(table, "smtp_idle_timeout", loc) or base.smtp_idle_timeout,
            smtp_large_messages_at_once=self._positive(table, "smtp_large_messages_at_once",
                                                       base.smtp_large_messages_at_once, loc),
            smtp_large_message_wait=self._duration(table, "smtp_large_message_wait", loc)
            or base.smtp_large_message_wait,
        )

    def _positive(self, table: Mapping[str, Any], key: str, default: int, loc: tuple[str, int | None]) -> int:
        value: int = self._get(table, key, int, default, loc)
        if value < 1:
            self.problem(*loc, key, "must be 1 or more")
            return default
        return value

    def _check_timezone(self, name: str, loc: tuple[str, int | None], key: str) -> bool:
        try:
            ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            self.problem(*loc, key, f"unknown timezone {name!r} (use an IANA name like \"Asia/Tokyo\")")
            return False
        return True

    def _calendars(self, data: Mapping[str, Any]) -> dict[str, BusinessCalendar]:
        calendars: dict[str, BusinessCalendar] = {}
        for index, table in enumerate(self._tables(data, "calendars")):
            loc = ("calendars", index)
            self._unknown_keys(table, {"name", "timezone", "hours", "holidays", "closed_dates"}, loc)
            name = self._get(table, "name", str, "", loc)
            if not name:
                self.problem(*loc, "name", "a calendar needs a name")
                continue
            if name in calendars:
                self.problem(*loc, "name", f"duplicate calendar {name!r}")
            timezone = self._get(table, "timezone", str, "UTC", loc)
            if not self._check_timezone(timezone, loc, "timezone"):
                continue
            closed = self._strings(table, "closed_dates", loc)
            try:
                calendars[name] = make_calendar(
                    name, timezone, table.get("hours", "24x7"),
                    holiday_country=self._get(table, "holidays", str, None, loc),
                    closed_dates=closed,
                )
            except ValueError as exc:
                self.problem(*loc, "hours", str(exc))
        return calendars

    def _policies(self, data: Mapping[str, Any], calendars: Mapping[str, BusinessCalendar]) -> tuple[SlaPolicy, ...]:
        policies = []
        names: set[str] = set()
        for index, table in enumerate(self._tables(data, "sla_policies")):
            loc = ("sla_policies", index)
            self._unknown_keys(table, {"name", "match", "first_response", "next_response", "resolution",
                                       "calendar", "warn_at"}, loc)
            name = self._get(table, "name", str, f"policy-{index}", loc)
            if name in names:
                self.problem(*loc, "name", f"duplicate policy {name!r}")
            names.add(name)
            calendar = self._get(table, "calendar", str, "24x7", loc)
            if calendar not in calendars:
                self.problem(*loc, "calendar", f"unknown calendar {calendar!r}")
            warn_at = self._warn_levels(table, loc)
            match = table.get("match", {})
            if not isinstance(match, dict):
                self.problem(*loc, "match", "must be a table like { priority = [\"urgent\"] }")
                match = {}
            self._unknown_keys(match, {"priority", "tier", "channel", "topic"}, loc)
            match_priority = frozenset(self._strings(match, "priority", loc))
            for priority in match_priority - set(PRIORITIES):
                self.problem(*loc, "match", f"unknown priority {priority!r} (use {', '.join(PRIORITIES)})")
            policy = SlaPolicy(
                name=name,
                calendar=calendar,
                first_response=self._duration(table, "first_response", loc),
                next_response=self._duration(table, "next_response", loc),
                resolution=self._duration(table, "resolution", loc),
                warn_at=warn_at,
                match_priority=match_priority,
                match_tier=frozenset(self._strings(match, "tier", loc)),
                match_channel=frozenset(self._strings(match, "channel", loc)),
                match_topic=frozenset(self._strings(match, "topic", loc)),
            )
            if not (policy.first_response or policy.next_response or policy.resolution):
                self.problem(*loc, None, "sets no target (first_response, next_response or resolution)")
            policies.append(policy)
        return tuple(policies)

    def _warn_levels(self, table: Mapping[str, Any], loc: tuple[str, int | None]) -> tuple[float, ...]:
        """`warn_at = 0.75` or a list of levels such as `[0.5, 0.75, 0.9]`, each fraction warned once."""
        value = table.get("warn_at", 0.75)
        levels = value if isinstance(value, list) else [value]
        if not levels or not all(isinstance(v, float | int) and not isinstance(v, bool) and 0 < v < 1 for v in levels):
            self.problem(*loc, "warn_at", "must be a fraction between 0 and 1, e.g. 0.75, or a list such as"
                                          " [0.5, 0.75, 0.9]")
            return (0.75,)
        if len(set(levels)) != len(levels):
            self.problem(*loc, "warn_at", "lists a level twice")
        return tuple(sorted({float(v) for v in levels}))

    def _teams(self, data: Mapping[str, Any]) -> tuple[tuple[Team, ...], dict[str, tuple[str | None, str | None]]]:
        """The teams, and per team its Slack channel and timezone (`slack_channel`, `timezone`)."""
        teams = []
        slack: dict[str, tuple[str | None, str | None]] = {}
        for index, table in enumerate(self._tables(data, "teams")):
            loc = ("teams", index)
            self._unknown_keys(table, {"name", "slack_channel", "timezone"}, loc)
            name = self._get(table, "name", str, "", loc)
            if not name:
                self.problem(*loc, "name", "a team needs a name")
                continue
            channel = self._get(table, "slack_channel", str, None, loc)
            if channel is not None and not _SLACK_CHANNEL.match(channel):
                self.problem(*loc, "slack_channel", f"{channel!r} is not a Slack channel: use its ID (\"C0123ABC\")"
                                                    " or \"#name\"")
                channel = None
            timezone = self._get(table, "timezone", str, None, loc)
            if timezone is not None and not self._check_timezone(timezone, loc, "timezone"):
                timezone = None
            teams.append(Team(name=name))
            slack[name] = (channel, timezone)
        return tuple(teams), slack

    def _slack(self, table: Mapping[str, Any], teams: Mapping[str, tuple[str | None, str | None]]) -> SlackConfig:
        loc = ("slack", None)
        base = SlackConfig()
        if not isinstance(table, dict):
            self.problem("slack", None, None, "must be a table like [slack] burst_limit = 5")
            return base
        self._unknown_keys(table, {"burst_limit", "digest_time"}, loc)
        digest_time = base.digest_time
        text = self._get(table, "digest_time", (str, bool), None, loc)
        if text is False:
            digest_time = None
        elif isinstance(text, str):
            try:
                digest_time = time.fromisoformat(text) if _CLOCK_TIME.match(text) else None
            except ValueError:
                digest_time = None
            if digest_time is None:
                self.problem(*loc, "digest_time", f"{text!r} is not a time of day like \"09:00\" (false: no digest)")
        elif text is True:
            self.problem(*loc, "digest_time", "give a time of day like \"09:00\", or false for no digest")
        return SlackConfig(
            burst_limit=self._positive(table, "burst_limit", base.burst_limit, loc),
            digest_time=digest_time,
            team_channels={name: channel for name, (channel, _) in teams.items() if channel},
            team_timezones={name: timezone for name, (_, timezone) in teams.items() if timezone},
        )

    def _agents(self, data: Mapping[str, Any], teams: set[str]) -> tuple[AgentConfig, ...]:
        agents = []
        emails: set[str] = set()
        for index, table in enumerate(self._tables(data, "agents")):
            loc = ("agents", index)
            self._unknown_keys(table, {"email", "name", "team", "role", "skills", "languages", "capacity",
                                       "chat_capacity", "password", "token"}, loc)
            email = self._get(table, "email", str, "", loc).strip().lower()
            if "@" not in email:
                self.problem(*loc, "email", "an agent needs an email address")
                continue
            if email in emails:
                self.problem(*loc, "email", f"duplicate agent {email!r}")
            emails.add(email)
            team = self._get(table, "team", str, None, loc)
            if team is not None and team not in teams:
                self.problem(*loc, "team", f"unknown team {team!r}")
            role = self._get(table, "role", str, "agent", loc)
            if role not in AGENT_ROLES:
                self.problem(*loc, "role", f"unknown role {role!r} (use {', '.join(AGENT_ROLES)})")
            capacity = self._get(table, "capacity", int, 5, loc)
            if capacity < 0:
                self.problem(*loc, "capacity", "must be 0 or more")
            agents.append(AgentConfig(
                email=email,
                name=self._get(table, "name", str, email.split("@")[0], loc),
                team=team,
                role=role,
                skills=self._strings(table, "skills", loc),
                languages=self._strings(table, "languages", loc),
                capacity=capacity,
                chat_capacity=self._get(table, "chat_capacity", int, 3, loc),
                password=self._get(table, "password", str, None, loc),
                token=self._get(table, "token", str, None, loc),
            ))
        return tuple(agents)

    def _topics(self, data: Mapping[str, Any], teams: set[str]) -> tuple[Topic, ...]:
        topics = []
        for index, table in enumerate(self._tables(data, "topics")):
            loc = ("topics", index)
            self._unknown_keys(table, {"name", "skill", "keywords", "patterns", "priority", "team"}, loc)
            name = self._get(table, "name", str, "", loc)
            if not name:
                self.problem(*loc, "name", "a topic needs a name")
                continue
            keywords = self._keywords(table, loc)
            patterns = []
            for source in self._keywords(table, loc, key="patterns"):
                try:
                    patterns.append(re.compile(source, re.IGNORECASE))
                except re.error as exc:
                    self.problem(*loc, "patterns", f"bad regular expression {source!r}: {exc}")
            priority_text = self._get(table, "priority", str, None, loc)
            priority = as_priority(priority_text) if priority_text is not None else None
            if priority_text is not None and priority is None:
                self.problem(*loc, "priority", f"unknown priority {priority_text!r}")
            team = self._get(table, "team", str, None, loc)
            if team is not None and team not in teams:
                self.problem(*loc, "team", f"unknown team {team!r}")
            topics.append(Topic(
                name=name,
                skill=self._get(table, "skill", str, name, loc),
                keywords=tuple(k.lower() for k in keywords),
                patterns=tuple(patterns),
                priority=priority,
                team=team,
            ))
        return tuple(topics)

    def _keywords(self, table: Mapping[str, Any], loc: tuple[str, int | None], key: str = "keywords") -> list[str]:
        """Keywords may be one list or a list per language: `{ en = [...], ja = [...] }`."""
        value = table.get(key, [])
        if isinstance(value, dict):
            words: list[str] = []
            for language, items in value.items():
                words.extend(self._strings({language: items}, language, loc))
            return words
        return list(self._strings(table, key, loc))

    def _canned(self, data: Mapping[str, Any]) -> tuple[CannedResponse, ...]:
        canned = []
        seen: set[tuple[str, str | None]] = set()
        for index, table in enumerate(self._tables(data, "canned")):
            loc = ("canned", index)
            self._unknown_keys(table, {"name", "text", "language"}, loc)
            name = self._get(table, "name", str, "", loc).strip()
            text = self._get(table, "text", str, "", loc)
            language = self._get(table, "language", str, None, loc)
            if not name or not text.strip():
                self.problem(*loc, None, "a canned response needs a name and a text")
                continue
            if (name, language) in seen:
                self.problem(*loc, "name", f"duplicate canned response {name!r} for language {language or 'any'}")
            seen.add((name, language))
            problem = _template_problem(text, CANNED_FIELDS)
            if problem:
                self.problem(*loc, "text", problem)
            canned.append(CannedResponse(name=name, text=text, language=language))
        return tuple(canned)

    def _templates(self, table: Mapping[str, Any]) -> dict[str, dict[str, str]]:
        if not isinstance(table, dict):
            self.problem("templates", None, None, "must be a table like [templates.ack] en = \"...\"")
            return {}
        templates: dict[str, dict[str, str]] = {}
        for name, per_language in table.items():
            if name not in TEMPLATE_FIELDS:
                self.problem("templates", None, name, f"unknown template (known: {', '.join(sorted(TEMPLATE_FIELDS))})")
                continue
            if not isinstance(per_language, dict) or not all(isinstance(v, str) for v in per_language.values()):
                self.problem("templates", None, name, "must map a language to a text, e.g. { en = \"...\" }")
                continue
            for language, text in per_language.items():
                problem = _template_problem(text, TEMPLATE_FIELDS[name])
                if problem:
                    self.problem(f"templates.{name}", None, language, problem)
            templates[name] = dict(per_language)
        return templates


def _template_problem(text: str, allowed: frozenset[str]) -> str | None:
    """Checked at load time, so a typo cannot break every acknowledgement at run time."""
    try:
        fields = {field for _, field, _, _ in string.Formatter().parse(text) if field is not None}
    except ValueError as exc:
        return f"bad placeholder syntax: {exc} (write {{{{ and }}}} for literal braces)"
    unknown = sorted(fields - allowed)
    if unknown:
        return f"unknown placeholder {{{unknown[0]}}} (allowed: {', '.join('{' + f + '}' for f in sorted(allowed))})"
    return None
