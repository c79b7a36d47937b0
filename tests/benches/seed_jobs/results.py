"""Output of both engines collapsed to final tables, and compared.

Sluice's file sink writes one JSON row per line: an upsert of the row's key,
or with `"_op": "delete"` its deletion. Flink's print sink writes one
changelog row per line, `<sink>> +I[<json>]` (also -U, +U, -D), where the
JSON is the row (flink.sql builds it with JSON_OBJECT). Either collapses to
the table the rows describe, which is then compared with the other engine's
and with the batch SQL reference (reference.py), value by value after
bringing each column to its type (`canonical`).
"""

import json
import re
from collections import Counter
from decimal import ROUND_HALF_UP, Decimal

# Column types: how a value is compared.
TEXT, INT, MONEY, RATE = "text", "int", "money", "rate"


class Table:
    """A sink table: its columns (name -> type), and the key of an upsert
    table or None for an append-only one (compared as a multiset)."""

    def __init__(self, name, columns, key=None):
        self.name, self.columns, self.key = name, columns, key


def canonical(value, kind):
    """A value as compared: texts as text, numbers exactly (money rounded
    to cents, rates to four decimals: a DOUBLE sum carries float noise)."""
    if value is None:
        return None
    if kind == TEXT:
        return value if isinstance(value, str) else json.dumps(value)
    number = Decimal(str(value))
    if kind == INT:
        if number != number.to_integral_value():
            raise ValueError(f"{value!r} is not an integer")
        return int(number)
    places = Decimal("0.01") if kind == MONEY else Decimal("0.0001")
    return number.quantize(places, rounding=ROUND_HALF_UP)


def row_tuple(table, row):
    """A row (a dict from JSON) as the tuple of its canonical values."""
    return tuple(canonical(row.get(c), kind) for c, kind in table.columns.items())


def sluice_table(table, lines):
    """The final table written by a Sluice file sink (an iterable of lines)."""
    upserts, appended = {}, Counter()
    for line in lines:
        if not line.strip():
            continue
        row = json.loads(line)
        delete = row.pop("_op", None) == "delete"
        values = row_tuple(table, row)
        if table.key is None:
            if delete:
                raise ValueError(f"{table.name}: a delete in an append-only table: {line}")
            appended[values] += 1
        else:
            key = tuple(row.get(k) for k in table.key)
            if delete:
                upserts.pop(key, None)
            else:
                upserts[key] = values
    return Counter(upserts.values()) if table.key is not None else appended


PRINT_LINE = re.compile(r"^(\w+)> ([+-][IUD])\[(.*)\]$")


def flink_tables(tables, lines):
    """The final tables written by Flink print sinks: the changelog applied
    as a multiset of rows (+I/+U add a row, -U/-D take it away)."""
    by_name = {t.name: t for t in tables}
    result = {t.name: Counter() for t in tables}
    for line in lines:
        match = PRINT_LINE.match(line.rstrip("\n"))
        if not match or match.group(1) not in by_name:
            continue  # not a sink row (Flink's own output)
        name, kind, body = match.groups()
        values = row_tuple(by_name[name], json.loads(body))
        rows = result[name]
        if kind in ("+I", "+U"):
            rows[values] += 1
        else:
            if rows[values] == 0:
                raise ValueError(f"{name}: {kind} of a row that is not in the table: {body}")
            rows[values] -= 1
            if rows[values] == 0:
                del rows[values]
    for t in tables:
        if t.key is not None:
            keys = Counter(tuple(r[list(t.columns).index(k)] for k in t.key) for r in result[t.name].elements())
            twice = [k for k, n in keys.items() if n > 1]
            if twice:
                raise ValueError(f"{t.name}: key {twice[0]} has {keys[twice[0]]} rows")
    return result


def reference_table(table, rows):
    """The reference's rows (tuples of text in column order) as a table."""
    return Counter(tuple(canonical(v, kind) for v, kind in zip(r, table.columns.values())) for r in rows)


def differences(a_name, a, b_name, b, limit=3):
    """What differs between two collapsed tables, as lines ([] when equal)."""
    if a == b:
        return []
    only_a, only_b = a - b, b - a
    lines = [
        f"{sum(a.values())} rows in {a_name}, {sum(b.values())} in {b_name}; "
        f"{sum(only_a.values())} only in {a_name}, {sum(only_b.values())} only in {b_name}"
    ]
    lines += [f"  only in {a_name}: {r}" for r in sorted(only_a, key=str)[:limit]]
    lines += [f"  only in {b_name}: {r}" for r in sorted(only_b, key=str)[:limit]]
    return lines
