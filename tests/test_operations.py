"""Running it like a service, with real processes: `run` starts while the Bot API is down and
delivers once it answers; a rejected token stops it in one line; one `run` per state file
(an OS lock the kernel drops on SIGKILL); `health`, `test-alert` and `--version`.
"""

from __future__ import annotations

import asyncio
import re
import signal
import socket
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bot.app.commands_ops import judge
from bot.models import Article, Match, Passage
from bot.storage.instance import InstanceLock, holder
from bot.storage.store import Store
from tests.conftest import TOKEN, OpenApp, WriteConfig, seed_state
from tests.fake_telegram import Error, FakeTelegram
from tests.feed_server import FeedServer
from tests.paths import REPO
from tests.test_cli import CHANNEL, SECRET, bot_env, run_bot, serve_demo, state_counts


@dataclass
class Daemon:
    """A `python -m bot run` process and where its output goes."""

    proc: asyncio.subprocess.Process
    log_path: Path

    @property
    def log(self) -> str:
        return self.log_path.read_text("utf-8", "replace")

    async def until(self, predicate: Callable[[], bool], timeout: float) -> None:
        """Wait for `predicate()` (checked every 0.1 s); fail with the log if the process
        ends first or the time runs out."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not predicate():
            assert self.proc.returncode is None, f"run ended early:\n{self.log}"
            assert loop.time() < deadline, f"timed out:\n{self.log}"
            await asyncio.sleep(0.1)


@asynccontextmanager
async def daemon(config_file: Path, cwd: Path, *, token: str | None = TOKEN,
                 name: str = "run") -> AsyncIterator[Daemon]:
    """`run` in the background; killed on the way out if the test did not stop it."""
    log_path = cwd / f"{name}.log"
    with log_path.open("wb") as log:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot", "run", "--config", str(config_file), cwd=cwd,
            env=bot_env(token), stdin=asyncio.subprocess.DEVNULL, stdout=log, stderr=log)
    try:
        yield Daemon(proc, log_path)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


def refused_port() -> int:
    """A loopback port where nothing listens (yet): connections are refused."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# ---- start without Telegram ---------------------------------------------------------------------

async def test_run_polls_while_telegram_is_down_and_delivers_when_it_answers(
        feeds: FeedServer, write_config: WriteConfig, seeded_state: Path,
        tmp_path: Path) -> None:
    port = refused_port()
    config = write_config(serve_demo(feeds), telegram_url=f"http://127.0.0.1:{port}/bot")
    state = seed_state(config, seeded_state)
    assert config.source_file is not None

    async with daemon(config.source_file, tmp_path) as bot:
        # Polling and matching went ahead with the Bot API refusing every connection.
        await bot.until(lambda: state_counts(state)["pending"] == 2, timeout=90)
        assert "Telegram not reachable" in bot.log
        async with FakeTelegram(token=TOKEN, port=port) as telegram:
            await bot.until(lambda: len(telegram.messages_to(CHANNEL)) == 2, timeout=90)
            await bot.until(lambda: any(m == "setMyCommands" for m, _ in telegram.requests),
                            timeout=10)
            bot.proc.send_signal(signal.SIGTERM)
            rc = await asyncio.wait_for(bot.proc.wait(), 20)

    log = bot.log
    assert rc == 0, log
    [connected] = re.findall(r"Telegram: connected as @narrative_test_bot after (\d+) attempts",
                             log)
    # Retried, and not one line per attempt (one a minute at most).
    assert 1 <= log.count("Telegram not reachable") < int(connected), log
    assert "Traceback" not in log and TOKEN not in log and SECRET not in log
    counts = state_counts(state)
    assert (counts["pending"], counts["sent"], counts["failed"]) == (0, 2, 0)


async def test_rejected_token_stops_run_and_poll_in_one_line(
        telegram: FakeTelegram, write_config: WriteConfig, seeded_state: Path,
        tmp_path: Path) -> None:
    config = write_config([], telegram_url=telegram.base_url)
    seed_state(config, seeded_state)
    assert config.source_file is not None
    wrong = "999999:WRONG-secret-token-value"

    async with daemon(config.source_file, tmp_path, token=wrong) as bot:
        rc = await asyncio.wait_for(bot.proc.wait(), 60)
    polled = await run_bot("poll", "--once", "--config", str(config.source_file), cwd=tmp_path,
                           token=wrong)

    for rc_, text in ((rc, bot.log), (polled.rc, polled.both)):
        assert rc_ == 1, text
        lines = [line for line in text.splitlines() if "rejected the bot token" in line]
        assert len(lines) == 1, text
        assert "$NARRATIVE_BOT_TEST_TOKEN" in lines[0]
        assert "Traceback" not in text and "WRONG-secret" not in text
    assert [m for m, _ in telegram.requests].count("getMe") == 2  # no retry on a 401


