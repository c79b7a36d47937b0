"""The seed jobs side by side with Apache Flink: one command generates each
job's events, runs the Sluice job (`sluice run`, file source and sink) and
the job's Flink SQL (jobs/<job>/flink.sql on PyFlink's local mini-cluster)
over the same files, checks that both give the tables the batch SQL gives,
and prints what each took. Run it through scripts/bench-jobs.sh, which
builds the binaries and installs PyFlink first; see docs/BENCHMARKS.md.

    bench.py [JOB ...]        (default: all five)

Environment: BENCH_EVENTS (1000000), BENCH_RUNS (3), BENCH_SEED (17),
BENCH_MALFORMED (0.002), BENCH_FLINK_CONFIGS (default,minibatch),
BENCH_KAFKA (1: also hourly-premium from Kafka into PostgreSQL),
BENCH_KAFKA_RUNS (BENCH_RUNS), BENCH_CPUS (unset; e.g. 0: both engines
pinned to CPU 0, the single-core comparison), SLUICE
(the binary), BENCH_COMPONENTS (the jobs' .wasm directory), BENCH_PG
(postgresql://postgres@127.0.0.1:5432/test), BENCH_KAFKA_BROKERS
(127.0.0.1:19092).
"""

import os
import platform
import re
import shutil
import subprocess
import sys
import time
from datetime import date

import measure
import reference
from jobs import HOURLY_PREMIUM, JOBS
from results import differences, flink_tables, sluice_table

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
WORK = os.path.join(ROOT, "target", "bench", "seed-jobs")
HERE = os.path.dirname(os.path.abspath(__file__))


def env_int(name, default):
    return int(os.environ.get(name, default))


EVENTS = env_int("BENCH_EVENTS", 1_000_000)
RUNS = env_int("BENCH_RUNS", 3)
SEED = env_int("BENCH_SEED", 17)
MALFORMED = os.environ.get("BENCH_MALFORMED", "0.002")
FLINK_CONFIGS = [c for c in os.environ.get("BENCH_FLINK_CONFIGS", "default,minibatch").split(",") if c]
KAFKA = os.environ.get("BENCH_KAFKA", "1") == "1"
KAFKA_RUNS = env_int("BENCH_KAFKA_RUNS", RUNS)
SLUICE = os.environ.get("SLUICE", os.path.join(ROOT, "target", "release", "sluice"))
COMPONENTS = os.environ.get("BENCH_COMPONENTS", os.path.join(ROOT, "target", "wasm32-wasip2", "release"))
PG = os.environ.get("BENCH_PG", "postgresql://postgres@127.0.0.1:5432/test")
BROKERS = os.environ.get("BENCH_KAFKA_BROKERS", "127.0.0.1:19092")
# Compiled components of this bench run only (benches may run side by side).
CACHE = os.path.join(WORK, "component-cache", str(os.getpid()))

problems = []  # mismatches and failures: the bench exits 1 when any


def loud(message):
    problems.append(message)
    print(f"\n!!!!! {message}\n", flush=True)


def data_dir(job):
    return os.path.join(WORK, "data", job.scenario)


def generate(job):
    """The job's events as files (kept while the options are the same);
    returns the number of source events."""
    directory = data_dir(job)
    args = ["gen", job.scenario, "--out", directory, *gen_options(job)]
    stamp = os.path.join(directory, "generated-with")
    if not (os.path.exists(stamp) and open(stamp).read() == " ".join(args)):
        shutil.rmtree(directory, ignore_errors=True)
        subprocess.run([SLUICE, *args], check=True)
        with open(stamp, "w") as f:
            f.write(" ".join(args))
    return sum(count_lines(os.path.join(directory, f"{s}.jsonl")) for s in job.sources)


def gen_options(job):
    """The `sluice gen` options of the bench's events for `job`."""
    return ["--count", str(EVENTS), "--seed", str(SEED), "--malformed", MALFORMED, *job.gen_args(EVENTS)]


def count_lines(path):
    with open(path, "rb") as f:
        return sum(1 for _ in f)


