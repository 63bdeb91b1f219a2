"""A fake Telegram Bot API server that the real python-telegram-bot client talks to.

It owns the Telegram side of the wire, and nothing of the bot: an aiohttp app on 127.0.0.1, port
0, serving ``/bot{token}/{method}`` in the test's own event loop; parameter parsing as the Bot API
does it (query string, form, multipart with the file bytes, JSON; objects sent as JSON strings);
Telegram's validation where an alert bot can go wrong (HTML parsed as tdlib's ``parse_html`` does,
with its error texts and byte offsets; text and caption lengths in UTF-16 units; callback_data
bytes; callback answers); chat states (blocked, unknown, migrated); optional flood limits; a queue
of injected faults; and a record of every request and every accepted message.
Bodies and limits follow shared/TESTING.md. Markdown/MarkdownV2 text passes unchecked.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import re
import time
import zlib
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

from aiohttp import web

Params = dict[str, Any]


@dataclass
class RetryAfter:
    """429 "Too Many Requests: retry after N" with parameters.retry_after = N."""
    seconds: int


@dataclass
class ServerError:
    """5xx with a JSON body: 500 "Internal Server Error", 502 "Bad Gateway", ..."""
    status: int = 500


@dataclass
class ConnectionReset:
    """Abort the connection without sending any response."""


@dataclass
class AcceptThenStall:
    """Handle the call (the message IS delivered and recorded), then answer `seconds` late."""
    seconds: float


@dataclass
class Error:
    """Any error body: {"ok": false, "error_code": status, "description": ..., "parameters"}."""
    status: int
    description: str
    parameters: dict[str, Any] | None = None


@dataclass
class AcceptThenGarble:
    """Handle the call (the message IS delivered and recorded), then answer 200 with a body that
    is not JSON: PTB raises TelegramError("Invalid server response")."""
    body: bytes = b'{"ok": true, "result": {"message_id"'


Fault = RetryAfter | ServerError | ConnectionReset | AcceptThenStall | Error | AcceptThenGarble


@dataclass
class SentMessage:
    """One accepted sendMessage, sendPhoto, editMessageText or editMessageReplyMarkup."""
    method: str
    chat_id: int | str  # as the client gave it: an int (numeric strings too) or "@username"
    text: str | None  # the source text as sent (the caption for sendPhoto)
    parse_mode: str | None
    reply_markup: dict[str, Any] | None
    link_preview_options: dict[str, Any] | None
    message_id: int
    photo: bytes | None = None  # uploaded bytes; None for a file_id or URL
    plain_text: str | None = None  # as Telegram shows it: tags stripped, entities decoded
    params: Params = field(default_factory=dict)
    at: float = 0.0  # time.monotonic() when accepted


class ApiError(Exception):
    """A Bot API error answer."""

    def __init__(self, status: int, description: str, parameters: Params | None = None) -> None:
        super().__init__(description)
        self.status, self.description, self.parameters = status, description, parameters

    def response(self) -> web.Response:
        body = {"ok": False, "error_code": self.status, "description": self.description}
        body |= {"parameters": self.parameters} if self.parameters else {}
        return web.json_response(body, status=self.status)


_JSON_FIELDS = frozenset({"reply_markup", "link_preview_options", "entities", "caption_entities",
                          "allowed_updates", "commands", "scope", "reply_parameters"})
_TAGS = frozenset({"a", "b", "strong", "i", "em", "u", "ins", "s", "strike", "del", "span",
                   "tg-spoiler", "tg-emoji", "code", "pre", "blockquote"})
_SPACE = frozenset(b" \t\r\n\v\f\0")
_NAMED = {b"lt": "<", b"gt": ">", b"amp": "&", b"quot": '"'}
_IMAGE_MAGIC = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF8", b"RIFF", b"BM")
_NOT_MODIFIED = ("Bad Request: message is not modified: specified new message content and reply "
                 "markup are exactly the same as a content and reply markup of the current message")


def utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def _entity(t: bytes, pos: int) -> tuple[int, int]:
    """tdlib's decode_html_entity: (code point or 0, the position after it; ';' optional)."""
    end = pos + 1
    if t[end] == 0x23:  # "&#123;" or "&#x1F600;"
        hexa = t[end + 1] == 0x78
        end = start = end + 1 + hexa
        while t[end] in (b"0123456789abcdefABCDEF" if hexa else b"0123456789") and end - pos < 12:
            end += 1
        code = int(t[start:end], 16 if hexa else 10) if start < end < pos + 10 else 0
        if not 0 < code < 0x10FFFF:
            return 0, pos
    else:
        while t[end:end + 1].isalpha():
            end += 1
        if (named := _NAMED.get(t[pos + 1:end])) is None:
            return 0, pos
        code = ord(named)
    return code, end + (t[end] == 0x3B)


