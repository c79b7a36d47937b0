"""The five seed jobs as the bench runs them: the scenario that generates
their events, the streams they read, their sink tables, and the batch SQL
(PostgreSQL) that computes those tables from the raw events. The SQL is the
reference of the end-to-end tests (tests/e2e/*.rs), over tables with one text
column per field and `seq`, the line number in the generated file (arrival
order); malformed lines are not loaded.
"""

from results import INT, MONEY, RATE, TEXT, Table

SIX_HOURS_MS = 6 * 3_600_000


class Job:
    def __init__(self, name, scenario, sources, dimensions, tables, reference, fields, gen_args=None, params=None):
        self.name = name  # the directory under jobs/
        self.crate = "job-" + name
        self.component = name.replace("-", "_") + ".wasm"
        self.scenario = scenario  # `sluice gen` scenario
        self.sources = sources  # streams read as sources (their events are counted)
        self.dimensions = dimensions  # streams read as reference data
        self.tables = tables  # sink tables compared
        self.reference = reference  # sink table name -> SQL
        self.fields = fields  # stream -> fields loaded for the reference
        self.gen_args = gen_args or (lambda events: [])
        self.params = params or {}  # ${name} values of flink.sql


HOURLY_PREMIUM = Job(
    "hourly-premium",
    "insurance-orders",
    sources=["user_order"],
    dimensions=[],
    # Six hours of orders, as in the measurement: ~170k orders per hour
    # at 1M events, so the distinct counts are large groups.
    gen_args=lambda events: ["--step-ms", str(max(1, SIX_HOURS_MS // events))],
    params={"since_ms": "0"},
    fields={"user_order": ["id", "order_no", "customer_tel", "gmt_modified", "account_payble"]},
    tables=[
        Table(
            "hs_order",
            {"biz_date": TEXT, "total_premium": MONEY, "policy_cnt": INT, "policy_holder_cnt": INT},
            key=["biz_date"],
        )
    ],
    reference={
        "hs_order": """
            with last_order as (
                select distinct on (id) id, order_no, customer_tel, gmt_modified::bigint as gmt_modified,
                       account_payble::numeric as account_payble
                from user_order order by id, seq desc
            )
            select to_char(to_timestamp(gmt_modified / 1000) at time zone 'UTC' + interval '8 hours', 'YYYYMMDDHH24'),
                   sum(coalesce(account_payble, 0))::numeric(18, 2)::text,
                   count(distinct order_no)::text,
                   count(distinct customer_tel)::text
            from last_order group by 1"""
    },
)

# Each saved update of a watched user, with the premium before it: the
# previous saved update's, or the dimension's initial row for the first.
PREMIUM_CHAIN = """
    with saved as (
        select e.seq, e.id::bigint as id, e.now_premium, e.now_info, d.raw_premium, d.raw_info,
               row_number() over (partition by e.id::bigint order by e.seq) as n,
               lag(e.now_premium) over (partition by e.id::bigint order by e.seq) as prev_premium,
               lag(e.now_info) over (partition by e.id::bigint order by e.seq) as prev_info
        from update_info e join raw_info d on d.id::bigint = e.id::bigint
        where e.event = 'saved'
    ), chain as (
        select seq, id, now_premium, now_info,
               case when n = 1 then raw_premium else prev_premium end as before_premium,
               case when n = 1 then raw_info else prev_info end as before_info
        from saved
    )"""

PREMIUM_DROP = Job(
    "premium-drop",
    "premium-updates",
    sources=["update_info"],
    dimensions=["raw_info"],
    fields={"update_info": ["id", "event", "now_premium", "now_info"], "raw_info": ["id", "raw_premium", "raw_info"]},
    tables=[
        # Every alert (the seed's table keeps the last per id).
        Table("wechat_activity_user", {"id": INT, "raw_info": TEXT, "now_info": TEXT, "raw_premium": TEXT, "now_premium": TEXT})
    ],
    reference={
        "wechat_activity_user": PREMIUM_CHAIN
        + """
            select id::text, before_info, now_info, before_premium, now_premium from chain
            where now_premium::float8 < before_premium::float8 * (1::float8 - 0.15::float8)"""
    },
)

LAST_PAGE = Job(
    "last-page",
    "page-views",
    sources=["user_log"],
    dimensions=[],
    fields={"user_log": ["account_id", "device_id", "bury_point_type", "page_name"]},
    tables=[
        Table(
            "user_last_log",
            {"account_id": TEXT, "device_id": TEXT, "bury_point_type": TEXT, "page_name": TEXT},
            key=["account_id", "device_id"],
        )
    ],
    reference={
        "user_last_log": """
            select distinct on (account_id, device_id) account_id, device_id, bury_point_type, page_name
            from user_log where account_id is not null
            order by account_id, device_id, seq desc"""
    },
)

ALERT_COLUMNS = {
    "alert_id": TEXT,
    "rule": TEXT,
    "txn_id": TEXT,
    "customer_id": TEXT,
    "account_no": TEXT,
    "segment": TEXT,
    "manager_id": TEXT,
    "branch_id": TEXT,
    "direction": TEXT,
    "channel": TEXT,
    "amount": MONEY,
    "reference_amount": MONEY,
    "txn_time": INT,
}

LARGE_TX_ALERT = Job(
    "large-tx-alert",
    "large-tx",
    sources=["account_txn"],
    dimensions=["customer", "segment_threshold"],
    fields={
        "account_txn": ["txn_id", "account_no", "customer_id", "direction", "amount", "channel", "branch_id", "txn_time"],
        "customer": ["customer_id", "segment", "manager_id"],
        "segment_threshold": ["segment", "threshold"],
    },
    tables=[Table("alert_table", ALERT_COLUMNS, key=["alert_id"])],
    reference={
        "alert_table": """
            with ev as (
                select distinct on (txn_id) seq, txn_id, customer_id, account_no, direction, channel,
                       branch_id, (amount::numeric * 100)::bigint as cents, txn_time
                from account_txn order by txn_id, seq
            ), t as (
                select ev.*, c.segment, c.manager_id,
                       coalesce((s.threshold::numeric * 100)::bigint, 5000000) as threshold
                from ev left join customer c on c.customer_id = ev.customer_id
                        left join segment_threshold s on s.segment = c.segment
            ), outs as (
                select txn_id, count(*) over w as n, sum(cents) over w as total
                from ev where direction = 'out'
                window w as (partition by customer_id order by seq rows between 10 preceding and 1 preceding)
            ), alerts as (
                select txn_id || ':large_amount' as alert_id, 'large_amount' as rule, t.*, threshold as reference
                from t where cents >= threshold
                union all
                select txn_id || ':sudden_outflow', 'sudden_outflow', t.*, round(total::numeric / n)::bigint
                from t join outs using (txn_id) where n >= 3 and cents >= 1000000 and cents * n >= 5 * total
            )
            select alert_id, rule, txn_id, customer_id, account_no, segment, manager_id, branch_id, direction, channel,
                   (cents / 100.0)::numeric(18, 2)::text, (reference / 100.0)::numeric(18, 2)::text, txn_time
            from alerts"""
    },
)


def _day(ms):
    """The local (UTC+8) date of epoch milliseconds, in integer arithmetic."""
    return f"(date '1970-01-01' + (({ms} + 28800000) / 86400000)::int)"


def _month(date):
    return f"(extract(year from {date})::int * 12 + extract(month from {date})::int - 1)"


def _months_on_book(date):
    lent = _month(_day("l.lend_time"))
    return f"case when {date} is not null then greatest({_month(date)} - {lent}, 0) end"


def _rate(n, d):
    return f"round(({n})::numeric / nullif({d}, 0), 4)::numeric(9, 4)::text"


LENDING_VIEWS = """
    with u as (
        select distinct on (id::bigint) id::bigint as id, coalesce(channel, 'unknown') as channel,
               inserttime::bigint as inserttime, coalesce(isactive, '1')::int as isactive
        from u_user order by id::bigint, updatetime::bigint desc, seq
    ), l as (
        select distinct on (id::bigint) id::bigint as id, borrower_id::bigint as borrower_id,
               prod_type::bigint as prod_type, status::int as status, inserttime::bigint as inserttime,
               lend_time::bigint as lend_time, coalesce(loan_amount, apply_amount)::numeric as amount
        from loan_list order by id::bigint, updatetime::bigint desc, status::int desc, seq
    ), r as (
        select loan_id::bigint as loan_id,
               min(case when dpd::int >= 1 then due_date::date + 1 end) as d1,
               min(case when dpd::int >= 30 then due_date::date + 30 end) as d30
        from repay_log group by 1
    ), clock as (
        select max(t) as t from (
            select updatetime::bigint as t from u_user union all select updatetime::bigint from loan_list
            union all select create_time::bigint from repay_log) x
    )"""

LENDING_REPORT = Job(
    "lending-report",
    "lending",
    sources=["u_user", "loan_list", "repay_log"],
    dimensions=[],
    fields={
        "u_user": ["id", "channel", "inserttime", "updatetime", "isactive"],
        "loan_list": ["id", "borrower_id", "apply_amount", "loan_amount", "prod_type", "status", "inserttime", "updatetime", "lend_time"],
        "repay_log": ["loan_id", "due_date", "dpd", "create_time"],
    },
    tables=[
        Table(
            "loan_funnel",
            {"reg_date": TEXT, "channel": TEXT, "registered": INT, "applied": INT, "approved": INT, "disbursed": INT, "pass_rate": RATE, "conversion_rate": RATE},
            key=["reg_date", "channel"],
        ),
        Table(
            "loan_approval",
            {"apply_date": TEXT, "prod_type": INT, "applied": INT, "auditing": INT, "rejected": INT, "approved": INT, "pass_rate": RATE},
            key=["apply_date", "prod_type"],
        ),
        Table(
            "loan_disbursement",
            {"lend_date": TEXT, "prod_type": INT, "loans": INT, "first_loans": INT, "amount": MONEY},
            key=["lend_date", "prod_type"],
        ),
        Table(
            "loan_vintage",
            {"lend_month": TEXT, "mob": INT, "loans": INT, "overdue_1": INT, "overdue_30": INT, "overdue_1_rate": RATE, "overdue_30_rate": RATE},
            key=["lend_month", "mob"],
        ),
    ],
    reference={
        "loan_funnel": f"""{LENDING_VIEWS}, flags as (
                select borrower_id, bool_or(status >= 3) as approved, bool_or(status >= 5) as disbursed
                from l group by borrower_id
            ), f as (
                select to_char({_day("u.inserttime")}, 'YYYY-MM-DD') as reg_date, u.channel,
                       count(*) as registered, count(flags.borrower_id) as applied,
                       count(*) filter (where flags.approved) as approved, count(*) filter (where flags.disbursed) as disbursed
                from u left join flags on flags.borrower_id = u.id where u.isactive <> 0 group by 1, 2
            )
            select reg_date, channel, registered::text, applied::text, approved::text, disbursed::text,
                   {_rate("approved", "applied")}, {_rate("disbursed", "registered")}
            from f""",
        "loan_approval": f"""{LENDING_VIEWS}, a as (
                select to_char({_day("inserttime")}, 'YYYY-MM-DD') as apply_date, prod_type, count(*) as applied,
                       count(*) filter (where status = 1) as auditing, count(*) filter (where status = 2) as rejected,
                       count(*) filter (where status >= 3) as approved
                from l group by 1, 2
            )
            select apply_date, prod_type::text, applied::text, auditing::text, rejected::text, approved::text,
                   {_rate("approved", "approved + rejected")}
            from a""",
        "loan_disbursement": f"""{LENDING_VIEWS}, d as (
                select l.*, row_number() over (partition by borrower_id order by lend_time, id) = 1 as first
                from l where status >= 5
            )
            select to_char({_day("lend_time")}, 'YYYY-MM-DD'), prod_type::text, count(*)::text,
                   count(*) filter (where first)::text, sum(amount)::numeric(18, 2)::text
            from d group by 1, 2""",
        "loan_vintage": f"""{LENDING_VIEWS}, dl as (
                select {_month(_day("l.lend_time"))} as m, {_months_on_book("r.d1")} as o1, {_months_on_book("r.d30")} as o30
                from l left join r on r.loan_id = l.id where l.status >= 5
            ), cells as (
                select m, k from (select distinct m from dl) months, generate_series(0, 12) k
                where m + k <= (select {_month(_day("t"))} from clock)
            ), v as (
                select c.m, c.k, count(*) as loans, count(*) filter (where o1 <= c.k) as o1,
                       count(*) filter (where o30 <= c.k) as o30
                from cells c join dl on dl.m = c.m group by c.m, c.k
            )
            select to_char(make_date(m / 12, m % 12 + 1, 1), 'YYYY-MM'), k::text, loans::text, o1::text, o30::text,
                   {_rate("o1", "loans")}, {_rate("o30", "loans")}
            from v""",
    },
)

JOBS = {j.name: j for j in [HOURLY_PREMIUM, PREMIUM_DROP, LAST_PAGE, LARGE_TX_ALERT, LENDING_REPORT]}
