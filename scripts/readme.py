#!/usr/bin/env python3
"""Refresh the command outputs shown in README.md and docs/*.md from real runs against the demo's data.

    .venv/bin/python scripts/readme.py                # rewrite them
    .venv/bin/python scripts/readme.py --check        # exit 1 if any is stale
    .venv/bin/python scripts/readme.py docs/verdicts.md  # only that file

How blocks are marked: retire/lab/readme.py. tests/test_readme.py runs the check in CI.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from retire.lab.readme import main

sys.exit(main())
