use std::time::{Duration, Instant};

use async_trait::async_trait;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use super::{DatagenConfig, FieldGen};
use crate::connectors::{ConnectorError, PartitionGroup, Source, SourceStatus};
use crate::job::batch::{NewRecord, RecordBatch};

/// Generates JSON records; record `i` is the same for a given config and seed
/// whatever the batch boundaries, so runs are reproducible.
pub struct DatagenSource {
    name: String,
    index: u32,
    config: DatagenConfig,
    /// The partitions this task generates; record `i` is on partition
    /// `i % partitions`, and the other groups' records are skipped.
    group: PartitionGroup,
    next: u64,
    /// Where a restored source resumed: the rate counts from here.
    resumed_from: u64,
    started: Instant,
    start_time: i64,
    buf: Vec<u8>,
}

impl DatagenSource {
    pub fn new(name: &str, index: u32, config: &DatagenConfig) -> Result<Self, ConnectorError> {
        let invalid = |message: &str| ConnectorError::Config {
            connector: "datagen",
            name: name.to_owned(),
            message: message.to_owned(),
        };
        if config.keys == 0 {
            return Err(invalid("`keys` must be at least 1"));
        }
        if config.partitions < 1 {
            return Err(invalid("`partitions` must be at least 1"));
        }
        if config.keys < config.partitions as u64 {
            return Err(invalid(
                "`keys` must be at least `partitions`: records are partitioned by key, so each partition needs a key",
            ));
        }
        for (field, generator) in &config.fields {
            match generator {
                FieldGen::Int { min, max } if min > max => return Err(invalid(&format!("field `{field}`: min > max"))),
                FieldGen::Float { min, max, .. } if min > max => {
                    return Err(invalid(&format!("field `{field}`: min > max")));
                }
                // NaN, infinities and a range wider than the largest float
                // (`max - min` overflowing) would panic the sampler.
                FieldGen::Float { min, max, .. } if !(max - min).is_finite() => {
                    return Err(invalid(&format!(
                        "field `{field}`: min and max must be finite numbers less than the largest float apart"
                    )));
                }
                FieldGen::Choice { values } if values.is_empty() => {
                    return Err(invalid(&format!("field `{field}`: `values` is empty")));
                }
                _ => {}
            }
        }
        Ok(DatagenSource {
            name: name.to_owned(),
            index,
            config: config.clone(),
            group: PartitionGroup::default(),
            next: 0,
            resumed_from: 0,
            started: Instant::now(),
            start_time: config.start_time.unwrap_or_else(|| chrono::Utc::now().timestamp_millis()),
            buf: Vec::with_capacity(256),
        })
    }

    /// Generates only `group`'s share of the partitions: the groups of one
    /// job together generate each record once, and `rate` and `count` stay
    /// totals over all of them. Refused when a group would get no partition.
    pub fn group(mut self, group: PartitionGroup) -> Result<Self, ConnectorError> {
        if group.count as i64 > self.config.partitions as i64 {
            return Err(ConnectorError::config(
                "datagen",
                &self.name,
                format!(
                    "{} shards (what the job's inputs' partition counts can all be split into) need at least as many partitions here, but `partitions` is {}; give every source of a job split by partition the same partition count",
                    group.count, self.config.partitions
                ),
            ));
        }
        self.group = group;
        Ok(self)
    }

    fn owns(&self, i: u64) -> bool {
        self.group.owns((i % self.config.partitions as u64) as i32)
    }

    /// How many records the rate allows by now.
    fn allowed(&self) -> u64 {
        if self.config.rate == 0 {
            return u64::MAX;
        }
        self.resumed_from + (self.started.elapsed().as_secs_f64() * self.config.rate as f64) as u64
    }

    /// Continues after the records a snapshot's positions account for:
    /// record `i` goes to partition `i % partitions` at offset
    /// `i / partitions`, so the first record not yet handed out is the
    /// smallest `offset * partitions + p` over the partitions read.
    pub fn resume(&mut self, positions: &[(i32, i64)]) {
        let partitions = self.config.partitions as u64;
        let next = positions
            .iter()
            .filter(|(p, _)| self.group.owns(*p))
            .map(|(p, offset)| (*offset).max(0) as u64 * partitions + *p as u64)
            .min();
        if let Some(next) = next {
            self.next = next;
            self.resumed_from = next;
            self.started = Instant::now();
        }
    }

