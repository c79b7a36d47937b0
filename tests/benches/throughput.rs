//! Job throughput, WASM component vs the same logic in native Rust, side by
//! side in one run (machines are noisy; ratios are what to compare).
//!
//! `cargo bench -p sluice-tests --bench throughput`
//!
//! (a) a stateless filter: decode a ~100-byte JSON transaction into a
//!     borrowed struct of the two fields it reads, forward it unchanged when
//!     amount > 500 (about half);
//! (a2) a stateless filter that reads no value: forward the records whose
//!     key is on a watch list (half of the keys), what the platform costs
//!     per record when the job itself does little;
//! (b) a keyed count in host state: get + set of a counter per record key.
//!
//! The WASM side is the runtime's real path for a batch: the batch crosses
//! into the guest in one call, the SDK decodes records, state reads are host
//! imports and writes one host call per batch, and the emitted rows are
//! copied out for the sinks as the task does. The native side runs the same
//! decoding and logic (the guest crates' own functions) on the same bytes,
//! copies the kept records out as rows, and keeps state in a hash map of
//! JSON-encoded values as the host does.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hashbrown::HashMap;
use sluice_runtime::job::batch::{NewRecord, RecordBatch};
use sluice_runtime::metrics::TaskMetrics;
use sluice_runtime::wasm::host::{HostState, JobInfo};
use sluice_runtime::wasm::{JobInstance, JobLimits};
use sluice_sdk::{Position, Record};

const BATCH_SIZES: [usize; 3] = [1, 64, 1024];
const KEYS: u64 = 10_000;
/// Each measurement runs at least this long (best of `ROUNDS`).
const MIN_TIME: Duration = Duration::from_millis(400);
const ROUNDS: usize = 3;

fn records(n: usize) -> Vec<(Vec<u8>, Vec<u8>)> {
    (0..n as u64)
        .map(|i| {
            let user = (i * 7919) % KEYS;
            let value = format!(
                r#"{{"id":{i},"user":"user-{user:05}","amount":{}.{:02},"currency":"CNY","channel":"app","ts":{}}}"#,
                (i * 37) % 1000,
                i % 100,
                1_700_000_000_000 + i as i64
            );
            (format!("user-{user:05}").into_bytes(), value.into_bytes())
        })
        .collect()
}

fn batches(records: &[(Vec<u8>, Vec<u8>)], size: usize) -> Vec<RecordBatch> {
    records
        .chunks(size)
        .enumerate()
        .map(|(b, chunk)| {
            let mut batch = RecordBatch::with_capacity(size, size * 128);
            for (i, (key, value)) in chunk.iter().enumerate() {
                batch.push(NewRecord {
                    key: Some(key),
                    value,
                    event_time: None,
                    headers: &[],
                    source: 0,
                    partition: 0,
                    offset: (b * size + i) as i64,
                });
            }
            batch
        })
        .collect()
}

/// Whether series `name` runs: all, unless `BENCH_ONLY` names some
/// (comma-separated, e.g. `count-wasm` to profile one).
fn selected(name: &str) -> bool {
    std::env::var("BENCH_ONLY").map_or(true, |only| only.split(',').any(|o| o == name))
}

/// The batch sizes to run: all, unless `BENCH_BATCH` names some
/// (comma-separated, e.g. `1024`).
fn batch_sizes() -> Vec<usize> {
    match std::env::var("BENCH_BATCH") {
        Ok(only) => only.split(',').map(|s| s.trim().parse().expect("BENCH_BATCH: batch sizes")).collect(),
        Err(_) => BATCH_SIZES.to_vec(),
    }
}

/// Records per second of `run` over `n` records, best of ROUNDS; 0 when the
/// series is not selected.
fn measure(name: &str, n: usize, mut run: impl FnMut()) -> f64 {
    if !selected(name) {
        return 0.0;
    }
    let mut best = 0f64;
    for _ in 0..ROUNDS {
        let started = Instant::now();
        let mut done = 0;
        while started.elapsed() < MIN_TIME {
            run();
            done += n;
        }
        best = best.max(done as f64 / started.elapsed().as_secs_f64());
    }
    best
}

/// Loads a guest: the fixture, or the one in `BENCH_WASM_DIR` (to compare
/// builds of the same guest, e.g. with other compiler settings).
async fn open(component: &str, sinks: &[&str], parameters: Vec<(String, String)>) -> JobInstance {
    let loaded = match std::env::var_os("BENCH_WASM_DIR") {
        Some(dir) => {
            let path = std::path::Path::new(&dir).join(format!("{component}.wasm"));
            sluice_tests::engine().load_file(&path).await.expect("BENCH_WASM_DIR holds the guest")
        }
        None => sluice_tests::load(component).await.expect("fixture builds"),
    };
    let info = Arc::new(JobInfo {
        name: component.into(),
        sinks: sinks.iter().map(|s| s.to_string()).collect(),
        sources: vec!["input".into()],
        parameters,
        ..Default::default()
    });
    let limits = JobLimits::default();
    let host = HostState::new(info, Vec::new(), Arc::new(TaskMetrics::default()), limits);
    JobInstance::open(sluice_tests::engine(), &loaded, host, limits).await.expect("opens")
}

/// An output row as a sink receives it: key and value bytes of its own.
type Row = (Option<Vec<u8>>, Vec<u8>);

/// The job's logic on the same bytes, the kept records copied out as rows
/// for a sink.
fn native_filter(batch: &RecordBatch, out: &mut Vec<Row>) {
    for meta in batch.records() {
        let (key, value) = (meta.key.map(|k| batch.bytes(k)), batch.bytes(meta.value));
        let position = Position { source: meta.source, partition: meta.partition, offset: meta.offset };
        let record = Record::new(key, value, meta.event_time, position);
        if let Ok(true) = bench_filter::is_large(&record) {
            out.push((key.map(<[u8]>::to_vec), value.to_vec()));
        }
    }
}

