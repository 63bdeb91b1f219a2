"""/sources, /mute, /unmute, /muted: the feeds, and which of them a chat does not want to see;
/feeds, /addfeed, /removefeed: which feeds are polled (adding and removing: admins).

Admins act on the alert channel by naming it first (/mute @channel <source> [duration]).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from bot.config import FeedConfig
from bot.telegram.commands.args import duration, match_source
from bot.telegram.context import REFUSED, Request, Services
from bot.telegram.format import esc, listing, trim, when
from bot.telegram.i18n import N_, Voice

MUTE_USAGE = N_("Usage: /mute &lt;source&gt; [30m|12h|7d] (sources: /sources)")
MUTE_ADMIN_HINT = N_("Admins: /mute @channel <source> [duration] and /unmute @channel <source> "
                     "act on the alert channel.")


def _is_channel_arg(arg: str, channel: str | None) -> bool:
    return arg.startswith(("@", "-100")) or (channel is not None and arg == channel)


def _scope(req: Request) -> tuple[str, list[str], str] | str:
    """(chat key, remaining args, 'here' or 'in the channel …'), or a refusal to reply with."""
    _ = req.voice.gettext
    args = list(req.args)
    channel = req.services.audience.channel
    if not args or not _is_channel_arg(args[0], channel):
        return req.chat_id, args, _("here")
    if not req.is_admin:
        return _(REFUSED)
    if channel is None:
        return _("No alert channel is configured.")
    if args[0].casefold() != channel.casefold():
        return _("The alert channel is {channel}; name it exactly.").format(channel=esc(channel))
    return channel, args[1:], _("in the channel {channel}").format(channel=esc(channel))


def _feeds(services: Services) -> list[FeedConfig]:
    """config.toml's feeds and those added from the chat or imported."""
    return [listed.feed for listed in services.feeds.listed()]


def _feed_names(services: Services) -> list[str]:
    return [f.name for f in _feeds(services)]


def _unknown_source(args: Sequence[str], voice: Voice) -> str:
    return voice.gettext("unknown source '{name}'; /sources lists them.").format(
        name=esc(trim(" ".join(args), 200)))


async def cmd_mute(req: Request) -> str:
    voice = req.voice
    _ = voice.gettext
    scoped = _scope(req)
    if isinstance(scoped, str):
        return scoped
    chat_id, args, where = scoped
    if not args:
        return _(MUTE_USAGE)
    named = match_source(args, _feed_names(req.services))
    if named.source is None:
        return _unknown_source(args, voice)
    rest = named.rest
    length = duration(rest[0]) if len(rest) == 1 else None
    if len(rest) > 1 or (rest and length is None):
        return _(MUTE_USAGE)
    until = datetime.now(UTC) + length if length else None
    req.services.audience.mute(chat_id, named.source, until, req.user_id)
    expiry = (_("until {when}").format(when=when(until, voice)) if until
              else _("until you /unmute it"))
    return _("🔇 Muted <b>{source}</b> {where} {expiry}.").format(
        source=esc(named.source), where=where, expiry=expiry)


async def cmd_unmute(req: Request) -> str:
    voice = req.voice
    _ = voice.gettext
    scoped = _scope(req)
    if isinstance(scoped, str):
        return scoped
    chat_id, args, where = scoped
    if not args:
        return _("Usage: /unmute &lt;source&gt; (/muted lists them)")
    audience = req.services.audience
    muted = [m.source for m in audience.mutes(chat_id)]
    named = match_source(args, [*muted, *_feed_names(req.services)])
    if named.source is None or named.rest:
        return _unknown_source(args, voice)
    if audience.unmute(chat_id, named.source):
        return _("🔊 Unmuted <b>{source}</b> {where}.").format(source=esc(named.source),
                                                               where=where)
    return _("<b>{source}</b> was not muted {where}.").format(source=esc(named.source),
                                                               where=where)


async def cmd_muted(req: Request) -> str:
    voice = req.voice
    _ = voice.gettext
    scoped = _scope(req)
    if isinstance(scoped, str):
        return scoped
    chat_id, _args, where = scoped
    mutes = req.services.audience.mutes(chat_id)
    if not mutes:
        return _("Nothing is muted {where}.").format(where=where)
    forever = _("until unmuted")
    entries = [f"• <b>{esc(m.source)}</b> — "
               + (_("until {when}").format(when=when(m.until, voice)) if m.until else forever)
               for m in mutes]
    return listing(_("🔇 <b>Muted {where}</b>").format(where=where), entries, voice=voice)


