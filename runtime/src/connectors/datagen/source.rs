use std::time::{Duration, Instant};

use async_trait::async_trait;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use super::{DatagenConfig, FieldGen};
use crate::connectors::{ConnectorError, Source, SourceStatus};
use crate::job::batch::{NewRecord, RecordBatch};

/// Generates JSON records; record `i` is the same for a given config and seed
/// whatever the batch boundaries, so runs are reproducible.
pub struct DatagenSource {
    index: u32,
    config: DatagenConfig,
    next: u64,
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
        for (field, generator) in &config.fields {
            match generator {
                FieldGen::Int { min, max } if min > max => return Err(invalid(&format!("field `{field}`: min > max"))),
                FieldGen::Float { min, max, .. } if min > max => {
                    return Err(invalid(&format!("field `{field}`: min > max")));
                }
                FieldGen::Choice { values } if values.is_empty() => {
                    return Err(invalid(&format!("field `{field}`: `values` is empty")));
                }
                _ => {}
            }
        }
        Ok(DatagenSource {
            index,
            config: config.clone(),
            next: 0,
            started: Instant::now(),
            start_time: config.start_time.unwrap_or_else(|| chrono::Utc::now().timestamp_millis()),
            buf: Vec::with_capacity(256),
        })
    }

    /// How many records the rate allows by now.
    fn allowed(&self) -> u64 {
        if self.config.rate == 0 {
            return u64::MAX;
        }
        (self.started.elapsed().as_secs_f64() * self.config.rate as f64) as u64
    }

    /// Writes record `i`'s JSON value into `buf`; returns its key and event time.
    fn generate(&mut self, i: u64) -> (u64, i64) {
        let key = i.wrapping_mul(7919) % self.config.keys;
        let spacing = 1000u64.checked_div(self.config.rate).unwrap_or(1).max(1);
        let event_time = self.start_time + (i * spacing) as i64;
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
            let due = Duration::from_secs_f64((self.next + 1) as f64 / self.config.rate as f64);
            let wait = due.saturating_sub(self.started.elapsed()).min(max_wait);
            tokio::time::sleep(wait).await;
            allowed = self.allowed().min(limit);
        }
        let end = allowed.min(self.next + max as u64);
        let mut key_text = String::new();
        while self.next < end {
            let i = self.next;
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
        }
        Ok(if self.next >= limit { SourceStatus::Finished } else { SourceStatus::Open })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
