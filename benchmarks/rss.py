"""Peak resident memory of a whole process tree, sampled from /proc (Linux; no psutil needed).

A variant runs in a child process that may start its own children (Dagster's multiprocess executor
starts one per step, the CLI starts a run worker). `TreeSampler(pid)` walks /proc every ~50 ms, finds
every live descendant of `pid` (and `pid` itself), sums their resident set sizes and keeps the peak.

Caveats, written down so the figures are read right:

* Summed RSS counts pages shared between processes (the interpreter, shared libraries, fork
  copy-on-write pages) once per process: it is an upper bound of what the tree really holds. For one
  process (the in-process variants) it is exact.
* A spike shorter than the sampling interval can be missed. `run_sampled` also returns the kernel's
  own high-water mark (`ru_maxrss` from wait4), which never misses a spike but is per process (the
  largest single process of the tree), not a sum: the two together bracket the truth.
* Servers the variant talks to (Postgres, the HTTP mirror) are not its descendants and are not counted.
"""

from __future__ import annotations

import os
import resource
import subprocess
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass

_PAGE = os.sysconf("SC_PAGE_SIZE")
MiB = 1024 * 1024


_TICK = os.sysconf("SC_CLK_TCK")


def _process_table() -> tuple[dict[int, list[int]], dict[int, tuple[int, float]]]:
    """ppid -> [pid] for every process visible in /proc right now, and pid -> (start time, its own
    user + system CPU seconds so far)."""
    children: dict[int, list[int]] = {}
    cpu: dict[int, tuple[int, float]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as fh:
                stat = fh.read()
        except OSError:  # gone between listing and reading
            continue
        # the command name (field 2) may contain spaces and parentheses: split after the last ')'
        fields = stat[stat.rfind(b")") + 2 :].split()
        pid = int(entry.name)
        children.setdefault(int(fields[1]), []).append(pid)
        cpu[pid] = (int(fields[19]), (int(fields[11]) + int(fields[12])) / _TICK)
    return children, cpu


def _tree(root: int, children: dict[int, list[int]]) -> list[int]:
    out, stack = [], [root]
    while stack:
        pid = stack.pop()
        out.append(pid)
        stack.extend(children.get(pid, ()))
    return out


def tree_pids(root: int) -> list[int]:
    """`root` and all its live descendants."""
    return _tree(root, _process_table()[0])


def rss_bytes(pid: int) -> int:
    """Resident set size of one process (0 if it is gone or a zombie)."""
    try:
        with open(f"/proc/{pid}/statm", "rb") as fh:
            return int(fh.read().split()[1]) * _PAGE
    except (OSError, IndexError, ValueError):
        return 0


class TreeSampler:
    """Samples the summed RSS of `root`'s process tree on a daemon thread until stopped, and keeps
    the CPU time each process of the tree was last seen to have used (`cpu_seconds`: their sum; a
    process's last interval before it exits is missed, a process shorter than one interval too)."""

    def __init__(self, root: int, interval: float = 0.05):
        self.root = root
        self.interval = interval
        self.peak_bytes = 0
        self.peak_processes = 0
        self.samples = 0
        self._cpu: dict[tuple[int, int], float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"rss:{root}", daemon=True)

    @property
    def cpu_seconds(self) -> float:
        return sum(self._cpu.values())

    def start(self) -> TreeSampler:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while True:
            children, cpu = _process_table()
            pids = _tree(self.root, children)
            total, count = sum(rss_bytes(p) for p in pids), len(pids)
            for pid in pids:
                if pid in cpu:
                    started, used = cpu[pid]
                    self._cpu[(pid, started)] = used
            self.samples += 1
            self.peak_bytes = max(self.peak_bytes, total)
            self.peak_processes = max(self.peak_processes, count)
            if self._stop.wait(self.interval):
                return

    def __enter__(self) -> TreeSampler:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@dataclass(frozen=True)
class SampledRun:
    returncode: int
    wall_seconds: float
    peak_rss_bytes: int  # summed over the tree, sampled
    max_single_rss_bytes: int  # kernel high-water mark of the largest single process (wait4)
    peak_processes: int
    samples: int
    cpu_seconds: float  # user + system time of the child and its reaped descendants

    @property
    def peak_rss_mb(self) -> float:
        return self.peak_rss_bytes / MiB

    @property
    def max_single_rss_mb(self) -> float:
        return self.max_single_rss_bytes / MiB


def run_sampled(argv: Sequence[str], *, env: dict[str, str] | None = None, cwd: str | None = None,
                interval: float = 0.05, stdout=None, stderr=None, timeout: float | None = None) -> SampledRun:
    """Run `argv` as a child, sample its tree's RSS every `interval` s, and wait for it."""
    started = time.perf_counter()
    proc = subprocess.Popen(list(argv), env=env, cwd=cwd, stdout=stdout, stderr=stderr)
    sampler = TreeSampler(proc.pid, interval).start()
    deadline = None if timeout is None else started + timeout
    try:
        while True:
            # wait4 reaps the child and gives its rusage (ru_maxrss covers it and its reaped children)
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if deadline is not None and time.perf_counter() > deadline:
                proc.kill()
                pid, status, usage = os.wait4(proc.pid, 0)
                break
            time.sleep(0.01)
    except BaseException:
        proc.kill()
        os.waitpid(proc.pid, 0)
        raise
    finally:
        sampler.stop()
    wall = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)  # tell Popen it is reaped
    return SampledRun(
        returncode=proc.returncode,
        wall_seconds=wall,
        peak_rss_bytes=sampler.peak_bytes,
        max_single_rss_bytes=usage.ru_maxrss * 1024,  # Linux reports KiB
        peak_processes=sampler.peak_processes,
        samples=sampler.samples,
        cpu_seconds=usage.ru_utime + usage.ru_stime,
    )


def self_maxrss_mb() -> float:
    """This process's own kernel high-water mark."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
