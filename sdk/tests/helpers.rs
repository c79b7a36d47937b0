//! The SDK's helpers and state, through the native harness.

use std::time::Duration;

use serde_json::json;
use sluice_sdk::prelude::*;
use sluice_sdk::testing::{JobTester, TestRecord};

/// Counts per user in 10-second processing-time windows; remembers the last
/// page per user for 5 s (TTL); counts distinct pages per user, with removal.
struct Probe {
    window: TumblingWindow<u64>,
    last_page: LastValue<String>,
    recent: ValueState<String>,
    pages: CountDistinct,
}

#[derive(serde::Deserialize)]
struct Visit {
    user: String,
    page: String,
    #[serde(default)]
    leave: bool,
}

impl Job for Probe {
    fn open(ctx: &mut Context) -> Result<Self> {
        Ok(Probe {
            window: TumblingWindow::open(ctx, "ten_seconds", Duration::from_secs(10), TimeDomain::ProcessingTime)?,
            last_page: LastValue::open(ctx, "last_page")?,
            recent: ctx.value_state_with("recent", StateOptions::ttl(Duration::from_secs(5)))?,
            pages: CountDistinct::open(ctx, "pages")?,
        })
    }

    fn process(&mut self, ctx: &mut Context, record: &Record) -> Result<()> {
        let v: Visit = record.json()?;
        let now = ctx.processing_time();
        self.window.add(ctx, &v.user, now, |n| *n += 1)?;
        let previous = self.last_page.update(ctx, &v.user, &v.page)?;
        self.recent.set(ctx, &v.user, &v.page)?;
        if v.leave {
            self.pages.remove(ctx, &v.user, &v.page)?;
        } else {
            self.pages.add(ctx, &v.user, &v.page)?;
        }
        let distinct = self.pages.count(ctx, &v.user);
        ctx.emit("visits", &json!({"user": v.user, "previous": previous, "distinct": distinct}))
    }

    fn on_timer(&mut self, ctx: &mut Context, timer: &Timer) -> Result<()> {
        if let Some(w) = self.window.fire(ctx, timer)? {
            ctx.emit("windows", &json!({"user": String::from_utf8_lossy(&w.key), "start": w.start, "count": w.value}))?;
        }
        Ok(())
    }
}

fn visit(user: &str, page: &str) -> serde_json::Value {
    json!({"user": user, "page": page})
}

fn tester() -> JobTester<Probe> {
    JobTester::<Probe>::builder().sink("visits").sink("windows").processing_time(1_000).open().unwrap()
}

#[test]
fn processing_time_windows_fire_when_the_clock_passes_their_end() {
    let mut t = tester();
    t.send_json(visit("ann", "a")).unwrap();
    t.send_json(visit("ann", "b")).unwrap();
    t.advance_processing_time(5_000).unwrap(); // now 6s: window [0, 10s) still open
    assert!(t.emitted("windows").is_empty());
    t.advance_processing_time(4_000).unwrap(); // now 10s: past 9,999 ms
    assert_eq!(t.emitted("windows"), vec![json!({"user": "ann", "start": 0, "count": 2})]);
    t.send_json(visit("ann", "c")).unwrap(); // lands in [10s, 20s)
    t.advance_processing_time(10_000).unwrap();
    assert_eq!(t.emitted("windows").len(), 2);
}

#[test]
fn last_value_returns_what_it_replaced() {
    let mut t = tester();
    t.send_json(visit("ann", "a")).unwrap();
    t.send_json(visit("ann", "b")).unwrap();
    let visits = t.emitted("visits");
    assert_eq!(visits[0]["previous"], json!(null));
    assert_eq!(visits[1]["previous"], json!("a"));
    assert_eq!(t.value_state::<String>("last_page", "ann").as_deref(), Some("b"));
}

#[test]
fn count_distinct_counts_multiplicities_and_retracts() {
    let mut t = tester();
    for page in ["a", "a", "b"] {
        t.send_json(visit("ann", page)).unwrap();
    }
    t.send_json(json!({"user": "ann", "page": "a", "leave": true})).unwrap();
    t.send_json(json!({"user": "ann", "page": "b", "leave": true})).unwrap();
    let distinct: Vec<_> = t.emitted("visits").iter().map(|v| v["distinct"].as_u64().unwrap()).collect();
    assert_eq!(distinct, vec![1, 1, 2, 2, 1], "one `a` is still there after one removal");
}

