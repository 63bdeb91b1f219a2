"""Where the tests find the repository and the shared data beside the checkout."""

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("NARRATIVE_BOT_SHARED", REPO.parent / "shared"))
SEEDS = SHARED / "seeds"
SHARED_FEEDS = SHARED / "feeds"


def copy_narratives(folder: Path) -> Path:
    """The shipped narratives/*.toml and their examples copied into folder/narratives."""
    narratives = folder / "narratives"
    (narratives / "examples").mkdir(parents=True, exist_ok=True)
    for file in (REPO / "narratives").glob("*.toml"):
        (narratives / file.name).write_text(file.read_text("utf-8"), "utf-8")
    for file in (REPO / "narratives" / "examples").glob("*.tsv"):
        (narratives / "examples" / file.name).write_text(file.read_text("utf-8"), "utf-8")
    return narratives
