"""Finding 15: state that is not what it should be is refused with one clear line and the admins
are told, instead of starting anew or running on; disk errors reach the admins; the state can
be backed up while the bot writes (`state backup`, `[state] backups`)."""

from __future__ import annotations

import asyncio
import os
import random
import sqlite3
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy.exc
import telegram
import time_machine

from bot.cli import main
from bot.models import Article, Match, Passage
from bot.storage.integrity import StateDamaged, rotate_backup
from bot.storage.store import Store
from bot.telegram.deliver import TelegramSink
from tests.conftest import TOKEN, WriteConfig
from tests.fake_telegram import FakeTelegram


def fill(path: Path, articles: int) -> None:
    store = Store(path)
    try:
        for i in range(articles):
            match = Match(narrative_id="n0", narrative_title="N", score=0.9, threshold=0.5,
                          passage=Passage(index=0, text="e"), statement="s")
            store.record_article(
                Article(key=f"k{i}", source="F", url=f"https://example.com/{i}",
                        title=f"Title {i}", text=f"body {i} " * 150,
                        published=datetime(2026, 11, 1, tzinfo=UTC)),
                passages=1, matches=[match], routes=["@narrative_alerts"])
    finally:
        store.close()


def empty(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")


def garbage_mid_file(path: Path) -> None:
    fill(path, 150)
    size = path.stat().st_size
    with path.open("r+b") as f:
        f.seek(size // 2 // 4096 * 4096)
        f.write(random.Random(7).randbytes(8192))


def torn_outbox_root(path: Path) -> None:
    fill(path, 20)
    db = sqlite3.connect(path)
    root = db.execute("SELECT rootpage FROM sqlite_master WHERE name = 'outbox'").fetchone()[0]
    page = db.execute("PRAGMA page_size").fetchone()[0]
    db.close()
    with path.open("r+b") as f:
        f.seek((root - 1) * page)
        f.write(b"\0" * page)


@pytest.mark.parametrize(("damage", "says"), [
    (empty, "empty file (0 bytes)"),
    (garbage_mid_file, "damaged"),
    (torn_outbox_root, "damaged"),
], ids=["0-byte", "garbage-mid-file", "torn-outbox-root"])
async def test_the_daemon_refuses_damaged_state_and_tells_the_admins(
        telegram: FakeTelegram, write_config: WriteConfig, damage: object, says: str) -> None:
    config = write_config(telegram_url=telegram.base_url)
    assert callable(damage)
    damage(config.state.path)
    before = config.state.path.read_bytes()
    assert config.source_file is not None
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", "run", "--config", str(config.source_file),
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, config.telegram.token_env: TOKEN})
    _, err = await asyncio.wait_for(proc.communicate(), 120)
    text = err.decode()
    assert proc.returncode == 2, text
    assert says in text and "Traceback" not in text
    assert len([line for line in text.splitlines() if line.startswith("run:")]) == 1
    [told] = telegram.messages_to(42)
    assert "refused to start" in (told.text or "") and says in (told.text or "")
    assert config.state.path.read_bytes() == before  # left as it was, for the operator
    assert TOKEN not in text


def test_an_empty_or_damaged_file_is_refused_in_process(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite3"
    empty(path)
    with pytest.raises(StateDamaged, match="empty file"):
        Store(path)
    with pytest.raises(StateDamaged, match="empty file"):
        Store.in_memory_copy(path)
    assert path.stat().st_size == 0
    Store(tmp_path / "new.sqlite3").close()  # a missing file still starts fresh


async def test_a_full_disk_reaches_the_admins_once(
        tg: FakeTelegram, bot: telegram.Bot, tmp_path: Path) -> None:
    store = Store(tmp_path / "s.sqlite3")
    try:
        pages = store.db.execute("PRAGMA page_count").fetchone()[0]
        store.db.execute(f"PRAGMA max_page_count = {pages + 2}")  # the disk fills up
        def fill_the_disk() -> None:
            for i in range(50):
                store.add_notice(["1"], "x" * 3000 + str(i))

        # SQLAlchemy carries sqlite3's error (and the connection has noticed it)
        with pytest.raises(sqlalchemy.exc.OperationalError, match="full"):
            fill_the_disk()
        sink = TelegramSink(bot, store, admins=["42"])
        await sink.deliver_pending()
        await sink.deliver_pending()
        [told] = tg.messages_to(42)
        assert "full" in (told.text or "")
    finally:
        store.close()


def test_state_backup_copies_a_state_in_use(
        write_config: WriteConfig, capsys: pytest.CaptureFixture[str]) -> None:
    config = write_config()
    fill(config.state.path, 5)
    writer = Store(config.state.path)  # the running bot, mid-way through its work
    try:
        writer.add_notice(["42"], "written while the backup runs")
        target = config.state.path.parent / "copy.sqlite3"
        assert config.source_file is not None
        assert main(["state", "backup", "--config", str(config.source_file),
                     "--to", str(target)]) == 0
        assert f"backed up to {target}" in capsys.readouterr().out
    finally:
        writer.close()
    copy = sqlite3.connect(target)
    try:
        assert copy.execute("PRAGMA quick_check").fetchone()[0] == "ok"
        assert copy.execute("SELECT COUNT(*) FROM outbox").fetchone()[0] == 5
        assert copy.execute("SELECT COUNT(*) FROM notices").fetchone()[0] == 1
    finally:
        copy.close()


def test_periodic_backups_keep_the_newest_n(tmp_path: Path) -> None:
    path = tmp_path / "state" / "bot.sqlite3"
    fill(path, 2)
    store = Store(path)
    try:
        start = datetime(2026, 12, 1, tzinfo=UTC)
        made = []
        for day in range(4):
            with time_machine.travel(start + timedelta(days=day), tick=False):
                made.append(rotate_backup(store.db, path, keep=2))
    finally:
        store.close()
    assert sorted((path.parent / "backups").iterdir()) == made[2:]
