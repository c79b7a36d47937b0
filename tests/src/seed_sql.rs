//! Expected results of the seed jobs from the seeds' own SQL, run by
//! PostgreSQL over the same events: what the end-to-end and console suites
//! compare sink tables with.

use serde_json::Value;
use sqlx::Row;

use crate::services::postgres_url;

/// hourly-premium's `last_order` view and `hs_order` insert, over the orders
/// in arrival order (`seq`), in UTC+8.
const HOURLY_PREMIUM: &str = "
    with last_order as (
        select distinct on (id) id, order_no, customer_tel, gmt_modified::bigint as gmt_modified,
               account_payble::numeric as account_payble
        from {events} order by id, seq::bigint desc
    )
    select to_char(to_timestamp(gmt_modified / 1000) at time zone 'UTC' + interval '8 hours', 'YYYYMMDDHH24'),
           sum(coalesce(account_payble, 0))::numeric(18, 2)::text,
           count(distinct order_no)::text,
           count(distinct customer_tel)::text
    from last_order group by 1 order by 1";

/// The `hs_order` table hourly-premium must give over `orders` (each a
/// record key and a `user_order` row, in arrival order): rows of biz_date,
/// total_premium, policy_cnt and policy_holder_cnt as text, by biz_date.
pub async fn hourly_premium(orders: &[(u64, Value)]) -> Vec<Vec<String>> {
    let pool = sqlx::PgPool::connect(&postgres_url()).await.expect("connect to PostgreSQL");
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
    let table = format!("expected_user_order_{}_{nanos}", std::process::id());
    sqlx::query(&format!(
        "create table {table} (seq text, id text, order_no text, customer_tel text, gmt_modified text, \
         account_payble text)"
    ))
    .execute(&pool)
    .await
    .expect("create the events table");
    let text = |e: &Value, f: &str| Some(e[f].to_string().trim_matches('"').to_owned());
    for (chunk_start, chunk) in orders.chunks(1000).enumerate().map(|(i, c)| (i * 1000, c)) {
        let mut q = sqlx::QueryBuilder::<sqlx::Postgres>::new(format!(
            "insert into {table} (seq, id, order_no, customer_tel, gmt_modified, account_payble) "
        ));
        q.push_values(chunk.iter().enumerate(), |mut b, (i, (_, e))| {
            b.push_bind((chunk_start + i).to_string())
                .push_bind(text(e, "id"))
                .push_bind(text(e, "order_no"))
                .push_bind(text(e, "customer_tel"))
                .push_bind(text(e, "gmt_modified"))
                .push_bind(text(e, "account_payble"));
        });
        q.build().execute(&pool).await.expect("load the events");
    }
    let rows = sqlx::query(&HOURLY_PREMIUM.replace("{events}", &table)).fetch_all(&pool).await.expect("the seed SQL");
    let _ = sqlx::query(&format!("drop table if exists {table}")).execute(&pool).await;
    rows.iter().map(|r| (0..r.len()).map(|i| r.get::<Option<String>, _>(i).unwrap_or_default()).collect()).collect()
}

