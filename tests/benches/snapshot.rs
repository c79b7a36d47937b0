//! Snapshot cost with large state: 1M keys of ~100-byte values in one value
//! state, as the host keeps it. Measures, in one run: the snapshot pause
//! (image of the live state + encoding + durable write), its size, and the
//! restore time (read + checksum + decode + rebuilding the tables).
//!
//! Full and incremental snapshots are measured side by side on the same
//! state. `cargo bench -p sluice-tests --bench snapshot` (`BENCH_KEYS` to
//! change the key count).

use std::time::{Duration, Instant};

use sluice_runtime::snapshot::{LocalSnapshotStore, Snapshot, SnapshotMeta, SnapshotStore, Trigger};
use sluice_runtime::state::StateBackend;
use sluice_runtime::wasm::bindings::StateKind;

#[tokio::main]
async fn main() {
    let keys: usize = std::env::var("BENCH_KEYS").ok().and_then(|v| v.parse().ok()).unwrap_or(1_000_000);
    let mut state = StateBackend::default();
    let handle = state.declare("profile", StateKind::Value, None).unwrap();
    let value = |i: usize, round: usize| {
        format!(
            "{{\"user\":\"user-{i:08}\",\"round\":{round},\"balance\":{}.25,\"tier\":\"gold\",\"flags\":[1,2,3]}}",
            i * 7 % 100_000
        )
    };
    for i in 0..keys {
        state.set(handle, format!("user-{i:08}").as_bytes(), value(i, 0).as_bytes()).unwrap();
    }
    let value_len = value(0, 0).len();
    let mut full = Measured::default();
    let mut incremental = Measured::default();
    // Each kind has its own copy of the state (image() restarts change
    // tracking) and its own directory; rounds alternate between them.
    let mut state_incremental = state.clone();
    for round in 1..=ROUNDS {
        full = full.measure(&mut state, handle, round, false, &value).await;
        incremental = incremental.measure(&mut state_incremental, handle, round, true, &value).await;
    }
    let restore_full = full.restore(keys).await;
    let restore_incremental = incremental.restore(keys).await;

    println!("{keys} keys, ~{value_len} bytes per value, 1% of keys changed per snapshot, {ROUNDS} snapshots each\n");
    println!("| measure | full | incremental |");
    println!("|---|---|---|");
    let ms = |d: Duration| format!("{:.1} ms", d.as_secs_f64() * 1e3);
    println!("| pause p50 | {} | {} |", ms(full.percentile(0.5)), ms(incremental.percentile(0.5)));
    println!("| pause p99 | {} | {} |", ms(full.percentile(0.99)), ms(incremental.percentile(0.99)));
    println!(
        "| size of one snapshot (after the first) | {:.1} MB | {:.2} MB |",
        full.size as f64 / 1e6,
        incremental.size as f64 / 1e6
    );
    println!(
        "| restore (read, check, decode, apply increments, rebuild) | {} | {} |",
        ms(restore_full),
        ms(restore_incremental)
    );
}

const ROUNDS: usize = 9;

/// One kind of snapshot measured over the rounds.
#[derive(Default)]
struct Measured {
    dir: Option<tempfile::TempDir>,
    pauses: Vec<Duration>,
    size: usize,
    last: Option<String>,
}

impl Measured {
    async fn measure(
        mut self,
        state: &mut StateBackend,
        handle: u32,
        round: usize,
        incremental: bool,
        value: &impl Fn(usize, usize) -> String,
    ) -> Self {
        let keys = state.tables()[0].len();
        for i in (0..keys).step_by(100).map(|i| (i + round) % keys) {
            state.set(handle, format!("user-{i:08}").as_bytes(), value(i, round).as_bytes()).unwrap();
        }
        let dir = self.dir.get_or_insert_with(|| tempfile::tempdir().unwrap());
        let store = LocalSnapshotStore::new(dir.path());
        let started = Instant::now();
        // What the task does between two batches: image, encode, durable write.
        let changes = if incremental && self.last.is_some() { state.image_changes(0) } else { None };
        let base = changes.as_ref().and(self.last.clone());
        let snapshot = Snapshot {
            meta: SnapshotMeta {
                id: format!("0000000000000-{round:06}"),
                job: "bench".into(),
                job_version: "v".into(),
                created_ms: 0,
                trigger: Trigger::Periodic,
                positions: Vec::new(),
            },
            base,
            state: changes.unwrap_or_else(|| state.image(0)),
            timers: Vec::new(),
            event_times: Vec::new(),
            watermark: None,
            dimension_writes: Vec::new(),
            sink_positions: Vec::new(),
        };
        store.put(&snapshot, 3).await.unwrap();
        let pause = started.elapsed();
        if round > 1 {
            self.pauses.push(pause); // the first of each kind is a full one
            self.size = snapshot.encode().len();
        }
        self.last = Some(snapshot.meta.id.clone());
        self
    }

    fn percentile(&self, p: f64) -> Duration {
        let mut sorted = self.pauses.clone();
        sorted.sort();
        sorted[((sorted.len() - 1) as f64 * p).round() as usize]
    }

    async fn restore(&self, keys: usize) -> Duration {
        let store = LocalSnapshotStore::new(self.dir.as_ref().unwrap().path());
        let started = Instant::now();
        let snapshot = store.latest("bench").await.unwrap().unwrap();
        let restored = StateBackend::restore(snapshot.state);
        let took = started.elapsed();
        let table = &restored.tables()[0];
        assert_eq!(table.len(), keys);
        // The last round's changes are there.
        let probe = format!("user-{:08}", ROUNDS % keys);
        let value = String::from_utf8(table.values[probe.as_bytes()].value.to_vec()).unwrap();
        assert!(value.contains(&format!("\"round\":{ROUNDS}")), "{value}");
        took
    }
}
