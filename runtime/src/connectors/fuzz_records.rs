//! Property tests (fuzzing) of what the host reads from a record value a
//! tenant controls: the JSON event-time and key fields (file and Kafka
//! sources), the file source's lines, and raw bytes (Kafka
//! `format = "raw"`), which cross the batch to the guest unchanged. Inputs
//! come from `crate::fuzz_inputs`; see docs/SECURITY.md, "Fuzzing".

use std::time::Duration;

use proptest::prelude::*;
use serde_json::Value;

use super::file::{FileSource, FileSourceConfig};
use super::json_fields::event_time_and_key;
use super::{Source, json_field_millis};
use crate::fuzz_inputs::{self, DEEP, hostile_json, hostile_text};
use crate::job::batch::{NewRecord, RecordBatch};
use crate::wasm::bindings::{NO_EVENT_TIME, NO_KEY};

/// A field name to ask for: mostly the names the generated JSON uses, so
/// fields are found (or found twice), sometimes anything.
fn field_name() -> impl Strategy<Value = Option<String>> {
    prop::option::weighted(
        0.8,
        prop_oneof![4 => prop::sample::select(&["ts", "id", "a"][..]).prop_map(str::to_owned), 1 => hostile_text()],
    )
}

/// What a field should yield, read through `serde_json::Value` (a full,
/// independent parse) rather than the scan under test. The
/// time is `Err` where `Value` cannot tell: it reads the integer `-0` as
/// the float `-0.0`, which the decoder rightly takes as 0 ms.
fn expected(
    object: &serde_json::Map<String, Value>,
    time: Option<&str>,
    key: Option<&str>,
) -> (Result<Option<i64>, ()>, Option<String>) {
    let time = match time.and_then(|f| object.get(f)) {
        Some(Value::Number(n)) if n.is_f64() && n.as_f64() == Some(0.0) => Err(()),
        Some(Value::Number(n)) => Ok(n.as_i64()),
        Some(Value::String(s)) => Ok(s.parse().ok()),
        _ => Ok(None),
    };
    let key = key.and_then(|f| object.get(f)).map(|v| match v {
        Value::String(s) => s.clone(),
        // Other values keep their JSON text, which `Value` may re-space:
        // compared by value below.
        other => other.to_string(),
    });
    (time, key)
}

