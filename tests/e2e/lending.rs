//! Lending risk reports (seed 004): the three generated change feeds
//! through Tansu topics into four upsert tables (PostgreSQL, then MariaDB).
//! Each table must equal a batch SQL query over the raw events in
//! PostgreSQL: state tables reduced to each row's latest version, the log
//! table folded, late, duplicated and out-of-order events included. The
//! job's staged form (`jobs/lending-report-staged`) gives the same tables
//! at 1, 2 and 4 tasks per stage.

use sluice_gen::lending::{LOAN_STREAM, Lending, REPAY_STREAM, USER_STREAM};
use sluice_gen::{Event, GenOptions, Scenario};
use sluice_runtime::job::JobSpec;
use sluice_runtime::job::stages::StageTopics;
use sluice_tests::kafka::{create_topic, topic_census, unique_topic};
use sluice_tests::services::kafka_brokers;

use crate::feeds::{malformed, run_job_with, run_stage, specs_parse, stream, topic_of};
use crate::harness::{Db, drop_tables, text_rows, unique_table};

/// A sink table's rows, every column as text, in key order.
fn actual_sql(db: Db, table: &str, keys: &[&str], columns: &[&str]) -> String {
    let all: Vec<String> = keys.iter().chain(columns).map(|c| db.text(c)).collect();
    format!("select {} from {table} order by {}", all.join(", "), keys.join(", "))
}