#[test]
fn ttl_hides_state_not_written_for_longer_than_the_ttl() {
    let mut t = tester();
    t.send_json(visit("ann", "a")).unwrap();
    assert_eq!(t.value_state::<String>("recent", "ann").as_deref(), Some("a"));
    t.advance_processing_time(4_999).unwrap();
    assert!(t.value_state::<String>("recent", "ann").is_some());
    t.advance_processing_time(1).unwrap();
    assert_eq!(t.value_state::<String>("recent", "ann"), None, "expired after 5 s");
    assert_eq!(t.value_state::<String>("last_page", "ann").as_deref(), Some("a"), "no TTL: kept");
}

#[test]
fn bad_records_become_dead_letters_with_their_position() {
    let mut t = tester();
    t.send_batch(vec![
        TestRecord::json(&visit("ann", "a")),
        TestRecord { value: b"{".to_vec(), partition: 2, ..Default::default() },
        TestRecord::json(&json!({"user": "bob"})),
    ])
    .unwrap();
    let dead = t.dead_letters();
    assert_eq!(dead.len(), 2);
    assert_eq!((dead[0].position.partition, dead[0].position.offset), (2, 0));
    assert!(dead[1].reason.contains("page"), "names the missing field: {}", dead[1].reason);
    assert_eq!(t.emitted("visits").len(), 1);
}

struct Params;

impl Job for Params {
    fn open(ctx: &mut Context) -> Result<Self> {
        let _: f64 = ctx.param_or("ratio", 0.15)?;
        Ok(Params)
    }
    fn process(&mut self, _: &mut Context, _: &Record) -> Result<()> {
        Ok(())
    }
}

#[test]
fn a_parameter_that_does_not_parse_fails_open_naming_it() {
    let err = JobTester::<Params>::builder().param("ratio", "lots").open().err().unwrap();
    assert!(err.contains("ratio") && err.contains("lots"), "{err}");
    assert!(JobTester::<Params>::builder().param("ratio", "0.2").open().is_ok());
}

#[test]
fn emitting_to_an_undeclared_sink_fails_the_job_and_names_the_sinks() {
    let mut t = JobTester::<Probe>::builder().sink("windows").open().unwrap();
    let err = t.send_json(visit("ann", "a")).unwrap_err();
    assert!(err.contains("visits") && err.contains("windows"), "{err}");
}

#[test]
fn keys_encode_readably() {
    assert_eq!(&*42i64.key_bytes(), b"42");
    assert_eq!(&*("acct", 7u32).key_bytes(), b"acct|7");
    assert_eq!(&*"x".key_bytes(), b"x");
    assert_ne!(("a|b", "c").key_bytes(), ("a", "b|c").key_bytes(), "parts are escaped");
    assert_eq!(&*("a|b", "c").key_bytes(), br"a\|b|c");
}

/// A function job is declared `ByRecordKey` because it keeps no state: one
/// that tries to declare state while processing is refused (the runtime
/// refuses a declaration after `open` too), so it cannot hold a total over
/// keys and run split across parallel tasks.
#[sluice_sdk::job]
fn sneaky_total(ctx: &mut Context, _record: &Record) -> Result<()> {
    let total: ValueState<u64> = ctx.value_state("total")?;
    let sum = total.get(ctx, "all")?.unwrap_or(0) + 1;
    total.set(ctx, "all", &sum)
}

#[test]
fn state_is_declared_in_open_only() {
    assert_eq!(SneakyTotal::STATE_KEYING, StateKeying::ByRecordKey);
    assert_eq!(Params::STATE_KEYING, StateKeying::Global, "the default");
    let mut t = JobTester::<SneakyTotal>::builder().open().unwrap();
    let err = t.send_json(json!({ "n": 1 })).expect_err("refused");
    assert!(err.contains("state `total` is declared after `open`"), "{err}");
}
