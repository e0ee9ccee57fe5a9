"""Where the fuzzers note how many examples they ran, for `make fuzz` (benchmarks/results/fuzz.json)."""

from __future__ import annotations

import json
import os
from pathlib import Path


def record(name: str, value) -> None:
    """Store `value` under `name` in the file READERBOARD_FUZZ_COUNTS names (nothing when it is unset)."""
    target = os.environ.get("READERBOARD_FUZZ_COUNTS")
    if not target:
        return
    path = Path(target)
    counts = json.loads(path.read_text()) if path.exists() and path.read_text().strip() else {}
    counts[name] = value
    path.write_text(json.dumps(counts, indent=2, sort_keys=True) + "\n")