async def test_poll_once_with_telegram_down_keeps_the_alerts_for_later(
        feeds: FeedServer, write_config: WriteConfig, seeded_state: Path,
        tmp_path: Path) -> None:
    config = write_config(serve_demo(feeds), telegram_url=f"http://127.0.0.1:{refused_port()}/bot")
    state = seed_state(config, seeded_state)

    done = await run_bot("poll", "--once", "--config", str(config.source_file), cwd=tmp_path)

    assert done.rc == 0, done.err
    assert "alerts: Telegram not reachable, 2 wait in the outbox" in done.out
    assert "Traceback" not in done.both
    assert state_counts(state)["pending"] == 2


# ---- one instance per state ------------------------------------------------------------------

async def test_second_run_and_poll_refuse_a_held_state_until_the_holder_is_killed(
        write_config: WriteConfig, seeded_state: Path, tmp_path: Path) -> None:
    config = write_config([])
    state = seed_state(config, seeded_state)
    assert config.source_file is not None
    args = ("--config", str(config.source_file))

    async with daemon(config.source_file, tmp_path, token=None) as first:
        await first.until(lambda: holder(state) == first.proc.pid, timeout=30)
        await first.until(lambda: "running:" in first.log, timeout=90)
        second = await run_bot("run", *args, cwd=tmp_path, token=None)
        poll = await run_bot("poll", "--once", *args, cwd=tmp_path, token=None)
        healthy = await run_bot("health", *args, cwd=tmp_path, token=None)
        dry = await run_bot("poll", "--once", "--dry-run", *args, cwd=tmp_path, token=None)

        first.proc.kill()  # SIGKILL: nothing is cleaned up by the holder
        await first.proc.wait()

    for refused in (second, poll):
        assert refused.rc == 1, refused.both
        [line] = [line for line in refused.err.splitlines() if "in use" in line]
        assert str(state) in line and f"pid {first.proc.pid}" in line
        assert "Traceback" not in refused.both
    assert healthy.rc == 0 and f"healthy: pid {first.proc.pid}, no feeds" in healthy.out
    assert dry.rc == 0, dry.both  # a dry run reads a private copy: it may run beside
    assert holder(state) is None  # the kernel dropped the lock with the process

    after = await run_bot("poll", "--once", *args, cwd=tmp_path, token=None)
    down = await run_bot("health", *args, cwd=tmp_path, token=None)

    assert after.rc == 0, after.both
    assert down.rc == 1 and f"unhealthy: no narrative-bot is running on {state}" in down.err


def test_health_says_why_delivery_is_stuck_or_the_cycle_is_old(
        write_config: WriteConfig, seeded_state: Path) -> None:
    config = write_config([("Feed", "http://127.0.0.1:9/feed.xml")],
                          extra='[health]\nmax_outbox_age = "30m"\nmax_cycle_age = "10m"\n')
    state = seed_state(config, seeded_state)
    store = Store(state)
    article = Article("k1", "Feed", "https://e.org/1", "Title", "body")
    store.record_article(article, 1, [Match("kz", "KZ", 0.7, 0.63, Passage(0, "p"), "s")],
                         [CHANNEL])
    store.feed_health("Feed", "http://127.0.0.1:9/feed.xml")
    store.record_feed_error("Feed", "refused", datetime.now(UTC))
    store.close()
    now = datetime.now(UTC)

    assert "no narrative-bot is running" in judge(config, now)
    with InstanceLock(state):
        assert judge(config, now).startswith("healthy: pid ")
        stuck = judge(config, now + timedelta(minutes=9))
        old = judge(config, now + timedelta(minutes=11))
    assert stuck.startswith("healthy")  # 9 minutes: within both limits
    assert old.startswith("unhealthy: last cycle 11 min ago"), old
    with InstanceLock(state):
        later = judge(config.model_copy(update={"feeds": []}), now + timedelta(minutes=31))
    assert later.startswith("unhealthy: delivery stuck: 1 message(s) waiting"), later


# ---- operator commands ------------------------------------------------------------------------

async def test_test_alert_sends_a_marked_message_or_says_exactly_why_not(
        telegram: FakeTelegram, write_config: WriteConfig, tmp_path: Path) -> None:
    config = write_config([], telegram_url=telegram.base_url)
    args = ("test-alert", "--config", str(config.source_file))

    sent = await run_bot(*args, cwd=tmp_path)
    telegram.inject("sendMessage", Error(403, "Forbidden: bot is not a member of the channel "
                                              "chat"))
    not_admin = await run_bot(*args, cwd=tmp_path)
    telegram.forget(-1001234)
    missing = await run_bot(*args, "--chat", "-1001234", cwd=tmp_path)
    bad_token = await run_bot(*args, cwd=tmp_path, token="999:WRONG")

    assert sent.rc == 0 and f"test-alert: sent to {CHANNEL}" in sent.out, sent.both
    [message] = telegram.messages_to(CHANNEL)
    assert "Test message from narrative-bot" in (message.text or "")
    assert not_admin.rc == 1 and "administrator of the channel" in not_admin.err
    assert missing.rc == 1 and "chat not found" in missing.err, missing.both
    assert bad_token.rc == 1 and "bad token" in bad_token.err
    for done in (sent, not_admin, missing, bad_token):
        assert "Traceback" not in done.both and SECRET not in done.both


