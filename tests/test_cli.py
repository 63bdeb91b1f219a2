"""The commands as a user runs them: `python -m bot …` in a subprocess, against local servers.

Every run is a real process with the real model; the test's own event loop keeps serving the
fake Bot API and the feeds meanwhile. Each state DB starts as a copy of one that already holds
the background mean and the narratives' text vectors (`seeded_state`, computed once with the
session embedder), which spares every run their embedding; such a state is still fresh: no
feeds, articles, matches or alerts. Only four runs
embed the demo feeds (poll with a token, dry run, no token, the daemon); the others are cheap.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import re
import signal
import sqlite3
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from bot.models import Article, Match, Passage
from bot.storage.audience import Audience
from bot.storage.store import Store
from tests.conftest import TOKEN, WriteConfig, seed_state
from tests.fake_telegram import FakeTelegram
from tests.feed_server import FeedServer
from tests.paths import REPO, SEEDS

CHANNEL = "@narrative_alerts"
TOKEN_ENV = "NARRATIVE_BOT_TEST_TOKEN"
SECRET = TOKEN.split(":", 1)[1]  # the secret half: caught even if the token were URL-encoded
DEMO = REPO / "demo" / "feeds"
DEMO_FEEDS = {"Central Asia News": "central-asia-news.xml",
              "Regional Review": "regional-review.xml"}
NARRATIVES = {
    "kz-return-to-china": "Kazakhstan wants to return to China",
    "kg-chinese-homeland": "Kyrgyzstan should return to its Chinese homeland",
    "pamirs-returned": "The Pamirs were returned to their true owner (China)",
}
RUN_TIMEOUT = 120.0
KZ_CLAIM = "Китайские блогеры пишут, что Казахстан мечтает вернуться в состав Китая."


@dataclass(frozen=True)
class Done:
    """A finished command: exit status and decoded output."""

    rc: int
    out: str
    err: str

    @property
    def both(self) -> str:
        return self.out + self.err


def bot_env(token: str | None) -> dict[str, str]:
    """The test's environment with the token variable set to `token`, or removed."""
    env = {k: v for k, v in os.environ.items() if k not in (TOKEN_ENV, "NARRATIVE_BOT_LOG")}
    if token is not None:
        env[TOKEN_ENV] = token
    return env


async def run_bot(*args: str, cwd: Path, token: str | None = TOKEN) -> Done:
    """`python -m bot ARGS` to completion, without blocking the test's event loop."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", *args, cwd=cwd, env=bot_env(token),
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE)
    try:
        out, err = await asyncio.wait_for(proc.communicate(), RUN_TIMEOUT)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    assert proc.returncode is not None
    return Done(proc.returncode, out.decode("utf-8", "replace"), err.decode("utf-8", "replace"))


def serve_demo(feeds: FeedServer) -> list[tuple[str, str]]:
    """Serve the two demo feeds; return (name, url) for write_config."""
    for file in DEMO_FEEDS.values():
        feeds.route(f"/{file}", (DEMO / file).read_bytes())
    return [(name, feeds.url(f"/{file}")) for name, file in DEMO_FEEDS.items()]


def state_counts(path: Path) -> dict[str, int]:
    with contextlib.closing(sqlite3.connect(path)) as db:
        one = db.execute
        counts = {table: one(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
                  for table in ("feeds", "articles", "matches", "outbox")}
        for status in ("pending", "sent", "failed"):
            counts[status] = one("SELECT COUNT(*) FROM outbox WHERE status = ?",
                                 (status,)).fetchone()[0]
    return counts


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def assert_demo_alerts_printed(out: str) -> None:
    """The console shows both demo alerts: the report (three narratives) and the guide's."""
    assert out.count(f"--- alert for {CHANNEL}") == 2, out
    for title in NARRATIVES.values():
        assert title in out
    assert "Sohu" in out and "Kazakhstan and China: a guide to the relationship" in out
    assert "Chinese websites tell readers that Kazakhstan, Kyrgyzstan and the Pamirs" in out


