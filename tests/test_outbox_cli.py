"""`narrative-bot outbox [list|retry|drop]`: what failed, requeued or forgotten."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from bot.cli import main
from bot.models import Article, Match, Passage
from bot.storage.store import Store
from tests.conftest import WriteConfig


def failed_alerts(store: Store, count: int) -> list[int]:
    ids = []
    for i in range(count):
        match = Match(narrative_id="n0", narrative_title="N", score=0.9, threshold=0.5,
                      passage=Passage(index=0, text="e"), statement="s")
        [alert_id] = store.record_article(
            Article(key=f"k{i}", source="F", url=f"https://example.com/{i}", title=f"Story {i}",
                    text="t", published=datetime(2026, 11, 1, tzinfo=UTC)),
            passages=1, matches=[match], routes=["@narrative_alerts"])
        store.mark_failed(alert_id, "undelivered for 7 days: NetworkError")
        ids.append(alert_id)
    return ids


def test_outbox_lists_requeues_and_drops(write_config: WriteConfig,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    config = write_config()
    store = Store(config.state.path)
    first, second, third = failed_alerts(store, 3)
    store.pause_chat("-100777", "forbidden: bot was kicked")
    store.close()
    path = str(config.source_file)

    assert main(["outbox", "--config", path]) == 0
    out = capsys.readouterr().out
    assert out.count("failed  ") == 3 and "undelivered for 7 days" in out
    assert "3 failed, 0 waiting; paused chats: -100777" in out

    assert main(["outbox", "retry", str(first), "--config", path]) == 0
    assert "requeued 1" in capsys.readouterr().out
    assert main(["outbox", "drop", str(second), "--config", path]) == 0
    assert "dropped 1" in capsys.readouterr().out
    assert main(["outbox", "retry", "nonsense", "--config", path]) == 2
    assert "not an alert id" in capsys.readouterr().err

    store = Store(config.state.path)
    try:
        assert [a.id for a in store.pending_alerts()] == [first]
        assert [e.id for e in store.outbox_entries()] == [third]
        assert store.requeue("alert") == 1 and len(store.pending_alerts()) == 2
    finally:
        store.close()