proptest! {
    #![proptest_config(fuzz_inputs::config())]

    /// Any bytes with any field names: no panic, and when the bytes are a
    /// JSON object the fields are what a full parse finds (the last of a
    /// repeated key; a string of digits as a time). Nesting deeper than
    /// serde_json's recursion limit is skipped without recursion, so it
    /// reaches here as fields, not as a stack overflow.
    #[test]
    fn fuzz_json_record_fields_match_a_full_parse(json in hostile_json(), time in field_name(), key in field_name()) {
        let (got_time, got_key) = event_time_and_key(&json, time.as_deref(), key.as_deref());
        if let Some(field) = time.as_deref() {
            prop_assert_eq!(json_field_millis(&json, field), got_time, "the Kafka source reads times the same way");
        }
        if let Ok(Value::Object(object)) = serde_json::from_slice::<Value>(&json) {
            let (want_time, want_key) = expected(&object, time.as_deref(), key.as_deref());
            if let Ok(want_time) = want_time {
                prop_assert_eq!(got_time, want_time);
            }
            match (&got_key, &want_key) {
                (Some(got), Some(want)) if !matches!(object.get(key.as_deref().unwrap()), Some(Value::String(_))) => {
                    let got: Value = serde_json::from_str(got).expect("a non-string key is its JSON text");
                    prop_assert_eq!(&got.to_string(), want);
                }
                _ => prop_assert_eq!(&got_key, &want_key),
            }
        }
        if got_time.is_some() || got_key.is_some() {
            // Fields come only from what scans as one object (what is
            // inside the values skipped is the job's decode to check).
            prop_assert_eq!(json.iter().find(|b| !b.is_ascii_whitespace()), Some(&b'{'));
            prop_assert_eq!(json.iter().rfind(|b| !b.is_ascii_whitespace()), Some(&b'}'));
        }
    }

    /// Raw records (any key, value and header bytes, any position) come
    /// back out of the batch byte for byte, both as the host reads it and
    /// in the columns the guest gets.
    #[test]
    fn fuzz_raw_records_cross_the_batch_unchanged(records in prop::collection::vec(raw_record(), 0..16)) {
        let mut batch = RecordBatch::default();
        for r in &records {
            let headers: Vec<(&str, &[u8])> = r.headers.iter().map(|(n, v)| (n.as_str(), v.as_slice())).collect();
            batch.push(NewRecord {
                key: r.key.as_deref(),
                value: &r.value,
                event_time: r.event_time,
                headers: &headers,
                source: r.source,
                partition: r.partition,
                offset: r.offset,
            });
        }
        prop_assert_eq!(batch.len(), records.len());
        let wit = batch.as_wit();
        let span = |start: u32, len: u32| &wit.data[start as usize..][..len as usize];
        let mut header = 0;
        for (i, (r, meta)) in records.iter().zip(batch.records()).enumerate() {
            prop_assert_eq!(meta.key.map(|k| batch.bytes(k)), r.key.as_deref());
            prop_assert_eq!(batch.bytes(meta.value), r.value.as_slice());
            prop_assert_eq!((meta.event_time, meta.source, meta.partition, meta.offset), (r.event_time, r.source, r.partition, r.offset));
            let headers: Vec<(&[u8], &[u8])> = batch.headers(meta).collect();
            let want: Vec<(&[u8], &[u8])> = r.headers.iter().map(|(n, v)| (n.as_bytes(), v.as_slice())).collect();
            prop_assert_eq!(headers, want);

            // The guest's view: the WIT columns.
            let m = &wit.meta[i * 6..][..6];
            let key = (m[1] != NO_KEY).then(|| span(m[0], m[1]));
            prop_assert_eq!(key, r.key.as_deref());
            prop_assert_eq!(span(m[2], m[3]), r.value.as_slice());
            prop_assert_eq!((m[4], m[5] as i32), (r.source, r.partition));
            let positions = &wit.positions[i * 2..][..2];
            prop_assert_eq!(positions[0], r.offset);
            // `i64::MIN` is the column's "no event time": the one time a
            // guest cannot be told (documented on the WIT batch).
            let time = (positions[1] != NO_EVENT_TIME).then_some(positions[1]);
            prop_assert_eq!(time, r.event_time.filter(|&t| t != NO_EVENT_TIME));
            let end = wit.header_ends.get(i).map_or(header, |&e| e as usize);
            let got: Vec<(&[u8], &[u8])> =
                wit.headers[header * 4..end * 4].chunks_exact(4).map(|h| (span(h[0], h[1]), span(h[2], h[3]))).collect();
            let want: Vec<(&[u8], &[u8])> = r.headers.iter().map(|(n, v)| (n.as_bytes(), v.as_slice())).collect();
            prop_assert_eq!(got, want);
            header = end;
        }
    }

    /// A file of any lines: every line that is not blank becomes one
    /// record holding exactly that line (without its `\n` or `\r\n`), at
    /// its line number, whatever JSON it holds or fails to be.
    #[test]
    fn fuzz_file_lines_become_records_unchanged(
        lines in prop::collection::vec(hostile_json().prop_map(|l| l.into_iter().filter(|&b| b != b'\n').collect::<Vec<u8>>()), 0..12),
        crlf in any::<bool>(),
        time in field_name(),
        key in field_name(),
    ) {
        let newline: &[u8] = if crlf { b"\r\n" } else { b"\n" };
        let mut file = Vec::new();
        for line in &lines {
            file.extend_from_slice(line);
            file.extend_from_slice(newline);
        }
        let config = FileSourceConfig { path: "-".into(), event_time_field: time.clone(), key_field: key.clone() };
        let mut source = FileSource::from_reader("fuzz", 0, Box::new(std::io::Cursor::new(file)), &config);
        let runtime = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
        let mut batch = RecordBatch::default();
        runtime.block_on(source.poll(&mut batch, lines.len() + 1, Duration::from_secs(5))).unwrap();

        let kept: Vec<(usize, &[u8])> = lines
            .iter()
            .enumerate()
            .map(|(i, l)| (i, if crlf { l.as_slice() } else { l.strip_suffix(b"\r").unwrap_or(l) }))
            .filter(|(_, l)| !l.iter().all(u8::is_ascii_whitespace))
            .collect();
        prop_assert_eq!(batch.len(), kept.len());
        for ((line_number, line), record) in kept.into_iter().zip(batch.records()) {
            prop_assert_eq!(batch.bytes(record.value), line);
            prop_assert_eq!(record.offset, line_number as i64);
            let (want_time, want_key) = event_time_and_key(line, time.as_deref(), key.as_deref());
            prop_assert_eq!(record.event_time, want_time);
            prop_assert_eq!(record.key.map(|k| batch.bytes(k)), want_key.as_deref().map(str::as_bytes));
        }
    }
}

