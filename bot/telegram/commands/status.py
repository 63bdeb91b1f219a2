"""/start, /narratives, /status, /score, /reload: the bot itself and what it watches."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from bot.config import ConfigError
from bot.telegram.commands.subscriptions import register_chat
from bot.telegram.context import Request
from bot.telegram.format import cut, esc, listing, span, trim, when
from bot.telegram.i18n import N_

HELP_START = N_("👋 I alert analysts when news feeds push known narratives.\n"
                "/subscribe all (or /subscribe &lt;id&gt;) to get alerts here, /narratives to "
                "see them, /help for every command.")
MATCH_WINDOW = timedelta(days=7)
MAX_SCORE_CHARS = 20_000
PASSAGE_CHARS = 240


async def cmd_start(req: Request) -> str:
    register_chat(req)
    return req.voice.gettext(HELP_START)


async def cmd_narratives(req: Request) -> str:
    s, _ = req.services, req.voice.gettext
    counts = s.store.match_counts(datetime.now(UTC) - MATCH_WINDOW)
    default = s.config.matching.threshold
    line = _("• <b>{id}</b> — {title}\n   threshold {threshold} · {count} matches in 7 days")
    entries = [line.format(id=esc(n.id), title=esc(n.title_in(req.language)),
                           threshold=f"{default if n.threshold is None else n.threshold:.2f}",
                           count=counts.get(n.id, 0)) for n in s.narratives]
    if not entries:
        return _("No narratives are loaded.")
    return listing(_("<b>{n} narratives</b> (/subscribe &lt;id&gt;)").format(n=len(entries)),
                   entries, voice=req.voice)


async def cmd_status(req: Request) -> str:
    s, voice = req.services, req.voice
    _ = voice.gettext
    counts = s.store.counts()
    last = s.last_cycle_at()
    now = datetime.now(UTC)
    cycle = _("last cycle: {when}").format(when=when(last, voice))
    if last:
        cycle += " " + _("({span} ago)").format(span=span(now - last, voice))
    return "\n".join([
        _("<b>narrative-bot status</b>"),
        _("uptime: {span}").format(span=span(now - s.started_at, voice)),
        cycle,
        _("queue: {n} alert(s) pending").format(n=counts["alerts_pending"]),
        _("model: {name}").format(name=esc(s.model_name)),
        _("narratives loaded: {n}").format(n=len(s.narratives)),
        _("articles: {articles} · matches: {matches} · sent: {sent} · failed: {failed}").format(
            articles=counts["articles"], matches=counts["matches"], sent=counts["alerts_sent"],
            failed=counts["alerts_failed"]),
    ])


async def cmd_score(req: Request) -> str:
    voice = req.voice
    _ = voice.gettext
    text = req.rest.strip()[:MAX_SCORE_CHARS]
    if not text:
        return _("Usage: /score &lt;text&gt; — scores the text against every narrative.")
    passages, scores = await asyncio.to_thread(req.services.score, "", text)
    if not scores:
        return _("Nothing to score (no narratives loaded, or no text).")
    titles = {n.id: n.title_in(req.language) for n in req.services.narratives}
    numbers = _("score {score} / threshold {threshold} · counter {counter}")
    verdicts = {True: _("✅ <b>MATCH</b>"), False: _("— no match")}
    entries = [
        f"{verdicts[s.supported]} · "
        f"<b>{esc(titles.get(s.narrative_id, s.narrative_title))}</b>\n   "
        + numbers.format(score=f"{s.score:.2f}", threshold=f"{s.threshold:.2f}",
                         counter=f"{s.counter_score:.2f}")
        + f"\n   <i>{esc(trim(s.passage.text, PASSAGE_CHARS))}</i>"
        for s in sorted(scores, key=lambda s: -s.score)]
    return listing(_("Scored {n} passage(s):").format(n=len(passages)), entries, voice=voice)


async def cmd_reload(req: Request) -> str:
    """Admins only (the registry refuses everyone else)."""
    _ = req.voice.gettext
    try:
        summary = await req.services.reload()
    except ConfigError as exc:
        return (_("⚠️ Narratives not reloaded; the previous set stays active.") + "\n"
                + esc(cut(str(exc), 3000)))
    return f"✅ {esc(summary)}"
