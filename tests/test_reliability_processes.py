"""The audit's process findings against the real daemon (`python -m bot run`), the fake Bot
API as a hostile Telegram, and the state file on disk: SIGTERM mid-round, polling that dies on
a burst of 401/404, state that is not what it should be."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import sys
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from bot.config import Config
from bot.models import Article, Match, Passage
from bot.storage.store import Store
from tests.conftest import TOKEN, WriteConfig, seed_state
from tests.fake_telegram import Error, FakeTelegram, Params

CHANNEL = "@narrative_alerts"
STOP_S = 20.0


class SlowTelegram(FakeTelegram):
    """Accepts each sendMessage, then answers `after` seconds late (as a slow Bot API)."""

    after = 1.2

    async def _send_message(self, p: Params) -> Any:
        result = await super()._send_message(p)
        await asyncio.sleep(self.after)
        return result


def queue_alerts(config: Config, seeded: Path, count: int) -> None:
    seed_state(config, seeded)
    store = Store(config.state.path)
    try:
        for i in range(count):
            match = Match(narrative_id="n0", narrative_title="Narrative", score=0.9,
                          threshold=0.5, passage=Passage(index=0, text=f"Evidence {i}."),
                          statement="s")
            store.record_article(
                Article(key=f"k{i}", source="Feed", url=f"https://example.com/{i}",
                        title=f"Story number {i}", text=f"Evidence {i}.",
                        published=datetime(2026, 11, 23, tzinfo=UTC)),
                passages=1, matches=[match], routes=[CHANNEL])
    finally:
        store.close()


def outbox(config: Config) -> list[sqlite3.Row]:
    db = sqlite3.connect(config.state.path)
    db.row_factory = sqlite3.Row
    try:
        return db.execute("SELECT o.*, a.title FROM outbox o JOIN articles a "
                          "ON a.key = o.article_key ORDER BY o.id").fetchall()
    finally:
        db.close()


@asynccontextmanager
async def daemon(config: Config, log: Path) -> AsyncIterator[asyncio.subprocess.Process]:
    env = {**os.environ, config.telegram.token_env: TOKEN}
    env.pop("NARRATIVE_BOT_LOG", None)
    assert config.source_file is not None
    with log.open("a") as err:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot", "run", "--config", str(config.source_file),
            stdin=asyncio.subprocess.DEVNULL, stdout=err, stderr=err, env=env)
        try:
            yield proc
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()


async def stop(proc: asyncio.subprocess.Process, log: Path) -> int:
    proc.send_signal(signal.SIGTERM)
    try:
        return await asyncio.wait_for(proc.wait(), STOP_S)
    except TimeoutError:
        pytest.fail(f"no stop within {STOP_S:g} s of SIGTERM:\n{log.read_text()[-3000:]}")


@pytest.mark.slow
async def test_sigterm_mid_round_leaves_nothing_sending_and_every_duplicate_counted(
        write_config: WriteConfig, seeded_state: Path, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    """Finding 5: SIGTERM during a delivery round cancelled the send in flight and left it
    `sending` (then one duplicate per restart). Now the round ends after the send in flight."""
    log = tmp_path / "daemon.log"
    async with SlowTelegram(token=TOKEN) as telegram:
        config = write_config(telegram_url=telegram.base_url,
                              extra='[schedule]\ndelivery_interval = "1s"\n')
        queue_alerts(config, seeded_state, 14)  # 14 × 1.2 s: a round longer than the 10 s
        async with daemon(config, log) as proc:
            await telegram.wait_for(lambda: len(telegram.messages_to(CHANNEL)) >= 2, 120)
            code = await stop(proc, log)
        assert code == 0, log.read_text()[-3000:]
        rows = outbox(config)
        statuses = Counter(r["status"] for r in rows)
        assert statuses["sending"] == 0, statuses
        assert statuses["pending"] > 0  # the round really was cut short

        async with daemon(config, log) as proc:
            await telegram.wait_for(
                lambda: Counter(r["status"] for r in outbox(config))["sent"] == 14, 120)
            await stop(proc, log)
        rows = outbox(config)
        assert {r["status"] for r in rows} == {"sent"}
        duplicates = len(telegram.messages_to(CHANNEL)) - len(rows)
        counted = sum(r["interrupted"] for r in rows)
        with capsys.disabled():
            print(f"\nSIGTERM mid-round: alerts {len(rows)}, delivered {len(rows)}, lost 0, "
                  f"'sending' after the stop {statuses['sending']}, duplicated {duplicates}, "
                  f"counted {counted}")
        assert duplicates <= counted
        assert "Traceback" not in log.read_text()


@pytest.mark.slow
async def test_a_burst_of_401_and_404_from_get_updates_does_not_end_command_handling(
        write_config: WriteConfig, seeded_state: Path, tmp_path: Path) -> None:
    """Finding 3: PTB's polling loop aborted on 401/404, nothing watched it, the process stayed
    up and /status was never answered again. The watchdog restarts polling."""
    log = tmp_path / "daemon.log"
    async with FakeTelegram(token=TOKEN) as telegram:
        config = write_config(telegram_url=telegram.base_url)
        seed_state(config, seeded_state)
        async with daemon(config, log) as proc:
            await telegram.wait_for(
                lambda: sum(m == "getUpdates" for m, _ in telegram.requests) >= 2, 120)
            telegram.inject("getUpdates", Error(401, "Unauthorized"), times=2)
            telegram.inject("getUpdates", Error(404, "Not Found"), times=2)
            await telegram.wait_for(lambda: not any(
                m == "getUpdates" for m, _ in telegram._faults), 60)
            telegram.push_message(42, 42, "/status")
            await telegram.wait_for(lambda: len(telegram.messages_to(42)) >= 1, 120)
            assert proc.returncode is None
            code = await stop(proc, log)
        assert code == 0
        text = log.read_text()
        assert "polling for updates stopped by itself: restarting it" in text
        assert TOKEN not in text and TOKEN.split(":")[1] not in text