def run_sluice(job, run_no):
    out = os.path.join(WORK, "out", job.name, "sluice")
    shutil.rmtree(out, ignore_errors=True)
    os.makedirs(out)
    outputs = [os.path.join(out, f"{t.name}.jsonl") for t in job.tables]
    env = dict(os.environ, SLUICE_CACHE_DIR=CACHE)
    cmd = [SLUICE, "run", "--spec", os.path.join(ROOT, "jobs", job.name, "bench.toml"),
           "--component", os.path.join(COMPONENTS, job.component), "--quiet"]
    result = measure.run(cmd, outputs, os.path.join(out, "stdout.txt"), os.path.join(out, "stderr.txt"), env=env)
    tables = None
    if result.returncode != 0:
        loud(f"{job.name}: sluice run {run_no} failed (exit {result.returncode}), see {out}/stderr.txt")
    else:
        tables = {t.name: sluice_table(t, open(os.path.join(out, f"{t.name}.jsonl"), encoding="utf-8")) for t in job.tables}
    return result, tables


def flink_end(stderr_text, start_epoch):
    """When the Flink job finished (flink_job.py says so), from the start."""
    match = re.search(r"flink_job: finished at ([0-9.]+)", stderr_text)
    return float(match.group(1)) - start_epoch if match else None


def run_flink(job, config, run_no):
    out = os.path.join(WORK, "out", job.name, f"flink-{config}")
    shutil.rmtree(out, ignore_errors=True)
    os.makedirs(out)
    changelog = os.path.join(out, "changelog.txt")
    variables = {"data": data_dir(job), **job.params}
    cmd = [sys.executable, os.path.join(HERE, "flink_job.py"), "--sql", os.path.join(ROOT, "jobs", job.name, "flink.sql"),
           "--config", config, f"--work-dir={out}", *[f"--var={k}={v}" for k, v in variables.items()]]
    result = measure.run(cmd, [changelog], changelog, os.path.join(out, "stderr.txt"), end_marker=flink_end)
    tables = None
    if result.returncode != 0:
        loud(f"{job.name}: flink ({config}) run {run_no} failed (exit {result.returncode}), see {out}/stderr.txt")
    else:
        tables = flink_tables(job.tables, open(changelog, encoding="utf-8"))
    return result, tables


def check(job, engine, tables, expected):
    """Compares an engine's tables with the reference, loudly."""
    for table in job.tables:
        diff = differences(engine, tables[table.name], "the batch SQL", expected[table.name])
        if diff:
            loud(f"{job.name}: {table.name} from {engine} differs from the batch SQL:\n" + "\n".join(diff))


def steady(events, run):
    """Records per second after the first result row."""
    if run.first_row is None or run.end <= run.first_row:
        return None
    return events / (run.end - run.first_row)


class Line:
    """One row of the printed table."""

    def __init__(self, job, engine, events, runs):
        self.job, self.engine, self.events, self.runs = job, engine, events, runs

    def best(self):
        ok = [r for r in self.runs if steady(self.events, r)]
        return max(ok, key=lambda r: steady(self.events, r)) if ok else None

    def best_per_cpu(self):
        """The most records per CPU-second of any run (start-up included:
        Sluice's cached runs, not the one that compiled the component)."""
        return max(self.events / r.cpu for r in self.runs if r.cpu)


def fmt(value, pattern):
    return "—" if value is None else pattern.format(value)


def table_lines(lines):
    """Markdown rows: every run, then the best (by steady rate), with the
    Sluice/Flink ratios of the best steady records/s and of the best records
    per CPU-second, each engine's best run for each."""
    head = ["| job | engine | events | run | wall s | first row s | steady rec/s | CPU s | rec/CPU-s | Sluice/Flink (steady, per CPU-s) |",
            "|---|---|---|---|---|---|---|---|---|---|"]
    rows = []
    best_flink = {}
    for line in lines:
        if line.engine.startswith("flink") and line.best():
            b = line.best()
            current = best_flink.get(line.job)
            if current is None or steady(line.events, b) > steady(current[1].events, current[0]):
                best_flink[line.job] = (b, line)
    for line in lines:
        best = line.best()
        for i, r in enumerate(line.runs + ([best] if best else [])):
            label = "best" if i == len(line.runs) else str(i + 1)
            ratio = ""
            if label == "best" and line.engine.startswith("sluice") and line.job in best_flink and "kafka" not in line.engine:
                fb, fline = best_flink[line.job]
                ratio = (f"{steady(line.events, r) / steady(fline.events, fb):.2f}× ({fline.engine}), "
                         f"{line.best_per_cpu() / fline.best_per_cpu():.2f}×")
            rows.append(
                f"| {line.job} | {line.engine} | {line.events:,} | {label} | {r.wall:.1f} | {fmt(r.first_row, '{:.2f}')} | "
                f"{fmt(steady(line.events, r), '{:,.0f}')} | {r.cpu:.1f} | {line.events / r.cpu:,.0f} | {ratio} |"
            )
    return head + rows