/// large-tx-alert's rules over raw movements, with the job's default
/// parameters: movements de-duplicated by txn_id (first arrival), the
/// segment threshold (50000.00 when unknown), and the average of the
/// customer's previous ten outflows in arrival order (docs/jobs/large-tx.md).
const LARGE_TX_ALERTS: &str = "
    with ev as (
        select distinct on (txn_id) seq::bigint as seq, txn_id, customer_id, account_no, direction, channel,
               branch_id, (amount::numeric * 100)::bigint as cents, txn_time
        from {events} order by txn_id, seq::bigint
    ), t as (
        select ev.*, c.segment, c.manager_id,
               coalesce((s.threshold::numeric * 100)::bigint, 5000000) as threshold
        from ev left join {customers} c on c.customer_id = ev.customer_id
                left join {segments} s on s.segment = c.segment
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
    from alerts order by alert_id";

const MOVEMENT_FIELDS: &[&str] =
    &["txn_id", "account_no", "customer_id", "direction", "amount", "channel", "branch_id", "txn_time"];

/// The alert table large-tx-alert must give over `movements` (raw values
/// in arrival order; those that are not JSON are skipped, as the job
/// dead-letters them), with the `customer` and `segment_threshold`
/// reference rows: alert_id, rule, txn_id, customer_id, account_no,
/// segment, manager_id, branch_id, direction, channel, amount,
/// reference_amount and txn_time as text (NULL as "∅"), by alert_id.
pub async fn large_tx_alerts(movements: &[&[u8]], customers: &[&[u8]], segments: &[&[u8]]) -> Vec<Vec<String>> {
    let pool = sqlx::PgPool::connect(&postgres_url()).await.expect("connect to PostgreSQL");
    let events = load_json_rows(&pool, "expected_account_txn", movements, MOVEMENT_FIELDS).await;
    let customer_table =
        load_json_rows(&pool, "expected_customer", customers, &["customer_id", "segment", "manager_id"]).await;
    let segment_table = load_json_rows(&pool, "expected_segment", segments, &["segment", "threshold"]).await;
    let sql = LARGE_TX_ALERTS
        .replace("{events}", &events)
        .replace("{customers}", &customer_table)
        .replace("{segments}", &segment_table);
    let rows = sqlx::query(&sql).fetch_all(&pool).await.expect("the alert rules' SQL");
    for table in [&events, &customer_table, &segment_table] {
        let _ = sqlx::query(&format!("drop table if exists {table}")).execute(&pool).await;
    }
    rows.iter()
        .map(|r| (0..r.len()).map(|i| r.get::<Option<String>, _>(i).unwrap_or_else(|| "∅".into())).collect())
        .collect()
}

/// A new table `<prefix>_<pid>_<nanos>` of the JSON `values`: a `seq`
/// column (index in `values`) and one text column per field (JSON null as
/// NULL, strings unquoted, other values as their JSON text). Values that
/// are not JSON objects are left out. Returns the table's name.
async fn load_json_rows(pool: &sqlx::PgPool, prefix: &str, values: &[&[u8]], fields: &[&str]) -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
    let table = format!("{prefix}_{}_{nanos}", std::process::id());
    let columns: Vec<String> = fields.iter().map(|f| format!("{f} text")).collect();
    sqlx::query(&format!("create table {table} (seq bigint, {})", columns.join(", ")))
        .execute(pool)
        .await
        .expect("create the events table");
    let rows: Vec<(usize, Value)> = values
        .iter()
        .enumerate()
        .filter_map(|(seq, v)| Some((seq, serde_json::from_slice::<Value>(v).ok().filter(Value::is_object)?)))
        .collect();
    for chunk in rows.chunks(1000) {
        let mut q =
            sqlx::QueryBuilder::<sqlx::Postgres>::new(format!("insert into {table} (seq, {}) ", fields.join(", ")));
        q.push_values(chunk, |mut b, (seq, row)| {
            b.push_bind(*seq as i64);
            for f in fields {
                b.push_bind(match &row[*f] {
                    Value::Null => None,
                    Value::String(s) => Some(s.clone()),
                    other => Some(other.to_string()),
                });
            }
        });
        q.build().execute(pool).await.expect("load the events");
    }
    table
}

// ---- lending-report (seed 004) ----

/// Shared views of the raw events: each state table's latest rows, the log
/// table's first overdue days, the data clock, and the local day and month
/// (UTC+8) in integer arithmetic, as the job computes them.
const LENDING_VIEWS: &str = "
    with u as (
        select distinct on (id::bigint) id::bigint as id, coalesce(channel, 'unknown') as channel,
               inserttime::bigint as inserttime, isactive::int as isactive
        from {users} order by id::bigint, updatetime::bigint desc, seq::bigint
    ), l as (
        select distinct on (id::bigint) id::bigint as id, borrower_id::bigint as borrower_id,
               prod_type::bigint as prod_type, status::int as status, inserttime::bigint as inserttime,
               lend_time::bigint as lend_time, coalesce(loan_amount, apply_amount)::numeric as amount
        from {loans} order by id::bigint, updatetime::bigint desc, status::int desc, seq::bigint
    ), r as (
        select loan_id::bigint as loan_id,
               min(case when dpd::int >= 1 then due_date::date + 1 end) as d1,
               min(case when dpd::int >= 30 then due_date::date + 30 end) as d30
        from {repay} group by 1
    ), clock as (
        select max(t) as t from (
            select updatetime::bigint as t from {users} union all select updatetime::bigint from {loans}
            union all select create_time::bigint from {repay}) x
    )";

/// A local date of epoch milliseconds `ms`.
fn day(ms: &str) -> String {
    format!("(date '1970-01-01' + (({ms} + 28800000) / 86400000)::int)")
}

/// Months since year 0 of a date expression.
fn month(date: &str) -> String {
    format!("(extract(year from {date})::int * 12 + extract(month from {date})::int - 1)")
}

/// Months on book at a milestone date column of `r`, at least 0; NULL
/// (never reached) stays NULL, which `greatest()` alone would turn into 0.
fn months_on_book(date: &str) -> String {
    let lent = month(&day("l.lend_time"));
    format!("case when {date} is not null then greatest({} - {lent}, 0) end", month(date))
}

fn rate(n: &str, d: &str) -> String {
    format!("round(({n})::numeric / nullif({d}, 0), 4)::numeric(9, 4)::text")
}