    /// Record `i`'s key. Each key's records are on one partition, as with
    /// Kafka's default partitioner (jobs keyed by the record key rely on it):
    /// record `i` is on partition `r = i % partitions`, so its key is one of
    /// the keys `k` with `k % partitions == r`, spread so that neighbouring
    /// records have different keys. With one partition: `(i * 7919) % keys`.
    fn key(&self, i: u64) -> u64 {
        let partitions = self.config.partitions as u64;
        let (r, q) = (i % partitions, i / partitions);
        // The keys of partition r: r, r + partitions, ... below `keys`
        // (at least one, since `keys >= partitions`).
        let keys_here = (self.config.keys - r).div_ceil(partitions);
        (q.wrapping_mul(7919) % keys_here) * partitions + r
    }

    /// Writes record `i`'s JSON value into `buf`; returns its key and event time.
    fn generate(&mut self, i: u64) -> (u64, i64) {
        let key = self.key(i);
        let spacing = 1000u64.checked_div(self.config.rate).unwrap_or(1).max(1);
        // Saturating: `start_time` and `rate` are the spec's, so a start
        // near the end of time must not overflow.
        let event_time = self.start_time.saturating_add(i64::try_from(i.saturating_mul(spacing)).unwrap_or(i64::MAX));
        let mut rng = SmallRng::seed_from_u64(self.config.seed ^ i.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let buf = &mut self.buf;
        buf.clear();
        buf.push(b'{');
        for (n, (field, generator)) in self.config.fields.iter().enumerate() {
            if n > 0 {
                buf.push(b',');
            }
            serde_json::to_writer(&mut *buf, field).expect("writing to a Vec");
            buf.push(b':');
            let value = match generator {
                FieldGen::Key => serde_json::Value::from(key),
                FieldGen::Sequence { prefix: None } => serde_json::Value::from(i),
                FieldGen::Sequence { prefix: Some(p) } => format!("{p}{i}").into(),
                FieldGen::Int { min, max } => rng.random_range(*min..=*max).into(),
                FieldGen::Float { min, max, decimals } => {
                    let scale = 10f64.powi(*decimals as i32);
                    let v = if min == max { *min } else { rng.random_range(*min..*max) };
                    ((v * scale).round() / scale).into()
                }
                FieldGen::Choice { values } => values[rng.random_range(0..values.len())].clone(),
                FieldGen::KeyText { prefix } => format!("{prefix}{key}").into(),
                FieldGen::Text { len } => {
                    (0..*len).map(|_| rng.random_range(b'a'..=b'z') as char).collect::<String>().into()
                }
                FieldGen::EventTime => event_time.into(),
                FieldGen::Const { value } => value.clone(),
            };
            serde_json::to_writer(&mut *buf, &value).expect("writing to a Vec");
        }
        buf.push(b'}');
        (key, event_time)
    }
}

#[async_trait]
impl Source for DatagenSource {
    async fn poll(
        &mut self,
        batch: &mut RecordBatch,
        max: usize,
        max_wait: Duration,
    ) -> Result<SourceStatus, ConnectorError> {
        let limit = self.config.count.unwrap_or(u64::MAX);
        if self.next >= limit {
            return Ok(SourceStatus::Finished);
        }
        let mut allowed = self.allowed().min(limit);
        if allowed <= self.next {
            // Sleep until the rate allows at least one record, but not past max_wait.
            let due = Duration::from_secs_f64((self.next + 1 - self.resumed_from) as f64 / self.config.rate as f64);
            let wait = due.saturating_sub(self.started.elapsed()).min(max_wait);
            tokio::time::sleep(wait).await;
            allowed = self.allowed().min(limit);
        }
        let mut key_text = String::new();
        let mut taken = 0;
        // `next` counts the records of every group; this one skips the others'.
        while self.next < allowed && taken < max {
            let i = self.next;
            if !self.owns(i) {
                self.next += 1;
                continue;
            }
            let (key, event_time) = self.generate(i);
            key_text.clear();
            std::fmt::Write::write_fmt(&mut key_text, format_args!("{key}")).expect("writing to a String");
            batch.push(NewRecord {
                key: Some(key_text.as_bytes()),
                value: &self.buf,
                event_time: Some(event_time),
                headers: &[],
                source: self.index,
                partition: (i % self.config.partitions as u64) as i32,
                offset: (i / self.config.partitions as u64) as i64,
            });
            self.next += 1;
            taken += 1;
        }
        Ok(if self.next >= limit { SourceStatus::Finished } else { SourceStatus::Open })
    }

