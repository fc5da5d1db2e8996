"""The daemon backfill variant: a webserver and a daemon on their own instance, driven over GraphQL."""

from __future__ import annotations

import json
import re
import resource
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from benchmarks.children import SERVICE_ASSETS, _step_times
from benchmarks.common import PY, ROOT, Result, _free_port, _r, log
from benchmarks.host_probe import probe_seconds
from benchmarks.rss import MiB, TreeSampler
from devtools.backfill import BACKFILL_TAG, MONTHS_PER_RUN


def _backfill_extra(months: int, seconds: float | None, steps_total: float, runs_total: float,
                    extra: dict[str, Any], work: float | None) -> dict[str, Any]:
    """Months per minute, and how the run time splits into step work and Dagster's own overhead
    (`work`: the months' data work, see `work_alone_seconds`; None when it was not measured)."""
    out = dict(extra)
    out["months"] = months
    out["months_per_minute"] = _r(months / seconds * 60, 2) if seconds else None
    out["step_seconds_total"] = _r(steps_total)
    out["run_seconds_total"] = _r(runs_total)
    if seconds:
        # Work = the steps' own execution (our code + IO managers), as Dagster's event log times it.
        # Overhead = everything else the months took: run launch and start-up, event-log writes between
        # steps, queueing, daemon ticks. With concurrent runs the wall time is shared, so the split is
        # over run-seconds for the in-run part and over wall time for the whole.
        out["overhead_share_of_run_time"] = _r(1 - steps_total / runs_total, 3) if runs_total else None
        out["work_share_of_wall"] = _r(min(steps_total / seconds, 1.0), 3) if seconds else None
        # The figure: 1 - time inside steps doing data work / wall time from launch to the
        # last run's end. Runs side by side share the cores, so their steps' own times overlap and
        # stretch: the data work is then what the steps take alone.
        out["data_work_seconds"] = _r(work)
        out["dagster_overhead_share"] = _r(1 - min(work / seconds, 1.0), 3) if work is not None else None
    return out


def work_alone_seconds(bench, months: int, rows: int) -> float | None:
    """The data work of `months` months of `rows` rows: the steps of this run's whole monthly job
    on the same warehouse, run alone in process (median of its repeats), per row. None when that
    variant did not run; the backfill's own step times are then the work only if its runs do not
    overlap (`--backfill-concurrency 1`)."""
    for r in bench.results:
        if (r.variant, r.service, r.fmt, r.scope, r.warehouse) == ("dagster-in-process", "yellow", "parquet", "job",
                                                                   bench.args.backfill_warehouse) and r.ok:
            steps = r.extra.get("steps_seconds")
            return steps * months * rows / r.rows if steps else None
    return None


def _daemon_instance_yaml(concurrency: int) -> str:
    """The daemon's instance: make's embedded default (SQLite, the queue looked at every second, no
    telemetry), with the queued run coordinator at `concurrency` runs."""
    return ("run_coordinator:\n  module: dagster._core.run_coordinator\n  class: QueuedRunCoordinator\n"
            f"  config:\n    max_concurrent_runs: {concurrency}\n    dequeue_interval_seconds: 1\n"
            "telemetry:\n  enabled: false\n")


def _wait_http(url: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as resp:
                if resp.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"{url} did not answer within {timeout:.0f} s")
        time.sleep(0.5)


