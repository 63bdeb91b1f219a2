"""/subscribe, /unsubscribe, /mysubs: which narratives a chat is alerted about."""

from __future__ import annotations

from bot.storage.audience import ALL
from bot.telegram.commands.args import narrative_ids
from bot.telegram.context import Request
from bot.telegram.format import esc, listing


def register_chat(req: Request) -> None:
    req.services.audience.register_chat(req.chat_id, req.chat.type,
                                        req.chat.effective_name or "")


def _titles(req: Request) -> dict[str, str]:
    return {n.id: n.title for n in req.services.narratives}


async def cmd_subscribe(req: Request) -> str:
    wanted = narrative_ids(req.args)
    if not wanted:
        return "Usage: /subscribe &lt;id&gt; [&lt;id&gt; …] or /subscribe all (ids: /narratives)"
    titles = _titles(req)
    if "all" in wanted:
        wanted = [ALL]
    elif unknown := [w for w in wanted if w not in titles]:
        return f"unknown narrative '{esc(unknown[0])}'; see /narratives"
    register_chat(req)
    req.services.audience.subscribe(req.chat_id, wanted)
    if wanted == [ALL]:
        return "✅ Subscribed to every narrative, present and future. /mysubs shows it."
    return "✅ Subscribed to " + ", ".join(f"<b>{esc(w)}</b>" for w in dict.fromkeys(wanted)) + "."


async def cmd_unsubscribe(req: Request) -> str:
    wanted = narrative_ids(req.args)
    if not wanted:
        return "Usage: /unsubscribe &lt;id&gt; [&lt;id&gt; …] or /unsubscribe all"
    audience = req.services.audience
    if "all" in wanted:
        dropped = audience.unsubscribe(req.chat_id, None)
        return f"✅ Unsubscribed from everything ({dropped} subscription(s) dropped)."
    current = audience.subscriptions(req.chat_id)
    known = set(_titles(req)) | current
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
    titles = _titles(req)
    entries = [f"• <b>{esc(n)}</b> — {esc(titles.get(n, '(no longer loaded)'))}"
               for n in sorted(subs)]
    return listing("<b>Your subscriptions</b>", entries)
