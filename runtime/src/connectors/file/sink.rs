use async_trait::async_trait;
use tokio::io::{AsyncWrite, AsyncWriteExt, BufWriter};

use super::FileSinkConfig;
use crate::connectors::registry::BuildContext;
use crate::connectors::{ConnectorError, RowOp, Sink, SinkRow};

/// Writes each row's value as one line, flushed after every batch.
///
/// Restores never lose what was written: a file of the job's own
/// (`append = false`) is cut back to its length at the snapshot, and the
/// replay writes the rows after it again, once (effectively-once, as
/// Flink's file sink truncates to its checkpointed length); a shared file
/// (`append = true`) is only appended to (rows after the snapshot may
/// repeat). A fresh start (no snapshot) truncates unless `append`.
pub struct FileSink {
    name: String,
    writer: BufWriter<Box<dyn AsyncWrite + Send + Unpin>>,
    /// Bytes in the file, written or buffered; `None` for stdout.
    length: Option<u64>,
}

impl FileSink {
    pub fn create(cx: BuildContext<'_>, name: &str, config: &FileSinkConfig) -> Result<Self, ConnectorError> {
        let path = cx.spec.resolve(&config.path);
        if path.as_os_str() == "-" {
            let out: Box<dyn AsyncWrite + Send + Unpin> = Box::new(tokio::io::stdout());
            return Ok(FileSink {
                name: name.to_owned(),
                writer: BufWriter::with_capacity(1 << 20, out),
                length: None,
            });
        }
        let config_error =
            |message: String| ConnectorError::Config { connector: "file sink", name: name.to_owned(), message };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| config_error(format!("cannot create {}: {e}", dir.display())))?;
        }
        let restoring = cx.restore.is_some();
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| config_error(format!("cannot open {}: {e}", path.display())))?;
        let cannot = |e: std::io::Error| config_error(format!("cannot size {}: {e}", path.display()));
        let length = file.metadata().map_err(cannot)?.len();
        let keep = match (restoring, config.append) {
            (false, false) => 0,
            (false, true) | (true, true) => length,
            (true, false) => match cx.restore.and_then(|s| s.sink_position(name)) {
                Some(at) if at <= length => at,
                Some(at) => {
                    tracing::warn!(
                        sink = name,
                        path = %path.display(),
                        "the file is shorter ({length} bytes) than at the snapshot ({at}); appending to it"
                    );
                    length
                }
                // A snapshot from before sinks recorded positions: keep all.
                None => length,
            },
        };
        if keep < length {
            file.set_len(keep).map_err(cannot)?;
        }
        let out: Box<dyn AsyncWrite + Send + Unpin> = Box::new(tokio::fs::File::from_std(file));
        Ok(FileSink { name: name.to_owned(), writer: BufWriter::with_capacity(1 << 20, out), length: Some(keep) })
    }

    fn io_error(&self, e: std::io::Error) -> ConnectorError {
        ConnectorError::Io { connector: "file sink", name: self.name.clone(), message: e.to_string(), retryable: false }
    }
}

#[async_trait]
impl Sink for FileSink {
    async fn write(&mut self, rows: &[SinkRow]) -> Result<(), ConnectorError> {
        for row in rows {
            let line = match row.op {
                RowOp::Upsert => std::borrow::Cow::Borrowed(&row.value),
                RowOp::Delete => std::borrow::Cow::Owned(mark_deleted(&row.value)),
            };
            self.writer.write_all(&line).await.map_err(|e| self.io_error(e))?;
            self.writer.write_all(b"\n").await.map_err(|e| self.io_error(e))?;
            if let Some(length) = &mut self.length {
                *length += line.len() as u64 + 1;
            }
        }
        // One flush per batch: rows show up while a live job runs.
        self.writer.flush().await.map_err(|e| self.io_error(e))
    }

    async fn flush(&mut self) -> Result<(), ConnectorError> {
        self.writer.flush().await.map_err(|e| self.io_error(e))
    }

    /// The file's length: everything written is flushed when this is read
    /// for a snapshot.
    fn position(&self) -> Option<u64> {
        self.length
    }
}

/// A file has no primary key to delete by, so a deletion is written as the
/// row with `"_op": "delete"` added.
fn mark_deleted(value: &[u8]) -> Vec<u8> {
    match serde_json::from_slice::<serde_json::Value>(value) {
        Ok(serde_json::Value::Object(mut row)) => {
            row.insert("_op".into(), "delete".into());
            serde_json::Value::Object(row).to_string().into_bytes()
        }
        _ => serde_json::json!({ "_op": "delete", "row": String::from_utf8_lossy(value) }).to_string().into_bytes(),
    }
}