    /// Per partition this group reads: records handed out so far, which is
    /// the next offset (generation is deterministic, so a restore goes on
    /// with exactly the records that follow).
    fn positions(&self) -> Option<Vec<(i32, i64)>> {
        let partitions = self.config.partitions as u64;
        Some(
            (0..partitions)
                .filter(|p| self.group.owns(*p as i32))
                .map(|p| (p as i32, self.next.saturating_sub(p).div_ceil(partitions) as i64))
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_resumed_source_goes_on_with_the_records_that_follow() {
        let config: DatagenConfig =
            toml::from_str("rate = 0\nkeys = 10\npartitions = 3\ncount = 20\n[fields]\nn = { gen = \"sequence\" }")
                .unwrap();
        let values = |batch: &RecordBatch| -> Vec<String> {
            batch.records().iter().map(|r| String::from_utf8_lossy(batch.bytes(r.value)).into_owned()).collect()
        };
        let mut whole = DatagenSource::new("g", 0, &config).unwrap();
        let mut all = RecordBatch::with_capacity(100, 1000);
        whole.poll(&mut all, 100, Duration::ZERO).await.unwrap();

        let mut first = DatagenSource::new("g", 0, &config).unwrap();
        let mut head = RecordBatch::with_capacity(100, 1000);
        first.poll(&mut head, 7, Duration::ZERO).await.unwrap();
        let positions = first.positions().unwrap();
        let mut resumed = DatagenSource::new("g", 0, &config).unwrap();
        resumed.resume(&positions);
        let mut tail = RecordBatch::with_capacity(100, 1000);
        resumed.poll(&mut tail, 100, Duration::ZERO).await.unwrap();
        assert_eq!([values(&head), values(&tail)].concat(), values(&all));
    }

    fn config(count: u64) -> DatagenConfig {
        toml::from_str(&format!(
            r#"
            count = {count}
            keys = 10
            seed = 7
            start_time = 1000
            [fields]
            id = {{ gen = "key" }}
            amount = {{ gen = "float", min = 1.0, max = 100.0 }}
            at = {{ gen = "event_time" }}
            "#
        ))
        .unwrap()
    }

    async fn generate(batch_size: usize) -> Vec<Vec<u8>> {
        let mut source = DatagenSource::new("gen", 0, &config(25)).unwrap();
        let mut batch = RecordBatch::default();
        while source.poll(&mut batch, batch_size, Duration::ZERO).await.unwrap() == SourceStatus::Open {}
        batch.records().iter().map(|m| batch.bytes(m.value).to_vec()).collect()
    }

    #[tokio::test]
    async fn partition_groups_share_the_records() {
        let mut config = config(30);
        config.partitions = 3;
        let mut seen = Vec::new();
        for index in 0..2 {
            let group = PartitionGroup { index, count: 2 };
            let mut source = DatagenSource::new("gen", 0, &config).unwrap().group(group).unwrap();
            let mut batch = RecordBatch::default();
            while source.poll(&mut batch, 4, Duration::ZERO).await.unwrap() == SourceStatus::Open {}
            for m in batch.records() {
                assert!(group.owns(m.partition), "group {index} got partition {}", m.partition);
                seen.push((m.partition, m.offset));
            }
        }
        seen.sort();
        let mut all: Vec<(i32, i64)> = (0..30i64).map(|i| ((i % 3) as i32, i / 3)).collect();
        // Partitioned by key: every key is on one partition only, and all
        // ten keys are used.
        let source = DatagenSource::new("gen", 0, &config).unwrap();
        let keys: Vec<u64> = (0..30).map(|i| source.key(i)).collect();
        assert!((0..30).all(|i| keys[i as usize] % 3 == i % 3), "{keys:?}");
        let distinct: std::collections::BTreeSet<u64> = keys.iter().copied().collect();
        assert_eq!(distinct, (0..10).collect(), "{keys:?}");
        let few_keys = DatagenConfig { keys: 2, ..config.clone() };
        let refused = DatagenSource::new("gen", 0, &few_keys).err().expect("fewer keys than partitions");
        assert!(refused.to_string().contains("`keys` must be at least `partitions`"), "{refused}");
        all.sort();
        assert_eq!(seen, all);
        let too_many = DatagenSource::new("gen", 0, &config).unwrap().group(PartitionGroup { index: 0, count: 4 });
        assert!(too_many.err().unwrap().to_string().contains("need at least as many partitions"));
    }

    #[tokio::test]
    async fn same_records_whatever_the_batch_size() {
        let a = generate(1).await;
        let b = generate(7).await;
        assert_eq!(a.len(), 25);
        assert_eq!(a, b);
        let first: serde_json::Value = serde_json::from_slice(&a[0]).unwrap();
        assert_eq!(first["at"], 1000);
        assert!(first["amount"].as_f64().unwrap() >= 1.0);
    }
}
