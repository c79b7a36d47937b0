//! Property tests (fuzzing) of the guest's side of a record: the batch
//! decoder every component runs (`export::process_batch`) and
//! `Record::json`. A raw record's bytes must reach the job exactly; a
//! corrupt batch must be refused, not panic the component; any value must
//! decode or be a record error (a dead letter), however deep or broken.
//! The host's side is fuzzed in the runtime (`connectors/fuzz_records.rs`);
//! see docs/SECURITY.md, "Fuzzing".

use proptest::prelude::*;
use proptest::test_runner::Config;

use crate::__bindings::sluice::job::types::Batch;
use crate::export::NO_EVENT_TIME;
use crate::testing::{JobTester, TestRecord};
use crate::{Context, Error, Job, Record, Result};

/// Nesting far past serde_json's recursion limit (128).
const DEEP: usize = 50_000;

fn config() -> Config {
    Config { cases: 512, failure_persistence: None, ..Config::default() }
}

/// What the job saw of one record.
#[derive(Debug, Clone, PartialEq)]
struct Seen {
    key: Option<Vec<u8>>,
    value: Vec<u8>,
    event_time: Option<i64>,
    headers: Vec<(Vec<u8>, Vec<u8>)>,
    position: (u32, i32, i64),
    /// `record.json()` as a `serde_json::Value`, or the record error.
    json: std::result::Result<serde_json::Value, String>,
}

/// Keeps every record it is given, decoding each value as JSON the way
/// job code does.
struct Capture {
    seen: Vec<Seen>,
}

impl Job for Capture {
    fn open(_: &mut Context) -> Result<Self> {
        Ok(Capture { seen: Vec::new() })
    }

    fn process(&mut self, _: &mut Context, record: &Record<'_>) -> Result<()> {
        let h = record.headers;
        let headers = h
            .spans
            .chunks_exact(4)
            .map(|s| {
                (h.data[s[0] as usize..][..s[1] as usize].to_vec(), h.data[s[2] as usize..][..s[3] as usize].to_vec())
            })
            .collect();
        let _ = record.header("x");
        let json = match record.json::<serde_json::Value>() {
            Ok(value) => Ok(value),
            Err(Error::Record(reason)) => Err(reason),
            Err(Error::Fatal(message)) => panic!("a decode error is a record error, not fatal: {message}"),
        };
        self.seen.push(Seen {
            key: record.key().map(<[u8]>::to_vec),
            value: record.value().to_vec(),
            event_time: record.event_time(),
            headers,
            position: (record.position().source, record.position().partition, record.position().offset),
            json,
        });
        Ok(())
    }
}

fn tester() -> JobTester<Capture> {
    JobTester::<Capture>::builder().open().unwrap()
}

/// A record value: any bytes, JSON text with odd numbers and strings, or
/// nesting past serde_json's recursion limit.
fn value() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        2 => any::<Vec<u8>>(),
        2 => prop::sample::select(JSON_SAMPLES).prop_map(|s| s.as_bytes().to_vec()),
        1 => any::<String>().prop_map(|s| serde_json::json!({ "s": s, "n": 1 }).to_string().into_bytes()),
        1 => (1..DEEP, any::<bool>()).prop_map(|(depth, closed)| {
            let close = if closed { "]".repeat(depth) } else { String::new() };
            format!("{}1{close}", "[".repeat(depth)).into_bytes()
        }),
    ]
}

const JSON_SAMPLES: &[&str] = &[
    r#"{"a":1,"a":2}"#,
    r#"{"n":1e309}"#,
    r#"{"n":-1e309}"#,
    r#"{"n":123456789012345678901234567890}"#,
    r#"{"n":-0}"#,
    r#"{"s":"\ud800"}"#,
    r#"{"s":"\u0000"}"#,
    "{\"s\":\"\u{10ffff}\"}",
    r#"{"a":"#,
    r#"{"a":1} trailing"#,
    "\u{feff}{}",
    "null",
    "",
];

