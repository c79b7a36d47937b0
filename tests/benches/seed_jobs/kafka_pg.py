"""Hourly premium from Kafka into PostgreSQL (Sluice only: the PyFlink wheel
ships no Kafka or JDBC connector). The bench's events are produced into a
new one-partition Tansu topic with `sluice gen --kafka` (not timed); the job
then reads the topic to its end (`bounded = true`) and upserts hs_order into
PostgreSQL, and the run ends when the sink has written everything. The
first result row is the first row in the table (polled every 20 ms)."""

import os
import shutil
import subprocess
import time

import psycopg

import measure
from results import differences, reference_table

TABLE = "bench_hs_order"

SPEC = """
name = "hourly_premium"
component = "hourly_premium.wasm"   # the bench passes --component

[parameters]
utc_offset_minutes = "480"
since_ms = "0"

[sources.user_order]
kind = "kafka"
connection = "events"
topic = "{topic}"
start = "earliest"
bounded = true
event_time_field = "gmt_modified"

[sinks.hs_order]
kind = "sql"
connection = "warehouse"
table = "{table}"
primary_key = ["biz_date"]
create_table = true
columns = {{ biz_date = "varchar(10)", total_premium = "decimal(18,2)", policy_cnt = "bigint", policy_holder_cnt = "bigint" }}

[dead_letter]
kind = "file"
path = "dead_letters.jsonl"
"""


def bench(job, events, gen_options, expected, sluice, component, pg, brokers, work, cache, runs, loud):
    """Runs it `runs` times; returns the measured runs. `gen_options`: the
    `sluice gen` options that made the bench's files (the same events)."""
    out = os.path.join(work, "out", job.name, "sluice-kafka-pg")
    shutil.rmtree(out, ignore_errors=True)
    os.makedirs(out)
    prefix = f"bench-{os.getpid()}-{int(time.time())}-"
    gen = [sluice, "gen", job.scenario, "--kafka", brokers, "--topic-prefix", prefix, "--partitions", "1", *gen_options]
    print(f"   kafka→pg: producing {events:,} events into {prefix}user_order", flush=True)
    subprocess.run(gen, check=True)
    spec = os.path.join(out, "kafka-pg.toml")
    with open(spec, "w") as f:
        f.write(SPEC.format(topic=f"{prefix}user_order", table=TABLE))
    results = []
    with psycopg.connect(pg, autocommit=True) as conn:
        def first_row():
            try:
                return conn.execute(f"select exists (select 1 from {TABLE})").fetchone()[0]
            except psycopg.errors.UndefinedTable:
                return False

        for n in range(1, runs + 1):
            conn.execute(f"drop table if exists {TABLE}")
            cmd = [sluice, "run", "--spec", spec, "--component", component, "--quiet",
                   "--connection", f"events={brokers}", "--connection", f"warehouse={pg.replace('postgresql://', 'postgres://')}"]
            env = dict(os.environ, SLUICE_CACHE_DIR=cache)
            probe_at = [0.0]

            def probe():
                now = time.monotonic()
                if now - probe_at[0] < 0.02:
                    return False
                probe_at[0] = now
                return first_row()

            result = measure.run(cmd, [], os.path.join(out, "stdout.txt"), os.path.join(out, "stderr.txt"), env=env,
                                 first_row_probe=probe)
            rate = events / (result.end - result.first_row) if result.first_row else None
            first = "—" if result.first_row is None else f"{result.first_row:.2f}"
            print(f"   sluice kafka→pg run {n}: wall {result.wall:.1f}s, first row {first}s, cpu {result.cpu:.1f}s, "
                  f"steady {'—' if rate is None else f'{rate:,.0f}'}/s", flush=True)
            if result.returncode != 0:
                loud(f"{job.name}: sluice kafka→pg run {n} failed (exit {result.returncode}), see {out}/stderr.txt")
                continue
            results.append(result)
            if n == 1:
                rows = conn.execute(
                    f"select biz_date, total_premium::text, policy_cnt::text, policy_holder_cnt::text from {TABLE}"
                ).fetchall()
                table = job.tables[0]
                diff = differences("sluice kafka→pg", reference_table(table, rows), "the batch SQL", expected[table.name])
                if diff:
                    loud(f"{job.name}: {TABLE} in PostgreSQL differs from the batch SQL:\n" + "\n".join(diff))
        conn.execute(f"drop table if exists {TABLE}")
    return results