# ---- poll --once ------------------------------------------------------------------------------

async def test_poll_once_sends_each_alert_once_and_never_shows_the_token(
        feeds: FeedServer, telegram: FakeTelegram, write_config: WriteConfig,
        seeded_state: Path, tmp_path: Path) -> None:
    config = write_config(serve_demo(feeds), telegram_url=telegram.base_url)
    state = seed_state(config, seeded_state)
    args = ("poll", "--once", "--config", str(config.source_file), "--log-level", "DEBUG")

    first = await run_bot(*args, cwd=tmp_path)

    assert first.rc == 0, first.err
    sent = telegram.messages_to(CHANNEL)
    assert len(sent) == 2, first.both
    assert all(m.method == "sendMessage" and m.parse_mode == "HTML" for m in sent)
    assert len(telegram.sent) == 2  # nothing anywhere else
    report = next(m for m in sent if "the Pamirs belong to China" in (m.plain_text or ""))
    assert all(title in (report.plain_text or "") for title in NARRATIVES.values())
    assert any("Sohu" in (m.plain_text or "") for m in sent if m is not report)
    assert "feed Central Asia News: new — 3 new of 3, 3 matches" in first.out
    assert "feed Regional Review: new — 2 new of 2, 1 matches" in first.out
    assert "alerts: 2 delivered, 0 to retry, 0 failed" in first.out
    # DEBUG really was on (so a logged Bot API URL would have shown), and the token never was.
    assert " DEBUG " in first.err and "Traceback" not in first.err
    assert TOKEN not in first.both and SECRET not in first.both
    assert state_counts(state) == {
        "feeds": 2, "articles": 5, "matches": 4, "outbox": 2, "pending": 0, "sent": 2,
        "failed": 0}

    second = await run_bot(*args, cwd=tmp_path)

    assert second.rc == 0, second.err
    assert len(telegram.sent) == 2  # state persisted: nothing is new, nothing is sent again
    assert "feed Central Asia News: unchanged" in second.out
    assert "feed Regional Review: unchanged" in second.out
    assert "alerts: 0 delivered, 0 to retry, 0 failed" in second.out
    assert TOKEN not in second.both and SECRET not in second.both
    assert all(feeds.hits(f"/{file}") == 2 for file in DEMO_FEEDS.values())
    assert state_counts(state)["outbox"] == 2


async def test_poll_once_dry_run_prints_alerts_and_leaves_state_untouched(
        feeds: FeedServer, telegram: FakeTelegram, write_config: WriteConfig,
        seeded_state: Path, tmp_path: Path) -> None:
    config = write_config(serve_demo(feeds), telegram_url=telegram.base_url)
    state = seed_state(config, seeded_state)
    before = digest(state)

    # With a token in the environment: a dry run still never talks to Telegram.
    done = await run_bot("poll", "--once", "--dry-run", "--config", str(config.source_file),
                         cwd=tmp_path)

    assert done.rc == 0, done.err
    assert_demo_alerts_printed(done.out)
    assert "alerts: 2 delivered, 0 to retry, 0 failed (dry run: state untouched)" in done.out
    assert telegram.requests == [] and telegram.sent == []
    assert all(feeds.hits(f"/{file}") == 1 for file in DEMO_FEEDS.values())
    assert digest(state) == before
    assert state_counts(state) == {"feeds": 0, "articles": 0, "matches": 0, "outbox": 0,
                                   "pending": 0, "sent": 0, "failed": 0}
    assert TOKEN not in done.both


