"""/subscribe, /unsubscribe, /mysubs: which narratives a chat is alerted about."""

from __future__ import annotations

from bot.storage.audience import ALL
from bot.telegram.commands.args import narrative_ids
from bot.telegram.context import Request
from bot.telegram.format import esc, listing
from bot.telegram.i18n import gettext_for


def register_chat(req: Request) -> None:
    """Known from now on; a private chat keeps its user's language until it picks one."""
    req.services.audience.register_chat(
        req.chat_id, req.chat.type, req.chat.effective_name or "",
        language=req.language if req.chat.type == "private" else None)


def _titles(req: Request) -> dict[str, str]:
    return {n.id: n.title_in(req.language) for n in req.services.narratives}


async def cmd_subscribe(req: Request) -> str:
    _ = gettext_for(req.language)
    wanted = narrative_ids(req.args)
    if not wanted:
        return _("Usage: /subscribe &lt;id&gt; [&lt;id&gt; …] or /subscribe all "
                 "(ids: /narratives)")
    titles = _titles(req)
    if "all" in wanted:
        wanted = [ALL]
    elif unknown := [w for w in wanted if w not in titles]:
        return _("unknown narrative '{id}'; see /narratives").format(id=esc(unknown[0]))
    register_chat(req)
    req.services.audience.subscribe(req.chat_id, wanted)
    if wanted == [ALL]:
        return _("✅ Subscribed to every narrative, present and future. /mysubs shows it.")
    names = ", ".join(f"<b>{esc(w)}</b>" for w in dict.fromkeys(wanted))
    return _("✅ Subscribed to {names}.").format(names=names)


async def cmd_unsubscribe(req: Request) -> str:
    _ = gettext_for(req.language)
    wanted = narrative_ids(req.args)
    if not wanted:
        return _("Usage: /unsubscribe &lt;id&gt; [&lt;id&gt; …] or /unsubscribe all")
    audience = req.services.audience
    if "all" in wanted:
        dropped = audience.unsubscribe(req.chat_id, None)
        return _("✅ Unsubscribed from everything ({n} subscription(s) dropped).").format(
            n=dropped)
    current = audience.subscriptions(req.chat_id)
    known = set(_titles(req)) | current
    if unknown := [w for w in wanted if w not in known]:
        return _("unknown narrative '{id}'; see /narratives").format(id=esc(unknown[0]))
    dropped = audience.unsubscribe(req.chat_id, wanted)
    reply = (_("✅ Unsubscribed from {names}.").format(names=", ".join(esc(w) for w in wanted))
             if dropped else _("You were not subscribed to that; /mysubs shows what you follow."))
    if ALL in current:
        reply += "\n" + _("You still follow every narrative (/unsubscribe all to stop).")
    return reply


async def cmd_mysubs(req: Request) -> str:
    _ = gettext_for(req.language)
    subs = req.services.audience.subscriptions(req.chat_id)
    if not subs:
        return _("No subscriptions here. /subscribe all, or /subscribe &lt;id&gt; "
                 "(/narratives).")
    if ALL in subs:
        return _("You follow <b>every narrative</b>, present and future.")
    titles = _titles(req)
    gone = _("(no longer loaded)")
    entries = [f"• <b>{esc(n)}</b> — {esc(titles.get(n, gone))}" for n in sorted(subs)]
    return listing(_("<b>Your subscriptions</b>"), entries, voice=req.voice)
