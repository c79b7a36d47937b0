"""Runs one seed job's Flink SQL (jobs/<job>/flink.sql) on PyFlink's local
mini-cluster, parallelism 1, streaming mode, until its bounded file sources
are read. Its print sinks write the changelog to stdout; the bench driver
(bench.py) sends that to a file and times the process.

    python flink_job.py --sql jobs/hourly-premium/flink.sql --var data=DIR --var since_ms=0 --config minibatch

The SQL file is a template: `${name}` is replaced by `--var name=value`
(an unknown name is an error), `SET 'key' = 'value';` lines set table
options, every other statement runs in order, and the INSERTs run together
as one statement set (one Flink job, as the seed deploys them).
"""

import argparse
import os
import re
import shutil
import sys
import tempfile
import time

# Flink's own settings to compare: `default` is the out-of-the-box engine at
# parallelism 1; `minibatch` is what Flink's tuning guide advises for
# aggregations (buffer input for a short while, fold it per key, emit once),
# plus object reuse between chained operators.
CONFIGS = {
    "default": {},
    "minibatch": {
        "table.exec.mini-batch.enabled": "true",
        "table.exec.mini-batch.allow-latency": "200 ms",
        "table.exec.mini-batch.size": "5000",
        "pipeline.object-reuse": "true",
    },
}


def render(text, variables):
    """The SQL with ${name} filled in; comment lines dropped."""

    def fill(match):
        name = match.group(1)
        if name not in variables:
            raise SystemExit(f"flink_job: the SQL uses ${{{name}}}, pass --var {name}=VALUE")
        return variables[name]

    lines = [line for line in text.splitlines() if not line.lstrip().startswith("--")]
    return re.sub(r"\$\{(\w+)\}", fill, "\n".join(lines))


def statements(sql):
    """Statements, split at a `;` that ends a line."""
    return [s.strip() for s in re.split(r";[ \t]*(?:\n|$)", sql) if s.strip()]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sql", required=True)
    parser.add_argument("--var", action="append", default=[], help="name=value for ${name} in the SQL")
    parser.add_argument("--config", choices=sorted(CONFIGS), default="default")
    parser.add_argument("--work-dir", default=".", help="where the mini-cluster's working directory is made")
    args = parser.parse_args()
    variables = dict(v.split("=", 1) for v in args.var)
    with open(args.sql, encoding="utf-8") as f:
        sql = render(f.read(), variables)

    from pyflink.table import EnvironmentSettings, TableEnvironment

    env = TableEnvironment.create(EnvironmentSettings.in_streaming_mode())
    config = env.get_config()
    config.set("parallelism.default", "1")
    # The mini-cluster's working files in a directory of this run (under
    # target/), not /tmp, where they collide with other processes' clean-ups.
    work = tempfile.mkdtemp(prefix="flink-", dir=os.path.abspath(args.work_dir))
    config.set("io.tmp.dirs", work)
    config.set("process.working-dir", work)
    for key, value in CONFIGS[args.config].items():
        config.set(key, value)
    inserts = env.create_statement_set()
    n_inserts = 0
    for statement in statements(sql):
        set_option = re.fullmatch(r"SET\s+'([^']+)'\s*=\s*'([^']*)'", statement, re.IGNORECASE)
        if set_option:
            config.set(set_option.group(1), set_option.group(2))
        elif re.match(r"insert\s", statement, re.IGNORECASE):
            inserts.add_insert_sql(statement)
            n_inserts += 1
        else:
            env.execute_sql(statement)
    if n_inserts == 0:
        raise SystemExit(f"flink_job: {args.sql} has no INSERT")
    print(f"flink_job: submitting at {time.time():.3f}", file=sys.stderr)
    inserts.execute().wait()
    print(f"flink_job: finished at {time.time():.3f}", file=sys.stderr)
    sys.stdout.flush()
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