/// The watch-list filter's logic on the same records, copied out likewise.
fn native_watchlist(accounts: &bench_watchlist::Accounts, batch: &RecordBatch, out: &mut Vec<Row>) {
    for meta in batch.records() {
        let (key, value) = (meta.key.map(|k| batch.bytes(k)), batch.bytes(meta.value));
        let position = Position { source: meta.source, partition: meta.partition, offset: meta.offset };
        let record = Record::new(key, value, meta.event_time, position);
        if bench_watchlist::is_watched(accounts, &record) {
            out.push((key.map(<[u8]>::to_vec), value.to_vec()));
        }
    }
}

/// What the task does with a call's output before the sinks see it: the
/// rows, their bytes copied out (of the output, or of the batch for
/// forwarded records).
fn wasm_rows(instance: &mut JobInstance, batch: &RecordBatch, out: &mut Vec<Row>) {
    let rows = instance.output().rows(&batch.as_wit().data);
    out.extend(rows.map(|r| (r.key.map(<[u8]>::to_vec), r.value.to_vec())));
    instance.clear_output();
}

/// As the host keeps state: JSON values in a hash map, a key already held
/// overwritten in place.
fn native_count(batch: &RecordBatch, state: &mut HashMap<Vec<u8>, Vec<u8>>) {
    for meta in batch.records() {
        let key = batch.bytes(meta.key.expect("keyed"));
        match state.get_mut(key) {
            Some(value) => {
                let n: u64 = serde_json::from_slice(value).expect("u64");
                value.clear();
                serde_json::to_writer(&mut *value, &(n + 1)).expect("serializes");
            }
            None => {
                state.insert(key.to_vec(), serde_json::to_vec(&1u64).expect("serializes"));
            }
        }
    }
}

fn row(bench: &str, batch: usize, wasm: f64, native: f64) {
    println!("| {bench} | {batch} | {:.2} M/s | {:.2} M/s | {:.0}% |", wasm / 1e6, native / 1e6, 100.0 * wasm / native);
}

/// Runs a filter, `one` per batch, over all `batches`. `keep`: the rows of
/// all batches stay in `out` (to compare the two sides); otherwise they are
/// dropped after each batch, as a sink takes them.
fn filter_pass(
    batches: &[RecordBatch],
    out: &mut Vec<Row>,
    keep: bool,
    mut one: impl FnMut(&RecordBatch, &mut Vec<Row>),
) {
    for b in batches {
        one(b, out);
        if !keep {
            black_box(&mut *out).clear();
        }
    }
}

/// Measures a filter's WASM and native sides and prints their row, after
/// checking that both keep the same records (or the figures would compare
/// different work).
fn compare_filters(
    bench: &str,
    series: &str,
    batches: &[RecordBatch],
    n: usize,
    mut wasm: impl FnMut(&RecordBatch, &mut Vec<Row>),
    mut native: impl FnMut(&RecordBatch, &mut Vec<Row>),
) {
    let (mut wasm_out, mut native_out) = (Vec::new(), Vec::new());
    filter_pass(batches, &mut wasm_out, true, &mut wasm);
    filter_pass(batches, &mut native_out, true, &mut native);
    assert!(wasm_out == native_out && wasm_out.len() > n / 3, "{bench}: WASM and native keep different rows");

    let mut out = Vec::new();
    let wasm = measure(&format!("{series}-wasm"), n, || filter_pass(batches, &mut out, false, &mut wasm));
    let native = measure(&format!("{series}-native"), n, || filter_pass(batches, &mut out, false, &mut native));
    row(bench, batches[0].len(), wasm, native);
}

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tokio runtime");
    let n = 16 * 1024;
    let data = records(n);
    let avg = data.iter().map(|(_, v)| v.len()).sum::<usize>() / n;
    println!("{n} records of ~{avg} bytes JSON, {KEYS} keys; best of {ROUNDS} runs of >= {MIN_TIME:?}\n");
    println!("| job | batch | WASM | native | WASM/native |");
    println!("|---|---|---|---|---|");

    // Half of the keys are watched.
    let watched = (0..KEYS / 2).map(|user| format!("user-{user:05}")).collect::<Vec<_>>().join(",");
    let accounts = bench_watchlist::accounts(&watched);
    let mut filter = rt.block_on(open("bench_filter", &["large"], Vec::new()));
    let mut watchlist = rt.block_on(open("bench_watchlist", &["watched"], vec![("accounts".into(), watched)]));
    let mut count = rt.block_on(open("bench_count", &[], Vec::new()));
    for size in batch_sizes() {
        let batches = batches(&data, size);
        compare_filters(
            "stateless filter (JSON field)",
            "filter",
            &batches,
            n,
            |b, out| {
                rt.block_on(filter.process(b.as_wit())).expect("filter runs");
                wasm_rows(&mut filter, b, out);
            },
            native_filter,
        );
        compare_filters(
            "stateless filter (key on a watch list)",
            "watchlist",
            &batches,
            n,
            |b, out| {
                rt.block_on(watchlist.process(b.as_wit())).expect("watch list runs");
                wasm_rows(&mut watchlist, b, out);
            },
            |b, out| native_watchlist(&accounts, b, out),
        );

        let wasm = measure("count-wasm", n, || {
            for b in &batches {
                rt.block_on(count.process(b.as_wit())).expect("count runs");
            }
        });
        let mut state = HashMap::new();
        let native = measure("count-native", n, || {
            for b in &batches {
                native_count(b, &mut state);
            }
        });
        row("keyed count (host state)", size, wasm, native);
    }
}
