"""Where the real TLC extracts live (shared/data/tlc, outside the repo), and small helpers to use them.

The extracts are read in place, never copied into the repo. CI has them at ../shared; a clone without them
skips the tests that need them, with the reason, instead of failing obscurely.
"""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import pyarrow.csv as pacsv
import pytest

ENV_VAR = "TAXI_TLC_SAMPLES"


def samples_path() -> Path:
    """The configured location, whether or not it exists ($TAXI_TLC_SAMPLES, else ../shared/data/tlc)."""
    configured = os.environ.get(ENV_VAR)
    if configured:
        return Path(configured)
    return Path(__file__).resolve().parents[2] / "shared" / "data" / "tlc"


def samples_dir() -> Path:
    """The real TLC extracts folder, or skip the calling test saying where it was looked for."""
    path = samples_path()
    if not path.is_dir():
        pytest.skip(f"real TLC samples not found at {path}; set {ENV_VAR} to the shared/data/tlc folder")
    return path


def sample(relative: str) -> Path:
    """One file of the extracts folder, or skip."""
    path = samples_dir() / relative
    if not path.is_file():
        pytest.skip(f"real TLC sample {relative} not found in {path.parent}")
    return path


def head_lines(relative: str) -> list[bytes]:
    """The complete lines of a `heads/*.csv` (first 1,024 bytes of a real file): the cut last line dropped."""
    lines = sample(relative).read_bytes().split(b"\n")
    return lines[:-1]


def write_csv_gz(path: Path, lines: list[bytes]) -> Path:
    """Gzip CSV lines into `path` (as the zoomcamp mirror ships them)."""
    path.write_bytes(gzip.compress(b"\n".join(lines) + b"\n"))
    return path


def valid_location_ids() -> set[int]:
    """Zone ids of the real taxi_zone_lookup.csv (1..265, 264/265 = unknown)."""
    table = pacsv.read_csv(sample("taxi_zone_lookup.csv"))
    return set(table["LocationID"].to_pylist())
