"""Replies in the reader's language: every message id in bot/ has a Russian translation, with
the same placeholders and markup; the catalogue compiles; chats get their language."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import time_machine
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po

from bot.models import Alert, Article, Evidence, Match, Passage
from bot.storage.audience import Audience
from bot.storage.store import Store
from bot.telegram.i18n import LOCALE_DIR, Voice, Voices, compile_po, gettext_for, language_of
from bot.telegram.render import render_alert, render_copy, render_digest, render_spike
from bot.trends.digest import Digest
from bot.trends.spikes import SpikeCheck, SpikeMonitor
from tests.conftest import TOKEN, OpenApp, WriteConfig
from tests.fake_telegram import FakeTelegram
from tests.paths import REPO
from tests.test_cli import CHANNEL

PO = LOCALE_DIR / "ru" / "LC_MESSAGES" / "messages.po"
KEYWORDS = {"_": None, "N_": None, "gettext": None, "ngettext": (1, 2)}


def extracted() -> dict[str, str]:
    """msgid → where it is, for every marked string in bot/ (what pybabel extract finds)."""
    found: dict[str, str] = {}
    for file, line, message, _comments, _context in extract_from_dir(
            REPO / "bot", method_map=[("**.py", "python")], keywords=KEYWORDS):
        msgid = message[0] if isinstance(message, tuple) else message  # plurals: the singular
        if msgid:
            found.setdefault(msgid, f"{file}:{line}")
    return found


def catalog() -> dict[str, str | tuple[str, ...]]:
    with PO.open("rb") as source:
        po = read_po(source)
    return {(m.id[0] if isinstance(m.id, tuple) else m.id): m.string
            for m in po if m.id and not m.fuzzy}


def test_every_message_id_has_a_russian_translation() -> None:
    ids, ru = extracted(), catalog()
    assert len(ids) > 20  # the walk really finds the marked strings
    missing = sorted(f"{where}: {msgid!r}" for msgid, where in ids.items()
                     if not ru.get(msgid) or (isinstance(ru[msgid], tuple)
                                              and not all(ru[msgid])))
    assert missing == []


@pytest.mark.parametrize("part", [re.compile(r"\{\w*\}"), re.compile(r"</?\w+")],
                         ids=["placeholders", "tags"])
def test_translations_keep_placeholders_and_markup(part: re.Pattern[str]) -> None:
    wrong = []
    for msgid, string in catalog().items():
        for translated in (string if isinstance(string, tuple) else (string,)):
            if translated and sorted(part.findall(msgid)) != sorted(part.findall(translated)):
                wrong.append(msgid)
    assert wrong == []


def test_catalogue_compiles_and_translates() -> None:
    assert compile_po(PO).startswith(b"\xde\x12\x04\x95")  # the .mo magic number
    _ = gettext_for("ru")
    assert _("list the commands") == "список команд"
    assert gettext_for("en")("list the commands") == "list the commands"
    assert gettext_for("de")("list the commands") == "list the commands"


def test_language_codes() -> None:
    assert [language_of(c) for c in ("ru", "ru-RU", "en-GB", "uk", None, "")] == [
        "ru", "ru", "en", "en", "en", "en"]
    assert language_of("de", default="ru") == "ru"


# ---- messages in the chat's language -----------------------------------------------------------

def russian_voice() -> Voice:
    return Voice("ru", {"kz-return-to-china": "Казахстан хочет вернуться в состав Китая"})


def kz_alert(chat: str = "42") -> Alert:
    evidence = Evidence("kz-return-to-china", "Kazakhstan wants to return to China", 0.71,
                        "Китайские блогеры пишут, что Казахстан мечтает вернуться в Китай.")
    return Alert(1, chat, "Caravan", "", "https://example.com/a", (evidence,))


def test_alerts_are_framed_in_the_chat_language_with_its_titles() -> None:
    english, russian = render_alert(kz_alert()), render_alert(kz_alert(), russian_voice())
    assert english.plain.startswith("🚨 Kazakhstan wants to return to China · score 0.71")
    assert russian.plain.startswith("🚨 Казахстан хочет вернуться в состав Китая · оценка 0.71")
    assert "(без заголовка)" in russian.plain and "(untitled)" in english.plain
    assert "<b>Казахстан хочет вернуться в состав Китая</b>" in russian.html
    copy = render_copy(kz_alert(), russian_voice())
    assert copy.plain.startswith("🔁 Также в Caravan: (без заголовка) https://example.com/a")


def test_spike_and_digest_text_in_russian() -> None:
    now = datetime(2026, 12, 1, 9, tzinfo=UTC)
    spike = SpikeCheck("kz-return-to-china", "Kazakhstan wants to return to China",
                       now - timedelta(days=2), now, 12, (1,) * 14, 1.0, 9.0,
                       (("Sohu", 7), ("163", 5)), (("zh", 12),))
    text = render_spike(spike, russian_voice()).plain
    assert text.splitlines()[0] == "📈 Всплеск: Казахстан хочет вернуться в состав Китая"
    assert "совпадений за последние 2 дня: 12, обычно 1" in text
    assert "источников: 2 — Sohu 7 · 163 5" in text and "языки: zh 12" in text
    digest = Digest(chat_id="42", every="weekly", start=now - timedelta(days=7), end=now,
                    timezone="UTC", entries=(), chart=None, chart_days=30, late=True)
    written = render_digest(digest, russian_voice())
    assert written.text.plain.startswith("🗞 Еженедельная сводка · 24 нояб. 09:00 – 01 дек. 2026")
    assert "Отправлено с опозданием" in written.text.plain
    assert written.caption.plain.startswith("Совпадения по дням и нарративам")


async def test_a_russian_chat_gets_russian_alerts_and_the_channel_english(
        telegram: FakeTelegram, write_config: WriteConfig, open_app: OpenApp) -> None:
    config = write_config([], telegram_url=telegram.base_url,
                          extra="[schedule]\ndelivery_interval = \"5s\"\n")
    app = open_app(config, token=TOKEN)
    app.audience.register_chat("4242", "private", "Analyst", language="ru")
    article = Article("k1", "Caravan", "https://example.com/k1", "Report", "Text.")
    match = Match("kz-return-to-china", "Kazakhstan wants to return to China", 0.71, 0.63,
                  Passage(0, "Казахстан мечтает вернуться в Китай."), "statement")
    app.store.record_article(article, 1, [match], {CHANNEL: [match.narrative_id],
                                                   "4242": [match.narrative_id]})
    async with app:
        report = await app.sink.deliver_pending()

    assert report.sent == 2
    [russian], [english] = telegram.messages_to(4242), telegram.messages_to(CHANNEL)
    assert russian.plain_text.startswith("🚨 Казахстан хочет вернуться в состав Китая · оценка")
    assert english.plain_text.startswith("🚨 Kazakhstan wants to return to China · score")


# ---- chat replies in the reader's language -----------------------------------------------------

async def ask(telegram: FakeTelegram, text: str, *, user: int = 7, chat: int | None = None,
              language_code: str | None = None) -> str:
    chat = user if chat is None else chat
    before = len(telegram.messages_to(chat))
    telegram.push_message(chat, user, text, language_code=language_code)
    await telegram.wait_for(lambda: len(telegram.messages_to(chat)) > before, timeout=10)
    return telegram.messages_to(chat)[-1].plain_text or ""


async def test_replies_follow_the_users_language_and_the_chats_choice(
        telegram: FakeTelegram, write_config: WriteConfig, open_app: OpenApp) -> None:
    app = open_app(write_config([], telegram_url=telegram.base_url), token=TOKEN, chat=True)
    async with app, app.answering(poll_timeout=1):
        help_ru = await ask(telegram, "/help", language_code="ru-RU")
        subscribed = await ask(telegram, "/subscribe kz-return-to-china", language_code="ru")
        english = await ask(telegram, "/help", user=8, language_code="en")
        switched = await ask(telegram, "/language en", language_code="ru")
        after = await ask(telegram, "/mysubs", language_code="ru")
        back = await ask(telegram, "/language ru", language_code="ru")
        group = await ask(telegram, "/language en", user=8, chat=-100500, language_code="en")
        menus = {params.get("language_code") for method, params in telegram.requests
                 if method == "setMyCommands"}
        stored = app.audience.chosen_language("7")

    assert help_ru.startswith("Команды\n/start — ") and "/help — список команд" in help_ru
    assert "/language — язык этого чата" in help_ru and "(только админы)" in help_ru
    assert subscribed == "✅ Подписка оформлена: kz-return-to-china."
    assert english.startswith("Commands\n/start — register this chat")
    assert switched == "✅ This chat now gets its replies and alerts in English."
    assert after.startswith("Your subscriptions\n• kz-return-to-china — Kazakhstan wants")
    assert back == "✅ Теперь ответы и оповещения в этом чате — на русском."
    assert stored == "ru"
    assert group.startswith("Sorry, only this chat's admins")  # a group's setting: admins only
    assert menus == {None, "ru"}  # the command menu in both languages


async def test_a_spike_is_written_once_per_language_of_its_chats(tmp_path: Path) -> None:
    from tests.test_trends import CFG, CHANNEL, NOW, SUBSCRIBER, fill

    store = Store(tmp_path / "state.sqlite3")
    audience = Audience(store, CHANNEL, language="en")
    audience.register_chat(SUBSCRIBER, "private", language="ru")
    audience.subscribe(SUBSCRIBER, ["kz"])
    voices = Voices(audience.language, lambda language: {"kz": "Казахстан хочет в Китай"}
                    if language == "ru" else {})

    def text(spike: SpikeCheck, language: str) -> tuple[str, str]:
        rendered = render_spike(spike, voices.of_language(language))
        return rendered.html, rendered.plain

    monitor = SpikeMonitor(store, CFG, lambda: {"kz": "Kazakhstan wants to return to China"},
                           audience.narrative_chats, text, language_of=audience.language)
    try:
        with time_machine.travel(NOW, tick=False):
            fill(store)
            assert [s.narrative_id for s in (await monitor.check()).new] == ["kz"]
        posts = {p.post.chat_id: p.post.plain for p in store.posts("spike:kz:")}
    finally:
        store.close()
    assert posts[CHANNEL].startswith("📈 Spike: Kazakhstan wants to return to China\n9 matches")
    assert posts[SUBSCRIBER].startswith("📈 Всплеск: Казахстан хочет в Китай\n"
                                        "совпадений за последние 24 ч: 9")