async def test_poll_once_without_token_warns_and_prints_alerts(
        feeds: FeedServer, telegram: FakeTelegram, write_config: WriteConfig,
        seeded_state: Path, tmp_path: Path) -> None:
    config = write_config(serve_demo(feeds), telegram_url=telegram.base_url)
    state = seed_state(config, seeded_state)

    done = await run_bot("poll", "--once", "--config", str(config.source_file), cwd=tmp_path,
                         token=None)

    assert done.rc == 0, done.err
    assert f"no bot token in ${TOKEN_ENV}" in done.err
    assert_demo_alerts_printed(done.out)
    assert "alerts: 2 delivered, 0 to retry, 0 failed" in done.out
    assert telegram.requests == []
    counts = state_counts(state)
    assert (counts["sent"], counts["pending"]) == (2, 0)  # printing them counts as delivery


# ---- score ------------------------------------------------------------------------------------

def matched(row: str) -> bool:
    """A `score` row's verdict: MATCH or -, then the keyword guard's note if any."""
    found = re.search(r"  (MATCH|-)( \(.*\))?$", row)
    assert found is not None, row
    return found.group(1) == "MATCH"


async def test_score_text_and_file(write_config: WriteConfig, seeded_state: Path,
                                   tmp_path: Path) -> None:
    config = write_config([])
    seed_state(config, seeded_state)
    cfg = ("--config", str(config.source_file))

    done = await run_bot("score", KZ_CLAIM, *cfg, cwd=tmp_path)

    assert done.rc == 0, done.err
    rows = [line for line in done.out.splitlines() if not line.startswith(" ")]
    ids = [row.split()[0] for row in rows]
    assert ids[0] == "kz-return-to-china" and sorted(ids) == sorted(NARRATIVES)
    assert matched(rows[0]) and sum(map(matched, rows)) == 1
    assert "passage #0: Китайские блогеры" in done.out

    seed = next(SEEDS.glob("000_*.txt"))  # the report quoting all three headlines
    from_file = await run_bot("score", "--file", str(seed), *cfg, cwd=tmp_path)

    assert from_file.rc == 0, from_file.err
    rows = [line for line in from_file.out.splitlines() if not line.startswith(" ")]
    assert sorted(row.split()[0] for row in rows) == sorted(NARRATIVES)
    assert all(map(matched, rows)), from_file.out

    nothing = await run_bot("score", *cfg, cwd=tmp_path)

    assert nothing.rc == 2
    assert "give TEXT or --file" in nothing.err and nothing.out == ""


def thumbs_down(state: Path, narrative_id: str, passage: str, voters: Sequence[int]) -> None:
    """What 👎 from each of `voters` on an alert does (bot.telegram.commands.feedback): every
    vote is stored, and once there are enough the alert's evidence passage is kept in state
    as a counter-example of its narrative."""
    store = Store(state)
    try:
        audience = Audience(store, CHANNEL)
        article = Article("art-1", "Sohu", "https://example.com/1", "", passage)
        match = Match(narrative_id, NARRATIVES[narrative_id], 0.7, 0.63, Passage(0, passage),
                      "Kazakhstan wants to return to China.")
        [alert_id] = store.record_article(article, 1, [match], [CHANNEL])
        votes = [audience.vote(article.key, narrative_id, user, "wrong", alert_id)
                 for user in voters]
        assert votes[-1] == len(voters)
        assert audience.learn_counter_example(narrative_id, passage, article.key)
    finally:
        store.close()


async def test_score_no_longer_matches_a_passage_learned_from_wrong_votes(
        write_config: WriteConfig, seeded_state: Path, tmp_path: Path) -> None:
    config = write_config([])
    state = seed_state(config, seeded_state)
    # test_score_text_and_file: this text alone is a MATCH for kz-return-to-china
    thumbs_down(state, "kz-return-to-china", KZ_CLAIM, voters=[7, 8, 9])
    assert config.telegram.feedback_votes == 3

    done = await run_bot("score", KZ_CLAIM, "--config", str(config.source_file), cwd=tmp_path)

    assert done.rc == 0, done.err
    rows = {row.split()[0]: row for row in done.out.splitlines() if not row.startswith(" ")}
    assert sorted(rows) == sorted(NARRATIVES)
    assert not any(map(matched, rows.values())), done.out
    counter = float(rows["kz-return-to-china"].split("counter")[1].split()[0])
    assert counter > 0.99  # the passage is its own counter-example now