def parse_html(html: str, strict_ampersand: bool = True) -> str:
    """The text Telegram shows for parse_mode=HTML, or ApiError 400 worded as tdlib words it.

    Real Telegram shows a bare "&" (and "&nbsp;") literally; strict_ampersand refuses it instead.
    """
    t = html.encode("utf-8", "surrogatepass") + b"\0"  # tdlib reads a NUL-terminated string

    def err(msg: str) -> ApiError:
        return ApiError(400, f"Bad Request: can't parse entities: {msg}")

    def skip(i: int) -> int:
        while t[i] != 0 and t[i] in _SPACE:
            i += 1
        return i

    def until(i: int, stops: bytes) -> int:
        while t[i] not in _SPACE and t[i] not in stops:
            i += 1
        return i

    out, stack, i = bytearray(), list[tuple[str, str]](), 0
    while i < len(t) - 1:
        if t[i] == 0x26:  # '&'
            code, j = _entity(t, i)
            if code:
                out += chr(code).encode("utf-8", "surrogatepass")
                i = j
                continue
            if strict_ampersand:
                raise err(f'Unescaped "&" at byte offset {i}')
        if t[i] != 0x3C:  # '<'
            out.append(t[i])
            i += 1
            continue
        begin, i = i, i + 1
        if t[i] != 0x2F:  # a start tag
            i = until(i, b">")
            if t[i] == 0:
                raise err(f"Unclosed start tag at byte offset {begin}")
            tag = t[begin + 1:i].decode(errors="replace").lower()
            if tag not in _TAGS:
                raise err(f'Unsupported start tag "{tag}" at byte offset {begin}')
            attrs: dict[str, str] = {}
            while t[(i := skip(i))] != 0x3E:
                a, i = i, until(i, b"=>")
                name = t[a:i].decode(errors="replace")
                if not name:
                    raise err(f'Empty attribute name in the tag "{tag}" at byte offset {begin}')
                if t[(i := skip(i))] != 0x3D:
                    if tag == "blockquote" and name == "expandable":
                        continue
                    raise err("Expected equal sign in declaration of an attribute of the tag "
                              f'"{tag}" at byte offset {begin}')
                if t[(i := skip(i + 1))] == 0:
                    raise err(f'Unclosed start tag "{tag}" at byte offset {begin}')
                if t[i] in b"\"'":  # a quoted string; entities decoded, a bare '&' kept
                    quote, value, i = t[i], bytearray(), i + 1
                    while t[i] != quote and t[i] != 0:
                        code, j = _entity(t, i) if t[i] == 0x26 else (0, i)
                        value += chr(code).encode("utf-8", "surrogatepass") if code else t[i:i + 1]
                        i = j if code else i + 1
                    i += t[i] == quote
                    attrs[name] = value.decode(errors="replace")
                else:  # a name token
                    a = i
                    while t[i:i + 1].isalnum() or t[i] in b".-":
                        i += 1
                    attrs[name] = t[a:i].decode().lower()
                    if t[i] not in _SPACE and t[i] != 0x3E:
                        raise err(f"Unexpected end of name token at byte offset {a}")
                if t[i] == 0:
                    raise err(f"Unclosed start tag at byte offset {begin}")
            if tag == "span" and attrs.get("class") != "tg-spoiler":
                raise err(f'Tag "span" must have class "tg-spoiler" at byte offset {begin}')
            stack.append((tag, attrs.get("emoji-id", "")))
        else:  # an end tag
            if not stack:
                raise err(f"Unexpected end tag at byte offset {begin}")
            i = until(i, b">")
            name = t[begin + 2:i].decode(errors="replace")
            if t[(i := skip(i))] != 0x3E:
                raise err(f"Unclosed end tag at byte offset {begin}")
            tag, emoji_id = stack.pop()
            if name and name != tag:
                raise err(f'Unmatched end tag at byte offset {begin}, expected "</{tag}>", '
                          f'found "</{name}>"')
            if tag == "tg-emoji" and not (emoji_id.isdigit() and int(emoji_id) > 0):
                raise err("Invalid custom emoji identifier specified")
        i += 1
    if stack:
        raise err(f'Can\'t find end tag corresponding to start tag "{stack[-1][0]}"')
    try:
        return out.decode("utf-8")
    except UnicodeDecodeError:
        raise err("Text contains invalid Unicode characters after decoding HTML entities, "
                  "check for unmatched surrogate code units") from None


