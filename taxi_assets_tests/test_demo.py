"""`make demo`'s program: it finishes, prints its summary, and a second run gives the same tables."""

from __future__ import annotations

import re

from taxi_assets import demo


def summary_lines(output: str) -> list[str]:
    """The per-service, per-month rows of the printed summary (timings excluded)."""
    return [line for line in output.splitlines() if re.match(r"^(yellow|green)\s+(\d{4}-\d{2}|mart)\s", line)]


def test_demo_twice_gives_identical_tables(tmp_path, monkeypatch, capsys):
    """Through the zoomcamp's csv.gz format: the parquet path is covered end to end elsewhere."""
    fmt = "csv.gz"
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    (tmp_path / "dagster_home").mkdir()
    monkeypatch.delenv("TAXI_LAKE_URI", raising=False)
    monkeypatch.delenv("TAXI_DUCKDB_PATH", raising=False)
    args = ["--data-dir", str(tmp_path / "data"), "--rows", "3000", "--format", fmt]
    args += ["--months", "2021-01..2021-02"]

    assert demo.main(args) == 0
    first = capsys.readouterr().out
    assert demo.main(args) == 0
    second = capsys.readouterr().out

    rows = summary_lines(first)
    assert len(rows) == 6  # 2 services x (2 months + mart)
    assert rows == summary_lines(second)
    for line in rows:
        if " mart " in line:
            continue
        read, kept, rejected = (int(n.replace(",", "")) for n in line.split()[2:5])
        assert read == 3000 and kept + rejected == read and rejected > 0
    assert "warehouse: DuckDB" in first and str(tmp_path / "data") in first
    assert "make dev-offline" in first  # where a user goes next, with no internet
