"""Runs one engine's process and measures it: wall time, the time from the
start to the first result row (the first byte in any of its output files,
polled every 5 ms), and the CPU seconds of the whole process tree.

CPU: the bench process makes itself a child subreaper (prctl), so processes
that outlive their parent (PyFlink's JVM) are handed to it and reaped here;
then `RUSAGE_CHILDREN` holds the user+sys time of every process the run
started, once all are reaped.
"""

import ctypes
import os
import resource
import subprocess
import time

PR_SET_CHILD_SUBREAPER = 36


def become_subreaper():
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER)")


def _size(path):
    try:
        return os.path.getsize(path)
    except OSError:
        return 0


def _reap_all(timeout_s=60):
    """Waits for every remaining descendant handed to this process."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            if time.monotonic() > deadline:
                raise RuntimeError("a process of the run did not exit within 60 s of its parent")
            time.sleep(0.02)


class Run:
    """What one run measured; times in seconds from the process start."""

    def __init__(self, wall, first_row, end, cpu, returncode):
        self.wall, self.first_row, self.end, self.cpu, self.returncode = wall, first_row, end, cpu, returncode


# BENCH_CPUS (e.g. "0"): every engine's process runs on these CPUs only
# (`taskset -c`, inherited by its threads and children, PyFlink's JVM
# included): issue 17's "single core" comparison. Unset: all CPUs.
CPUS = os.environ.get("BENCH_CPUS", "")


def pinned(cmd):
    """`cmd`, restricted to BENCH_CPUS when it is set."""
    return ["taskset", "-c", CPUS, *cmd] if CPUS else list(cmd)


def run(cmd, outputs, stdout, stderr, env=None, cwd=None, end_marker=None, first_row_probe=None):
    """Runs `cmd` to its end (on BENCH_CPUS). `outputs`: files whose first
    byte is the first result row. `end_marker(stderr_text, start_epoch)` may
    return when the job itself finished (seconds from start), else the
    process exit counts. `first_row_probe()` replaces the output files for
    sinks that are not files."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    with open(stdout, "wb") as out, open(stderr, "wb") as err:
        start_epoch = time.time()
        start = time.monotonic()
        process = subprocess.Popen(pinned(cmd), stdout=out, stderr=err, env=env, cwd=cwd)
        first_row = None
        while process.poll() is None:
            if first_row is None:
                seen = first_row_probe() if first_row_probe else any(_size(p) > 0 for p in outputs)
                if seen:
                    first_row = time.monotonic() - start
            time.sleep(0.005)
        wall = time.monotonic() - start
    _reap_all()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if first_row is None and not first_row_probe and any(_size(p) > 0 for p in outputs):
        # Written between the last poll and the exit: take the file's time.
        first_row = min(os.path.getmtime(p) for p in outputs if _size(p) > 0) - start_epoch
    end = wall
    if end_marker:
        with open(stderr, encoding="utf-8", errors="replace") as f:
            marked = end_marker(f.read(), start_epoch)
        if marked is not None:
            end = marked
    return Run(wall, first_row, end, cpu, process.returncode)