/// The sink tables: name, key columns, value columns, column types.
type Table = (&'static str, &'static [&'static str], &'static [&'static str], &'static str);

const TABLES: [Table; 4] = [
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

/// Generated feeds (8000 events: 3% late, 3% duplicated, 0.3% malformed)
/// in Tansu topics, and the tables the batch SQL gives over their raw
/// events in PostgreSQL (`sluice_tests::seed_sql::lending_reports`).
struct Feeds {
    events: Vec<Event>,
    /// u_user, loan_list, repay_log
    topics: [String; 3],
    expected: [Vec<Vec<String>>; 4],
}

impl Feeds {
    /// The feeds in topics of `partitions` partitions each (u_user,
    /// loan_list, repay_log); users keyed by user id, the others by loan id.
    async fn new(partitions: [i32; 3]) -> Feeds {
        let options = GenOptions {
            seed: 44,
            count: 8000,
            late: 0.03,
            duplicated: 0.03,
            malformed: 0.003,
            ..GenOptions::default()
        };
        let events = Lending.generate(&options);
        let (users, loans, repay) =
            (stream(&events, USER_STREAM), stream(&events, LOAN_STREAM), stream(&events, REPAY_STREAM));
        let topics = [
            topic_of("u-user", partitions[0], &users).await,
            topic_of("loan-list", partitions[1], &loans).await,
            topic_of("repay-log", partitions[2], &repay).await,
        ];
        let values = |events: &[&Event]| events.iter().map(|e| e.value.clone()).collect::<Vec<Vec<u8>>>();
        let (u, l, r) = (values(&users), values(&loans), values(&repay));
        let expected = sluice_tests::seed_sql::lending_reports(&slices(&u), &slices(&l), &slices(&r)).await;
        assert!(
            expected[0].len() > 300 && expected[3].len() > 20,
            "{} funnel, {} vintage rows",
            expected[0].len(),
            expected[3].len()
        );
        Feeds { events, topics, expected }
    }

    /// The malformed events: what the job must dead-letter.
    fn malformed(&self) -> usize {
        [USER_STREAM, LOAN_STREAM, REPAY_STREAM].iter().map(|s| malformed(&stream(&self.events, s))).sum()
    }

    /// The job over the topics into the tables `names` (in `TABLES` order).
    fn spec(&self, names: &[String]) -> String {
        let [user_topic, loan_topic, repay_topic] = &self.topics;
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
        for ((sink, keys, _, columns), table) in TABLES.iter().zip(names) {
            let keys: Vec<String> = keys.iter().map(|k| format!("{k:?}")).collect();
            spec.push_str(&format!(
                "[sinks.{sink}]\nkind = \"sql\"\nconnection = \"warehouse\"\ntable = \"{table}\"\n\
                 primary_key = [{}]\ncreate_table = true\nbatch_size = 500\ncolumns = {{ {columns} }}\n",
                keys.join(", ")
            ));
        }
        spec
    }

    /// Checks the tables `names` of `db` equal the batch SQL's, and drops them.
    async fn check_tables(&self, db: Db, names: &[String], what: &str) {
        let pool = db.pool().await;
        let mut differences = Vec::new();
        for (((sink, keys, columns, _), table), expected) in TABLES.iter().zip(names).zip(&self.expected) {
            let actual = text_rows(&pool, &actual_sql(db, table, keys, columns)).await;
            if &actual != expected {
                differences.push(format!("{sink}: {} rows, the batch query {}", actual.len(), expected.len()));
            }
        }
        let tables: Vec<&str> = names.iter().map(String::as_str).collect();
        drop_tables(&pool, &tables).await;
        assert!(
            differences.is_empty(),
            "{what}: tables differ from the batch SQL over the same events: {differences:?}"
        );
    }
}

fn slices(values: &[Vec<u8>]) -> Vec<&[u8]> {
    values.iter().map(Vec::as_slice).collect()
}

fn table_names() -> Vec<String> {
    TABLES.iter().map(|(t, ..)| unique_table(t)).collect()
}

#[tokio::test]
async fn lending_reports_into_postgres_and_mariadb() {
    specs_parse("lending-report");
    let feeds = Feeds::new([2, 3, 2]).await;
    // The feed is dirty enough to matter: stale loan versions arrive after newer ones.
    let mut newest: std::collections::HashMap<i64, i64> = std::collections::HashMap::new();
    let stale = stream(&feeds.events, LOAN_STREAM)
        .iter()
        .filter_map(|e| serde_json::from_slice::<serde_json::Value>(&e.value).ok())
        .filter(|row| {
            let (id, time) = (row["id"].as_i64().unwrap(), row["updatetime"].as_i64().unwrap());
            let held = newest.entry(id).or_insert(time);
            let stale = time < *held;
            *held = (*held).max(time);
            stale
        })
        .count();
    assert!(stale > 20, "stale loan rows: {stale}");

    for db in Db::ALL {
        let names = table_names();
        let dead = run_job_with("lending_report", &feeds.spec(&names), db, &[]).await;
        assert_eq!(dead.len(), feeds.malformed(), "{db:?}: the malformed events, and only they, are dead letters");
        feeds.check_tables(db, &names, &format!("{db:?}")).await;
    }
}

/// The staged form (issue 19: records routed, loans by loan id, borrowers
/// by user id, then report cells, through three repartition topics) at 1,
/// 2 and 4 tasks per stage over co-partitioned topics of four partitions,
/// and with its first stage run twice (a full replay, whose rows the second
/// stage drops).
#[tokio::test]
async fn staged_lending_reports_give_the_sql_at_every_parallelism() {
    const COMPONENT: &str = "lending_report_staged";
    let feeds = Feeds::new([4, 4, 4]).await;
    for (tasks, replay) in [(1, false), (2, false), (4, false), (2, true)] {
        let names = table_names();
        let spec = JobSpec::parse(&feeds.spec(&names), std::path::Path::new(".")).expect("spec");
        let topics = StageTopics { connection: "events".into(), prefix: unique_topic("lending-stages"), bounded: true };
        for stage in [1, 2, 3] {
            create_topic(&kafka_brokers(), &topics.topic(stage), 4).await;
        }
        let what = format!("{tasks} tasks per stage (replay: {replay})");
        // Only on a failed count: what the stage's input topic holds.
        let census = |stage| topic_census(&kafka_brokers(), &topics.topic(stage), 4);
        let route = run_stage(COMPONENT, &spec, &topics, (0, 4), tasks).await;
        assert_eq!(route.rejected, feeds.malformed(), "{what}: the malformed events are the dead letters");
        if replay {
            run_stage(COMPONENT, &spec, &topics, (0, 4), tasks).await;
        }
        let loans = run_stage(COMPONENT, &spec, &topics, (1, 4), tasks).await;
        if replay {
            // Every record's rows again, with the same ids (clock rows may
            // differ, and change nothing).
            assert!(loans.dropped * 10 >= route.sent * 9, "{what}: the replay was dropped: {loans:?} of {route:?}");
        } else {
            assert_eq!((loans.read, loans.dropped), (route.sent, 0), "{what}: {}", census(1));
        }
        let borrowers = run_stage(COMPONENT, &spec, &topics, (2, 4), tasks).await;
        assert_eq!(
            (borrowers.read, borrowers.dropped, borrowers.rejected),
            (loans.sent, 0, 0),
            "{what}: {}",
            census(2)
        );
        let cells = run_stage(COMPONENT, &spec, &topics, (3, 4), tasks).await;
        assert_eq!((cells.read, cells.dropped, cells.rejected), (borrowers.sent, 0, 0), "{what}: {}", census(3));
        feeds.check_tables(Db::Postgres, &names, &what).await;
    }
}
