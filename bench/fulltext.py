"""Benchmark, full-text load: feeds whose items carry a title and one line, each linking to an
article page served locally; articles/s with and without reading the pages, and peak RSS.

    python bench/fulltext.py [--items 1000] [--feeds 40] [--quick] [--json] [--config PATH]

A child process on 127.0.0.1 serves the feeds (/f/{i}.xml) and the pages (/p/{i}/{j}.html:
menus, a share bar, the article's paragraphs, related links, a footer; the paragraphs are the
benchmark corpus's fresh multilingual news, bench/corpus.py). This process polls every feed
once with the model `[model]` of --config selects, in two fresh states:

1. `full_text = "never"`: each article is its title and one line;
2. `full_text = "auto"`: each item is short, so its page is fetched (robots.txt, the host
   gate with `politeness_delay = 0`, the page cache), extracted with trafilatura and matched.

All pages sit on one host, so they are fetched one at a time (the politeness rule): the
figure is that of one outlet's feeds; pages of different outlets are fetched side by side.
"""

from __future__ import annotations

import argparse
import asyncio
import html
import json
import multiprocessing
import multiprocessing.connection
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from aiohttp import web  # noqa: E402

from bench.corpus import Item, load_paragraphs, load_seeds, make_feeds  # noqa: E402
from bench.run import model_table, peak_rss_mb  # noqa: E402
from bench.server import served  # noqa: E402
from bot.app.model import load_model, open_matcher  # noqa: E402
from bot.app.pipeline import Pipeline, fetch_limits  # noqa: E402
from bot.config import Config, load_config, load_narratives  # noqa: E402
from bot.feeds import make_client  # noqa: E402
from bot.storage.store import Store  # noqa: E402
from tests.paths import SHARED, copy_narratives  # noqa: E402


def page_html(item: Item) -> bytes:
    menu = "".join(f'<li><a href="/section/{i}">Section {i}</a></li>' for i in range(12))
    related = "".join(f'<li><a href="/news/{i}">Another headline {i}</a></li>' for i in range(8))
    body = "".join(f"<p>{html.escape(p)}</p>" for p in item.paragraphs)
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(item.title)}"
            f"</title></head><body><header><nav><ul>{menu}</ul></nav></header><main><article>"
            f"<h1>{html.escape(item.title)}</h1><div class='share'>Share · Copy link</div>"
            f"{body}</article><aside><h2>Related</h2><ul>{related}</ul></aside></main>"
            f"<footer><ul>{menu}</ul><p>© The outlet</p></footer></body></html>").encode()


def feed_xml(base: str, i: int, items: list[Item]) -> bytes:
    entries = "".join(
        f"<item><title>{html.escape(it.title)}</title><link>{base}/p/{i}/{j}.html</link>"
        f"<guid>{html.escape(it.guid)}</guid>"
        f"<description>{html.escape(' '.join(it.paragraphs[0].split()[:12]))} …</description>"
        f"</item>" for j, it in enumerate(items))
    return (f'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>'
            f"<title>feed{i}</title><link>{base}/</link>{entries}</channel></rss>").encode()


def serve(spec: dict[str, Any], conn: multiprocessing.connection.Connection) -> None:
    asyncio.run(_serve(spec, conn))


async def _serve(spec: dict[str, Any], conn: multiprocessing.connection.Connection) -> None:
    paragraphs, seeds = load_paragraphs(spec["parallel"]), load_seeds(spec["seeds"])
    feeds = make_feeds(paragraphs, seeds, spec["feeds"], spec["items"], fresh=True)
    app = web.Application()
    runner = web.AppRunner(app, access_log=None)
    bodies: dict[str, bytes] = {}

    async def answer(request: web.Request) -> web.StreamResponse:
        body = bodies.get(request.path)
        if body is None:
            return web.Response(status=404)
        kind = "application/rss+xml" if request.path.endswith(".xml") else "text/html"
        return web.Response(body=body, headers={"Content-Type": f"{kind}; charset=utf-8"})

    app.router.add_get("/{tail:.*}", answer)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    base = f"http://127.0.0.1:{runner.addresses[0][1]}"
    for i, items in enumerate(feeds):
        bodies[f"/f/{i}.xml"] = feed_xml(base, i, items)
        for j, item in enumerate(items):
            bodies[f"/p/{i}/{j}.html"] = page_html(item)
    conn.send({"base": base, "items": sum(len(f) for f in feeds)})
    await asyncio.get_running_loop().run_in_executor(None, conn.recv)
    await runner.cleanup()


