"""/sources, /mute, /unmute, /muted: the feeds, and which of them a chat does not want to see.

Admins act on the alert channel by naming it first (/mute @channel <source> [duration]).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from bot.config import Config
from bot.telegram.commands.args import duration, match_source
from bot.telegram.context import REFUSED, Request
from bot.telegram.format import esc, listing, trim, when

MUTE_USAGE = "Usage: /mute &lt;source&gt; [30m|12h|7d] (sources: /sources)"
MUTE_ADMIN_HINT = ("Admins: /mute @channel <source> [duration] and /unmute @channel <source> "
                   "act on the alert channel.")


def _is_channel_arg(arg: str, channel: str | None) -> bool:
    return arg.startswith(("@", "-100")) or (channel is not None and arg == channel)


def _scope(req: Request) -> tuple[str, list[str], str] | str:
    """(chat key, remaining args, 'here' or 'in the channel …'), or a refusal to reply with."""
    args = list(req.args)
    channel = req.services.audience.channel
    if not args or not _is_channel_arg(args[0], channel):
        return req.chat_id, args, "here"
    if not req.is_admin:
        return REFUSED
    if channel is None:
        return "No alert channel is configured."
    if args[0].casefold() != channel.casefold():
        return f"The alert channel is {esc(channel)}; name it exactly."
    return channel, args[1:], f"in the channel {esc(channel)}"


def _feed_names(config: Config) -> list[str]:
    return [f.name for f in config.feeds]


def _unknown_source(args: Sequence[str]) -> str:
    return f"unknown source '{esc(' '.join(args))}'; /sources lists them."


async def cmd_mute(req: Request) -> str:
    scoped = _scope(req)
    if isinstance(scoped, str):
        return scoped
    chat_id, args, where = scoped
    if not args:
        return MUTE_USAGE
    named = match_source(args, _feed_names(req.services.config))
    if named.source is None:
        return _unknown_source(args)
    rest = named.rest
    length = duration(rest[0]) if len(rest) == 1 else None
    if len(rest) > 1 or (rest and length is None):
        return MUTE_USAGE
    until = datetime.now(UTC) + length if length else None
    req.services.audience.mute(chat_id, named.source, until, req.user_id)
    expiry = f"until {when(until)}" if until else "until you /unmute it"
    return f"🔇 Muted <b>{esc(named.source)}</b> {where} {expiry}."


async def cmd_unmute(req: Request) -> str:
    scoped = _scope(req)
    if isinstance(scoped, str):
        return scoped
    chat_id, args, where = scoped
    if not args:
        return "Usage: /unmute &lt;source&gt; (/muted lists them)"
    audience = req.services.audience
    muted = [m.source for m in audience.mutes(chat_id)]
    named = match_source(args, [*muted, *_feed_names(req.services.config)])
    if named.source is None or named.rest:
        return _unknown_source(args)
    if audience.unmute(chat_id, named.source):
        return f"🔊 Unmuted <b>{esc(named.source)}</b> {where}."
    return f"<b>{esc(named.source)}</b> was not muted {where}."


async def cmd_muted(req: Request) -> str:
    scoped = _scope(req)
    if isinstance(scoped, str):
        return scoped
    chat_id, _, where = scoped
    mutes = req.services.audience.mutes(chat_id)
    if not mutes:
        return f"Nothing is muted {where}."
    entries = [f"• <b>{esc(m.source)}</b> — "
               + (f"until {when(m.until)}" if m.until else "until unmuted") for m in mutes]
    return listing(f"🔇 <b>Muted {where}</b>", entries)


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
        count = counts.get(feed.name)
        seen, matched = (count.seen, count.matched) if count else (0, 0)
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
