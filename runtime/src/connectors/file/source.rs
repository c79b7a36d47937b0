use std::time::Duration;

use async_trait::async_trait;
use tokio::io::{AsyncBufRead, AsyncBufReadExt, BufReader};

use super::FileSourceConfig;
use crate::connectors::json_fields::event_time_and_key;
use crate::connectors::{ConnectorError, Source, SourceStatus};
use crate::job::batch::{NewRecord, RecordBatch};
use crate::job::spec::JobSpec;

/// Reads JSON lines; the offset of a record is its line number (from 0).
/// Blank lines are skipped but still counted.
pub struct FileSource {
    name: String,
    index: u32,
    reader: Box<dyn AsyncBufRead + Send + Unpin>,
    /// The line being read; a wait that runs out leaves a partial line here.
    line: Vec<u8>,
    next_offset: i64,
    /// Lines before this one were processed before a restore: skipped.
    resume_at: i64,
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
        Ok(Self::from_reader(name, index, reader, config))
    }

    /// A source over any line reader (stdin, a file, a pipe in tests).
    pub fn from_reader(
        name: &str,
        index: u32,
        reader: Box<dyn AsyncBufRead + Send + Unpin>,
        config: &FileSourceConfig,
    ) -> Self {
        FileSource {
            name: name.to_owned(),
            index,
            reader,
            line: Vec::new(),
            next_offset: 0,
            resume_at: 0,
            event_time_field: config.event_time_field.clone(),
            key_field: config.key_field.clone(),
        }
    }

    /// Resumes after a snapshot: lines before the position are skipped.
    pub fn resume(&mut self, positions: &[(i32, i64)]) {
        self.resume_at = positions.iter().filter(|(p, _)| *p == 0).map(|(_, o)| *o).max().unwrap_or(0);
    }

    /// Event time and key from JSON fields, when configured. A line that is
    /// not JSON gets neither; the job decides what to do with it.
    fn fields(&self, line: &[u8]) -> (Option<i64>, Option<String>) {
        event_time_and_key(line, self.event_time_field.as_deref(), self.key_field.as_deref())
    }
}

#[async_trait]
impl Source for FileSource {
    /// Returns after `max_wait` with what it has, so a slow stdin does not
    /// hold back the batch (or processing-time timers). A line cut off by
    /// the wait stays in `self.line` and is completed by the next poll.
    async fn poll(
        &mut self,
        batch: &mut RecordBatch,
        max: usize,
        max_wait: Duration,
    ) -> Result<SourceStatus, ConnectorError> {
        let deadline = tokio::time::Instant::now() + max_wait;
        let mut taken = 0;
        while taken < max {
            let read = match tokio::time::timeout_at(deadline, self.reader.read_until(b'\n', &mut self.line)).await {
                Ok(read) => read.map_err(|e| ConnectorError::Io {
                    connector: "file source",
                    name: self.name.clone(),
                    message: e.to_string(),
                    retryable: false,
                })?,
                Err(_) => return Ok(SourceStatus::Open),
            };
            if read == 0 && self.line.is_empty() {
                return Ok(SourceStatus::Finished);
            }
            let offset = self.next_offset;
            self.next_offset += 1;
            let line = self.line.strip_suffix(b"\n").unwrap_or(&self.line);
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if offset >= self.resume_at && !line.iter().all(u8::is_ascii_whitespace) {
                let (event_time, key) = self.fields(line);
                batch.push(NewRecord {
                    key: key.as_deref().map(str::as_bytes),
                    value: line,
                    event_time,
                    headers: &[],
                    source: self.index,
                    partition: 0,
                    offset,
                });
                taken += 1;
            }
            // The batch copied the line: the buffer is reused for the next.
            self.line.clear();
        }
        Ok(SourceStatus::Open)
    }

    fn positions(&self) -> Option<Vec<(i32, i64)>> {
        Some(vec![(0, self.next_offset)])
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::AsyncWriteExt;

    use super::*;

    #[tokio::test]
    async fn a_slow_pipe_gives_what_it_has_after_max_wait() {
        let (mut writer, reader) = tokio::io::duplex(1024);
        let config = FileSourceConfig { path: "-".into(), event_time_field: None, key_field: None };
        let mut source = FileSource::from_reader("pipe", 0, Box::new(BufReader::new(reader)), &config);
        let mut batch = RecordBatch::default();
        writer.write_all(b"{\"a\":1}\n{\"a\":").await.unwrap();
        let wait = Duration::from_millis(50);
        assert_eq!(source.poll(&mut batch, 10, wait).await.unwrap(), SourceStatus::Open);
        assert_eq!(batch.len(), 1, "the whole line, not the cut-off one");
        writer.write_all(b"2}\n").await.unwrap();
        drop(writer);
        batch.clear();
        assert_eq!(source.poll(&mut batch, 10, wait).await.unwrap(), SourceStatus::Finished);
        assert_eq!(batch.len(), 1);
        assert_eq!(batch.bytes(batch.records()[0].value), b"{\"a\":2}", "completed across polls");
        assert_eq!(batch.records()[0].offset, 1);
    }
}