def write_config(folder: Path, base: str, feeds: int, mode: str, model: str) -> Config:
    copy_narratives(folder)
    text = textwrap.dedent(f"""\
        narratives_dir = "narratives"
        [state]
        path = "state-{mode}/bot.sqlite3"
        [fetch]
        full_text = "{mode}"
        politeness_delay = "0s"
        max_pages_per_poll = 1000
        allow_private = true
        """) + model + "".join(
        f'\n[[feeds]]\nname = "feed{i:04d}"\nurl = "{base}/f/{i}.xml"\n' for i in range(feeds))
    path = folder / f"config-{mode}.toml"
    path.write_text(text, "utf-8")
    return load_config(path)


async def poll(config: Config, embedder: Any) -> dict[str, float]:
    narratives = load_narratives(config.narratives_dir)
    store = Store(config.state.path)
    try:
        matcher = open_matcher(config, narratives, store, {}, embedder)
        async with make_client(fetch_limits(config)) as client:
            pipeline = Pipeline(config, store, matcher, client, route=lambda _s, _ids: [])
            started = time.perf_counter()
            reports = await pipeline.poll_all(force=True)
            seconds = time.perf_counter() - started
            await pipeline.sources.aclose()
    finally:
        store.close()
    articles = sum(r.new_articles for r in reports)
    return {"articles": articles, "pages": sum(r.pages_read for r in reports),
            "errors": sum(r.status == "error" for r in reports), "seconds": round(seconds, 1),
            "articles_per_s": round(articles / seconds, 1),
            "passages": sum(r.passages_embedded for r in reports)}


async def bench(args: argparse.Namespace) -> dict[str, Any]:
    items, feeds = (200, 8) if args.quick else (args.items, args.feeds)
    per_feed = max(1, items // feeds)
    spec = {"parallel": SHARED / "eval" / "parallel", "seeds": SHARED / "seeds",
            "feeds": feeds, "items": per_feed}
    figures: dict[str, Any] = {}
    with served(serve, spec, "narrative-bench-fulltext-") as load:
        figures["items"] = load.info["items"]
        model = model_table(args.config)
        plain = write_config(load.folder, load.info["base"], feeds, "never", model)
        embedder = load_model(plain)
        figures["without_full_text"] = await poll(plain, embedder)
        full = write_config(load.folder, load.info["base"], feeds, "auto", model)
        figures["with_full_text"] = await poll(full, embedder)
        figures["peak_rss_mb"] = round(peak_rss_mb())
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=1000, help="items in all (default 1000)")
    parser.add_argument("--feeds", type=int, default=40, help="feeds (default 40)")
    parser.add_argument("--quick", action="store_true", help="200 items in 8 feeds")
    parser.add_argument("--json", action="store_true", help="end with one JSON line of figures")
    parser.add_argument("--config", type=Path, help="take [model] from this config.toml")
    args = parser.parse_args(argv)
    figures = asyncio.run(bench(args))
    for name in ("without_full_text", "with_full_text"):
        f = figures[name]
        print(f"{name.replace('_', ' '):<20} {f['articles']} articles, {f['pages']} pages, "
              f"{f['passages']} passages in {f['seconds']} s: {f['articles_per_s']} articles/s"
              + (f", {f['errors']} feeds failed" if f["errors"] else ""))
    print(f"{'peak RSS':<20} {figures['peak_rss_mb']} MB")
    if args.json:
        print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