#[derive(Debug, Clone)]
struct RawRecord {
    key: Option<Vec<u8>>,
    value: Vec<u8>,
    event_time: Option<i64>,
    headers: Vec<(String, Vec<u8>)>,
    source: u32,
    partition: i32,
    offset: i64,
}

fn raw_record() -> impl Strategy<Value = RawRecord> {
    let time = prop_oneof![4 => any::<Option<i64>>(), 1 => Just(Some(i64::MIN)), 1 => Just(Some(i64::MAX))];
    (
        prop::option::of(any::<Vec<u8>>()),
        hostile_json(),
        time,
        prop::collection::vec((hostile_text(), any::<Vec<u8>>()), 0..3),
        any::<u32>(),
        any::<i32>(),
        any::<i64>(),
    )
        .prop_map(|(key, value, event_time, headers, source, partition, offset)| RawRecord {
            key,
            value,
            event_time,
            headers,
            source,
            partition,
            offset,
        })
}

/// Headers on the first record of a batch: `header_ends` (the column that
/// tells the guest which headers are whose) was started only for a record
/// with headers that had records before it, so when the first record had
/// them the guest got no headers for the whole batch. Found by
/// `fuzz_raw_records_cross_the_batch_unchanged` (not a panic: headers lost).
#[test]
fn headers_of_a_batchs_first_record_reach_the_guest() {
    let mut batch = RecordBatch::default();
    let record =
        |headers| NewRecord { key: None, value: b"v", event_time: None, headers, source: 0, partition: 0, offset: 0 };
    batch.push(record(&[("trace", b"1")]));
    batch.push(record(&[]));
    batch.push(record(&[("", b""), ("b", b"2")]));
    let wit = batch.as_wit();
    assert_eq!(wit.header_ends, [1, 1, 3]);
    assert_eq!(wit.headers.len(), 3 * 4);
}

/// The same field named as both event time and key: before the fix the
/// decoder filled only the first slot, so the key came back empty (not a
/// panic, a wrong record key; seen while writing the property's full-parse
/// comparison, which now covers it).
#[test]
fn one_field_can_be_both_event_time_and_key() {
    let line = br#"{"id":1700000000000}"#;
    assert_eq!(
        event_time_and_key(line, Some("id"), Some("id")),
        (Some(1_700_000_000_000), Some("1700000000000".into()))
    );
}

/// Nesting far past serde_json's recursion limit, in the field asked for
/// and in one skipped: read without recursion, so neither overflows the
/// stack; the wanted field is kept as its text.
#[test]
fn deep_nesting_is_read_without_recursion() {
    let deep = format!("{}1{}", "[".repeat(DEEP), "]".repeat(DEEP));
    let skipped = format!(r#"{{"a":{deep},"ts":5}}"#);
    assert_eq!(event_time_and_key(skipped.as_bytes(), Some("ts"), None), (Some(5), None));
    let wanted = format!(r#"{{"ts":5,"id":{deep}}}"#);
    assert_eq!(event_time_and_key(wanted.as_bytes(), Some("ts"), Some("id")), (Some(5), Some(deep)));
    let unclosed = "[".repeat(DEEP);
    assert_eq!(json_field_millis(format!(r#"{{"a":{unclosed}"#).as_bytes(), "ts"), None);
}