# ---- run --------------------------------------------------------------------------------------

async def test_run_daemon_delivers_then_stops_cleanly_on_sigterm(
        feeds: FeedServer, telegram: FakeTelegram, write_config: WriteConfig,
        seeded_state: Path, tmp_path: Path) -> None:
    config = write_config(serve_demo(feeds), telegram_url=telegram.base_url)
    state = seed_state(config, seeded_state)
    out_path, err_path = tmp_path / "run.out", tmp_path / "run.err"
    with out_path.open("wb") as out, err_path.open("wb") as err:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot", "run", "--config", str(config.source_file),
            "--log-level", "DEBUG", cwd=tmp_path, env=bot_env(TOKEN),
            stdin=asyncio.subprocess.DEVNULL, stdout=out, stderr=err)
    try:
        await telegram.wait_for(
            lambda: len(telegram.messages_to(CHANNEL)) >= 2 or proc.returncode is not None,
            timeout=60)
        assert proc.returncode is None, err_path.read_text("utf-8")
        proc.send_signal(signal.SIGTERM)
        rc = await asyncio.wait_for(proc.wait(), 15)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()

    log = err_path.read_text("utf-8") + out_path.read_text("utf-8")
    assert rc == 0, log
    assert len(telegram.messages_to(CHANNEL)) == 2
    assert "running: 2 feeds, 3 narratives" in log and "stopping" in log
    assert " DEBUG " in log and "Traceback" not in log
    assert TOKEN not in log and SECRET not in log
    counts = state_counts(state)
    assert (counts["pending"], counts["sent"], counts["failed"]) == (0, 2, 0)


# ---- config handling --------------------------------------------------------------------------

async def test_bad_config_exits_2_with_the_reason(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text('[telegram]\nchanel = "@narrative_alerts"\n', "utf-8")

    done = await run_bot("poll", "--once", "--config", str(path), cwd=tmp_path)

    assert done.rc == 2
    assert "config error" in done.err and f"{path}:2: key 'telegram.chanel'" in done.err
    assert done.out == ""
    assert not (tmp_path / "state").exists()


async def test_relative_config_path_resolves_against_the_config_folder(
        write_config: WriteConfig, tmp_path: Path) -> None:
    # No feeds and no centering: this run only loads the model and the narratives.
    config = write_config([], extra="[matching]\ncentering = false\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()

    done = await run_bot("poll", "--once", "--config", "../config.toml", cwd=elsewhere,
                         token=None)

    assert done.rc == 0, done.err
    assert "alerts: 0 delivered" in done.out
    assert config.state.path == (tmp_path / "state" / "bot.sqlite3").resolve()
    assert config.state.path.is_file()
    assert not (elsewhere / "state").exists()
    assert sorted(p.name for p in elsewhere.iterdir()) == []


def test_export_command_writes_stored_matches(tmp_path: Path, write_config: WriteConfig,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    import csv as csv_module

    from bot import cli

    config = write_config()
    store = Store(config.state.path)
    store.record_article(Article("k1", "Sohu", "https://e.org/1", "=Why", "body"), 1,
                         [Match("kz", "KZ", 0.7, 0.63, Passage(0, "evidence"), "st")], [])
    store.close()
    out = tmp_path / "audit.csv"
    args = ["export", "--since", "7d", "--format", "csv", "--output", str(out), "--config",
            str(tmp_path / "config.toml")]
    assert cli.main(args) == 0
    [row] = list(csv_module.DictReader(out.open(encoding="utf-8", newline="")))
    assert row["title"] == "'=Why" and row["evidence"] == "evidence"
    assert "exported 1 matches" in capsys.readouterr().err
    assert cli.main([*args[:-2], "--since", "soon", *args[-2:]]) == 2
    (tmp_path / "state").rename(tmp_path / "gone")
    assert cli.main(args) == 2  # no state yet: a clear error, not an empty file
