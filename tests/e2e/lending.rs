//! Lending risk reports (seed 004): the three generated change feeds
//! through Tansu topics into four upsert tables (PostgreSQL, then MariaDB).
//! Each table must equal a batch SQL query over the raw events in
//! PostgreSQL: state tables reduced to each row's latest version, the log
//! table folded, late, duplicated and out-of-order events included.

use sluice_gen::lending::{LOAN_STREAM, Lending, REPAY_STREAM, USER_STREAM};
use sluice_gen::{GenOptions, Scenario};

use crate::feeds::{load_json, malformed, run_job_with, specs_parse, stream, topic_of};
use crate::harness::{Db, drop_tables, text_rows, unique_table};

/// Shared views of the raw events: each state table's latest rows, the log
/// table's first overdue days, the data clock, and the local day and month
/// (UTC+8) in integer arithmetic, as the job computes them.
const VIEWS: &str = "
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
        "{VIEWS}, flags as (
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
        "{VIEWS}, a as (
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
        "{VIEWS}, d as (
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
        "{VIEWS}, dl as (
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

/// A sink table's rows, every column as text, in key order.
fn actual_sql(db: Db, table: &str, keys: &[&str], columns: &[&str]) -> String {
    let all: Vec<String> = keys.iter().chain(columns).map(|c| db.text(c)).collect();
    format!("select {} from {table} order by {}", all.join(", "), keys.join(", "))
}

#[tokio::test]
async fn lending_reports_into_postgres_and_mariadb() {
    specs_parse("lending-report");
    let options =
        GenOptions { seed: 44, count: 8000, late: 0.03, duplicated: 0.03, malformed: 0.003, ..GenOptions::default() };
    let events = Lending.generate(&options);
    let (users, loans, repay) =
        (stream(&events, USER_STREAM), stream(&events, LOAN_STREAM), stream(&events, REPAY_STREAM));
    let user_topic = topic_of("u-user", 2, &users).await;
    let loan_topic = topic_of("loan-list", 3, &loans).await;
    let repay_topic = topic_of("repay-log", 2, &repay).await;

    let (users_table, loans_table, repay_table) =
        (unique_table("u_user"), unique_table("loan_list"), unique_table("repay_log"));
    let pg = load_json(&users_table, &users, &["id", "channel", "inserttime", "updatetime", "isactive"]).await;
    load_json(
        &loans_table,
        &loans,
        &[
            "id",
            "borrower_id",
            "apply_amount",
            "loan_amount",
            "prod_type",
            "status",
            "inserttime",
            "updatetime",
            "lend_time",
        ],
    )
    .await;
    load_json(&repay_table, &repay, &["id", "loan_id", "due_date", "event", "dpd", "create_time"]).await;
    let expected_of = |sql: String| {
        sql.replace("{users}", &users_table).replace("{loans}", &loans_table).replace("{repay}", &repay_table)
    };
    let expected = [
        text_rows(&pg, &expected_of(funnel_sql())).await,
        text_rows(&pg, &expected_of(approval_sql())).await,
        text_rows(&pg, &expected_of(disbursement_sql())).await,
        text_rows(&pg, &expected_of(vintage_sql())).await,
    ];
    assert!(
        expected[0].len() > 300 && expected[3].len() > 20,
        "{} funnel, {} vintage rows",
        expected[0].len(),
        expected[3].len()
    );
    // The feed is dirty enough to matter: stale loan versions arrive after newer ones.
    let stale = text_rows(
        &pg,
        &format!(
            "select count(*)::text from (select updatetime::bigint < max(updatetime::bigint) over (partition by id order by seq::bigint) as stale
             from {loans_table}) x where stale"
        ),
    )
    .await;
    assert!(stale[0][0].parse::<u32>().unwrap() > 20, "stale loan rows: {stale:?}");

    let tables: [(&str, &[&str], &[&str], &str); 4] = [
        (
            "loan_funnel",
            &["reg_date", "channel"],
            &["registered", "applied", "approved", "disbursed", "pass_rate", "conversion_rate"],
            r#"reg_date = "varchar(10)", channel = "varchar(32)", registered = "bigint", applied = "bigint", approved = "bigint", disbursed = "bigint", pass_rate = "decimal(9,4)", conversion_rate = "decimal(9,4)""#,
        ),
        (
            "loan_approval",
            &["apply_date", "prod_type"],
            &["applied", "auditing", "rejected", "approved", "pass_rate"],
            r#"apply_date = "varchar(10)", prod_type = "bigint", applied = "bigint", auditing = "bigint", rejected = "bigint", approved = "bigint", pass_rate = "decimal(9,4)""#,
        ),
        (
            "loan_disbursement",
            &["lend_date", "prod_type"],
            &["loans", "first_loans", "amount"],
            r#"lend_date = "varchar(10)", prod_type = "bigint", loans = "bigint", first_loans = "bigint", amount = "decimal(18,2)""#,
        ),
        (
            "loan_vintage",
            &["lend_month", "mob"],
            &["loans", "overdue_1", "overdue_30", "overdue_1_rate", "overdue_30_rate"],
            r#"lend_month = "varchar(7)", mob = "bigint", loans = "bigint", overdue_1 = "bigint", overdue_30 = "bigint", overdue_1_rate = "decimal(9,4)", overdue_30_rate = "decimal(9,4)""#,
        ),
    ];

    for db in Db::ALL {
        let names: Vec<String> = tables.iter().map(|(t, ..)| unique_table(t)).collect();
        let mut spec = format!(
            r#"
            name = "lending_report"
            component = "unused.wasm"
            [sources.u_user]
            kind = "kafka"
            connection = "events"
            topic = "{user_topic}"
            bounded = true
            event_time_field = "updatetime"
            [sources.loan_list]
            kind = "kafka"
            connection = "events"
            topic = "{loan_topic}"
            bounded = true
            event_time_field = "updatetime"
            [sources.repay_log]
            kind = "kafka"
            connection = "events"
            topic = "{repay_topic}"
            bounded = true
            event_time_field = "create_time"
            "#
        );
        for ((sink, keys, _, columns), table) in tables.iter().zip(&names) {
            let keys: Vec<String> = keys.iter().map(|k| format!("{k:?}")).collect();
            spec.push_str(&format!(
                "[sinks.{sink}]\nkind = \"sql\"\nconnection = \"warehouse\"\ntable = \"{table}\"\n\
                 primary_key = [{}]\ncreate_table = true\nbatch_size = 500\ncolumns = {{ {columns} }}\n",
                keys.join(", ")
            ));
        }
        let dead = run_job_with("lending_report", &spec, db, &[]).await;
        let bad = malformed(&users) + malformed(&loans) + malformed(&repay);
        assert_eq!(dead.len(), bad, "{db:?}: the malformed events, and only they, are dead letters");

        let pool = db.pool().await;
        for (((sink, keys, columns, _), table), expected) in tables.iter().zip(&names).zip(&expected) {
            let actual = text_rows(&pool, &actual_sql(db, table, keys, columns)).await;
            assert_eq!(actual.len(), expected.len(), "{db:?}: {sink} has as many rows as the batch query");
            assert_eq!(&actual, expected, "{db:?}: {sink} equals the batch SQL over the same events");
        }
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        drop_tables(&pool, &names).await;
    }
    drop_tables(&pg, &[&users_table, &loans_table, &repay_table]).await;
}