def _int(p: Params, key: str, default: int = 0) -> int:
    try:
        return int(p.get(key, default))
    except (TypeError, ValueError):
        raise ApiError(400, f"Bad Request: invalid {key} specified") from None


def _public(msg: Params) -> Params:
    return {k: v for k, v in msg.items() if not k.startswith("_")}


def _check_markup(markup: Any) -> None:
    if markup is not None and not isinstance(markup, dict):
        raise ApiError(400, "Bad Request: can't parse reply keyboard markup JSON object")
    for row in (markup or {}).get("inline_keyboard", []):
        for data in (b.get("callback_data") for b in row):
            if data is not None and not 1 <= len(str(data).encode()) <= 64:
                raise ApiError(400, "Bad Request: BUTTON_DATA_INVALID")


def _member(status: str, user: Params) -> Params:
    """A ChatMember object as the Bot API writes it for `status`."""
    extra: Params = {}
    if status == "administrator":
        extra = dict.fromkeys((
            "can_be_edited", "is_anonymous", "can_promote_members", "can_post_stories",
            "can_edit_stories", "can_delete_stories"), False) | dict.fromkeys((
                "can_manage_chat", "can_delete_messages", "can_manage_video_chats",
                "can_restrict_members", "can_change_info", "can_invite_users"), True)
    elif status == "creator":
        extra = {"is_anonymous": False}
    elif status == "restricted":
        extra = dict.fromkeys((
            "is_member", "can_send_messages", "can_send_audios", "can_send_documents",
            "can_send_photos", "can_send_videos", "can_send_video_notes",
            "can_send_voice_notes", "can_send_polls", "can_send_other_messages",
            "can_add_web_page_previews", "can_change_info", "can_invite_users",
            "can_pin_messages", "can_manage_topics"), True) | {"until_date": 0}
    elif status == "kicked":
        extra = {"until_date": 0}
    return {"status": status, "user": user, **extra}


