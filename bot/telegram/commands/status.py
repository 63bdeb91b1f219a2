"""/start, /narratives, /status, /score, /reload: the bot itself and what it watches."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from bot.config import ConfigError
from bot.telegram.commands.subscriptions import register_chat
from bot.telegram.context import Request
from bot.telegram.format import cut, esc, listing, span, trim, when

HELP_START = ("👋 I alert analysts when news feeds push known narratives.\n"
              "/subscribe all (or /subscribe &lt;id&gt;) to get alerts here, /narratives to see "
              "them, /help for every command.")
MATCH_WINDOW = timedelta(days=7)
MAX_SCORE_CHARS = 20_000
PASSAGE_CHARS = 240


async def cmd_start(req: Request) -> str:
    register_chat(req)
    return HELP_START


async def cmd_narratives(req: Request) -> str:
    s = req.services
    counts = s.store.match_counts(datetime.now(UTC) - MATCH_WINDOW)
    default = s.config.matching.threshold
    entries = [f"• <b>{esc(n.id)}</b> — {esc(n.title)}\n   threshold "
               f"{default if n.threshold is None else n.threshold:.2f} · "
               f"{counts.get(n.id, 0)} matches in 7 days" for n in s.narratives]
    if not entries:
        return "No narratives are loaded."
    return listing(f"<b>{len(entries)} narratives</b> (/subscribe &lt;id&gt;)", entries)


async def cmd_status(req: Request) -> str:
    s = req.services
    counts = s.store.counts()
    last = s.last_cycle_at()
    now = datetime.now(UTC)
    return "\n".join([
        "<b>narrative-bot status</b>",
        f"uptime: {span(now - s.started_at)}",
        f"last cycle: {when(last)}" + (f" ({span(now - last)} ago)" if last else ""),
        f"queue: {counts['alerts_pending']} alert(s) pending",
        f"model: {esc(s.model_name)}",
        f"narratives loaded: {len(s.narratives)}",
        f"articles: {counts['articles']} · matches: {counts['matches']} · "
        f"sent: {counts['alerts_sent']} · failed: {counts['alerts_failed']}",
    ])


async def cmd_score(req: Request) -> str:
    text = req.rest.strip()[:MAX_SCORE_CHARS]
    if not text:
        return "Usage: /score &lt;text&gt; — scores the text against every narrative."
    passages, scores = await asyncio.to_thread(req.services.score, "", text)
    if not scores:
        return "Nothing to score (no narratives loaded, or no text)."
    entries = [
        f"{'✅ <b>MATCH</b>' if s.supported else '— no match'} · <b>{esc(s.narrative_title)}</b>"
        f"\n   score {s.score:.2f} / threshold {s.threshold:.2f} · counter {s.counter_score:.2f}"
        f"\n   <i>{esc(trim(s.passage.text, PASSAGE_CHARS))}</i>"
        for s in sorted(scores, key=lambda s: -s.score)]
    return listing(f"Scored {len(passages)} passage(s):", entries)


async def cmd_reload(req: Request) -> str:
    """Admins only (the registry refuses everyone else)."""
    try:
        summary = await req.services.reload()
    except ConfigError as exc:
        return ("⚠️ Narratives not reloaded; the previous set stays active.\n"
                + esc(cut(str(exc), 3000)))
    return f"✅ {esc(summary)}"
