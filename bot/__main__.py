"""`python -m bot` is the same as the `narrative-bot` command."""

import sys

from bot.cli import main

sys.exit(main())
