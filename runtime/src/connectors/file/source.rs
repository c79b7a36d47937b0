use std::time::Duration;

use async_trait::async_trait;
use tokio::io::{AsyncBufRead, AsyncBufReadExt, BufReader};

use super::FileSourceConfig;
use crate::connectors::{ConnectorError, Source, SourceStatus};
use crate::job::batch::{NewRecord, RecordBatch};
use crate::job::spec::JobSpec;

/// Reads JSON lines; the offset of a record is its line number (from 0).
/// Blank lines are skipped but still counted.
pub struct FileSource {
    name: String,
    index: u32,
    reader: Box<dyn AsyncBufRead + Send + Unpin>,
    line: String,
    next_offset: i64,
    event_time_field: Option<String>,
    key_field: Option<String>,
}

impl FileSource {
    pub fn open(spec: &JobSpec, name: &str, index: u32, config: &FileSourceConfig) -> Result<Self, ConnectorError> {
        let path = spec.resolve(&config.path);
        let reader: Box<dyn AsyncBufRead + Send + Unpin> = if path.as_os_str() == "-" {
            Box::new(BufReader::new(tokio::io::stdin()))
        } else {
            let file = std::fs::File::open(&path).map_err(|e| ConnectorError::Config {
                connector: "file source",
                name: name.to_owned(),
                message: format!("cannot open {}: {e}", path.display()),
            })?;
            Box::new(BufReader::with_capacity(1 << 20, tokio::fs::File::from_std(file)))
        };
        Ok(FileSource {
            name: name.to_owned(),
            index,
            reader,
            line: String::new(),
            next_offset: 0,
            event_time_field: config.event_time_field.clone(),
            key_field: config.key_field.clone(),
        })
    }

    /// Event time and key from JSON fields, when configured. A line that is
    /// not JSON gets neither; the job decides what to do with it.
    fn fields(&self, line: &str) -> (Option<i64>, Option<String>) {
        if self.event_time_field.is_none() && self.key_field.is_none() {
            return (None, None);
        }
        let Ok(value) = serde_json::from_str::<serde_json::Value>(line) else { return (None, None) };
        let event_time = self.event_time_field.as_ref().and_then(|f| value.get(f)).and_then(json_millis);
        let key = self.key_field.as_ref().and_then(|f| value.get(f)).map(|k| match k {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        });
        (event_time, key)
    }
}

fn json_millis(v: &serde_json::Value) -> Option<i64> {
    v.as_i64().or_else(|| v.as_str().and_then(|s| s.parse().ok()))
}

#[async_trait]
impl Source for FileSource {
    async fn poll(&mut self, batch: &mut RecordBatch, max: usize, _max_wait: Duration) -> Result<SourceStatus, ConnectorError> {
        let mut taken = 0;
        while taken < max {
            self.line.clear();
            let read = self.reader.read_line(&mut self.line).await.map_err(|e| ConnectorError::Io {
                connector: "file source",
                name: self.name.clone(),
                message: e.to_string(),
                retryable: false,
            })?;
            if read == 0 {
                return Ok(SourceStatus::Finished);
            }
            let offset = self.next_offset;
            self.next_offset += 1;
            let line = self.line.trim_end_matches(['\n', '\r']);
            if line.trim().is_empty() {
                continue;
            }
            let (event_time, key) = self.fields(line);
            batch.push(NewRecord {
                key: key.as_deref().map(str::as_bytes),
                value: line.as_bytes(),
                event_time,
                headers: &[],
                source: self.index,
                partition: 0,
                offset,
            });
            taken += 1;
        }
        Ok(SourceStatus::Open)
    }
}