async def cmd_sources(req: Request) -> str:
    voice = req.voice
    _ = voice.gettext
    s = req.services
    feeds = _feeds(s)
    if not feeds:
        return _("No feeds are configured.")
    health = {h.name: h for h in s.store.all_feed_health()}
    counts = s.store.source_counts()
    muted = {m.source.casefold() for m in s.audience.mutes(req.chat_id)}
    entries = []
    for feed in feeds:
        h = health.get(feed.name)
        count = counts.get(feed.name)
        seen, matched = (count.seen, count.matched) if count else (0, 0)
        flags = [f for f, on in ((_("muted here"), feed.name.casefold() in muted),
                                 (_("paused"), bool(h and h.paused_at)),
                                 (_("disabled"), not feed.enabled)) if on]
        entry = (f"• <b>{esc(feed.name)}</b> — "
                 + _("last poll {when} · {seen} articles · {matched} matched").format(
                     when=when(h.last_poll_at if h else None, voice), seen=seen,
                     matched=matched)
                 + "".join(f" · <i>{f}</i>" for f in flags))
        if h and h.last_error:
            entry += "\n   " + _("last error: {error}").format(error=esc(trim(h.last_error, 200)))
        if h and h.page_error:
            entry += "\n   " + _("pages: {error}").format(error=esc(trim(h.page_error, 200)))
        entries.append(entry)
    return listing(_("<b>{n} sources</b> (/mute &lt;source&gt; [12h])").format(n=len(entries)),
                   entries, voice=voice)


ADDFEED_USAGE = N_("Usage: /addfeed &lt;url&gt; [name] [interval] — a feed, a site (its feed is "
                   "found), a sitemap or a t.me channel; e.g. /addfeed https://t.me/s/channel "
                   "My channel 15m")
MIN_INTERVAL = timedelta(seconds=5)


async def cmd_feeds(req: Request) -> str:
    voice = req.voice
    _ = voice.gettext
    listed = req.services.feeds.listed()
    if not listed:
        return _("No feeds are polled. Admins: /addfeed &lt;url&gt;")
    entries = []
    for item in listed:
        feed = item.feed
        every = int(feed.interval.total_seconds())
        kind = f" · {esc(feed.kind)}" if feed.kind else ""
        period = _("every {interval}").format(interval=f"{every // 60}m{every % 60 or ''}")
        entries.append(f"• <b>{esc(feed.name)}</b> — {esc(trim(feed.url, 120))}{kind}"
                       f" · {period} · <i>{esc(item.origin)}</i>")
    return listing(_("<b>{n} feeds</b> (config: in config.toml; chat, opml: /removefeed "
                     "&lt;name&gt;)").format(n=len(entries)), entries, voice=voice)


async def cmd_addfeed(req: Request) -> str:
    _ = req.voice.gettext
    if not req.is_admin:
        return _(REFUSED)
    if not req.args:
        return _(ADDFEED_USAGE)
    url, *rest = req.args
    interval = duration(rest[-1]) if rest else None
    if interval is not None:
        rest = rest[:-1]
        if interval < MIN_INTERVAL:
            return _("The interval must be at least 5s.")
    name = " ".join(rest) or None
    added = await req.services.feeds.add(url, name=name, interval=interval,
                                         added_by=str(req.user_id))
    if added.error is not None or added.feed is None:
        return _("❌ Not added: {error}").format(
            error=esc(trim(added.error or _("unknown error"), 300)))
    feed = added.feed
    title = f" ({esc(trim(added.title, 100))})" if added.title and added.title != feed.name else ""
    return _("✅ Added <b>{name}</b>{title}: {items} items now, polled every {minutes} min "
             "from {url}").format(name=esc(feed.name), title=title, items=added.items,
                                  minutes=int(feed.interval.total_seconds() // 60) or 1,
                                  url=esc(trim(feed.url, 200)))


async def cmd_removefeed(req: Request) -> str:
    _ = req.voice.gettext
    if not req.is_admin:
        return _(REFUSED)
    name = " ".join(req.args)
    if not name:
        return _("Usage: /removefeed &lt;name&gt; (/feeds lists them)")
    problem = req.services.feeds.remove(name)
    if problem is not None:
        return _("Not removed: {problem}.").format(problem=esc(problem))
    return _("🗑 Removed <b>{name}</b>; it is not polled any more.").format(name=esc(name))
