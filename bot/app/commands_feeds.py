"""`narrative-bot feeds import FILE.opml [--interval 10m] | export [--output FILE] | list`.

Imported feeds are kept in state beside config.toml's (as /addfeed keeps them); the daemon
polls them from its next start. Export writes config.toml's and the stored feeds as OPML;
list shows every feed with where it comes from. None of these needs the model or Telegram.
"""

from __future__ import annotations

import sys
from contextlib import closing
from pathlib import Path

from bot.app.feedlist import FeedList
from bot.config import Config, parse_duration
from bot.feeds import guess_language
from bot.feeds.opml import OpmlError, OpmlFeed, read_opml, write_opml
from bot.feeds.sources import detect_kind
from bot.storage.store import Store

MIN_INTERVAL_S = 5


def import_opml(config: Config, file: Path, interval: str) -> int:
    try:
        every = parse_duration(interval)
    except ValueError as exc:
        print(f"feeds import: --interval: {exc}", file=sys.stderr)
        return 2
    if every.total_seconds() < MIN_INTERVAL_S:
        print("feeds import: --interval must be at least 5s", file=sys.stderr)
        return 2
    try:
        feeds = read_opml(file.read_bytes())
    except OSError as exc:
        print(f"feeds import: cannot read {file}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    except OpmlError as exc:
        print(f"feeds import: {file}: {exc}", file=sys.stderr)
        return 2
    with _store(config) as store:
        done = FeedList(config, store).import_opml(feeds, interval=every, source=file.name)
    for skipped in done.skipped:
        print(f"skipped {skipped}")
    print(f"{file}: {len(done.added)} feeds imported, {len(done.skipped)} skipped "
          f"(of {len(feeds)}); `narrative-bot run` polls them from its next start")
    return 0


def export_opml(config: Config, output: Path | None) -> int:
    with _store(config) as store:
        listed = FeedList(config, store).listed()
    text = write_opml(OpmlFeed(f.feed.name, f.feed.url, tuple(f.feed.tags)) for f in listed)
    if output is None:
        sys.stdout.write(text)
    else:
        output.write_text(text, "utf-8")
        print(f"{output}: {len(listed)} feeds", file=sys.stderr)
    return 0


def list_feeds(config: Config) -> int:
    with _store(config) as store:
        listed = FeedList(config, store).listed()
    if not listed:
        print("no feeds")
        return 0
    width = max(len(f.feed.name) for f in listed)
    for item in listed:
        feed = item.feed
        origin = item.origin + (f" ({item.added_by})" if item.added_by else "")
        tags = f" [{', '.join(feed.tags)}]" if feed.tags else ""
        every = int(feed.interval.total_seconds())
        print(f"{feed.name:<{width}}  {detect_kind(feed.url, feed.kind):<8}  every {every}s  "
              f"{origin:<20}  {feed.url}{tags}")
    return 0


def _store(config: Config) -> closing[Store]:
    return closing(Store(config.state.location, guess_language=guess_language))