def _graphql(url: str, query: str, variables: dict[str, Any]) -> dict[str, Any]:
    body = json.dumps({"query": query, "variables": variables}).encode()
    req = urllib.request.Request(url, body, {"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=120) as resp:
        data = json.loads(resp.read())
    if data.get("errors"):
        raise RuntimeError(f"GraphQL errors: {data['errors']}")
    return data["data"]


_LAUNCH = """
mutation Launch($params: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $params) {
    __typename
    ... on LaunchBackfillSuccess { backfillId }
    ... on PythonError { message stack }
    ... on Error { message }
  }
}"""
_STATUS = """
query Status($id: String!) {
  partitionBackfillOrError(backfillId: $id) {
    __typename
    ... on PartitionBackfill { id status }
    ... on PythonError { message }
  }
}"""


def _launch_backfill(url: str, asset_keys: list[dict], partitions: list[str]) -> str:
    params = {"assetSelection": asset_keys, "partitionNames": partitions, "title": "benchmarks.run"}
    answer = _graphql(url, _LAUNCH, {"params": params})["launchPartitionBackfill"]
    if answer["__typename"] != "LaunchBackfillSuccess":
        raise RuntimeError(f"backfill not launched: {answer}")
    return answer["backfillId"]


def _wait_backfill(url: str, backfill_id: str, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while True:
        answer = _graphql(url, _STATUS, {"id": backfill_id})["partitionBackfillOrError"]
        status = answer.get("status")
        if status not in (None, "REQUESTED", "CANCELING", "FAILING"):
            return status
        if answer["__typename"] != "PartitionBackfill":
            raise RuntimeError(f"backfill status: {answer}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"backfill {backfill_id} still {status} after {timeout:.0f} s")
        time.sleep(1.0)


def backfill_in_process(bench, months: list[str], rows: int) -> Result:
    name = "backfill-in-process-yellow"
    env = bench.base_env(name, "parquet", bench.args.backfill_warehouse, home_name="in-process")
    result_path = bench.data / "logs" / f"{name}.json"
    result_path.unlink(missing_ok=True)
    argv = [PY, "-m", "benchmarks.run", "child-pipeline", "--service", "yellow", "--months", ",".join(months),
            "--zones", "--result", str(result_path)]
    run, out, log_path = bench._child(name, argv, env)
    runs = out.get("runs") or []
    ok = run.returncode == 0 and bool(out.get("ok")) and len(runs) == len(months)
    seconds = out.get("work_seconds")
    steps_total = sum(sum(r.get("steps", {}).values()) for r in runs)
    runs_total = sum(r.get("seconds") or 0 for r in runs)
    return bench.add(Result(
        "backfill-in-process", "yellow", "parquet", rows * len(months), seconds, run.peak_rss_mb,
        process_seconds=run.wall_seconds, cpu_seconds=run.cpu_seconds, max_single_rss_mb=run.max_single_rss_mb,
        peak_processes=run.peak_processes, ok=ok, warehouse=bench.args.backfill_warehouse, scope="job",
        extra=_backfill_extra(len(months), seconds, steps_total, runs_total, {
            "method": f"{len(months)} sequential execute_in_process runs of yellow_monthly (not the daemon)",
            "data_work_from": "its own steps (one run at a time)",
            "per_run_seconds": [r.get("seconds") for r in runs],
            "host_probe_s": out["host_probe_s"],
            "log": str(log_path)}, steps_total),
    ))


# ============================================================================ report


#: How a backfill is launched: as the UI does (an asset backfill, which the backfill daemon picks up on
#: its next 30-second loop and turns into a run a month), as `make backfill` does (`devtools.backfill`:
#: runs of up to 12 consecutive months queued from one load of the code location, as `dagster job
#: launch` queues one; the daemon's run queue starts them), and as `make backfill MONTHS_PER_RUN=1` does (Dagster's `dagster job backfill`, a run
#: a month queued at once).
LAUNCHES = {"ui": "backfill-daemon", "cli": "backfill-daemon-cli", "cli-monthly": "backfill-daemon-cli-monthly"}


def _children_cpu() -> float:
    """User + system CPU of this process's children that have ended (a launcher and what it ran)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _launch_make_backfill(env: dict[str, str], workspace: Path, service: str, months: list[str], per_run: int) -> tuple[str, int]:
    """What `make backfill` runs (`devtools.backfill`), on the bench's workspace; the backfill's id and
    the runs it queued, from what it prints."""
    done = subprocess.run([PY, "-m", "devtools.backfill", "--service", service, "--months", f"{months[0]}..{months[-1]}",
                           "--months-per-run", str(per_run), "--workspace", str(workspace)],
                          env=env, cwd=ROOT, capture_output=True, text=True)
    found = re.search(r"queued (\d+) run\(s\) .*: backfill (\S+) ", done.stdout)
    if done.returncode or not found:
        raise RuntimeError(f"make backfill failed ({done.returncode}): {done.stdout[-1500:]}{done.stderr[-1500:]}")
    return found.group(2), int(found.group(1))


def _wait_runs(instance, tag: str, backfill_id: str, count: int, timeout: float) -> None:
    """Until the backfill's `count` runs have all ended (a job backfill is marked complete once queued)."""
    from dagster import DagsterRunStatus, RunsFilter

    ended = {DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED}
    deadline = time.monotonic() + timeout
    while True:
        runs = instance.get_runs(RunsFilter(tags={tag: backfill_id}))
        if len(runs) >= count and all(r.status in ended for r in runs):
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"backfill {backfill_id}: runs not ended after {timeout:.0f} s")
        time.sleep(0.5)


def backfill_daemon(bench, months: list[str], rows: int, launch: str = "ui") -> Result:
    """A backfill run by dagster-daemon on an instance of its own, launched as `launch` says (LAUNCHES)."""
    variant = LAUNCHES[launch]
    name = f"{variant}-yellow"
    env = bench.base_env(name, "parquet", bench.args.backfill_warehouse)
    home = Path(env["DAGSTER_HOME"])
    storage = _daemon_instance_yaml(bench.args.backfill_concurrency)
    (home / "dagster.yaml").write_text(storage)
    workspace = home / "workspace.yaml"
    workspace.write_text(
        "load_from:\n  - python_module:\n      module_name: taxi_assets.definitions\n"
        f"      working_directory: {ROOT}\n      location_name: taxi_assets\n")
    setup = subprocess.run([PY, "-m", "benchmarks.run", "child-zones"], env=env, cwd=ROOT,
                           capture_output=True, text=True)
    if setup.returncode:
        log(setup.stdout[-2000:] + setup.stderr[-2000:])
    logs = bench.data / "logs"
    logs.mkdir(parents=True, exist_ok=True)  # (not yet there when every other variant is skipped)
    bench.probes.append(probe := probe_seconds())
    port = _free_port()
    bin_dir = Path(PY).parent
    web_log = open(logs / f"{name}-webserver.log", "w")
    daemon_log = open(logs / f"{name}-daemon.log", "w")
    web = subprocess.Popen([str(bin_dir / "dagster-webserver"), "-w", str(workspace), "-h", "127.0.0.1",
                            "-p", str(port)], env=env, cwd=ROOT, stdout=web_log, stderr=subprocess.STDOUT)
    daemon = subprocess.Popen([str(bin_dir / "dagster-daemon"), "run", "-w", str(workspace)], env=env,
                              cwd=ROOT, stdout=daemon_log, stderr=subprocess.STDOUT)
    graphql = f"http://127.0.0.1:{port}/graphql"
    sampler = TreeSampler(daemon.pid).start()
    web_sampler = TreeSampler(web.pid).start()
    extra: dict[str, Any] = {
        "host_probe_s": probe,
        "method": {
            "ui": f"asset backfill of the yellow group, {len(months)} partitions, via GraphQL launchPartitionBackfill",
            "cli": f"make backfill (devtools.backfill: runs of up to {MONTHS_PER_RUN} months of yellow_monthly queued from one code location load), "
                   f"{len(months)} partitions",
            "cli-monthly": f"make backfill MONTHS_PER_RUN=1 (devtools.backfill: dagster job backfill -j yellow_monthly), "
                           f"{len(months)} partitions",
        }[launch]
                  + "; dagster-daemon (QueuedRunCoordinator, "
                  f"max_concurrent_runs={bench.args.backfill_concurrency}, DefaultRunLauncher); "
                  "peak RSS = the daemon's process tree (code server, run workers); "
                  "seconds = launch -> last run ended"}
    seconds = None
    ok = False
    try:
        _wait_http(f"http://127.0.0.1:{port}/server_info", 120)
        import dagster as dg
        from dagster import RunsFilter

        with dg.DagsterInstance.from_config(str(home)) as instance:
            launched = time.time()
            cpu_at_launch = (sampler.cpu_seconds, web_sampler.cpu_seconds, _children_cpu())
            tag, expected = "dagster/backfill", len(months)
            if launch == "ui":
                keys = [{"path": ["yellow", a]} for a in SERVICE_ASSETS]
                backfill_id = _launch_backfill(graphql, keys, months)
                status = _wait_backfill(graphql, backfill_id, bench.args.timeout)
            elif launch == "cli-monthly":
                backfill_id, expected = _launch_make_backfill(env, workspace, "yellow", months, 1)
                _wait_runs(instance, tag, backfill_id, expected, bench.args.timeout)
                status = _wait_backfill(graphql, backfill_id, 60)
            else:  # ranged runs belong to no Dagster backfill: the runs' own statuses say how it went
                tag = BACKFILL_TAG
                backfill_id, expected = _launch_make_backfill(env, workspace, "yellow", months, MONTHS_PER_RUN)
                _wait_runs(instance, tag, backfill_id, expected, bench.args.timeout)
                status = "COMPLETED"
            extra.update({"backfill_id": backfill_id, "backfill_status": status,
                          "backfill_status_seconds": round(time.time() - launched, 3)})
            # CPU from the launch to the last run's end, process by process: less moved by the
            # machine's other load than wall time, and it shows what each way of launching costs.
            cpu = {"daemon_tree": sampler.cpu_seconds - cpu_at_launch[0],
                   "webserver_tree": web_sampler.cpu_seconds - cpu_at_launch[1],
                   "launcher": _children_cpu() - cpu_at_launch[2]}
            extra["cpu_seconds_by_process"] = {k: _r(v, 1) for k, v in cpu.items()}
            records = instance.get_run_records(RunsFilter(tags={tag: backfill_id}))
            runs = []
            for r in records:
                steps = _step_times(instance, r.dagster_run.run_id)
                runs.append({
                    "partition": r.dagster_run.tags.get("dagster/partition")
                    or r.dagster_run.tags.get("dagster/asset_partition_range_start"),
                    "status": r.dagster_run.status.value,
                    "created": r.create_timestamp.timestamp(), "start": r.start_time, "end": r.end_time,
                    "steps_seconds": sum(steps.values())})
        ends = [r["end"] for r in runs if r["end"]]
        seconds = (max(ends) - launched) if ends else None
        ok = (status in ("COMPLETED", "COMPLETED_SUCCESS") and len(runs) == expected
              and all(r["status"] == "SUCCESS" for r in runs))
        steps_total = sum(r["steps_seconds"] for r in runs)
        runs_total = sum((r["end"] - r["start"]) for r in runs if r["end"] and r["start"])
        queued = [r["start"] - r["created"] for r in runs if r["start"]]
        work = work_alone_seconds(bench, len(months), rows)
        extra["data_work_from"] = "the yellow whole job's steps, run alone in this bench"
        if work is None:
            side_by_side = bench.args.backfill_concurrency > 1
            work = None if side_by_side else steps_total
            extra["data_work_from"] = ("not measured: runs side by side, and the whole-job variant was skipped"
                                       if side_by_side else "the backfill's own steps (one run at a time)")
        extra = _backfill_extra(len(months), seconds, steps_total, runs_total, extra, work)
        extra.update({
            "runs": len(runs),
            "run_statuses": sorted({r["status"] for r in runs}),
            "mean_queue_and_launch_seconds": _r(sum(queued) / len(queued)) if queued else None,
            "first_run_created_after_launch_seconds": _r(min(r["created"] for r in runs) - launched) if runs else None,
            "per_run_seconds": [_r(r["end"] - r["start"]) if r["end"] and r["start"] else None
                                for r in sorted(runs, key=lambda r: r["partition"] or "")],
        })
    except Exception as exc:  # report, don't lose the other variants
        extra["error"] = f"{type(exc).__name__}: {exc}"
    finally:
        sampler.stop()
        web_sampler.stop()
        for proc in (daemon, web):
            proc.terminate()
        for proc in (daemon, web):
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        web_log.close()
        daemon_log.close()
    extra["log"] = str(logs / f"{name}-daemon.log")
    cpu = extra.get("cpu_seconds_by_process") or {}
    cpu_seconds = cpu["daemon_tree"] + cpu["launcher"] if cpu else None
    if cpu_seconds:
        extra["cpu_seconds_per_month"] = _r(cpu_seconds / len(months), 2)
    return bench.add(Result(
        variant, "yellow", "parquet", rows * len(months), seconds, sampler.peak_bytes / MiB, cpu_seconds=_r(cpu_seconds, 1),
        peak_processes=sampler.peak_processes, ok=ok, warehouse=bench.args.backfill_warehouse, scope="job", extra=extra))
