"""Build the demo's RSS files from the five seed articles in ../shared/seeds/.

Run once from the repository root: `python demo/make_feeds.py [SEEDS_DIR]`. The output under
demo/feeds/ is committed, so the demo needs neither this script nor the shared folder.
"""

from __future__ import annotations

import html
import sys
from datetime import UTC, datetime
from email.utils import format_datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ARTICLES = {
    # seed prefix: (feed, title, link, published)
    "000": ("central-asia-news", "Chinese claims that Central Asia wants to 'return' to China "
            "threaten sovereignty, analysts say",
            "https://central-asia-news.example/2020/11/06/return-to-china-claims", "2020-11-06"),
    "001": ("central-asia-news", "How the CCP's money buys influence in Central Asia",
            "https://central-asia-news.example/2022/02/10/ccp-financial-infiltration",
            "2022-02-10"),
    "002": ("central-asia-news", "Beijing charm offensive in Central Asia",
            "https://central-asia-news.example/2020/09/17/wang-yi-visit", "2020-09-17"),
    "003": ("regional-review", "China's Security Management Towards Central Asia",
            "https://regional-review.example/2024/06/24/china-security-central-asia",
            "2024-06-24"),
    "004": ("regional-review", "China–Kazakhstan relations",
            "https://regional-review.example/wiki/China-Kazakhstan_relations", "2024-06-30"),
}


def item(seed: Path, title: str, link: str, published: str) -> str:
    paragraphs = [p.strip() for p in seed.read_text(encoding="utf-8").splitlines() if p.strip()]
    body = "".join(f"<p>{html.escape(p)}</p>" for p in paragraphs)
    date = format_datetime(datetime.fromisoformat(published).replace(hour=9, tzinfo=UTC))
    return (f"<item><title>{html.escape(title)}</title><link>{link}</link>"
            f'<guid isPermaLink="false">{seed.stem}</guid><pubDate>{date}</pubDate>'
            f"<description>{html.escape(body)}</description></item>")


def main(seeds_dir: Path) -> None:
    feeds: dict[str, list[str]] = {}
    for prefix, (feed, title, link, published) in ARTICLES.items():
        seed = next(seeds_dir.glob(f"{prefix}_*.txt"))
        feeds.setdefault(feed, []).append(item(seed, title, link, published))
    out = ROOT / "demo" / "feeds"
    out.mkdir(parents=True, exist_ok=True)
    for feed, items in feeds.items():
        xml = ('<?xml version="1.0" encoding="utf-8"?>\n<rss version="2.0"><channel>'
               f"<title>{feed}</title><link>https://{feed}.example/</link>"
               f"<description>narrative-bot demo feed built from shared/seeds</description>"
               + "\n".join(items) + "</channel></rss>\n")
        (out / f"{feed}.xml").write_text(xml, encoding="utf-8")
        print(f"wrote {out / f'{feed}.xml'} ({len(items)} items)")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT.parent / "shared" / "seeds")