fn funnel_sql() -> String {
    format!(
        "{LENDING_VIEWS}, flags as (
            select borrower_id, bool_or(status >= 3) as approved, bool_or(status >= 5) as disbursed
            from l group by borrower_id
        ), f as (
            select to_char({reg}, 'YYYY-MM-DD') as reg_date, u.channel,
                   count(*) as registered, count(flags.borrower_id) as applied,
                   count(*) filter (where flags.approved) as approved, count(*) filter (where flags.disbursed) as disbursed
            from u left join flags on flags.borrower_id = u.id where u.isactive <> 0 group by 1, 2
        )
        select reg_date, channel, registered::text, applied::text, approved::text, disbursed::text,
               {pass}, {conversion}
        from f order by 1, 2",
        reg = day("u.inserttime"),
        pass = rate("approved", "applied"),
        conversion = rate("disbursed", "registered"),
    )
}

fn approval_sql() -> String {
    format!(
        "{LENDING_VIEWS}, a as (
            select to_char({applied}, 'YYYY-MM-DD') as apply_date, prod_type, count(*) as applied,
                   count(*) filter (where status = 1) as auditing, count(*) filter (where status = 2) as rejected,
                   count(*) filter (where status >= 3) as approved
            from l group by 1, 2
        )
        select apply_date, prod_type::text, applied::text, auditing::text, rejected::text, approved::text, {pass}
        from a order by 1, 2",
        applied = day("inserttime"),
        pass = rate("approved", "approved + rejected"),
    )
}

fn disbursement_sql() -> String {
    format!(
        "{LENDING_VIEWS}, d as (
            select l.*, row_number() over (partition by borrower_id order by lend_time, id) = 1 as first
            from l where status >= 5
        )
        select to_char({lent}, 'YYYY-MM-DD'), prod_type::text, count(*)::text, count(*) filter (where first)::text,
               sum(amount)::numeric(18, 2)::text
        from d group by 1, 2 order by 1, 2",
        lent = day("lend_time"),
    )
}

fn vintage_sql() -> String {
    format!(
        "{LENDING_VIEWS}, dl as (
            select {lend_month} as m, {d1} as o1, {d30} as o30
            from l left join r on r.loan_id = l.id where l.status >= 5
        ), cells as (
            select m, k from (select distinct m from dl) months, generate_series(0, 12) k
            where m + k <= (select {clock_month} from clock)
        ), v as (
            select c.m, c.k, count(*) as loans, count(*) filter (where o1 <= c.k) as o1,
                   count(*) filter (where o30 <= c.k) as o30
            from cells c join dl on dl.m = c.m group by c.m, c.k
        )
        select to_char(make_date(m / 12, m % 12 + 1, 1), 'YYYY-MM'), k::text, loans::text, o1::text, o30::text,
               {r1}, {r30}
        from v order by m, k",
        lend_month = month(&day("l.lend_time")),
        d1 = months_on_book("r.d1"),
        d30 = months_on_book("r.d30"),
        clock_month = month(&day("t")),
        r1 = rate("o1", "loans"),
        r30 = rate("o30", "loans"),
    )
}

/// The four tables lending-report must give over the raw `u_user`,
/// `loan_list` and `repay_log` values (each feed in arrival order; values
/// that are not JSON objects are skipped, as the job dead-letters them):
/// funnel, approval, disbursement and vintage rows, every column as text
/// (NULL as "∅"), in key order.
pub async fn lending_reports(users: &[&[u8]], loans: &[&[u8]], repay: &[&[u8]]) -> [Vec<Vec<String>>; 4] {
    let pool = sqlx::PgPool::connect(&postgres_url()).await.expect("connect to PostgreSQL");
    let users_table =
        load_json_rows(&pool, "expected_u_user", users, &["id", "channel", "inserttime", "updatetime", "isactive"])
            .await;
    let loan_fields = [
        "id",
        "borrower_id",
        "apply_amount",
        "loan_amount",
        "prod_type",
        "status",
        "inserttime",
        "updatetime",
        "lend_time",
    ];
    let loans_table = load_json_rows(&pool, "expected_loan_list", loans, &loan_fields).await;
    let repay_fields = ["id", "loan_id", "due_date", "event", "dpd", "create_time"];
    let repay_table = load_json_rows(&pool, "expected_repay_log", repay, &repay_fields).await;
    let mut tables = Vec::new();
    for sql in [funnel_sql(), approval_sql(), disbursement_sql(), vintage_sql()] {
        let sql =
            sql.replace("{users}", &users_table).replace("{loans}", &loans_table).replace("{repay}", &repay_table);
        let rows = sqlx::query(&sql).fetch_all(&pool).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
        tables.push(
            rows.iter()
                .map(|r| (0..r.len()).map(|i| r.get::<Option<String>, _>(i).unwrap_or_else(|| "∅".into())).collect())
                .collect(),
        );
    }
    for table in [&users_table, &loans_table, &repay_table] {
        let _ = sqlx::query(&format!("drop table if exists {table}")).execute(&pool).await;
    }
    tables.try_into().expect("four tables")
}
