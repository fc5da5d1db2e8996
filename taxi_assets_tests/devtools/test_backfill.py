"""`make backfill`'s program: the months it queues, and what it refuses (with nothing queued).

That the daemon then runs the queued months to the end is in e2e/test_daemon_backfill_e2e.py.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from devtools import backfill

REPO = Path(__file__).resolve().parents[2]
QUEUED = ("run_coordinator:\n  module: dagster._core.run_coordinator\n  class: QueuedRunCoordinator\n"
          "telemetry:\n  enabled: false\n")


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    """An instance with a run queue, as make writes it; commands run from the project's root, where
    `dagster` finds the code location in pyproject.toml as `make dev` does."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text(QUEUED)
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    monkeypatch.chdir(REPO)
    return home


def runs(home: Path) -> list[dg.DagsterRun]:
    with dg.DagsterInstance.from_config(str(home)) as instance:
        return list(instance.get_runs())


def test_months_of_a_range_and_of_a_list():
    assert backfill.backfill_months("yellow", "2023-11..2024-02") == ["2023-11", "2023-12", "2024-01", "2024-02"]
    assert backfill.backfill_months("green", "2023-05,2023-01,2023-05") == ["2023-01", "2023-05"]


@pytest.mark.parametrize(("service", "months", "message"), [
    ("purple", "2023-01", "unknown TLC service 'purple'"),
    ("yellow", "2023-13", "yellow: not a month: '2023-13'"),
    ("yellow", "", "yellow: no months given (MONTHS="),
    ("yellow", "2023-03..2023-01", "yellow: no month in '2023-03..2023-01'"),
    ("fhvhv", "2019-01..2019-03", "fhvhv: 2019-01 not among its months (2019-02.."),
    ("green", "2099-01", "green: 2099-01 not among its months"),
])
def test_a_bad_service_or_month_is_named_and_nothing_is_queued(home, capsys, service, months, message):
    assert backfill.main(["--service", service, "--months", months]) == 2
    err = capsys.readouterr().err
    assert message in err and "nothing was queued" in err
    assert runs(home) == []


def zones_already_loaded(home: Path) -> None:
    with dg.DagsterInstance.from_config(str(home)) as instance:
        for key in ("taxi_zone_lookup", "taxi_zones"):
            instance.report_runless_asset_event(dg.AssetMaterialization(key))


def test_months_go_in_runs_of_consecutive_months():
    months = ["2023-01", "2023-02", "2023-03", "2023-05", "2023-06"]
    assert backfill.month_runs("green", months, 2) == [["2023-01", "2023-02"], ["2023-03"], ["2023-05", "2023-06"]]
    assert backfill.month_runs("green", months, 6) == [["2023-01", "2023-02", "2023-03"], ["2023-05", "2023-06"]]
    assert backfill.month_runs("green", months, 1) == [[m] for m in months]
    assert backfill.month_runs("yellow", ["2023-12", "2024-01"], 6) == [["2023-12", "2024-01"]]
    # a stretch longer than a run is split evenly: no month left to run alone after the others
    thirteen = [f"2023-{m:02d}" for m in range(1, 13)] + ["2024-01"]
    assert backfill.month_runs("yellow", thirteen, 12) == [thirteen[:7], thirteen[7:]]
    assert [len(r) for r in backfill.month_runs("yellow", thirteen, 6)] == [5, 4, 4]


def test_months_are_queued_in_runs_of_several_months(home, capsys):
    zones_already_loaded(home)
    assert backfill.main(["--service", "green", "--months", "2023-01..2023-05", "--months-per-run", "2"]) == 0
    out = capsys.readouterr().out
    queued = runs(home)
    ranges = sorted(
        (r.tags.get(backfill.RANGE_START_TAG) or r.tags["dagster/partition"], r.tags.get(backfill.RANGE_END_TAG)) for r in queued
    )
    assert ranges == [("2023-01", "2023-02"), ("2023-03", "2023-04"), ("2023-05", None)]
    assert {r.status for r in queued} == {dg.DagsterRunStatus.QUEUED}
    assert {r.job_name for r in queued} == {"green_monthly"}
    assert {r.remote_job_origin.location_name for r in queued} == {"taxi_assets"}
    [backfill_id] = {r.tags[backfill.BACKFILL_TAG] for r in queued}
    assert f"queued 3 run(s) of green_monthly, 2023-01..2023-05, up to 2 months each: backfill {backfill_id}" in out


def test_months_per_run_below_one_is_refused(home, capsys):
    assert backfill.main(["--service", "green", "--months", "2023-01", "--months-per-run", "0"]) == 2
    assert "--months-per-run must be 1 or more" in capsys.readouterr().err
    assert runs(home) == []


def test_one_month_a_run_is_queued_as_a_job_backfill(home, capsys):
    zones_already_loaded(home)
    assert backfill.main(["--service", "green", "--months", "2023-01..2023-03", "--months-per-run", "1"]) == 0
    out = capsys.readouterr().out
    queued = runs(home)
    assert sorted(r.tags["dagster/partition"] for r in queued) == ["2023-01", "2023-02", "2023-03"]
    assert {r.status for r in queued} == {dg.DagsterRunStatus.QUEUED}
    assert {r.job_name for r in queued} == {"green_monthly"}
    # under the name make dev's daemon knows the code location by, or it could not launch them
    assert {r.remote_job_origin.location_name for r in queued} == {"taxi_assets"}
    [backfill_id] = {r.tags["dagster/backfill"] for r in queued}
    assert f"backfill {backfill_id}" in out
    assert "no dagster-daemon is serving this instance" in out


