"""Where the tests find the repository and the shared data beside the checkout."""

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("NARRATIVE_BOT_SHARED", REPO.parent / "shared"))
SEEDS = SHARED / "seeds"
SHARED_FEEDS = SHARED / "feeds"