async def test_version(tmp_path: Path) -> None:
    from bot import __version__

    done = await run_bot("--version", cwd=tmp_path)
    assert done.rc == 0 and done.out.strip() == f"narrative-bot {__version__}"


# ---- an empty feed is healthy -------------------------------------------------------------------

async def test_a_well_formed_feed_with_no_items_is_a_successful_poll(
        feeds: FeedServer, write_config: WriteConfig, seeded_state: Path,
        tmp_path: Path) -> None:
    feeds.route("/live.xml", b'<?xml version="1.0"?><rss version="2.0"><channel>'
                             b"<title>Live</title><link>https://live.example/</link>"
                             b"</channel></rss>")
    config = write_config([("Live", feeds.url("/live.xml"))],
                          extra='[fetch]\npause_after = 1\n')
    seed_state(config, seeded_state)
    args = ("--config", str(config.source_file))

    polled = await run_bot("poll", "--once", *args, cwd=tmp_path, token=None)
    checked = await run_bot("check-feeds", *args, cwd=tmp_path, token=None)

    assert polled.rc == 0 and "feed Live: empty — 0 items" in polled.out, polled.both
    assert "failed" not in polled.err and "paused" not in polled.err
    assert checked.rc == 0 and "Live: ok — last poll" in checked.out, checked.both
    assert "0 articles" in checked.out


async def test_telegram_going_away_later_delays_delivery_only(
        feeds: FeedServer, write_config: WriteConfig, seeded_state: Path,
        tmp_path: Path) -> None:
    port = refused_port()
    demo = serve_demo(feeds)
    later = feeds.url("/later.xml")  # empty until Telegram has gone away
    feeds.route("/later.xml", b'<?xml version="1.0"?><rss version="2.0"><channel><title>L'
                              b"</title></channel></rss>")
    config = write_config([demo[0], ("Regional Review", later)],
                          telegram_url=f"http://127.0.0.1:{port}/bot", interval="5s")
    state = seed_state(config, seeded_state)
    assert config.source_file is not None
    loop = asyncio.get_running_loop()

    async with daemon(config.source_file, tmp_path) as bot:
        async with FakeTelegram(token=TOKEN, port=port) as telegram:
            await bot.until(lambda: len(telegram.messages_to(CHANNEL)) == 1, timeout=120)
        gone = loop.time()
        # Telegram is away: the new article is matched and waits in the outbox.
        feeds.route("/later.xml", (REPO / "demo" / "feeds" / "regional-review.xml").read_bytes())
        await bot.until(lambda: state_counts(state)["outbox"] == 2, timeout=120)
        await bot.until(lambda: "Telegram not reachable for updates" in bot.log, timeout=60)
        async with FakeTelegram(token=TOKEN, port=port) as back:
            outage = loop.time() - gone
            await bot.until(lambda: len(back.messages_to(CHANNEL)) == 1, timeout=120)
            bot.proc.send_signal(signal.SIGTERM)
            rc = await asyncio.wait_for(bot.proc.wait(), 20)

    log = bot.log
    assert rc == 0, log
    assert "Sohu" in (back.messages_to(CHANNEL)[0].plain_text or "")
    assert 1 <= log.count("Telegram not reachable for updates") <= 1 + outage // 60, log
    assert "Traceback" not in log and TOKEN not in log
    counts = state_counts(state)
    assert (counts["pending"], counts["sent"], counts["failed"]) == (0, 2, 0)


async def test_whoami_answers_anyone_with_the_ids_an_admin_needs(
        telegram: FakeTelegram, write_config: WriteConfig, open_app: OpenApp) -> None:
    from tests.test_i18n import ask

    app = open_app(write_config([], telegram_url=telegram.base_url), token=TOKEN, chat=True)
    async with app, app.answering(poll_timeout=1):
        private = await ask(telegram, "/whoami", user=5)
        admin = await ask(telegram, "/whoami", user=42)
        group = await ask(telegram, "/whoami@narrative_test_bot", user=5, chat=-100777)
        russian = await ask(telegram, "/whoami", user=6, language_code="ru")

    assert private == ("your user id: 5\nthis chat: 5 (private chat)\n"
                       "To make this user an admin, add the id to [telegram] admins.")
    assert admin.endswith("admin here: yes")
    assert group.startswith("your user id: 5\nthis chat: -100777 (")
    assert russian.startswith("ваш id пользователя: 6\nэтот чат: 6 (личный чат)")
