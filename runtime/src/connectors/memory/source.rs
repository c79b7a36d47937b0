use std::collections::VecDeque;
use std::time::Duration;

use async_trait::async_trait;

use crate::connectors::{ConnectorError, Source, SourceStatus};
use crate::job::batch::{NewRecord, RecordBatch};

/// A record for a [`MemorySource`].
#[derive(Debug, Clone, Default)]
pub struct MemoryRecord {
    /// Index of the source (in the job's sources) the record claims to be from.
    pub source: u32,
    pub key: Option<Vec<u8>>,
    pub value: Vec<u8>,
    pub event_time: Option<i64>,
    pub headers: Vec<(String, Vec<u8>)>,
    pub partition: i32,
    pub offset: i64,
}

/// A bounded source over batches given up front; each poll yields exactly
/// one of them (whatever `max` says), so a test controls batch boundaries.
/// Records keep the source index they carry, so one memory source can stand
/// for all of a job's sources.
#[derive(Debug)]
pub struct MemorySource {
    batches: VecDeque<Vec<MemoryRecord>>,
}

impl MemorySource {
    pub fn new(batches: Vec<Vec<MemoryRecord>>) -> Self {
        MemorySource { batches: batches.into() }
    }
}

#[async_trait]
impl Source for MemorySource {
    async fn poll(
        &mut self,
        batch: &mut RecordBatch,
        _max: usize,
        _max_wait: Duration,
    ) -> Result<SourceStatus, ConnectorError> {
        let Some(records) = self.batches.pop_front() else { return Ok(SourceStatus::Finished) };
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
        Ok(if self.batches.is_empty() { SourceStatus::Finished } else { SourceStatus::Open })
    }
}