class FakeTelegram:
    """The fake Bot API. `async with FakeTelegram() as tg:`, then Bot(..., base_url=tg.base_url)."""

    def __init__(self, token: str = "123456:TEST-token", port: int = 0) -> None:
        """`port`: 0 for any free one; a given one to come up where a client already waits."""
        self.token = token
        self._listen_port = port
        bot_id = token.split(":")[0]
        self.bot_user: Params = {
            "id": int(bot_id) if bot_id.isdigit() else 123456, "is_bot": True,
            "first_name": "Narrative Test Bot", "username": "narrative_test_bot",
            "can_join_groups": True, "can_read_all_group_messages": False,
            "supports_inline_queries": False}
        self.sent: list[SentMessage] = []
        self.requests: list[tuple[str, Params]] = []
        self.callback_answers: list[Params] = []
        self.commands: list[Params] = []
        self.enforce_rate_limits = False
        self.strict_ampersand = True
        self.max_poll_wait = 0.5  # seconds a getUpdates long poll waits at most
        self.port = 0
        self._faults: list[tuple[str, Fault]] = []
        self._blocked: set[int] = set()
        self._forgotten: set[int] = set()
        self._migrated: dict[int, int] = {}
        self._chats: dict[int, Params] = {}
        self._members: dict[tuple[int, int], str] = {}  # (chat, user) -> status
        self._store: dict[tuple[int, int], Params] = {}  # (chat, message_id) -> bot's message
        self._next_mid: dict[int, int] = {}
        self._updates: list[Params] = []
        self._next_update = 1
        self._queries: set[str] = set()
        self._history: dict[int, deque[float]] = {}
        self._global: deque[float] = deque()
        self._new_update = asyncio.Event()
        self._closing = asyncio.Event()
        self._runner: web.AppRunner | None = None
        handlers: dict[str, Callable[[Params], Awaitable[Any]]] = {
            "getMe": self._get_me, "deleteWebhook": self._delete_webhook,
            "getUpdates": self._get_updates, "sendMessage": self._send_message,
            "editMessageText": self._edit_message_text, "sendPhoto": self._send_photo,
            "editMessageReplyMarkup": self._edit_message_reply_markup,
            "answerCallbackQuery": self._answer_callback_query,
            "setMyCommands": self._set_my_commands, "getChat": self._get_chat,
            "getChatMember": self._get_chat_member,
            "close": self._true, "logOut": self._true}
        self._methods = {name.lower(): (name, fn) for name, fn in handlers.items()}

    # ---- lifecycle --------------------------------------------------------------------------
    async def start(self) -> FakeTelegram:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        for verb in ("GET", "POST"):
            app.router.add_route(verb, "/bot{token}/{method}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, handler_cancellation=True,
                                     shutdown_timeout=0.5)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self._listen_port).start()
        self.port = self._runner.addresses[0][1]
        return self

    async def stop(self) -> None:
        self._closing.set()  # wakes stalled answers and long polls
        self._new_update.set()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeTelegram:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/bot"

    @property
    def base_file_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/file/bot"

    # ---- test controls ----------------------------------------------------------------------
    def inject(self, method: str, fault: Fault, times: int = 1) -> None:
        """Queue `fault` for the next `times` calls of `method` ("*": any, getUpdates too)."""
        if method != "*" and method.lower() not in self._methods:
            raise ValueError(f"unknown method {method!r}")
        name = "*" if method == "*" else self._methods[method.lower()][0]
        self._faults.extend([(name, fault)] * times)

    def block(self, chat_id: int | str) -> None:
        self._blocked.add(self._chat_key(chat_id))

    def forget(self, chat_id: int | str) -> None:
        self._forgotten.add(self._chat_key(chat_id))

    def migrate(self, chat_id: int | str, new_chat_id: int) -> None:
        self._migrated[self._chat_key(chat_id)] = new_chat_id

    def restore(self, chat_id: int | str) -> None:
        """Undo block, forget and migrate for this chat."""
        key = self._chat_key(chat_id)
        self._blocked.discard(key)
        self._forgotten.discard(key)
        self._migrated.pop(key, None)

    def set_member(self, chat_id: int | str, user_id: int, status: str) -> None:
        """What getChatMember says of `user_id` in the chat: "creator", "administrator",
        "member", "restricted", "left" or "kicked" (default: "member")."""
        self._members[(self._chat_key(chat_id), user_id)] = status

    def member_lookups(self) -> int:
        """How many getChatMember calls were answered (the bot's cache is checked with it)."""
        return sum(1 for method, _ in self.requests if method == "getChatMember")

    def messages_to(self, chat_id: int | str, *, include_edits: bool = False) -> list[SentMessage]:
        key = self._chat_key(chat_id)
        return [m for m in self.sent if self._chat_key(m.chat_id) == key
                and (include_edits or not m.method.startswith("edit"))]

    def push_message(self, chat_id: int, user_id: int, text: str, *, first_name: str = "Tester",
                     username: str | None = None, language_code: str | None = None) -> Params:
        """Queue an incoming message; a leading /command gets its bot_command entity."""
        user: Params = {"id": user_id, "is_bot": False, "first_name": first_name}
        user |= {"username": username} if username else {}
        user |= {"language_code": language_code} if language_code else {}
        if chat_id > 0:
            self._chats[chat_id] = {"type": "private", **user, "id": chat_id}
            del self._chats[chat_id]["is_bot"]
            self._chats[chat_id].pop("language_code", None)
        msg = {"message_id": self._new_mid(chat_id), "date": int(time.time()), "from": user,
               "chat": self._chat(chat_id, chat_id), "text": text}
        if text.startswith("/"):
            msg["entities"] = [{"type": "bot_command", "offset": 0,
                                "length": utf16_len(text.split()[0])}]
        return self._push({"message": msg})

    def push_callback_query(self, chat_id: int | str, user_id: int, data: str,
                            message_id: int) -> str:
        """Queue a button press on the bot's message `message_id` in the chat (an id, or a
        channel's "@username"); returns the query id."""
        key = self._chat_key(chat_id)
        msg = self._store.get((key, message_id)) or {
            "message_id": message_id, "date": int(time.time()), "from": self.bot_user,
            "chat": self._chat(key, chat_id), "text": ""}
        qid = f"{user_id}{self._next_update:08d}"
        self._queries.add(qid)
        self._push({"callback_query": {
            "id": qid, "from": {"id": user_id, "is_bot": False, "first_name": "Tester"},
            "chat_instance": str(zlib.crc32(str(chat_id).encode())), "data": data,
            "message": _public(msg)}})
        return qid

    @property
    def pending_updates(self) -> list[Params]:
        """Updates not yet confirmed by a getUpdates offset."""
        return list(self._updates)

    async def wait_for(self, predicate: Callable[[], bool], timeout: float = 5.0) -> None:
        """Poll `predicate()` every 10 ms; TimeoutError if still false after `timeout` s."""
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() >= deadline:
                raise TimeoutError(f"condition not met within {timeout} s")
            await asyncio.sleep(0.01)

    # ---- HTTP -------------------------------------------------------------------------------
    async def _handle(self, request: web.Request) -> web.StreamResponse:
        method, handler = self._methods.get(request.match_info["method"].lower(),
                                            (request.match_info["method"], None))
        try:
            params = await self._params(request)
            self.requests.append((method, params))
            if request.match_info["token"] != self.token:
                raise ApiError(401, "Unauthorized")
            if handler is None:
                raise ApiError(404, "Not Found")
        except ApiError as exc:
            return exc.response()
        index = next((n for n, (m, _) in enumerate(self._faults) if m in (method, "*")), None)
        fault = None if index is None else self._faults.pop(index)[1]
        if isinstance(fault, ConnectionReset):
            if request.transport is not None:
                request.transport.abort()
            return web.Response()
        try:
            if fault is not None and not isinstance(fault, AcceptThenStall | AcceptThenGarble):
                raise self._fault_error(fault)
            answer = web.json_response({"ok": True, "result": await handler(params)})
        except ApiError as exc:
            answer = exc.response()
        if isinstance(fault, AcceptThenGarble):
            return web.Response(body=fault.body, content_type="application/json")
        if isinstance(fault, AcceptThenStall):
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closing.wait(), fault.seconds)
        return answer

    @staticmethod
    def _fault_error(fault: Fault) -> ApiError:
        if isinstance(fault, RetryAfter):
            return ApiError(429, f"Too Many Requests: retry after {fault.seconds}",
                            {"retry_after": fault.seconds})
        if isinstance(fault, ServerError):
            return ApiError(fault.status, HTTPStatus(fault.status).phrase)
        assert isinstance(fault, Error)
        return ApiError(fault.status, fault.description, fault.parameters)

    @staticmethod
    async def _params(request: web.Request) -> Params:
        params: Params = dict(request.query)
        if request.content_type == "application/json" and request.can_read_body:
            try:
                body = await request.json()
            except ValueError:
                raise ApiError(400, "Bad Request: can't parse JSON object") from None
            params |= body if isinstance(body, dict) else {}
        elif request.content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
            for key, value in (await request.post()).items():
                params[key] = value.file.read() if isinstance(value, web.FileField) else value
        for key in _JSON_FIELDS & params.keys():
            if isinstance(params[key], str):
                try:
                    params[key] = json.loads(params[key])
                except ValueError:
                    what = "reply keyboard markup" if key == "reply_markup" else key
                    raise ApiError(400, f"Bad Request: can't parse {what} JSON object") from None
        return params

    # ---- chats, messages, limits ------------------------------------------------------------
    @staticmethod
    def _chat_key(chat_id: Any) -> int:
        """The numeric chat id; an "@username" maps to a stable channel-like id."""
        if isinstance(chat_id, int) and not isinstance(chat_id, bool):
            return chat_id
        text = str(chat_id).strip()
        if text.startswith("@") and len(text) > 1:
            return -1_000_000_000_000 - zlib.crc32(text.lower().encode())
        try:
            return int(text)
        except ValueError:
            raise ApiError(400, "Bad Request: chat not found") from None

    def _target(self, p: Params, *, sending: bool = True) -> tuple[int | str, int]:
        """(chat id as given, numeric id) of a call, or the chat's error."""
        if p.get("chat_id") in (None, ""):
            raise ApiError(400, "Bad Request: chat_id is empty")
        key, given = self._chat_key(p["chat_id"]), str(p["chat_id"]).strip()
        if key in self._forgotten:
            raise ApiError(400, "Bad Request: chat not found")
        if key in self._migrated:
            raise ApiError(400, "Bad Request: group chat was upgraded to a supergroup chat",
                           {"migrate_to_chat_id": self._migrated[key]})
        kind = self._chat(key, given)["type"]
        if sending and key in self._blocked:
            raise ApiError(403, {"private": "Forbidden: bot was blocked by the user",
                                 "channel": "Forbidden: bot is not a member of the channel chat"}
                           .get(kind, f"Forbidden: bot was kicked from the {kind} chat"))
        return (given if given.startswith("@") else key), key

    def _chat(self, key: int, given: int | str) -> Params:
        if key not in self._chats:
            if key > 0:
                chat = {"id": key, "type": "private", "first_name": f"User {key}"}
            elif str(given).startswith("@"):
                chat = {"id": key, "type": "channel", "title": given[1:], "username": given[1:]}
            else:
                kind = "supergroup" if key <= -1_000_000_000_000 else "group"
                chat = {"id": key, "type": kind, "title": f"Chat {key}"}
            self._chats[key] = chat
        return self._chats[key]

    def _new_mid(self, key: int) -> int:
        self._next_mid[key] = self._next_mid.get(key, 0) + 1
        return self._next_mid[key]

    def _push(self, update: Params) -> Params:
        update = {"update_id": self._next_update, **update}
        self._next_update += 1
        self._updates.append(update)
        self._new_update.set()
        return update

    def _rate_check(self, key: int) -> None:
        """429 past 30 msg/s overall, 20 per 60 s in a group or channel, 1/s in a private chat."""
        if not self.enforce_rate_limits:
            return
        now, hist = time.monotonic(), self._history.setdefault(key, deque())
        while hist and now - hist[0] >= 60:
            hist.popleft()
        while self._global and now - self._global[0] >= 1:
            self._global.popleft()
        if len(self._global) >= 30:
            wait = 1 - (now - self._global[0])
        elif key < 0 and len(hist) >= 20:
            wait = 60 - (now - hist[0])
        elif key > 0 and hist and now - hist[-1] < 1:
            wait = 1 - (now - hist[-1])
        else:
            hist.append(now)
            self._global.append(now)
            return
        seconds = max(1, math.ceil(wait))
        raise ApiError(429, f"Too Many Requests: retry after {seconds}", {"retry_after": seconds})

    def _plain(self, text: Any, mode: Any, *, caption: bool = False) -> str:
        """The shown text after parse_mode, or the length / emptiness / parsing error."""
        text, mode = ("" if text is None else str(text)), str(mode or "").lower()
        if mode not in ("", "html", "markdown", "markdownv2"):
            raise ApiError(400, "Bad Request: unsupported parse_mode")
        plain = parse_html(text, self.strict_ampersand) if mode == "html" else text
        if not caption and not plain.strip():
            raise ApiError(400, "Bad Request: message text is empty")
        if utf16_len(plain) > (1024 if caption else 4096):
            raise ApiError(400, f"Bad Request: message {'caption ' if caption else ''}is too long")
        return plain

    def _deliver(self, method: str, p: Params, given: int | str, msg: Params, source: str | None,
                 plain: str | None, photo: bytes | None = None) -> Params:
        self.sent.append(SentMessage(
            method, given, source, p.get("parse_mode"), msg.get("reply_markup"),
            p.get("link_preview_options"), msg["message_id"], photo, plain, p, time.monotonic()))
        return _public(msg)

    def _new_message(self, key: int, given: int | str, p: Params) -> Params:
        chat = self._chat(key, given)
        msg: Params = {"message_id": self._new_mid(key), "date": int(time.time()), "chat": chat}
        if chat["type"] == "channel":
            msg["sender_chat"] = chat
        else:
            msg["from"] = self.bot_user
        if p.get("reply_markup") is not None:
            msg["reply_markup"] = p["reply_markup"]
        self._store[(key, msg["message_id"])] = msg
        return msg

    def _stored(self, p: Params) -> tuple[int | str, Params]:
        given, key = self._target(p)
        if p.get("message_id") in (None, ""):
            raise ApiError(400, "Bad Request: message identifier is not specified")
        if (msg := self._store.get((key, _int(p, "message_id")))) is None:
            raise ApiError(400, "Bad Request: message to edit not found")
        return given, msg

    # ---- Bot API methods --------------------------------------------------------------------
    async def _true(self, p: Params) -> Any:
        return True

    async def _get_me(self, p: Params) -> Any:
        return self.bot_user

    async def _delete_webhook(self, p: Params) -> Any:
        if str(p.get("drop_pending_updates", "")).lower() == "true":
            self._updates.clear()
        return True

    async def _get_updates(self, p: Params) -> Any:
        offset, limit = _int(p, "offset"), min(max(_int(p, "limit", 100), 1), 100)
        if offset < 0:  # keep the last -offset updates
            del self._updates[:offset]
        elif offset:  # confirm everything below offset
            self._updates = [u for u in self._updates if u["update_id"] >= offset]
        timeout = min(max(_int(p, "timeout"), 0), self.max_poll_wait)
        if not self._updates and timeout > 0 and not self._closing.is_set():
            self._new_update.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._new_update.wait(), timeout)
        return self._updates[:limit]

    async def _send_message(self, p: Params) -> Any:
        given, key = self._target(p)
        plain = self._plain(p.get("text"), p.get("parse_mode"))
        _check_markup(p.get("reply_markup"))
        self._rate_check(key)
        msg = self._new_message(key, given, p)
        msg.update(text=plain, _source=(p.get("text"), p.get("parse_mode")))
        return self._deliver("sendMessage", p, given, msg, p.get("text"), plain)

    async def _send_photo(self, p: Params) -> Any:
        given, key = self._target(p)
        photo = p.get("photo")
        if photo in (None, ""):
            raise ApiError(400, "Bad Request: there is no photo in the request")
        if isinstance(photo, bytes) and not photo.startswith(_IMAGE_MAGIC):
            raise ApiError(400, "Bad Request: IMAGE_PROCESS_FAILED")
        caption = p.get("caption")
        plain = self._plain(caption, p.get("parse_mode"), caption=True) if caption else None
        _check_markup(p.get("reply_markup"))
        self._rate_check(key)
        msg = self._new_message(key, given, p)
        file_id = f"fake-photo-{key}-{msg['message_id']}" if isinstance(photo, bytes) else photo
        msg["photo"] = [{"file_id": file_id, "file_unique_id": f"u{zlib.crc32(file_id.encode())}",
                         "width": 320, "height": 240}]
        msg |= {"caption": plain} if plain else {}
        return self._deliver("sendPhoto", p, given, msg, caption, plain,
                             photo if isinstance(photo, bytes) else None)

    @staticmethod
    def _set_markup(msg: Params, markup: Any) -> None:
        msg.pop("reply_markup", None)  # an edit without a keyboard removes the keyboard
        msg["edit_date"] = int(time.time())
        if markup:
            msg["reply_markup"] = markup

    async def _edit_message_text(self, p: Params) -> Any:
        if p.get("inline_message_id"):
            return True
        given, msg = self._stored(p)
        if "text" not in msg:
            raise ApiError(400, "Bad Request: there is no text in the message to edit")
        plain = self._plain(p.get("text"), p.get("parse_mode"))
        _check_markup(p.get("reply_markup"))
        source = (p.get("text"), p.get("parse_mode"))
        if msg.get("_source") == source and msg.get("reply_markup") == p.get("reply_markup"):
            raise ApiError(400, _NOT_MODIFIED)
        msg.update(text=plain, _source=source)
        self._set_markup(msg, p.get("reply_markup"))
        return self._deliver("editMessageText", p, given, msg, p.get("text"), plain)

    async def _edit_message_reply_markup(self, p: Params) -> Any:
        if p.get("inline_message_id"):
            return True
        given, msg = self._stored(p)
        _check_markup(p.get("reply_markup"))
        if msg.get("reply_markup") == p.get("reply_markup"):
            raise ApiError(400, _NOT_MODIFIED)
        self._set_markup(msg, p.get("reply_markup"))
        return self._deliver("editMessageReplyMarkup", p, given, msg, msg.get("text"),
                             msg.get("text"))

    async def _answer_callback_query(self, p: Params) -> Any:
        if (qid := str(p.get("callback_query_id", ""))) not in self._queries:
            raise ApiError(400, "Bad Request: query is too old and response timeout expired or "
                                "query ID is invalid")
        if len(str(p.get("text") or "")) > 200:
            raise ApiError(400, "Bad Request: MESSAGE_TOO_LONG")
        self._queries.discard(qid)
        self.callback_answers.append(p)
        return True

    async def _set_my_commands(self, p: Params) -> Any:
        commands = p.get("commands")
        if not isinstance(commands, list) or len(commands) > 100:
            raise ApiError(400, "Bad Request: can't parse commands JSON object")
        if not all(re.fullmatch(r"[a-z0-9_]{1,32}", str(c.get("command"))) for c in commands):
            raise ApiError(400, "Bad Request: BOT_COMMAND_INVALID")
        self.commands = commands
        return True

    async def _get_chat_member(self, p: Params) -> Any:
        given, key = self._target(p, sending=False)
        user_id = _int(p, "user_id")
        if user_id == self.bot_user["id"]:
            kind = self._chat(key, given)["type"]
            status = ("kicked" if key in self._blocked else
                      "administrator" if kind == "channel" else "member")
            return _member(status, self.bot_user)
        user = {"id": user_id, "is_bot": False, "first_name": f"User {user_id}"}
        return _member(self._members.get((key, user_id), "member"), user)

    async def _get_chat(self, p: Params) -> Any:
        given, key = self._target(p, sending=False)
        gifts = dict.fromkeys(("unlimited_gifts", "limited_gifts", "unique_gifts",
                               "premium_subscription", "gifts_from_channels"), False)
        return {**self._chat(key, given), "accent_color_id": 0, "max_reaction_count": 11,
                "accepted_gift_types": gifts}
