"""Tests for bot.config: loading, path resolution, durations, error messages, and check-config."""

from __future__ import annotations

import logging
import re
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from bot.cli import main
from bot.config import ConfigError, FeedConfig, load_config, load_narratives, parse_duration
from tests.paths import REPO, copy_narratives

ENGLISH = re.compile(r"[ -~]*\bChina\b[ -~]*")  # ASCII only, names China (not Uzbek "Xitoy")
RUSSIAN = re.compile(r"[А-Яа-яЁё0-9\s.,;:?!«»()—-]+")  # Russian alphabet only (not Kazakh, Tajik…)
CJK = re.compile(r"[\u4e00-\u9fff]")

GOOD_NARRATIVE = """\
id = "{id}"
title = "A narrative"
statements = ["Some statement here.", "Другое утверждение.", "另一个说法。"]
"""


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text), "utf-8")
    return path


def _config_error(path: Path, text: str) -> str:
    _write(path, text)
    with pytest.raises(ConfigError) as exc:
        load_config(path)
    return str(exc.value)


def _narrative_error(directory: Path, files: dict[str, str]) -> str:
    for name, text in files.items():
        _write(directory / name, text)
    with pytest.raises(ConfigError) as exc:
        load_narratives(directory)
    return str(exc.value)


@pytest.fixture(autouse=True)
def _restore_root_logger() -> Iterator[None]:
    """`main` reconfigures the root logger on success; give other tests theirs back."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


# --------------------------------------------------------------------------- shipped files


def test_shipped_config_loads() -> None:
    config = load_config(REPO / "config.toml")
    assert config.source_file == (REPO / "config.toml").resolve()
    assert config.narratives_dir == (REPO / "narratives").resolve()
    assert config.state.path == (REPO / "state/narrative-bot.sqlite3").resolve()
    assert config.telegram.channel_id == "@narrative_alerts"
    assert config.fetch.allow_file_urls is True
    assert [f.name for f in config.feeds] == ["Central Asia News (demo)", "Regional Review (demo)"]
    assert all(f.interval == timedelta(minutes=10) for f in config.feeds)
    assert config.feeds[0].url == (REPO / "demo/feeds/central-asia-news.xml").resolve().as_uri()


def test_shipped_narratives_are_multilingual() -> None:
    config = load_config(REPO / "config.toml")
    narratives = load_narratives(config.narratives_dir)
    assert {n.id for n in narratives} == {
        "kz-return-to-china", "kg-chinese-homeland", "pamirs-returned"}
    for n in narratives:
        assert n.source_file is not None and n.source_file.parent == config.narratives_dir
        assert any(ENGLISH.fullmatch(s) for s in n.statements), n.id
        assert any(RUSSIAN.fullmatch(s) and re.search("[а-я]", s) for s in n.statements), n.id
        assert any(CJK.search(s) for s in n.statements), n.id


# --------------------------------------------------------------------------- relative paths


def test_relative_paths_resolve_against_config_folder(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "conf"
    path = _write(folder / "config.toml", """\
        narratives_dir = "narr"
        [state]
        path = "state/db.sqlite3"
        [model]
        path = "models/e5"
        [matching]
        background_file = "bg/background.txt"
        [fetch]
        allow_file_urls = true
        [[feeds]]
        name = "local"
        url = "file:relative/x.xml"
        [[feeds]]
        name = "absolute"
        url = "file:///srv/feeds/y.xml"
        [[feeds]]
        name = "web"
        url = "https://example.org/rss"
        """)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    for given in (path, Path("../conf/config.toml")):
        config = load_config(given)
        base = folder.resolve()
        assert config.narratives_dir == base / "narr"
        assert config.state.path == base / "state/db.sqlite3"
        assert config.model.path == base / "models/e5"
        assert config.matching.background_file == base / "bg/background.txt"
        assert [f.url for f in config.feeds] == [
            (base / "relative/x.xml").as_uri(), "file:///srv/feeds/y.xml",
            "https://example.org/rss"]
        assert config.source_file == base / "config.toml"


def test_absolute_paths_are_kept(tmp_path: Path) -> None:
    state = tmp_path / "abs" / "s.sqlite3"
    config = load_config(_write(tmp_path / "c" / "config.toml", f"""\
        [state]
        path = "{state}"
        """))
    assert config.state.path == state
    assert config.model.path is None and config.matching.background_file is None


# --------------------------------------------------------------------------- durations


@pytest.mark.parametrize(("value", "seconds"), [
    ("5s", 5), ("10m", 600), ("12h", 43_200), ("7d", 604_800), ("2w", 1_209_600),
    ("1.5h", 5400), (" 30 s ", 30), ("250ms", 0.25), (30, 30), (7.5, 7.5),
])
def test_parse_duration(value: object, seconds: float) -> None:
    assert parse_duration(value) == timedelta(seconds=seconds)


@pytest.mark.parametrize("value", ["10 minutes", "abc", "", "5", "-5s", "5y", True, None, [5]])
def test_parse_duration_refuses(value: object) -> None:
    with pytest.raises(ValueError, match="expected a duration"):
        parse_duration(value)


@pytest.mark.parametrize("value", ["5s", 5, "5000ms", "12h", "7d"])
def test_feed_interval_accepted(value: object) -> None:
    feed = FeedConfig(name="f", url="https://example.org/rss", interval=value)
    assert feed.interval >= timedelta(seconds=5)


@pytest.mark.parametrize("value", ["4s", 4, "4999ms", 0, -60])
def test_feed_interval_below_5s_refused(tmp_path: Path, value: object) -> None:
    toml_value = f'"{value}"' if isinstance(value, str) else str(value)
    message = _config_error(tmp_path / "config.toml", f"""\
        [[feeds]]
        name = "f"
        url = "https://example.org/rss"
        interval = {toml_value}
        """)
    assert "config.toml:4" in message
    assert "feeds[0].interval" in message and "at least 5s" in message


@pytest.mark.parametrize("value", ['"9999999999d"', "1e20"])
def test_huge_duration_is_a_config_error(tmp_path: Path, value: str) -> None:
    message = _config_error(tmp_path / "config.toml", f"""\
        [[feeds]]
        name = "f"
        url = "https://example.org/rss"
        interval = {value}
        """)
    assert "feeds[0].interval" in message


# --------------------------------------------------------------------------- config errors


def test_unknown_key_in_telegram(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    message = _config_error(path, """\
        narratives_dir = "narratives"

        [telegram]
        token_env = "TOKEN"
        chanel = "@narrative_alerts"
        """)
    assert f"{path}:5" in message
    assert "telegram.chanel" in message and "unknown key" in message


def test_bad_interval_in_second_feed(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    message = _config_error(path, """\
        [[feeds]]
        name = "a"
        url = "https://a.example/rss"
        interval = "10m"

        [[feeds]]
        name = "b"
        url = "https://b.example/rss"
        interval = "ten minutes"
        """)
    assert f"{path}:9" in message
    assert "feeds[1].interval" in message and "expected a duration" in message
    assert "feeds[0]" not in message


def test_wrong_type(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    message = _config_error(path, """\
        [telegram]
        admins = [1]
        max_attempts = "lots"
        [matching]
        threshold = "high"
        """)
    assert f"{path}:3: key 'telegram.max_attempts'" in message
    assert f"{path}:5: key 'matching.threshold'" in message
    assert "valid integer" in message and "valid number" in message


def test_cache_entries_cannot_be_negative(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    message = _config_error(path, """\
        [model]
        cache_entries = -1
        """)
    assert f"{path}:2: key 'model.cache_entries'" in message


@pytest.mark.parametrize("value", ["30m", "soon"])
def test_max_age_must_be_a_duration_of_an_hour_or_more(tmp_path: Path, value: str) -> None:
    path = tmp_path / "config.toml"
    message = _config_error(path, f"""\
        [fetch]
        max_age = "{value}"
        """)
    assert f"{path}:2: key 'fetch.max_age'" in message


def test_wrong_type_of_union_field_names_the_real_key(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    message = _config_error(path, """\
        [telegram]
        channel = [1]
        """)
    assert f"{path}:2: key 'telegram.channel'" in message
    assert "channel.str" not in message and "channel.int" not in message


def test_invalid_toml_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    message = _config_error(path, """\
        narratives_dir = "narratives"
        [telegram]
        channel = "@unterminated
        """)
    assert str(path) in message and "invalid TOML" in message and "line 3" in message


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope" / "config.toml"
    with pytest.raises(ConfigError, match="file not found") as exc:
        load_config(path)
    assert str(path) in str(exc.value)


DUPLICATE_FEEDS = """\
    [[feeds]]
    name = "same"
    url = "https://a.example/rss"

    [[feeds]]
    name = "same"
    url = "https://b.example/rss"
    """

FILE_FEED = """\
    [[feeds]]
    name = "web"
    url = "https://a.example/rss"

    [[feeds]]
    name = "local"
    url = "file:feeds/x.xml"
    """


def test_duplicate_feed_names(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    message = _config_error(path, DUPLICATE_FEEDS)
    assert str(path) in message and "used twice" in message and "same" in message


def test_file_feed_needs_allow_file_urls(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    message = _config_error(path, FILE_FEED)
    assert str(path) in message and "feeds[1].url" in message and "allow_file_urls" in message
    text = "[fetch]\nallow_file_urls = true\n" + textwrap.dedent(FILE_FEED)
    allowed = _write(tmp_path / "ok" / "config.toml", text)
    assert load_config(allowed).feeds[1].url.startswith("file:///")


@pytest.mark.parametrize(("text", "where"), [
    (DUPLICATE_FEEDS, ":6: key 'feeds[1].name'"),
    (FILE_FEED, ":7: key 'feeds[1].url'"),
])
def test_feed_list_errors_name_line_and_key(tmp_path: Path, text: str, where: str) -> None:
    path = tmp_path / "config.toml"
    assert f"{path}{where}" in _config_error(path, text)


def test_ftp_feed_url_refused(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    message = _config_error(path, """\
        [fetch]
        allow_file_urls = true
        [[feeds]]
        name = "ftp"
        url = "ftp://example.org/feed.xml"
        """)
    assert f"{path}:5: key 'feeds[0].url'" in message and "http(s)" in message


@pytest.mark.parametrize("channel", ['"@narrative_alerts"', '"-1001234567890"', "-1001234567890"])
def test_good_channel(tmp_path: Path, channel: str) -> None:
    config = load_config(_write(tmp_path / "config.toml", f"[telegram]\nchannel = {channel}\n"))
    assert config.telegram.channel_id == channel.strip('"')


@pytest.mark.parametrize("channel", ["narrative_alerts", "@ab", "@1channel", "12ab", "@bad name"])
def test_bad_channel(tmp_path: Path, channel: str) -> None:
    path = tmp_path / "config.toml"
    message = _config_error(path, f"""\
        [telegram]
        token_env = "TOKEN"
        channel = "{channel}"
        """)
    assert f"{path}:3: key 'telegram.channel'" in message
    assert "numeric chat id or an @username" in message


# --------------------------------------------------------------------------- narratives


def test_narrative_missing_statements(tmp_path: Path) -> None:
    message = _narrative_error(tmp_path, {"n.toml": 'id = "n"\ntitle = "T"\n'})
    assert str(tmp_path / "n.toml") in message
    assert "'statements'" in message and "Field required" in message


def test_narrative_empty_statements(tmp_path: Path) -> None:
    message = _narrative_error(tmp_path, {"n.toml": 'id = "n"\ntitle = "T"\nstatements = []\n'})
    assert f"{tmp_path / 'n.toml'}:3: key 'statements'" in message
    assert "at least 1 item" in message


@pytest.mark.parametrize("bad_id", ["Bad-Id", "-leading", "has space", "x" * 41, ""])
def test_narrative_bad_id(tmp_path: Path, bad_id: str) -> None:
    text = f'title = "T"\nid = "{bad_id}"\nstatements = ["A statement."]\n'
    message = _narrative_error(tmp_path, {"n.toml": text})
    assert f"{tmp_path / 'n.toml'}:2: key 'id'" in message and "pattern" in message


def test_narrative_duplicate_ids_name_both_files(tmp_path: Path) -> None:
    message = _narrative_error(tmp_path, {
        "a.toml": GOOD_NARRATIVE.format(id="dup"),
        "b.toml": "# second file\n" + GOOD_NARRATIVE.format(id="dup"),
    })
    assert f"{tmp_path / 'b.toml'}:2: key 'id'" in message
    assert str(tmp_path / "a.toml") in message and "already used" in message


@pytest.mark.parametrize("threshold", ["1.5", "-1.01"])
def test_narrative_threshold_out_of_range(tmp_path: Path, threshold: str) -> None:
    text = GOOD_NARRATIVE.format(id="n") + f"threshold = {threshold}\n"
    message = _narrative_error(tmp_path, {"n.toml": text})
    assert f"{tmp_path / 'n.toml'}:4: key 'threshold'" in message
    assert re.search(r"(less|greater) than or equal to -?1", message)


def test_narrative_unknown_key(tmp_path: Path) -> None:
    text = GOOD_NARRATIVE.format(id="n") + "treshold = 0.7\n"
    message = _narrative_error(tmp_path, {"n.toml": text})
    assert f"{tmp_path / 'n.toml'}:4: key 'treshold': unknown key" in message


def test_disabled_narratives_are_skipped(tmp_path: Path) -> None:
    _write(tmp_path / "a.toml", GOOD_NARRATIVE.format(id="on") + "threshold = 0.7\n")
    _write(tmp_path / "b.toml", GOOD_NARRATIVE.format(id="off") + "enabled = false\n")
    _write(tmp_path / "notes.txt", "not a narrative")
    narratives = load_narratives(tmp_path)
    assert [n.id for n in narratives] == ["on"]
    assert narratives[0].threshold == 0.7 and narratives[0].source_file == tmp_path / "a.toml"


def test_narratives_dir_missing(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not a folder"):
        load_narratives(tmp_path / "missing")


# --------------------------------------------------------------------------- check-config CLI


def _project(tmp_path: Path, telegram: str = 'channel = "@narrative_alerts"') -> Path:
    copy_narratives(tmp_path)
    return _write(tmp_path / "config.toml", f"""\
        narratives_dir = "narratives"
        [telegram]
        token_env = "NARRATIVE_BOT_TEST_TOKEN"
        {telegram}
        [state]
        path = "state/bot.sqlite3"
        [[feeds]]
        name = "web"
        url = "https://example.org/rss"
        """)


def test_check_config_ok(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _project(tmp_path)
    assert main(["check-config", "--config", str(path)]) == 0
    out = capsys.readouterr().out
    assert "OK" in out and "1 feeds" in out and "3 narratives" in out
    assert not (tmp_path / "state").exists()


def test_check_config_bad_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _project(tmp_path, telegram='chanel = "@narrative_alerts"')
    assert main(["check-config", "--config", str(path)]) == 2
    captured = capsys.readouterr()
    assert f"{path}:4: key 'telegram.chanel'" in captured.err and "OK" not in captured.out
    assert not (tmp_path / "state" / "bot.sqlite3").exists()
    assert not (tmp_path / "state").exists()


def test_check_config_bad_narrative(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _project(tmp_path)
    _write(tmp_path / "narratives" / "zz.toml", 'id = "zz"\ntitle = "T"\nstatements = []\n')
    assert main(["check-config", "--config", str(path)]) == 2
    assert "zz.toml:3: key 'statements'" in capsys.readouterr().err
    assert not (tmp_path / "state").exists()


def test_python_m_bot_check_config(tmp_path: Path) -> None:
    path = _project(tmp_path, telegram='channel = "not a channel"')
    done = subprocess.run(
        [sys.executable, "-m", "bot", "check-config", "--config", str(path)],
        capture_output=True, text=True, timeout=60, cwd=tmp_path, check=False)
    assert done.returncode == 2, done.stderr
    assert "config error" in done.stderr and f"{path}:4" in done.stderr
    assert not (tmp_path / "state").exists()


@pytest.mark.parametrize(("table", "line", "key"), [
    ("schedule", "delivery_interval = -10", "schedule.delivery_interval"),
    ("fetch", "timeout = -1", "fetch.timeout"),
    ("fetch", 'timeout = "0s"', "fetch.timeout"),
    ("telegram2", 'send_timeout = "0s"', "telegram.send_timeout"),
])
def test_check_config_refuses_durations_that_cannot_work(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], table: str, line: str,
        key: str) -> None:
    """The audit: delivery_interval = -10 spun at 99 % CPU, fetch.timeout = -1 or "0s" failed
    every feed, send_timeout = "0s" killed start-up; check-config accepted all four."""
    if table == "telegram2":
        path = _project(tmp_path, telegram=line)
    else:
        path = _project(tmp_path)
        text = path.read_text("utf-8").replace("[[feeds]]", f"[{table}]\n{line}\n[[feeds]]")
        path.write_text(text, "utf-8")
    assert main(["check-config", "--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"key '{key}'" in err and "must be at least" in err


@pytest.mark.parametrize(("state", "why"), [
    ('url = "mysql://root@127.0.0.1/db"', "a PostgreSQL URL is expected"),
    ('url = "postgresql://bot@127.0.0.1/db"\nbackups = 3', "pg_dump"),
])
def test_a_state_url_that_cannot_be_used_is_a_config_error(
        tmp_path: Path, state: str, why: str) -> None:
    path = _write(tmp_path / "config.toml", f"[state]\n{state}\n")
    with pytest.raises(ConfigError, match=why):
        load_config(path)


def test_a_postgresql_state_is_where_the_url_says(tmp_path: Path) -> None:
    config = load_config(_write(tmp_path / "config.toml", textwrap.dedent("""\
        [state]
        url = "postgresql://bot@db.internal:5432/narrative"
        [queue]
        inline = true
        concurrency = 4
        """)))
    assert config.state.on_postgres and config.state.location == config.state.url
    assert (config.queue.inline, config.queue.concurrency) == (True, 4)
    sqlite = load_config(_write(tmp_path / "sqlite.toml", ""))
    assert sqlite.state.location == tmp_path / "state" / "narrative-bot.sqlite3"
