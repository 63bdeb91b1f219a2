"""The wiring (bot.app.App): narrative files are watched (a change is reloaded; a bad file
keeps the old set, reported), trend jobs are scheduled, learned counter-examples count."""

from __future__ import annotations

import asyncio

from tests.conftest import OpenApp, WriteConfig

KZ = "kz-return-to-china"
CLAIM = "Китайские блогеры пишут, что Казахстан мечтает вернуться в состав Китая."

NEW = """id = "new-one"
title = "A brand-new narrative"
statements = ["Mongolia wants to return to China."]
"""


async def test_watch_reloads_changed_files_and_reports_bad_ones(
        write_config: WriteConfig, open_app: OpenApp) -> None:
    config = write_config()
    app = open_app(config)
    store, reloader = app.store, app.reloader
    assert app.scheduler.get_job("narratives").func == reloader.watch
    folder = config.narratives_dir

    await reloader.watch()  # nothing changed: nothing happens
    assert store.pending_notices() == []

    (folder / "new.toml").write_text(NEW, "utf-8")
    await reloader.watch()
    assert "new-one" in {n.id for n in app.narratives}
    assert app.pipeline.matcher is app.matcher  # the pipeline judges with the new set
    assert "new-one" in {s.narrative_id for s in app.matcher.judge_blocking("", "text").scores}

    (folder / "broken.toml").write_text('id = "x"\ntitle = 3\n', "utf-8")
    await reloader.watch()
    [notice] = store.pending_notices()
    assert notice.chat_id == "42" and "broken.toml" in notice.text and "title" in notice.text
    assert "new-one" in {n.id for n in app.narratives}  # previous set still active
    await reloader.watch()  # reported once, not at every check
    assert len(store.pending_notices()) == 1


async def test_spike_check_and_digests_are_scheduled(write_config: WriteConfig,
                                                     open_app: OpenApp) -> None:
    config = write_config(extra='[trends]\ncheck_interval = "5m"\n'
                                '[[digests]]\nchat = 4242\ntime = "09:00"\n'
                                'timezone = "Asia/Almaty"\n'
                                '[[digests]]\nchat = "@narrative_alerts"\nevery = "weekly"\n'
                                'weekday = "fri"\ntime = "18:30"\n')
    app = open_app(config)
    jobs = {job.id: job for job in app.scheduler.get_jobs()}
    assert jobs["spikes"].trigger.interval.total_seconds() == 300
    digests = sorted(j for j in jobs if j.startswith("digest:"))
    assert digests == ["digest:4242:daily 09:00 Asia/Almaty",
                       "digest:@narrative_alerts:weekly fri 18:30 UTC"]
    assert (await app.spikes.check()).new == []  # an empty state: nothing to say


async def test_a_learned_counter_example_reaches_every_caller_and_outlives_a_restart(
        write_config: WriteConfig, open_app: OpenApp) -> None:
    config = write_config()
    app = open_app(config)
    assert KZ in {m.narrative_id for m in app.matcher.judge_blocking("", CLAIM).matches}

    # what enough 👎 on an alert do (bot.telegram.commands.feedback): kept in state, used live
    assert app.audience.learn_counter_example(KZ, CLAIM, "art-1")
    await asyncio.to_thread(app.learn_counter_example, KZ, CLAIM)

    _, scores = await asyncio.to_thread(app.score, "", CLAIM)  # /score
    assert not next(s for s in scores if s.narrative_id == KZ).supported
    assert KZ not in {m.narrative_id for m in (await app.pipeline.matcher.judge("", CLAIM)).matches}
    app.close()
    restarted = open_app(config)
    assert KZ not in {m.narrative_id for m in restarted.matcher.judge_blocking("", CLAIM).matches}
