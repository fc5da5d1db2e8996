"""`make demo`'s program: it finishes, prints its summary, and a second run gives the same tables."""

from __future__ import annotations

import re

from devtools import demo


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


def test_demo_serves_on_dev_offlines_port_so_recorded_urls_open_again(tmp_path, monkeypatch, capsys):
    """The raw files' source_url points at the port make dev-offline serves on (when it is free)."""
    import socket

    with socket.socket() as probe:
        free = probe.connect_ex(("127.0.0.1", demo.DEV_OFFLINE_MIRROR_PORT)) != 0
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    (tmp_path / "dagster_home").mkdir()
    monkeypatch.delenv("TAXI_LAKE_URI", raising=False)
    monkeypatch.delenv("TAXI_DUCKDB_PATH", raising=False)
    assert demo.main(["--data-dir", str(tmp_path / "data"), "--rows", "500", "--services", "green", "--months", "2023-01"]) == 0
    out = capsys.readouterr().out
    if free:
        assert f"serving it at http://127.0.0.1:{demo.DEV_OFFLINE_MIRROR_PORT};" in out
    else:
        assert "serving it at http://127.0.0.1:" in out


def test_make_writes_a_quiet_instance_config_for_the_embedded_default(tmp_path):
    import os
    import subprocess
    import warnings
    from pathlib import Path

    import yaml
    import dagster as dg
    from dagster._core.instance.config import dagster_instance_config

    from benchmarks.common import embedded_max_runs

    home = tmp_path / "dagster_home"
    repo = Path(__file__).resolve().parents[2]
    # half the cores, at least 2 (not Dagster's 10): what the bench's daemon backfill runs with too
    runs = max(2, (os.cpu_count() or 2) // 2)
    assert embedded_max_runs() == runs
    subprocess.run(["make", "-s", f"{home}/dagster.yaml", f"DAGSTER_HOME={home}"], cwd=repo, check=True)
    assert yaml.safe_load((home / "dagster.yaml").read_text()) == {
        "telemetry": {"enabled": False},
        "python_logs": {"python_log_level": "INFO"},
        "run_coordinator": {
            "module": "dagster._core.run_coordinator",
            "class": "QueuedRunCoordinator",
            "config": {"max_concurrent_runs": runs, "dequeue_interval_seconds": 1, "max_user_code_failure_retries": 3, "user_code_failure_retry_delay": 10},
        },
    }
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        config, _ = dagster_instance_config(str(home))
    assert config["telemetry"] == {"enabled": False}
    # a backfill's queued runs start within a second of a free slot, not Dagster's five
    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert instance.run_coordinator.dequeue_interval_seconds == 1
        assert instance.get_concurrency_config().run_queue_config.max_concurrent_runs == runs
        # a run dequeued while `dg dev`'s code server is still starting goes back in the queue
        assert instance.get_concurrency_config().run_queue_config.max_user_code_failure_retries == 3
