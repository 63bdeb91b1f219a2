"""Chat commands and inline buttons: subscribe, mute, feedback, status.

Every command handler gets a `Request` (the chat, the user, the arguments) and returns the reply
as Telegram HTML; the wrapper sends it, cut to Telegram's limit. Every string that comes from a
feed, a narrative file or a user is escaped. Handlers never raise to python-telegram-bot: a
failure is logged and the user is told so in one line. Button presses arrive as signed
callback_data (buttons.py); anything that does not verify is refused and changes nothing.

Chat state (subscriptions, mutes, votes, learned counter-examples) lives in `Audience`; the
configured alert channel is always stored under its configured id (`Audience.channel`), whether
a press or command names it by @username or by numeric id.
"""

from __future__ import annotations

import asyncio
import html
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from telegram import (
    BotCommand,
    CallbackQuery,
    Chat,
    LinkPreviewOptions,
    Message,
    Update,
)
from telegram.constants import ChatType, ParseMode
from telegram.ext import (
    AIORateLimiter,
    Application,
    ApplicationBuilder,
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
    MessageHandler,
    filters,
)

from bot.app.runtime import Runtime
from bot.config import Config, ConfigError, parse_duration
from bot.models import Alert, Evidence
from bot.storage.audience import ALL, Audience
from bot.storage.store import Store
from bot.telegram.buttons import MUTE, RELEVANT, WRONG, ButtonSigner
from bot.trends.charts import render_trend
from bot.trends.spikes import daily_series, format_change, top_narratives

log = logging.getLogger(__name__)

MAX_REPLY_UTF16 = 4096
LIST_BUDGET_UTF16 = 3800  # room left for a header and the "…and N more" line
MAX_ANSWER = 200  # answerCallbackQuery text
MAX_SCORE_CHARS = 20_000
PASSAGE_CHARS = 240
MAX_MUTE = timedelta(days=3650)
BUTTON_MUTE = timedelta(days=7)
MATCH_WINDOW = timedelta(days=7)

SORRY = "Something went wrong; the admins can see the log."
REFUSED = "Sorry, only the bot's admins may do that."
INVALID = "This button is not valid."
UNKNOWN_ALERT = "This alert is no longer known."


@dataclass
class Services:
    """What the handlers need, built once by the caller (service.py or a test)."""

    config: Config
    store: Store
    audience: Audience
    runtime: Runtime
    signer: ButtonSigner
    reload: Callable[[], Awaitable[str]]  # raises ConfigError and keeps the old set
    started_at: datetime
    last_cycle_at: Callable[[], datetime | None]

    def is_admin(self, user_id: int | None) -> bool:
        return user_id is not None and user_id in self.config.telegram.admins

    def chat_key(self, chat: Chat) -> str:
        """The id under which a chat's settings are stored (the channel: as configured)."""
        channel = self.audience.channel
        if channel is not None:
            username = f"@{chat.username}" if chat.username else ""
            if str(chat.id) == channel or username.casefold() == channel.casefold():
                return channel
        return str(chat.id)


@dataclass(frozen=True)
class Request:
    """One command: who sent it, where, and its arguments."""

    services: Services
    chat: Chat
    user_id: int | None
    args: list[str]
    rest: str  # everything after the command, line breaks kept

    @property
    def chat_id(self) -> str:
        return self.services.chat_key(self.chat)

    @property
    def is_admin(self) -> bool:
        return self.services.is_admin(self.user_id)


@dataclass(frozen=True)
class Photo:
    """A reply that is a picture (a PNG chart) with an HTML caption (≤ 1024 characters)."""

    png: bytes
    caption: str


Command = Callable[[Request], Awaitable[str | Photo]]

# -- small helpers ------------------------------------------------------------------------


def esc(text: object) -> str:
    return html.escape(str(text), quote=False)


