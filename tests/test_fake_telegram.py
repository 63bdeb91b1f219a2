"""The fake Bot API, driven by the real python-telegram-bot client."""

from __future__ import annotations

import asyncio
import datetime as dtm
from collections.abc import AsyncIterator

import httpx
import pytest
import telegram
from telegram import InlineKeyboardButton, InlineKeyboardMarkup, LinkPreviewOptions
from telegram.constants import ParseMode
from telegram.error import (
    BadRequest,
    ChatMigrated,
    EndPointNotFound,
    Forbidden,
    InvalidToken,
    NetworkError,
    RetryAfter,
    TimedOut,
)
from telegram.request import HTTPXRequest

from tests import fake_telegram as ft
from tests.fake_telegram import FakeTelegram, parse_html

CHAT = 4242


@pytest.fixture(autouse=True)
def _timedelta_retry_after(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PTB_TIMEDELTA", "1")  # RetryAfter.retry_after is a timedelta, no warning


@pytest.fixture
async def tg() -> AsyncIterator[FakeTelegram]:
    async with FakeTelegram() as server:
        yield server


@pytest.fixture
async def bot(tg: FakeTelegram) -> AsyncIterator[telegram.Bot]:
    request = HTTPXRequest(read_timeout=2.0, connect_timeout=2.0)
    async with telegram.Bot(
        tg.token,
        base_url=tg.base_url,
        base_file_url=tg.base_file_url,
        request=request,
        get_updates_request=HTTPXRequest(),
    ) as b:
        yield b


async def test_get_me(bot: telegram.Bot, tg: FakeTelegram) -> None:
    me = await bot.get_me()
    assert me.id == 123456 and me.is_bot and me.username == tg.bot_user["username"]
    assert tg.requests[0][0] == "getMe"


async def test_html_message_is_recorded(bot: telegram.Bot, tg: FakeTelegram) -> None:
    keyboard = InlineKeyboardMarkup([[InlineKeyboardButton("Mute", callback_data="mute:7")]])
    msg = await bot.send_message(
        CHAT,
        "<b>RT</b> &amp; friends: 1 &lt; 2 &#x1F600;",
        parse_mode=ParseMode.HTML,
        link_preview_options=LinkPreviewOptions(is_disabled=True),
        reply_markup=keyboard,
    )
    assert msg.text == "RT & friends: 1 < 2 😀" and msg.chat.id == CHAT
    assert msg.from_user is not None and msg.from_user.is_bot
    [sent] = tg.messages_to(CHAT)
    assert sent.method == "sendMessage" and sent.chat_id == CHAT
    assert sent.parse_mode == "HTML" and sent.text.startswith("<b>RT</b>")
    assert sent.plain_text == "RT & friends: 1 < 2 😀"
    assert sent.link_preview_options == {"is_disabled": True}
    assert sent.reply_markup == {"inline_keyboard": [[{"text": "Mute", "callback_data": "mute:7"}]]}
    assert sent.message_id == msg.message_id


async def test_raw_lt_in_html_is_refused(bot: telegram.Bot, tg: FakeTelegram) -> None:
    with pytest.raises(BadRequest, match="parse entities") as info:
        await bot.send_message(CHAT, "<b>a</b> < b", parse_mode=ParseMode.HTML)
    # PTB strips "Bad Request: " and str.capitalize()s the rest, lowercasing it
    assert 'unsupported start tag "" at byte offset 9' in info.value.message
    assert tg.sent == []


@pytest.mark.parametrize(
    ("html", "error"),
    [
        ("<br>", 'Unsupported start tag "br" at byte offset 0'),
        ("x <b", "Unclosed start tag at byte offset 2"),
        ("<b>x</i>", 'Unmatched end tag at byte offset 4, expected "</b>", found "</i>"'),
        ("<b>x", 'Can\'t find end tag corresponding to start tag "b"'),
        ("x</b>", "Unexpected end tag at byte offset 1"),
        ("<span>x</span>", 'Tag "span" must have class "tg-spoiler" at byte offset 0'),
        ("Мир & war", 'Unescaped "&" at byte offset 7'),
        ("&nbsp;", 'Unescaped "&" at byte offset 0'),
    ],
)
def test_html_errors_match_tdlib(html: str, error: str) -> None:
    with pytest.raises(ft.ApiError) as info:
        parse_html(html)
    assert info.value.description == f"Bad Request: can't parse entities: {error}"


def test_html_accepted() -> None:
    html = (
        '<a href="https://x.org/?a=1&amp;b=2">link</a> <span class="tg-spoiler">s</span> '
        '<blockquote expandable>q</blockquote> <pre><code class="language-py">1</code></pre>'
        " a > b &quot;q&quot; &#39;"
    )
    assert parse_html(html) == 'link s q 1 a > b "q" \''
    assert parse_html("AT&T", strict_ampersand=False) == "AT&T"


async def test_too_long_and_empty(bot: telegram.Bot, tg: FakeTelegram) -> None:
    with pytest.raises(BadRequest, match="too long"):
        await bot.send_message(CHAT, "x" * 4097)
    await bot.send_message(CHAT, "😀" * 2048)  # 4096 UTF-16 units: the limit exactly
    with pytest.raises(BadRequest, match="too long"):
        await bot.send_message(CHAT, "😀" * 2048 + "x")
    # the limit applies after the tags are stripped
    await bot.send_message(CHAT, "<b>" + "x" * 4096 + "</b>", parse_mode=ParseMode.HTML)
    with pytest.raises(BadRequest, match="text is empty"):
        await bot.send_message(CHAT, "<b></b>", parse_mode=ParseMode.HTML)
    assert len(tg.sent) == 2


async def test_callback_data_limit(bot: telegram.Bot, tg: FakeTelegram) -> None:
    too_long = InlineKeyboardMarkup([[InlineKeyboardButton("x", callback_data="é" * 33)]])
    with pytest.raises(BadRequest, match=r"(?i)BUTTON_DATA_INVALID"):
        await bot.send_message(CHAT, "hi", reply_markup=too_long)


async def test_retry_after(bot: telegram.Bot, tg: FakeTelegram) -> None:
    tg.inject("sendMessage", ft.RetryAfter(3))
    with pytest.raises(RetryAfter) as info:
        await bot.send_message(CHAT, "hi")
    assert info.value.retry_after == dtm.timedelta(seconds=3)
    await bot.send_message(CHAT, "hi")  # the fault was consumed
    assert len(tg.sent) == 1


async def test_server_error_is_network_error(bot: telegram.Bot, tg: FakeTelegram) -> None:
    tg.inject("sendMessage", ft.ServerError(502))
    with pytest.raises(NetworkError, match="Bad Gateway"):
        await bot.send_message(CHAT, "hi")
    tg.inject("*", ft.Error(500, "Internal Server Error"), times=2)
    for _ in range(2):
        with pytest.raises(NetworkError):
            await bot.get_me()
    assert tg.sent == [] and (await bot.get_me()).is_bot


async def test_blocked_forgotten_migrated(bot: telegram.Bot, tg: FakeTelegram) -> None:
    tg.block(CHAT)
    with pytest.raises(Forbidden, match="blocked by the user"):
        await bot.send_message(CHAT, "hi")
    tg.forget(777)
    with pytest.raises(BadRequest, match="Chat not found"):
        await bot.send_message(777, "hi")
    new_id = -1001234567890123
    tg.migrate(-4001, new_id)
    with pytest.raises(ChatMigrated) as info:
        await bot.send_message(-4001, "hi")
    assert info.value.new_chat_id == new_id
    msg = await bot.send_message(new_id, "hi")
    assert msg.chat.id == new_id and msg.chat.type == "supergroup"
    channel = await bot.send_message("@narratives", "hi")
    assert channel.chat.type == "channel" and tg.messages_to("@narratives")[0].chat_id == (
        "@narratives"
    )
    assert [m.chat_id for m in tg.sent] == [new_id, "@narratives"]


async def test_connection_reset(bot: telegram.Bot, tg: FakeTelegram) -> None:
    tg.inject("sendMessage", ft.ConnectionReset())
    with pytest.raises(NetworkError) as info:
        await bot.send_message(CHAT, "hi")
    assert not isinstance(info.value, TimedOut)
    assert tg.sent == [] and (await bot.send_message(CHAT, "again")).text == "again"


async def test_accept_then_stall(bot: telegram.Bot, tg: FakeTelegram) -> None:
    tg.inject("sendMessage", ft.AcceptThenStall(5.0))
    with pytest.raises(TimedOut):
        await bot.send_message(CHAT, "delivered anyway", read_timeout=0.3)
    assert [m.text for m in tg.messages_to(CHAT)] == ["delivered anyway"]


async def test_wrong_token_and_unknown_method(bot: telegram.Bot, tg: FakeTelegram) -> None:
    with pytest.raises(InvalidToken, match="rejected"):
        async with telegram.Bot("999:wrong", base_url=tg.base_url):
            pass
    with pytest.raises(EndPointNotFound):
        await bot.do_api_request("sendNarrative", api_kwargs={"chat_id": CHAT})


async def test_updates_and_callbacks(bot: telegram.Bot, tg: FakeTelegram) -> None:
    assert await bot.get_updates(timeout=0) == ()
    tg.push_message(CHAT, CHAT, "/start now")
    sent = await bot.send_message(
        CHAT,
        "alert",
        reply_markup=InlineKeyboardMarkup([[InlineKeyboardButton("Mute", callback_data="mute:1")]]),
    )
    qid = tg.push_callback_query(CHAT, CHAT, "mute:1", sent.message_id)
    updates = await bot.get_updates(timeout=1)
    assert len(updates) == 2
    assert updates[0].message is not None and updates[0].message.text == "/start now"
    assert updates[0].message.entities[0].type == "bot_command"
    query = updates[1].callback_query
    assert query is not None and query.data == "mute:1" and query.id == qid
    assert query.message is not None and query.message.message_id == sent.message_id
    assert await query.answer("Muted")
    assert tg.callback_answers[0]["text"] == "Muted"
    with pytest.raises(BadRequest, match=r"(?i)query is too old"):
        await query.answer("twice")
    # offset confirms everything below it
    assert await bot.get_updates(offset=updates[1].update_id + 1, timeout=0) == ()
    assert tg.pending_updates == []


async def test_long_poll_wakes_on_push(bot: telegram.Bot, tg: FakeTelegram) -> None:
    async def later() -> None:
        await tg.wait_for(lambda: any(m == "getUpdates" for m, _ in tg.requests))
        tg.push_message(CHAT, CHAT, "hello")

    task = asyncio.create_task(later())
    updates = await bot.get_updates(timeout=30)
    await task
    assert updates[0].message is not None and updates[0].message.text == "hello"


async def test_edits_photo_commands_chat(bot: telegram.Bot, tg: FakeTelegram) -> None:
    msg = await bot.send_message(CHAT, "v1")
    edited = await bot.edit_message_text("<i>v2</i>", CHAT, msg.message_id, parse_mode="HTML")
    assert isinstance(edited, telegram.Message) and edited.text == "v2"
    with pytest.raises(BadRequest, match="not modified"):
        await bot.edit_message_text("<i>v2</i>", CHAT, msg.message_id, parse_mode="HTML")
    with pytest.raises(BadRequest, match="to edit not found"):
        await bot.edit_message_text("x", CHAT, 999)
    markup = InlineKeyboardMarkup([[InlineKeyboardButton("ok", callback_data="ok")]])
    await bot.edit_message_reply_markup(CHAT, msg.message_id, reply_markup=markup)
    png = b"\x89PNG\r\n\x1a\n" + b"\0" * 32
    photo = await bot.send_photo(CHAT, png, caption="<b>cap</b>", parse_mode="HTML")
    assert photo.caption == "cap" and photo.photo
    with pytest.raises(BadRequest, match="caption is too long"):
        await bot.send_photo(CHAT, png, caption="x" * 1025)
    assert [m.method for m in tg.messages_to(CHAT, include_edits=True)] == [
        "sendMessage",
        "editMessageText",
        "editMessageReplyMarkup",
        "sendPhoto",
    ]
    assert tg.messages_to(CHAT)[-1].photo == png
    assert await bot.set_my_commands([("start", "Start"), ("mute", "Mute a feed")])
    assert [c["command"] for c in tg.commands] == ["start", "mute"]
    with pytest.raises(BadRequest, match=r"(?i)BOT_COMMAND_INVALID"):
        await bot.set_my_commands([("Bad-Name", "x")])
    chat = await bot.get_chat(CHAT)
    assert chat.id == CHAT and chat.type == "private"
    assert await bot.delete_webhook() and await bot.close() and await bot.log_out()


async def test_rate_limits(bot: telegram.Bot, tg: FakeTelegram) -> None:
    tg.enforce_rate_limits = True
    await bot.send_message(CHAT, "1")
    with pytest.raises(RetryAfter):
        await bot.send_message(CHAT, "2")  # > 1 msg/s in a private chat
    for n in range(20):
        await bot.send_message("@channel", str(n))
    with pytest.raises(RetryAfter):
        await bot.send_message("@channel", "21")  # > 20 per minute in a channel
    assert len(tg.sent) == 21


async def test_application_polls_and_replies(tg: FakeTelegram) -> None:
    from telegram.ext import ApplicationBuilder, CallbackQueryHandler, CommandHandler

    async def start(update: telegram.Update, _: object) -> None:
        assert update.effective_chat is not None
        await update.effective_chat.send_message("<b>hi</b>", parse_mode=ParseMode.HTML)

    async def button(update: telegram.Update, _: object) -> None:
        assert update.callback_query is not None
        await update.callback_query.answer("ok")

    app = (
        ApplicationBuilder()
        .token(tg.token)
        .base_url(tg.base_url)
        .base_file_url(tg.base_file_url)
        .build()
    )
    app.add_handler(CommandHandler("start", start))
    app.add_handler(CallbackQueryHandler(button))
    async with app:
        await app.start()
        assert app.updater is not None
        await app.updater.start_polling(poll_interval=0.0, timeout=10)
        tg.push_message(CHAT, CHAT, "/start")
        await tg.wait_for(lambda: len(tg.messages_to(CHAT)) == 1)
        tg.push_callback_query(CHAT, CHAT, "mute:1", tg.sent[0].message_id)
        await tg.wait_for(lambda: len(tg.callback_answers) == 1)
        await app.updater.stop()
        await app.stop()
    assert tg.sent[0].plain_text == "hi"
    assert [m for m, _ in tg.requests][:2] == ["getMe", "deleteWebhook"]


async def test_json_body_query_string_and_error_bodies(tg: FakeTelegram) -> None:
    markup = {"inline_keyboard": [[{"text": "a", "callback_data": "b"}]]}
    async with httpx.AsyncClient(base_url=f"{tg.base_url}{tg.token}/") as http:
        ok = await http.post("sendMessage", json={"chat_id": CHAT, "text": "j",
                                                  "reply_markup": markup})
        assert ok.json()["result"]["reply_markup"] == markup
        assert (await http.get("sendMessage", params={"chat_id": "@chan", "text": "q"})).json()[
            "result"]["chat"]["type"] == "channel"
        wrong = await http.get(f"{tg.base_url}999:x/getMe")
        assert (wrong.status_code, wrong.json()) == (
            401, {"ok": False, "error_code": 401, "description": "Unauthorized"})
        unknown = await http.post("sendNarrative")
        assert (unknown.status_code, unknown.json()["description"]) == (404, "Not Found")
        tg.inject("sendMessage", ft.RetryAfter(15))
        limited = await http.post("sendMessage", data={"chat_id": str(CHAT), "text": "x"})
        assert limited.json() == {"ok": False, "error_code": 429,
                                  "description": "Too Many Requests: retry after 15",
                                  "parameters": {"retry_after": 15}}
        tg.migrate(-5, -1009876543210987)
        migrated = await http.post("sendMessage", data={"chat_id": "-5", "text": "x"})
        assert migrated.json()["parameters"] == {"migrate_to_chat_id": -1009876543210987}
        tg.strict_ampersand = False  # what real Telegram does with a bare "&"
        lenient = await http.post("sendMessage", data={"chat_id": str(CHAT), "text": "AT&T",
                                                       "parse_mode": "HTML"})
        assert lenient.json()["result"]["text"] == "AT&T"
    assert [m.text for m in tg.sent] == ["j", "q", "AT&T"]
    assert tg.sent[0].reply_markup == markup and tg.sent[1].chat_id == "@chan"
