"""Narrative files are watched: a change is reloaded; a bad file keeps the old set, reported."""

from __future__ import annotations

import httpx

from bot.app.service import build_service
from bot.storage.store import Store
from tests.conftest import WriteConfig

NEW = """id = "new-one"
title = "A brand-new narrative"
statements = ["Mongolia wants to return to China."]
"""


async def test_watch_reloads_changed_files_and_reports_bad_ones(
        write_config: WriteConfig, shipped_narratives: list) -> None:
    config = write_config()
    store = Store(config.state.path)
    async with httpx.AsyncClient() as client:
        service = build_service(config, shipped_narratives, store, client, "", commands=False,
                                console=True)
    reloader = service.scheduler.get_job("narratives").func.__self__
    folder = config.narratives_dir

    await reloader.watch()  # nothing changed: nothing happens
    assert store.pending_notices() == []

    (folder / "new.toml").write_text(NEW, "utf-8")
    await reloader.watch()
    assert "new-one" in {n.id for n in service.runtime.narratives}
    assert service.pipeline.index is service.runtime.index

    (folder / "broken.toml").write_text('id = "x"\ntitle = 3\n', "utf-8")
    await reloader.watch()
    [notice] = store.pending_notices()
    assert notice.chat_id == "42" and "broken.toml" in notice.text and "title" in notice.text
    assert "new-one" in {n.id for n in service.runtime.narratives}  # previous set still active
    await reloader.watch()  # reported once, not at every check
    assert len(store.pending_notices()) == 1


async def test_spike_check_and_digests_are_scheduled(write_config: WriteConfig,
                                                     shipped_narratives: list) -> None:
    config = write_config(extra='[trends]\ncheck_interval = "5m"\n'
                                '[[digests]]\nchat = 4242\ntime = "09:00"\n'
                                'timezone = "Asia/Almaty"\n'
                                '[[digests]]\nchat = "@narrative_alerts"\nevery = "weekly"\n'
                                'weekday = "fri"\ntime = "18:30"\n')
    store = Store(config.state.path)
    async with httpx.AsyncClient() as client:
        service = build_service(config, shipped_narratives, store, client, "", commands=False,
                                console=True)
    jobs = {job.id: job for job in service.scheduler.get_jobs()}
    assert jobs["spikes"].trigger.interval.total_seconds() == 300
    digests = sorted(j for j in jobs if j.startswith("digest:"))
    assert digests == ["digest:4242:daily 09:00 Asia/Almaty",
                       "digest:@narrative_alerts:weekly fri 18:30 UTC"]
    assert service.spikes is not None and service.digester is not None
    assert (await service.spikes.check()).new == []  # an empty state: nothing to say
    store.close()