def trim(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def cut(text: str, limit: int) -> str:
    """Like `trim`, but line breaks are kept (multi-line error reports)."""
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def when(moment: datetime | None) -> str:
    return "never" if moment is None else f"{moment.astimezone(UTC):%Y-%m-%d %H:%M} UTC"


def span(delta: timedelta) -> str:
    """'7 days', '12 hours', '1 day 6 hours', '30 minutes', '45 seconds'."""
    seconds = int(delta.total_seconds())
    parts = [(seconds // 86400, "day"), (seconds % 86400 // 3600, "hour"),
             (seconds % 3600 // 60, "minute")]
    words = [f"{n} {unit}{'s' if n != 1 else ''}" for n, unit in parts if n]
    return " ".join(words[:2]) or f"{seconds} second{'s' if seconds != 1 else ''}"


def listing(header: str, entries: Sequence[str], budget: int = LIST_BUDGET_UTF16) -> str:
    """`header` and as many entries as fit, then '…and N more'."""
    shown: list[str] = []
    used = utf16_len(header)
    for entry in entries:
        used += utf16_len(entry) + 1
        if used > budget:
            break
        shown.append(entry)
    more = len(entries) - len(shown)
    return "\n".join([header, *shown] + ([f"…and {more} more"] if more else []))


def fit(text: str) -> str:
    """A last guard on length: whole lines only, so no HTML tag is cut in half."""
    if utf16_len(text) <= MAX_REPLY_UTF16:
        return text
    lines = text.split("\n")
    return listing(lines[0], lines[1:], MAX_REPLY_UTF16 - 40)


def now() -> datetime:
    return datetime.now(UTC)


def _now_plus(delta: timedelta) -> datetime:
    return now() + delta


def duration(text: str) -> timedelta | None:
    """'30m', '12h', '7d' → timedelta; None when unreadable, not positive or absurdly long."""
    try:
        value = parse_duration(text)
    except (ValueError, OverflowError):
        return None
    return value if timedelta(0) < value <= MAX_MUTE else None


def fold(text: str) -> str:
    return " ".join(text.split()).casefold()


def match_source(args: Sequence[str], names: Sequence[str]) -> tuple[str | None, list[str]]:
    """The longest prefix of `args` that names a source (case-insensitively), and the rest."""
    by_fold = {fold(n): n for n in names}
    for cut in range(len(args), 0, -1):
        if (name := by_fold.get(fold(" ".join(args[:cut])))) is not None:
            return name, list(args[cut:])
    return None, list(args)


# -- commands: everyone -------------------------------------------------------------------

HELP_START = ("👋 I alert analysts when news feeds push known narratives.\n"
              "/subscribe all (or /subscribe &lt;id&gt;) to get alerts here, /narratives to see "
              "them, /help for every command.")


def register(req: Request) -> None:
    req.services.audience.register_chat(req.chat_id, req.chat.type,
                                        req.chat.effective_name or "")


async def cmd_start(req: Request) -> str:
    register(req)
    return HELP_START


async def cmd_help(req: Request) -> str:
    lines = [f"/{name} — {esc(text)}" + (" <i>(admin)</i>" if name in ADMIN_COMMANDS else "")
             for name, text in COMMANDS]
    return "\n".join(["<b>Commands</b>", *lines, "", esc(MUTE_ADMIN_HINT)])


async def cmd_narratives(req: Request) -> str:
    s = req.services
    counts = s.store.match_counts(now() - MATCH_WINDOW)
    default = s.config.matching.threshold
    entries = [f"• <b>{esc(n.id)}</b> — {esc(n.title)}\n   threshold "
               f"{default if n.threshold is None else n.threshold:.2f} · "
               f"{counts.get(n.id, 0)} matches in 7 days" for n in s.runtime.narratives]
    if not entries:
        return "No narratives are loaded."
    return listing(f"<b>{len(entries)} narratives</b> (/subscribe &lt;id&gt;)", entries)


def narrative_args(args: Sequence[str]) -> list[str]:
    """Ids from the arguments: commas and spaces both separate, case ignored."""
    return [part.casefold() for arg in args for part in arg.split(",") if part.strip()]


async def cmd_subscribe(req: Request) -> str:
    wanted = narrative_args(req.args)
    if not wanted:
        return "Usage: /subscribe &lt;id&gt; [&lt;id&gt; …] or /subscribe all (ids: /narratives)"
    titles = {n.id: n.title for n in req.services.runtime.narratives}
    if "all" in wanted:
        wanted = [ALL]
    elif unknown := [w for w in wanted if w not in titles]:
        return f"unknown narrative '{esc(unknown[0])}'; see /narratives"
    register(req)
    req.services.audience.subscribe(req.chat_id, wanted)
    if wanted == [ALL]:
        return "✅ Subscribed to every narrative, present and future. /mysubs shows it."
    return "✅ Subscribed to " + ", ".join(f"<b>{esc(w)}</b>" for w in dict.fromkeys(wanted)) + "."


async def cmd_unsubscribe(req: Request) -> str:
    wanted = narrative_args(req.args)
    if not wanted:
        return "Usage: /unsubscribe &lt;id&gt; [&lt;id&gt; …] or /unsubscribe all"
    audience = req.services.audience
    if "all" in wanted:
        dropped = audience.unsubscribe(req.chat_id, None)
        return f"✅ Unsubscribed from everything ({dropped} subscription(s) dropped)."
    current = audience.subscriptions(req.chat_id)
    known = {n.id for n in req.services.runtime.narratives} | current
    if unknown := [w for w in wanted if w not in known]:
        return f"unknown narrative '{esc(unknown[0])}'; see /narratives"
    dropped = audience.unsubscribe(req.chat_id, wanted)
    reply = (f"✅ Unsubscribed from {', '.join(esc(w) for w in wanted)}." if dropped
             else "You were not subscribed to that; /mysubs shows what you follow.")
    if ALL in current:
        reply += "\nYou still follow every narrative (/unsubscribe all to stop)."
    return reply


async def cmd_mysubs(req: Request) -> str:
    subs = req.services.audience.subscriptions(req.chat_id)
    if not subs:
        return "No subscriptions here. /subscribe all, or /subscribe &lt;id&gt; (/narratives)."
    if ALL in subs:
        return "You follow <b>every narrative</b>, present and future."
    titles = {n.id: n.title for n in req.services.runtime.narratives}
    entries = [f"• <b>{esc(n)}</b> — {esc(titles.get(n, '(no longer loaded)'))}"
               for n in sorted(subs)]
    return listing("<b>Your subscriptions</b>", entries)


# -- mutes --------------------------------------------------------------------------------

MUTE_USAGE = "Usage: /mute &lt;source&gt; [30m|12h|7d] (sources: /sources)"
MUTE_ADMIN_HINT = ("Admins: /mute @channel <source> [duration] and /unmute @channel <source> "
                   "act on the alert channel.")


def is_channel_arg(arg: str, channel: str | None) -> bool:
    return arg.startswith(("@", "-100")) or (channel is not None and arg == channel)


def scope(req: Request) -> tuple[str, list[str], str] | str:
    """(chat key, remaining args, 'here' or 'in the channel …'), or a refusal to reply with."""
    args = list(req.args)
    channel = req.services.audience.channel
    if not args or not is_channel_arg(args[0], channel):
        return req.chat_id, args, "here"
    if not req.is_admin:
        return REFUSED
    if channel is None:
        return "No alert channel is configured."
    if args[0].casefold() != channel.casefold():
        return f"The alert channel is {esc(channel)}; name it exactly."
    return channel, args[1:], f"in the channel {esc(channel)}"


def feed_names(config: Config) -> list[str]:
    return [f.name for f in config.feeds]


def unknown_source(args: Sequence[str]) -> str:
    return f"unknown source '{esc(' '.join(args))}'; /sources lists them."


async def cmd_mute(req: Request) -> str:
    scoped = scope(req)
    if isinstance(scoped, str):
        return scoped
    chat_id, args, where = scoped
    if not args:
        return MUTE_USAGE
    source, rest = match_source(args, feed_names(req.services.config))
    if source is None:
        return unknown_source(args)
    length = duration(rest[0]) if len(rest) == 1 else None
    if len(rest) > 1 or (rest and length is None):
        return MUTE_USAGE
    until = _now_plus(length) if length else None
    req.services.audience.mute(chat_id, source, until, req.user_id)
    expiry = f"until {when(until)}" if until else "until you /unmute it"
    return f"🔇 Muted <b>{esc(source)}</b> {where} {expiry}."


async def cmd_unmute(req: Request) -> str:
    scoped = scope(req)
    if isinstance(scoped, str):
        return scoped
    chat_id, args, where = scoped
    if not args:
        return "Usage: /unmute &lt;source&gt; (/muted lists them)"
    audience = req.services.audience
    muted = [m.source for m in audience.mutes(chat_id)]
    source, rest = match_source(args, [*muted, *feed_names(req.services.config)])
    if source is None or rest:
        return unknown_source(args)
    if audience.unmute(chat_id, source):
        return f"🔊 Unmuted <b>{esc(source)}</b> {where}."
    return f"<b>{esc(source)}</b> was not muted {where}."


async def cmd_muted(req: Request) -> str:
    scoped = scope(req)
    if isinstance(scoped, str):
        return scoped
    chat_id, _, where = scoped
    mutes = req.services.audience.mutes(chat_id)
    if not mutes:
        return f"Nothing is muted {where}."
    entries = [f"• <b>{esc(m.source)}</b> — "
               + (f"until {when(m.until)}" if m.until else "until unmuted") for m in mutes]
    return listing(f"🔇 <b>Muted {where}</b>", entries)


# -- sources, status, score ---------------------------------------------------------------


async def cmd_sources(req: Request) -> str:
    s = req.services
    if not s.config.feeds:
        return "No feeds are configured."
    health = {h.name: h for h in s.store.all_feed_health()}
    counts = s.store.source_counts()
    muted = {m.source.casefold() for m in s.audience.mutes(req.chat_id)}
    entries = []
    for feed in s.config.feeds:
        h = health.get(feed.name)
        seen, matched = counts.get(feed.name, (0, 0))
        flags = [f for f, on in (("muted here", feed.name.casefold() in muted),
                                 ("paused", bool(h and h.paused_at)),
                                 ("disabled", not feed.enabled)) if on]
        entry = (f"• <b>{esc(feed.name)}</b> — last poll {when(h.last_poll_at if h else None)}"
                 f" · {seen} articles · {matched} matched"
                 + "".join(f" · <i>{f}</i>" for f in flags))
        if h and h.last_error:
            entry += f"\n   last error: {esc(trim(h.last_error, 200))}"
        entries.append(entry)
    return listing(f"<b>{len(entries)} sources</b> (/mute &lt;source&gt; [12h])", entries)


async def cmd_status(req: Request) -> str:
    s = req.services
    counts = s.store.counts()
    last = s.last_cycle_at()
    model = getattr(s.runtime.embedder.embedder, "name", type(s.runtime.embedder.embedder).__name__)
    return "\n".join([
        "<b>narrative-bot status</b>",
        f"uptime: {span(now() - s.started_at)}",
        f"last cycle: {when(last)}" + (f" ({span(now() - last)} ago)" if last else ""),
        f"queue: {counts['alerts_pending']} alert(s) pending",
        f"model: {esc(model)}",
        f"narratives loaded: {len(s.runtime.narratives)}",
        f"articles: {counts['articles']} · matches: {counts['matches']} · "
        f"sent: {counts['alerts_sent']} · failed: {counts['alerts_failed']}",
    ])


async def cmd_score(req: Request) -> str:
    text = req.rest.strip()[:MAX_SCORE_CHARS]
    if not text:
        return "Usage: /score &lt;text&gt; — scores the text against every narrative."
    passages, scores = await asyncio.to_thread(req.services.runtime.score, "", text)
    if not scores:
        return "Nothing to score (no narratives loaded, or no text)."
    entries = [
        f"{'✅ <b>MATCH</b>' if s.supported else '— no match'} · <b>{esc(s.narrative_title)}</b>"
        f"\n   score {s.score:.2f} / threshold {s.threshold:.2f} · counter {s.counter_score:.2f}"
        f"\n   <i>{esc(trim(s.passage.text, PASSAGE_CHARS))}</i>"
        for s in sorted(scores, key=lambda s: -s.score)]
    return listing(f"Scored {len(passages)} passage(s):", entries)


# -- trends: /trend, /top, /digest --------------------------------------------------------

TREND_USAGE = ("Usage: /trend &lt;id&gt; [30d] [by source|by language] — a chart of daily "
               "matches (ids: /narratives)")
TREND_DAYS, MAX_TREND_DAYS = 30, 365
TOP_PERIOD, MAX_TOP_PERIOD = timedelta(days=7), timedelta(days=365)
MAX_CAPTION = 1024


def chat_timezone(req: Request) -> str:
    """The time zone of this chat's digest (its days), else UTC."""
    return next((d.timezone for d in req.services.config.digests
                 if d.chat_id == req.chat_id), "UTC")


def known_titles(s: Services) -> dict[str, str]:
    """Loaded narratives, and those that only live on in stored matches."""
    return {**s.store.narrative_titles(), **{n.id: n.title for n in s.runtime.narratives}}


def find_narrative(name: str, titles: dict[str, str]) -> str | None:
    """An id, or an unambiguous prefix of one (case ignored)."""
    name = name.casefold()
    if name in titles:
        return name
    candidates = [n for n in titles if n.startswith(name)]
    return candidates[0] if len(candidates) == 1 else None


def counted(pairs: Sequence[tuple[str, int]], limit: int = 3) -> str:
    shown = ", ".join(f"{esc(trim(k, 40))} {n}" for k, n in pairs[:limit])
    return shown + (f", +{len(pairs) - limit} more" if len(pairs) > limit else "")


async def cmd_trend(req: Request) -> str | Photo:
    s = req.services
    args = [a.casefold() for a in req.args]
    if not args:
        return TREND_USAGE
    titles = known_titles(s)
    narrative_id = find_narrative(args[0], titles)
    if narrative_id is None:
        return f"unknown narrative '{esc(trim(req.args[0], 60))}'; see /narratives"
    days, by = TREND_DAYS, "language"
    rest = args[1:]
    if rest and rest[0] not in ("by", "source", "language", "sources", "languages"):
        period = duration(rest.pop(0))
        if period is None or not timedelta(days=2) <= period <= timedelta(days=MAX_TREND_DAYS):
            return f"The period must be 2d to {MAX_TREND_DAYS}d, e.g. /trend {narrative_id} 30d."
        days = max(2, round(period / timedelta(days=1)))
    if rest and rest[0] == "by":
        rest.pop(0)
    if rest:
        by = {"source": "source", "sources": "source", "language": "language",
              "languages": "language"}.get(rest.pop(0), "")
    if not by or rest:
        return TREND_USAGE
    zone = chat_timezone(req)
    at = now()
    volumes = s.store.volumes(at - timedelta(days=days + s.config.trends.baseline_days + 2),
                              narrative_ids=[narrative_id])
    series = daily_series(volumes, end=at, days=days, by=by, timezone=zone,
                          title=titles[narrative_id], narrative_id=narrative_id,
                          spikes=s.config.trends)
    png = await asyncio.to_thread(render_trend, series)
    totals: dict[str, int] = {}
    for v in volumes:
        if v.hour >= at - timedelta(days=days):
            key = v.source if by == "language" else v.language
            totals[key] = totals.get(key, 0) + v.matches
    other = sorted(totals.items(), key=lambda kv: (-kv[1], kv[0]))
    layers = sorted(((k, sum(c)) for k, c in series.stacks.items()), key=lambda kv: -kv[1])
    lines = [f"<b>{esc(trim(titles[narrative_id], 200))}</b>",
             f"{series.total} matches in {days} days ({esc(zone)} days)"]
    if series.total:
        lines.append(f"by {by}: {counted(layers, 5)}")
        lines.append(f"{'sources' if by == 'language' else 'languages'}: {counted(other, 5)}")
    if series.spike_days:
        lines.append("spike days: " + ", ".join(f"{d:%d %b}" for d in sorted(series.spike_days)))
    caption = "\n".join(lines)
    if len(caption) > MAX_CAPTION:
        caption = "\n".join(lines[:2])
    return Photo(png, caption)


async def cmd_top(req: Request) -> str:
    s = req.services
    period = TOP_PERIOD
    if req.args:
        period = duration(req.args[0]) if len(req.args) == 1 else None
        if period is None or not timedelta(hours=1) <= period <= MAX_TOP_PERIOD:
            return "Usage: /top [24h|7d|30d] — narratives ranked by matches in that period."
    at = now()
    volumes = s.store.volumes(at - 2 * period - timedelta(hours=1))
    entries = top_narratives(volumes, known_titles(s), at, period)
    label = span(period)
    if not entries:
        return f"No matches in the last {label} or the {label} before."
    lines = [f"{n}. <b>{esc(trim(e.title, 120))}</b> (<code>{esc(e.narrative_id)}</code>)\n"
             f"   {e.count} matches · {esc(format_change(e.count, e.previous))} "
             f"(was {e.previous})"
             + (f"\n   sources: {counted(e.sources)}" if e.sources else "")
             + (f"\n   languages: {counted(e.languages)}" if e.languages else "")
             for n, e in enumerate(entries, start=1)]
    return listing(f"📊 <b>Top narratives, last {label}</b> (change vs the {label} before)",
                   lines)


WEEKDAY_NAMES = {"mon": "Monday", "tue": "Tuesday", "wed": "Wednesday", "thu": "Thursday",
                 "fri": "Friday", "sat": "Saturday", "sun": "Sunday"}


async def cmd_digest(req: Request) -> str:
    digests = [d for d in req.services.config.digests if d.chat_id == req.chat_id]
    if not digests:
        return ("No digest is set up for this chat. Admins add one in config.toml:\n"
                f"<code>[[digests]]\nchat = \"{esc(req.chat_id)}\"\nevery = \"daily\"  "
                "# or \"weekly\"\ntime = \"09:00\"\ntimezone = \"Asia/Almaty\"</code>")
    lines = []
    for d in digests:
        when_ = (f"every {WEEKDAY_NAMES[d.weekday]}" if d.every == "weekly" else "every day")
        period = "the last 7 days" if d.every == "weekly" else "the last 24 hours"
        lines.append(f"• <b>{d.every.capitalize()}</b> digest {when_} at {esc(d.time)} "
                     f"({esc(d.timezone)}): {period}, each narrative's matches, change and top "
                     "articles, and a chart")
    return "\n".join(["🗞 <b>Digests for this chat</b>", *lines])


# -- commands: admins ---------------------------------------------------------------------


async def cmd_reload(req: Request) -> str:
    if not req.is_admin:
        return REFUSED
    try:
        summary = await req.services.reload()
    except ConfigError as exc:
        return ("⚠️ Narratives not reloaded; the previous set stays active.\n"
                + esc(cut(str(exc), 3000)))
    return f"✅ {esc(summary)}"


COMMANDS: list[tuple[str, str]] = [
    ("start", "register this chat and get started"),
    ("help", "list the commands"),
    ("narratives", "the narratives watched, with matches in the last 7 days"),
    ("subscribe", "get alerts here: /subscribe <id> [<id> …] or all"),
    ("unsubscribe", "stop alerts: /unsubscribe <id> or all"),
    ("mysubs", "what this chat is subscribed to"),
    ("mute", "hide a source here: /mute <source> [30m|12h|7d]"),
    ("unmute", "show a muted source again: /unmute <source>"),
    ("muted", "the sources muted here, with expiry"),
    ("sources", "every feed: last poll, last error, articles, matches"),
    ("status", "uptime, last cycle, queue, model, totals"),
    ("score", "score a text against every narrative: /score <text>"),
    ("trend", "chart of a narrative's daily matches: /trend <id> [30d] [by source]"),
    ("top", "narratives ranked by matches, with change: /top [7d]"),
    ("digest", "this chat's daily or weekly digest"),
    ("reload", "reload the narrative files"),
]
ADMIN_COMMANDS = frozenset({"reload"})
HANDLERS: dict[str, Command] = {
    "start": cmd_start, "help": cmd_help, "narratives": cmd_narratives,
    "subscribe": cmd_subscribe, "unsubscribe": cmd_unsubscribe, "mysubs": cmd_mysubs,
    "mute": cmd_mute, "unmute": cmd_unmute, "muted": cmd_muted, "sources": cmd_sources,
    "status": cmd_status, "score": cmd_score, "reload": cmd_reload, "trend": cmd_trend,
    "top": cmd_top, "digest": cmd_digest,
}

# -- buttons ------------------------------------------------------------------------------


async def press_button(s: Services, query: CallbackQuery) -> str:
    """Verify and apply one press; return the answer to show (at most 200 characters)."""
    press = s.signer.decode(query.data)
    if press is None:
        return INVALID
    found = s.store.alert(press.alert_id)
    if found is None:
        return UNKNOWN_ALERT
    alert, article_key = found
    if press.action == MUTE:
        return mute_from_button(s, query, alert)
    if not 0 <= press.narrative_index < len(alert.evidence):
        return INVALID
    evidence = alert.evidence[press.narrative_index]
    user_id = query.from_user.id
    if press.action == RELEVANT:
        s.audience.vote(article_key, evidence.narrative_id, user_id, "relevant", alert.id)
        return "Thanks — marked relevant."
    if press.action == WRONG:
        return await wrong_vote(s, alert, article_key, evidence, user_id)
    return INVALID


async def wrong_vote(s: Services, alert: Alert, article_key: str, evidence: Evidence,
                     user_id: int) -> str:
    votes = s.audience.vote(article_key, evidence.narrative_id, user_id, "wrong", alert.id)
    needed = s.config.telegram.feedback_votes
    if not (s.is_admin(user_id) or votes >= needed):
        return f"Thanks — noted ({votes}/{needed} votes)."
    if s.audience.learn_counter_example(evidence.narrative_id, evidence.passage, article_key):
        await asyncio.to_thread(s.runtime.learn_counter_example, evidence.narrative_id,
                                evidence.passage)
        log.info("learned a counter-example for %s from alert %d", evidence.narrative_id,
                 alert.id)
    return trim(f"Thanks — this passage will no longer match {evidence.narrative_title}.",
                MAX_ANSWER)


def mute_from_button(s: Services, query: CallbackQuery, alert: Alert) -> str:
    message = query.message
    chat_id = s.chat_key(message.chat) if message is not None else alert.chat_id
    if chat_id == s.audience.channel and not s.is_admin(query.from_user.id):
        return "Sorry, only the bot's admins may mute a source for the channel."
    s.audience.mute(chat_id, alert.source, _now_plus(BUTTON_MUTE), query.from_user.id)
    return trim(f"Muted {alert.source} for 7 days", MAX_ANSWER - 30) + " (/muted to review)."


# -- wiring -------------------------------------------------------------------------------


def services_of(context: ContextTypes.DEFAULT_TYPE) -> Services:
    return context.bot_data["services"]


async def send_reply(message: Message, reply: str | Photo) -> None:
    try:
        if isinstance(reply, Photo):
            await message.reply_photo(reply.png, caption=reply.caption,
                                      parse_mode=ParseMode.HTML, do_quote=False)
            return
        await message.reply_text(fit(reply), parse_mode=ParseMode.HTML, do_quote=False,
                                 link_preview_options=LinkPreviewOptions(is_disabled=True))
    except Exception:
        log.exception("could not reply in chat %s", message.chat_id)


def make_request(update: Update, context: ContextTypes.DEFAULT_TYPE, message: Message) -> Request:
    text = message.text or ""
    parts = text.split(None, 1)
    user = update.effective_user
    return Request(services_of(context), message.chat, user.id if user else None,
                   list(context.args or []), parts[1] if len(parts) > 1 else "")


def command_handler(func: Command) -> Callable[[Update, ContextTypes.DEFAULT_TYPE],
                                               Awaitable[None]]:
    async def handle(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        message = update.effective_message
        if message is None:
            return
        try:
            reply: str | Photo = await func(make_request(update, context, message))
        except Exception:
            log.exception("command %r failed", trim(message.text or "", 80))
            reply = SORRY
        await send_reply(message, reply)

    return handle


def addressed_to_us(message: Message, username: str | None) -> bool:
    """Private chats: always; groups: only '/cmd@thisbot' (other bots' commands are not ours)."""
    if message.chat.type == ChatType.PRIVATE:
        return True
    head = (message.text or "").split(None, 1)[0] if message.text else ""
    return bool(username) and head.casefold().endswith(f"@{username}".casefold())


async def on_unknown(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    message = update.effective_message
    if message is None or not addressed_to_us(message, context.bot.username):
        return
    command = (message.text or "/").split(None, 1)[0]
    await send_reply(message, f"Unknown command {esc(trim(command, 60))}; "
                              "/help lists the commands.")


async def on_button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    query = update.callback_query
    if query is None:
        return
    try:
        answer = await press_button(services_of(context), query)
    except Exception:
        log.exception("button %r failed", trim(query.data or "", 80))
        answer = SORRY
    try:
        await query.answer(trim(answer, MAX_ANSWER))
    except Exception:
        log.exception("could not answer callback query %s", query.id)


async def on_error(update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Backstop for anything outside the handlers' own guards (PTB calls it, never raises)."""
    log.error("update %r failed", getattr(update, "update_id", None), exc_info=context.error)


def build_application(token: str, services: Services) -> Application[Any, Any, Any, Any, Any, Any]:
    """The python-telegram-bot Application with every handler; the caller starts polling."""
    builder = (ApplicationBuilder().token(token)
               .base_url(services.config.telegram.api_base_url)
               .job_queue(None).concurrent_updates(False))
    timeout = services.config.telegram.send_timeout.total_seconds()
    builder = builder.read_timeout(timeout).write_timeout(timeout)
    if services.config.telegram.rate_limit:
        builder = builder.rate_limiter(AIORateLimiter(max_retries=0))
    app = builder.build()
    app.bot_data["services"] = services
    new_messages = filters.UpdateType.MESSAGE
    for name, func in HANDLERS.items():
        app.add_handler(CommandHandler(name, command_handler(func), filters=new_messages))
    app.add_handler(MessageHandler(filters.COMMAND & new_messages, on_unknown))
    app.add_handler(CallbackQueryHandler(on_button))
    app.add_error_handler(on_error)
    return app


async def register_commands(app: Application[Any, Any, Any, Any, Any, Any]) -> None:
    """Publish COMMANDS (the menu Telegram shows next to the message box)."""
    await app.bot.set_my_commands([BotCommand(name, text[:256]) for name, text in COMMANDS])
