"""OPML: read (nested folders become tags), written back, and `narrative-bot feeds import |
export | list` run as the real command, with feeds kept in state beside config.toml's."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.feeds.opml import OpmlError, OpmlFeed, read_opml, write_opml
from tests.conftest import WriteConfig
from tests.test_cli import run_bot

OPML = b"""<?xml version="1.0" encoding="UTF-8"?>
<opml version="2.0"><head><title>Analyst's reader</title></head><body>
  <outline text="Loose" type="rss" xmlUrl="https://loose.example/rss"/>
  <outline text="Central Asia" title="Central Asia">
    <outline text="Steppe Courier" type="rss" xmlUrl="https://courier.example/feed.xml"
             htmlUrl="https://courier.example/"/>
    <outline text="Kyrgyz">
      <outline title="Ala-Too Daily" type="rss" xmlUrl="https://alatoo.example/atom"/>
    </outline>
  </outline>
  <outline text="Empty folder"/>
</body></opml>"""


def test_nested_outlines_become_names_with_their_folders_as_tags() -> None:
    feeds = read_opml(OPML)
    assert feeds == [
        OpmlFeed("Loose", "https://loose.example/rss", ()),
        OpmlFeed("Steppe Courier", "https://courier.example/feed.xml", ("Central Asia",)),
        OpmlFeed("Ala-Too Daily", "https://alatoo.example/atom", ("Central Asia", "Kyrgyz")),
    ]
    again = read_opml(write_opml(feeds).encode())
    assert [(f.name, f.url, f.tags[:1]) for f in again] == [
        (f.name, f.url, f.tags[:1]) for f in feeds]


LAUGHS = "".join(f'<!ENTITY l{i} "' + f"&l{i - 1};" * 10 + '">' for i in range(1, 10))
BILLION_LAUGHS = (f'<!DOCTYPE opml [<!ENTITY l0 "ha">{LAUGHS}]><opml><body><outline '
                  'text="&l9;" xmlUrl="https://e.org/f"/></body></opml>').encode()


@pytest.mark.parametrize(("data", "why"), [
    (b"<rss><channel/></rss>", "not OPML: the root element is not <opml>"),
    (b"<opml version='2.0'><head/></opml>", "not OPML: no <body>"),
    (b"<opml><body><outline", "not OPML:"),
    (BILLION_LAUGHS, "not OPML: Maximum entity amplification factor exceeded"),
])
def test_a_file_that_is_not_opml_is_refused_readably(data: bytes, why: str) -> None:
    with pytest.raises(OpmlError, match=why):
        read_opml(data)


async def test_feeds_import_export_and_list(write_config: WriteConfig, tmp_path: Path) -> None:
    config = write_config([("Courier", "https://courier.example/feed.xml")])
    cfg = ("--config", str(config.source_file))
    (tmp_path / "reader.opml").write_bytes(OPML)

    done = await run_bot("feeds", "import", "reader.opml", "--interval", "15m", *cfg,
                         cwd=tmp_path)
    assert done.rc == 0, done.err
    # Steppe Courier's URL is already polled as config.toml's "Courier"
    assert "2 feeds imported, 1 skipped (of 3)" in done.out
    assert "skipped Steppe Courier: this URL is polled already as 'Courier'" in done.out
    again = await run_bot("feeds", "import", "reader.opml", *cfg, cwd=tmp_path)
    assert "0 feeds imported, 3 skipped" in again.out

    listed = await run_bot("feeds", "list", *cfg, cwd=tmp_path)
    assert listed.rc == 0, listed.err
    lines = listed.out.splitlines()
    assert len(lines) == 3
    assert lines[0].startswith("Courier ") and " config " in lines[0]
    ala = next(line for line in lines if line.startswith("Ala-Too Daily"))
    assert "every 900s" in ala and "opml (reader.opml)" in ala
    assert ala.endswith("[Central Asia, Kyrgyz]")

    out = tmp_path / "out.opml"
    exported = await run_bot("feeds", "export", "--output", str(out), *cfg, cwd=tmp_path)
    assert exported.rc == 0, exported.err
    names = {f.name: f for f in read_opml(out.read_bytes())}
    assert set(names) == {"Courier", "Loose", "Ala-Too Daily"}
    assert names["Ala-Too Daily"].tags == ("Central Asia",)

    bad = await run_bot("feeds", "import", "missing.opml", *cfg, cwd=tmp_path)
    assert bad.rc == 2 and "cannot read missing.opml" in bad.err
