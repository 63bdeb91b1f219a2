"""`[metrics] listen`: the running bot serves Prometheus text over HTTP, scraped here for real."""

from __future__ import annotations

import asyncio

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import OpenApp, WriteConfig
from tests.feed_server import FeedServer
from tests.test_cli import serve_demo
from tests.test_operations import refused_port


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


async def test_metrics_are_scraped_over_http_while_the_bot_runs(
        feeds: FeedServer, write_config: WriteConfig, open_app: OpenApp) -> None:
    port = refused_port()
    broken = feeds.url("/missing.xml")  # 404: a failing feed
    config = write_config([*serve_demo(feeds), ("Broken", broken)],
                          extra=f'[metrics]\nlisten = "127.0.0.1:{port}"\n')
    app = open_app(config)  # no token: alerts are printed, and count as sent
    url = f"http://127.0.0.1:{port}/metrics"
    async with app, app.running(), httpx.AsyncClient() as http:
        for _ in range(600):
            found = samples((await http.get(url)).text)
            if found.get(("narrative_bot_alerts_total", (("outcome", "sent"),)), 0) >= 2:
                break
            await asyncio.sleep(0.1)
        response = await http.get(url)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    found = samples(response.text)
    names = {name for name, _ in found}
    assert all(name.startswith("narrative_bot_") for name in names if
               not name.startswith(("python_", "process_")))
    poll = "narrative_bot_feed_polls_total"
    assert found[(poll, (("feed", "Central Asia News"), ("status", "new")))] == 1
    assert found[(poll, (("feed", "Broken"), ("status", "error")))] == 1
    assert found[("narrative_bot_feed_failures_total", (("feed", "Broken"),))] == 1
    assert found[("narrative_bot_articles_total", ())] == 5
    assert found[("narrative_bot_matches_total", (("narrative", "kz-return-to-china"),))] == 2
    assert found[("narrative_bot_alerts_total", (("outcome", "sent"),))] == 2
    assert found[("narrative_bot_alerts_total", (("outcome", "failed"),))] == 0
    assert found[("narrative_bot_alerts_interrupted_total", ())] == 0
    assert found[("narrative_bot_outbox_depth", ())] == 0
    assert found[("narrative_bot_outbox_oldest_age_seconds", ())] == 0
    assert found[("narrative_bot_outbox_alerts", (("status", "sent"),))] == 2
    assert found[("narrative_bot_embed_seconds_count", ())] >= 5
    assert found[("narrative_bot_last_cycle_timestamp_seconds", ())] > 0
    assert found[("narrative_bot_last_poll_timestamp_seconds", ())] > 0
    with httpx.Client() as http:  # stopped with the bot
        try:
            http.get(url, timeout=2)
            raise AssertionError("metrics still served after the bot stopped")
        except httpx.TransportError:
            pass


def test_metrics_are_off_by_default(write_config: WriteConfig, open_app: OpenApp) -> None:
    app = open_app(write_config([]))
    assert app.config.metrics.listen is None and app.metrics is None