fn record() -> impl Strategy<Value = TestRecord> {
    (
        any::<u32>(),
        any::<i32>(),
        i64::MIN..i64::MAX,
        prop::option::of(any::<Vec<u8>>()),
        value(),
        prop_oneof![3 => any::<Option<i64>>(), 1 => Just(Some(NO_EVENT_TIME))],
        prop::collection::vec((any::<String>(), any::<Vec<u8>>()), 0..3),
    )
        .prop_map(|(source, partition, offset, key, value, event_time, headers)| TestRecord {
            source,
            partition,
            offset: Some(offset),
            key,
            value,
            event_time,
            headers,
        })
}

/// A batch of `n` records whose spans point anywhere (past the data,
/// `u32::MAX`), whose header ranges may run backwards or past the end, and
/// whose columns disagree in length one time in four.
fn corrupt_batch() -> impl Strategy<Value = Batch> {
    let index = || prop_oneof![6 => 0..40u32, 1 => any::<u32>(), 1 => Just(u32::MAX)];
    (0..5usize, 0..5usize, any::<bool>(), prop::option::weighted(0.25, (0..3usize, 0..3usize)))
        .prop_flat_map(move |(n, headers, with_ends, skew)| {
            let (meta_extra, positions_extra) = skew.unwrap_or((0, 0));
            (
                prop::collection::vec(any::<u8>(), 0..32),
                prop::collection::vec(index(), n * 6 + meta_extra),
                prop::collection::vec(any::<i64>(), n * 2 + positions_extra),
                prop::collection::vec(index(), headers * 4),
                prop::collection::vec(prop_oneof![4 => 0..6u32, 1 => any::<u32>()], if with_ends { n } else { 0 }),
            )
        })
        .prop_map(|(data, meta, positions, headers, header_ends)| Batch { data, meta, positions, headers, header_ends })
}

proptest! {
    #![proptest_config(config())]

    /// Raw records (any key, value, header and position) reach the job
    /// byte for byte; `i64::MIN` is the batch's "no event time".
    #[test]
    fn fuzz_guest_gets_raw_records_unchanged(records in prop::collection::vec(record(), 0..8)) {
        let mut tester = tester();
        tester.send_batch(records.clone()).unwrap();
        let seen = &tester.job().seen;
        prop_assert_eq!(seen.len(), records.len());
        for (r, s) in records.iter().zip(seen) {
            prop_assert_eq!(&s.key, &r.key);
            prop_assert_eq!(&s.value, &r.value);
            prop_assert_eq!(s.event_time, r.event_time.filter(|&t| t != NO_EVENT_TIME));
            let headers: Vec<(Vec<u8>, Vec<u8>)> = r.headers.iter().map(|(n, v)| (n.as_bytes().to_vec(), v.clone())).collect();
            prop_assert_eq!(&s.headers, &headers);
            prop_assert_eq!(s.position, (r.source, r.partition, r.offset.unwrap()));
            // The JSON decode agrees with serde_json's own, and its error
            // says the value is not the expected JSON.
            match (&s.json, serde_json::from_slice::<serde_json::Value>(&r.value)) {
                (Ok(got), Ok(want)) => prop_assert_eq!(got, &want),
                (Err(reason), Err(_)) => prop_assert!(reason.starts_with("value is not the expected JSON"), "{}", reason),
                (got, want) => prop_assert!(false, "record.json() gave {:?}, serde_json {:?}", got, want),
            }
        }
    }

    /// Any batch at all: the records it holds in bounds, or a "corrupt
    /// batch" error, never a panic (an out-of-bounds span would trap the
    /// component).
    #[test]
    fn fuzz_guest_refuses_corrupt_batches(batch in corrupt_batch()) {
        let mut tester = tester();
        match tester.process_as_given(&batch) {
            Ok(()) => prop_assert_eq!(tester.job().seen.len(), batch.positions.len() / 2),
            Err(message) => prop_assert!(message.starts_with("corrupt batch"), "{}", message),
        }
    }
}

/// A value nested far past serde_json's recursion limit is a record
/// error (a dead letter), not a stack overflow of the component.
#[test]
fn deep_json_values_are_record_errors() {
    let mut tester = tester();
    let deep = format!("{}1{}", "[".repeat(DEEP), "]".repeat(DEEP));
    tester.send_raw(deep.as_bytes()).unwrap();
    let reason = tester.job().seen[0].json.as_ref().unwrap_err();
    assert!(reason.contains("recursion limit"), "{reason}");
}