def main():
    names = sys.argv[1:] or list(JOBS)
    unknown = [n for n in names if n not in JOBS]
    if unknown:
        raise SystemExit(f"unknown job {unknown[0]}; the jobs: {', '.join(JOBS)}")
    measure.become_subreaper()
    os.makedirs(CACHE)  # empty: run 1 compiles the component, runs 2.. find it in the cache
    started = time.time()
    lines = []
    for name in names:
        job = JOBS[name]
        events = generate(job)
        print(f"== {name}: {events:,} events ({job.scenario}, seed {SEED}); computing the batch SQL reference", flush=True)
        expected = reference.tables(PG, job, data_dir(job))
        engines = [("sluice", lambda n, job=job: run_sluice(job, n))]
        engines += [(f"flink-{c}", lambda n, job=job, c=c: run_flink(job, c, n)) for c in FLINK_CONFIGS]
        results = {engine: [] for engine, _ in engines}
        outputs = {}
        for n in range(1, RUNS + 1):
            for engine, runner in engines:  # alternating, so noise hits both
                result, tables = runner(n)
                print(f"   {engine} run {n}: wall {result.wall:.1f}s, first row {fmt(result.first_row, '{:.2f}')}s, "
                      f"end {result.end:.1f}s, cpu {result.cpu:.1f}s, steady {fmt(steady(events, result), '{:,.0f}')}/s", flush=True)
                if tables is not None:
                    results[engine].append(result)
                    if engine not in outputs:
                        check(job, engine, tables, expected)
                        outputs[engine] = tables
        for engine in outputs:
            if engine != "sluice" and "sluice" in outputs:
                for t in job.tables:
                    diff = differences("sluice", outputs["sluice"][t.name], engine, outputs[engine][t.name])
                    if diff:
                        loud(f"{name}: {t.name} differs between sluice and {engine}:\n" + "\n".join(diff))
        print(f"   {name}: results " + ("EQUAL" if len(outputs) == len(engines) and not any(name in p for p in problems) else "NOT CHECKED OR DIFFERENT")
              + f" ({', '.join(f'{t.name}: {sum(expected[t.name].values()):,} rows' for t in job.tables)})", flush=True)
        for engine, _ in engines:
            if results[engine]:
                lines.append(Line(name, engine, events, results[engine]))
        if name == HOURLY_PREMIUM.name and KAFKA:
            import kafka_pg
            runs = kafka_pg.bench(job, events, gen_options(job), expected, SLUICE, os.path.join(COMPONENTS, job.component), PG, BROKERS,
                                  WORK, CACHE, KAFKA_RUNS, loud)
            if runs:
                lines.append(Line(name, "sluice kafka→pg", events, runs))

    shutil.rmtree(CACHE, ignore_errors=True)
    load = os.getloadavg()
    report = [
        f"Measured {date.today()} on {platform.node()} ({os.cpu_count()} cores, {platform.processor() or platform.machine()}), "
        f"{EVENTS:,} events per job, seed {SEED}, {RUNS} runs, "
        f"{'engines pinned to CPU(s) ' + measure.CPUS if measure.CPUS else 'engines on all CPUs'}; load average at the end {load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f}; "
        f"{time.time() - started:.0f} s in all.",
        "",
        *table_lines(lines),
    ]
    os.makedirs(WORK, exist_ok=True)
    with open(os.path.join(WORK, "results.md"), "w") as f:
        f.write("\n".join(report) + "\n")
    print("\n" + "\n".join(report))
    if problems:
        print(f"\n!!!!! {len(problems)} problem(s):\n" + "\n".join(p.splitlines()[0] for p in problems))
        sys.exit(1)


if __name__ == "__main__":
    main()