def test_without_the_zone_lookup_and_without_a_daemon_to_load_it_nothing_is_queued(home, capsys, monkeypatch):
    """Every month's cleaning reads the zone lookup: queued without it, each month would fail. (With a
    daemon running, the zones job is queued and waited for first: test_dev_offline.py.)"""
    monkeypatch.setattr(backfill, "DAEMON_WAIT_SECONDS", 1)
    assert backfill.main(["--service", "green", "--months", "2023-01"]) == 2
    err = capsys.readouterr().err
    assert "the zone lookup is not loaded on this instance yet" in err and "nothing was queued" in err
    assert runs(home) == []


def test_an_instance_without_a_run_queue_is_refused(home, capsys):
    """Dagster's default coordinator queues; one that launches at submission would start the runs from
    the code server the command stops."""
    (home / "dagster.yaml").write_text(QUEUED.replace("QueuedRunCoordinator", "DefaultRunCoordinator"))
    assert backfill.main(["--service", "yellow", "--months", "2023-01"]) == 2
    assert "no run queue" in capsys.readouterr().err
    assert runs(home) == []


def test_a_queued_run_is_the_run_dagster_job_launch_queues(home):
    """The runs are made in this process from one load of the code location; the daemon must get
    what Dagster's own CLI would have queued: the same job and plan, origin and tags. The CLI's code
    location is a code server it starts, ours is loaded in this process: the origins name the same
    location, repository and job (what the daemon's run launcher looks up in its own workspace) and
    the same module to load. (The snapshots' ids themselves differ between any two loads: an input's
    upstream outputs are listed in set order, which the hash seed of the Python decides.)"""
    zones_already_loaded(home)
    tags = {backfill.BACKFILL_TAG: "same", backfill.RANGE_START_TAG: "2023-01", backfill.RANGE_END_TAG: "2023-02"}
    with dg.DagsterInstance.get() as instance, backfill.JobLauncher(instance, None) as launcher:
        ours = instance.get_run_by_id(launcher.launch("green_monthly", tags))
    done = subprocess.run([str(Path(sys.executable).parent / "dagster"), "job", "launch", "-j", "green_monthly",
                           "--tags", json.dumps(tags)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    [theirs] = [r for r in runs(home) if r.run_id != ours.run_id]
    for field in ("job_name", "step_keys_to_execute", "run_config", "tags", "status", "asset_selection",
                  "asset_check_selection"):
        assert getattr(ours, field) == getattr(theirs, field), field
    # (what a run worker would load: the same Python and module; no container either way, None or {})
    code = [r.job_code_origin for r in (ours, theirs)]
    assert code[0].job_name == code[1].job_name
    assert len({(c.repository_origin.executable_path, c.repository_origin.code_pointer) for c in code}) == 1
    assert not any(c.repository_origin.container_context or c.repository_origin.container_image for c in code)
    origins = [r.remote_job_origin for r in (ours, theirs)]
    assert len({(o.location_name, o.repository_origin.repository_name, o.job_name) for o in origins}) == 1
    assert len({o.repository_origin.code_location_origin.loadable_target_origin.module_name for o in origins}) == 1
    assert type(origins[0].repository_origin.code_location_origin).__name__ == "InProcessCodeLocationOrigin"
    with dg.DagsterInstance.get() as instance:
        jobs = [instance.get_job_snapshot(r.job_snapshot_id) for r in (ours, theirs)]
        plans = [instance.get_execution_plan_snapshot(r.execution_plan_snapshot_id) for r in (ours, theirs)]
    assert len({frozenset(n.node_name for n in job.dep_structure_snapshot.node_invocation_snaps) for job in jobs}) == 1
    steps = [{s.key: sorted(i.name for i in s.inputs) for s in plan.steps} for plan in plans]
    assert steps[0] == steps[1] and len(steps[0]) > 5
    assert ours.tags[backfill.RANGE_START_TAG] == "2023-01"


def test_a_run_that_cannot_be_queued_is_named_with_the_runs_before_it(home):
    zones_already_loaded(home)
    with dg.DagsterInstance.get() as instance, backfill.JobLauncher(instance, None) as launcher:
        backfill_id, failed = backfill.queue_month_runs(launcher, "green_monthly", [["2023-01", "2023-02"], ["2023-03"]])
        assert failed is None
        _, failed = backfill.queue_month_runs(launcher, "purple_monthly", [["2023-01", "2023-02"]])
    assert failed.startswith("purple_monthly 2023-01..2023-02 was not queued (0 run(s) before it were")
    assert "purple_monthly" in failed.split(": ", 1)[1]
    assert sorted(r.tags.get("dagster/partition", "range") for r in runs(home)) == ["2023-03", "range"]
    assert {r.tags[backfill.BACKFILL_TAG] for r in runs(home)} == {backfill_id}


def test_a_code_location_that_does_not_load_is_named_and_nothing_is_queued(home, tmp_path, capsys):
    zones_already_loaded(home)
    workspace = tmp_path / "workspace.yaml"
    workspace.write_text("load_from:\n  - python_module:\n      module_name: no_such_module_here\n"
                         "      location_name: taxi_assets\n")
    assert backfill.main(["--service", "green", "--months", "2023-01..2023-02", "--workspace", str(workspace)]) == 1
    err = capsys.readouterr().err
    assert "make backfill: the code location did not load: " in err and "no_such_module_here" in err
    assert err.rstrip().endswith("nothing was queued")
    assert runs(home) == []
