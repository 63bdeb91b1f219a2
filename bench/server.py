"""The benchmark's far side, in a child process: N RSS feeds and the fake Bot API on 127.0.0.1.

A separate process, as a real news site and Telegram would be: its CPU and memory do not count
in the bot's figures (peak RSS is the bot's own). Feeds live at /f/{i}.xml with an ETag and a
Last-Modified; every tenth feed ignores validators and answers 200 with the same bytes, as many
real servers do. /_ctl/append adds an item to a feed; /_ctl/sent lists the sendMessage calls the
fake Telegram accepted, with time.monotonic() (system-wide on Linux, so comparable with the
parent's clock).
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import multiprocessing
import multiprocessing.connection
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from email.utils import formatdate
from pathlib import Path
from typing import Any

from aiohttp import web

from bench.corpus import Item, load_paragraphs, load_seeds, make_feeds
from tests.fake_telegram import FakeTelegram

TOKEN = "123456:BENCH-token-value"
NO_VALIDATORS_EVERY = 10


def rss(name: str, items: list[Item]) -> bytes:
    entries = "".join(
        f"<item><title>{html.escape(it.title)}</title>"
        f"<link>https://{name}.example/{html.escape(it.guid)}</link>"
        f'<guid isPermaLink="false">{html.escape(it.guid)}</guid>'
        f"<description>{html.escape(''.join(f'<p>{p}</p>' for p in it.paragraphs))}"
        f"</description></item>" for it in items)
    return (f'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>'
            f"<title>{name}</title><link>https://{name}.example/</link>"
            f"<description>bench</description>{entries}</channel></rss>").encode()


class Feeds:
    """Feed bodies by index, rebuilt when an item is appended."""

    def __init__(self, feeds: list[list[Item]]) -> None:
        self.items = feeds
        self.bodies = [rss(f"feed{i}", items) for i, items in enumerate(feeds)]
        self.versions = [1] * len(feeds)
        self.modified = [formatdate(1_700_000_000, usegmt=True)] * len(feeds)

    async def serve(self, request: web.Request) -> web.Response:
        try:
            i = int(request.match_info["n"])
            body = self.bodies[i]
        except (ValueError, IndexError):
            return web.Response(status=404)
        headers = {"Content-Type": "application/rss+xml; charset=utf-8"}
        if i % NO_VALIDATORS_EVERY:
            etag = f'"{i}-{self.versions[i]}"'
            headers |= {"ETag": etag, "Last-Modified": self.modified[i]}
            if request.headers.get("If-None-Match") == etag:
                return web.Response(status=304, headers={"ETag": etag})
        return web.Response(body=body, headers=headers)

    def append(self, i: int, item: Item) -> None:
        self.items[i] = [item, *self.items[i]]
        self.bodies[i] = rss(f"feed{i}", self.items[i])
        self.versions[i] += 1
        self.modified[i] = formatdate(usegmt=True)


def build_feeds(spec: dict) -> list[list[Item]]:
    """The loads of `spec` one after another: feed numbers run on from one load to the next."""
    paragraphs, seeds = load_paragraphs(spec["parallel"]), load_seeds(spec["seeds"])
    feeds: list[list[Item]] = []
    for load in spec["loads"]:
        feeds += make_feeds(paragraphs, seeds, load["feeds"], load["items"], load["documents"],
                            fresh=load["fresh"], first_feed=len(feeds))
    return feeds


async def _main(spec: dict, conn: multiprocessing.connection.Connection) -> None:
    feeds = build_feeds(spec)
    kinds: dict[str, int] = {}
    for item in (it for items in feeds for it in items):
        kinds[item.kind] = kinds.get(item.kind, 0) + 1
    state = Feeds(feeds)
    async with FakeTelegram(token=TOKEN) as telegram:

        async def append(request: web.Request) -> web.Response:
            data = await request.json()
            state.append(int(data["feed"]), Item(data["guid"], data["title"],
                                                 tuple(data["paragraphs"]), "claim"))
            return web.json_response({"ok": True})

        async def sent(_request: web.Request) -> web.Response:
            return web.json_response([
                {"at": m.at, "chat": str(m.chat_id), "text": m.plain_text or ""}
                for m in telegram.sent if m.method == "sendMessage"])

        app = web.Application(client_max_size=16 * 1024 * 1024)
        app.router.add_get("/f/{n}.xml", state.serve)
        app.router.add_post("/_ctl/append", append)
        app.router.add_get("/_ctl/sent", sent)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0, backlog=1024).start()
        port = runner.addresses[0][1]
        conn.send({"feeds": f"http://127.0.0.1:{port}", "telegram": telegram.base_url,
                   "bytes": sum(map(len, state.bodies)), "kinds": kinds})
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, conn.recv)  # any message (or EOF) stops the server
        await runner.cleanup()


def run(spec: dict, conn: multiprocessing.connection.Connection) -> None:
    """Child-process entry point: `spec` gives the data folders and the loads (sizes, fresh or
    reused text), served as feeds 0, 1, … in that order."""
    with contextlib.suppress(EOFError, KeyboardInterrupt):
        asyncio.run(_main(spec, conn))


@dataclass(frozen=True)
class Served:
    info: dict[str, Any]  # what the server sent once it listened (its URLs, sizes)
    folder: Path  # a scratch folder for the run's configs and state


@contextlib.contextmanager
def served(target: Callable[[dict[str, Any], multiprocessing.connection.Connection], None],
           spec: dict[str, Any], prefix: str) -> Iterator[Served]:
    """`target(spec, conn)` in a forked child process (the loads are served off the measured
    process's cores' event loop), stopped and its scratch folder removed on the way out."""
    parent, child = multiprocessing.Pipe()
    process = multiprocessing.get_context("fork").Process(target=target, args=(spec, child),
                                                          daemon=True)
    process.start()
    folder = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield Served(parent.recv(), folder)
    finally:
        parent.send("stop")
        process.join(5)
        if process.is_alive():
            process.kill()
        shutil.rmtree(folder, ignore_errors=True)
