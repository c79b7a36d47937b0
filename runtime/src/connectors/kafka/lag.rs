//! The broker's end offsets of a source's partitions, refreshed in the
//! background so that reporting lag never adds a broker round trip to a poll.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rdkafka::consumer::{Consumer, StreamConsumer};
use tokio::task::JoinHandle;

/// How often the end offsets are asked for.
const REFRESH_EVERY: Duration = Duration::from_secs(2);
/// How long one partition's request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// (low, high) watermarks by (topic index, partition), as last fetched.
type Marks = HashMap<(usize, i32), (i64, i64)>;

/// Keeps the (low, high) watermarks of the assigned partitions up to date
/// from a background task, which stops when this is dropped.
pub(super) struct EndOffsets {
    marks: Arc<Mutex<Marks>>,
    refresher: JoinHandle<()>,
}

impl EndOffsets {
    /// Starts refreshing at once and then every [`REFRESH_EVERY`].
    pub(super) fn watch(
        consumer: Arc<StreamConsumer>,
        topics: Vec<String>,
        assignment: Vec<(usize, i32)>,
        name: String,
    ) -> Self {
        let marks = Arc::new(Mutex::new(Marks::new()));
        let shared = marks.clone();
        let refresher = tokio::spawn(async move {
            loop {
                let (c, topics, assignment, name) =
                    (consumer.clone(), topics.clone(), assignment.clone(), name.clone());
                let fetched = tokio::task::spawn_blocking(move || {
                    let mut fetched = Marks::new();
                    for &(t, p) in &assignment {
                        match c.fetch_watermarks(&topics[t], p, REQUEST_TIMEOUT) {
                            Ok(marks) => {
                                fetched.insert((t, p), marks);
                            }
                            Err(e) => {
                                tracing::debug!(source = %name, "cannot read the end offset of {}/{p}: {e}", topics[t])
                            }
                        }
                    }
                    fetched
                })
                .await;
                if let Ok(fetched) = fetched {
                    shared.lock().expect("end offsets lock").extend(fetched);
                }
                tokio::time::sleep(REFRESH_EVERY).await;
            }
        });
        EndOffsets { marks, refresher }
    }

    /// Records from `next(partition)` to the end of each partition, summed;
    /// `None` before the first answer from the broker. A position past the
    /// known end (read since the last refresh) counts as 0.
    pub(super) fn lag(&self, next: impl Fn((usize, i32), (i64, i64)) -> i64) -> Option<i64> {
        let marks = self.marks.lock().expect("end offsets lock");
        if marks.is_empty() {
            return None;
        }
        Some(marks.iter().map(|(&tp, &(low, high))| (high - next(tp, (low, high))).max(0)).sum())
    }
}

impl Drop for EndOffsets {
    fn drop(&mut self) {
        self.refresher.abort();
    }
}
