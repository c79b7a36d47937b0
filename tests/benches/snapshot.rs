//! Snapshot cost with large state: 1M keys of ~100-byte values in one value
//! state, as the host keeps it. Measures, in one run: the snapshot pause
//! (image of the live state + encoding + durable write), its size, and the
//! restore time (read + checksum + decode + rebuilding the tables).
//!
//! `cargo bench -p sluice-tests --bench snapshot` (`BENCH_KEYS` to change
//! the key count). Snapshots are full: incremental ones are not built yet.

use std::time::{Duration, Instant};

use sluice_runtime::snapshot::{LocalSnapshotStore, Snapshot, SnapshotMeta, SnapshotStore, Trigger};
use sluice_runtime::state::StateBackend;
use sluice_runtime::wasm::bindings::StateKind;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

#[tokio::main]
async fn main() {
    let keys: usize = std::env::var("BENCH_KEYS").ok().and_then(|v| v.parse().ok()).unwrap_or(1_000_000);
    let mut state = StateBackend::default();
    let handle = state.declare("profile", StateKind::Value, None).unwrap();
    let value = |i: usize, round: usize| format!("{{\"user\":\"user-{i:08}\",\"round\":{round},\"balance\":{}.25,\"tier\":\"gold\",\"flags\":[1,2,3]}}", i * 7 % 100_000);
    for i in 0..keys {
        state.set(handle, format!("user-{i:08}").into_bytes(), value(i, 0).into_bytes(), 0).unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let store = LocalSnapshotStore::new(dir.path());

    // Each round changes 1% of the keys, then snapshots (what the task does
    // between two batches).
    let mut pauses = Vec::new();
    let mut size = 0;
    for round in 1..=5 {
        for i in (0..keys).step_by(100).map(|i| (i + round) % keys) {
            state.set(handle, format!("user-{i:08}").into_bytes(), value(i, round).into_bytes(), 0).unwrap();
        }
        let started = Instant::now();
        let snapshot = Snapshot {
            meta: SnapshotMeta {
                id: format!("0000000000000-{round:06}"),
                job: "bench".into(),
                job_version: "v".into(),
                created_ms: 0,
                trigger: Trigger::Periodic,
                positions: Vec::new(),
            },
            state: state.image(0),
            timers: Vec::new(),
            event_times: Vec::new(),
            watermark: None,
        };
        store.put(&snapshot, 2).await.unwrap();
        pauses.push(started.elapsed());
        size = snapshot.encode().len();
    }
    pauses.sort();

    let started = Instant::now();
    let snapshot = store.latest("bench").await.unwrap().unwrap();
    let restored = StateBackend::restore(snapshot.state);
    let restore = started.elapsed();
    assert_eq!(restored.tables()[0].len(), keys);

    println!("{keys} keys, ~{} bytes per value, 1% changed per snapshot, full snapshots\n", value(0, 0).len());
    println!("| measure | value |");
    println!("|---|---|");
    println!("| snapshot pause p50 | {:.0} ms |", percentile(&pauses, 0.5).as_secs_f64() * 1e3);
    println!("| snapshot pause p99 (max of 5) | {:.0} ms |", percentile(&pauses, 0.99).as_secs_f64() * 1e3);
    println!("| snapshot size | {:.1} MB |", size as f64 / 1e6);
    println!("| restore (read, check, decode, rebuild) | {:.0} ms |", restore.as_secs_f64() * 1e3);
}
