//! Job throughput, WASM component vs the same logic in native Rust, side by
//! side in one run (machines are noisy; ratios are what to compare).
//!
//! `cargo bench -p sluice-tests --bench throughput`
//!
//! (a) a stateless filter: decode a ~100-byte JSON transaction, forward it
//!     unchanged when amount > 500 (about half);
//! (b) a keyed count in host state: get + set of a counter per record key.
//!
//! The WASM side is the runtime's real path for a batch: the batch crosses
//! into the guest in one call, the SDK decodes records, state calls are host
//! imports, and emitted rows are copied back out. The native side runs the
//! same decoding and logic on the same bytes, with state in a hash map of
//! JSON-encoded values as the host keeps it.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hashbrown::HashMap;
use sluice_runtime::job::batch::{NewRecord, RecordBatch};
use sluice_runtime::metrics::TaskMetrics;
use sluice_runtime::wasm::host::{HostState, JobInfo};
use sluice_runtime::wasm::{JobInstance, JobLimits};

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

async fn open(component: &str, sinks: &[&str]) -> JobInstance {
    let loaded = sluice_tests::load(component).await.expect("fixture builds");
    let info = Arc::new(JobInfo {
        name: component.into(),
        sinks: sinks.iter().map(|s| s.to_string()).collect(),
        sources: vec!["input".into()],
        ..Default::default()
    });
    let limits = JobLimits::default();
    let host = HostState::new(info, Vec::new(), Arc::new(TaskMetrics::default()), limits.memory_bytes);
    JobInstance::open(sluice_tests::engine(), &loaded, host, limits).await.expect("opens")
}

fn native_filter(batch: &RecordBatch, out: &mut Vec<Vec<u8>>) {
    for meta in batch.records() {
        let value = batch.bytes(meta.value);
        let Ok(txn) = serde_json::from_slice::<bench_filter::Txn>(value) else { continue };
        if txn.amount > bench_filter::THRESHOLD && !txn.user.is_empty() {
            out.push(value.to_vec());
        }
    }
}

fn native_count(batch: &RecordBatch, state: &mut HashMap<Vec<u8>, Vec<u8>>) {
    for meta in batch.records() {
        let key = batch.bytes(meta.key.expect("keyed"));
        let n: u64 = state.get(key).map_or(0, |v| serde_json::from_slice(v).expect("u64"));
        state.insert(key.to_vec(), serde_json::to_vec(&(n + 1)).expect("serializes"));
    }
}

fn row(bench: &str, batch: usize, wasm: f64, native: f64) {
    println!("| {bench} | {batch} | {:.2} M/s | {:.2} M/s | {:.0}% |", wasm / 1e6, native / 1e6, 100.0 * wasm / native);
}

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tokio runtime");
    let n = 16 * 1024;
    let data = records(n);
    let avg = data.iter().map(|(_, v)| v.len()).sum::<usize>() / n;
    println!("{n} records of ~{avg} bytes JSON, {KEYS} keys; best of {ROUNDS} runs of >= {MIN_TIME:?}\n");
    println!("| job | batch | WASM | native | WASM/native |");
    println!("|---|---|---|---|---|");

    let mut filter = rt.block_on(open("bench_filter", &["large"]));
    let mut count = rt.block_on(open("bench_count", &[]));
    for size in BATCH_SIZES {
        let batches = batches(&data, size);
        let wasm = measure("filter-wasm", n, || {
            for b in &batches {
                rt.block_on(filter.process(b.as_wit())).expect("filter runs");
                black_box(filter.take_output());
            }
        });
        let native = measure("filter-native", n, || {
            let mut out = Vec::new();
            for b in &batches {
                native_filter(b, &mut out);
                black_box(&mut out).clear();
            }
        });
        row("stateless filter", size, wasm, native);

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
