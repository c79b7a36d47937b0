"""The batch SQL reference: a job's generated events loaded into PostgreSQL
(one table per stream in the schema `bench_seed_jobs`, one text column per
field and `seq`, the line number), and the reference queries of jobs.py run
over them. Malformed lines are not loaded (both engines skip them)."""

import json
import os

import psycopg
from psycopg import sql

from results import reference_table

SCHEMA = "bench_seed_jobs"


def _cell(value):
    if value is None:
        return None
    return value if isinstance(value, str) else json.dumps(value)


def _rows(path, fields):
    with open(path, encoding="utf-8") as f:
        for seq, line in enumerate(f):
            try:
                row = json.loads(line)
            except ValueError:
                continue
            if isinstance(row, dict):
                yield (seq, *(_cell(row.get(field)) for field in fields))


def tables(url, job, directory):
    """The reference tables of `job` (table name -> collapsed table)."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(sql.SQL("drop schema if exists {} cascade").format(sql.Identifier(SCHEMA)))
        conn.execute(sql.SQL("create schema {}").format(sql.Identifier(SCHEMA)))
        conn.execute(sql.SQL("set search_path = {}").format(sql.Identifier(SCHEMA)))
        for stream, fields in job.fields.items():
            columns = [sql.SQL("seq bigint")] + [sql.SQL("{} text").format(sql.Identifier(f)) for f in fields]
            conn.execute(sql.SQL("create table {} ({})").format(sql.Identifier(stream), sql.SQL(", ").join(columns)))
            copy = sql.SQL("copy {} ({}) from stdin").format(
                sql.Identifier(stream), sql.SQL(", ").join(map(sql.Identifier, ["seq", *fields]))
            )
            with conn.cursor().copy(copy) as writer:
                for row in _rows(os.path.join(directory, f"{stream}.jsonl"), fields):
                    writer.write_row(row)
            conn.execute(sql.SQL("analyze {}").format(sql.Identifier(stream)))
        result = {}
        for table in job.tables:
            rows = conn.execute(job.reference[table.name]).fetchall()
            result[table.name] = reference_table(table, rows)
        conn.execute(sql.SQL("drop schema {} cascade").format(sql.Identifier(SCHEMA)))
    return result
