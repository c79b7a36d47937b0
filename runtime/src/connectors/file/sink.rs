use async_trait::async_trait;
use tokio::io::{AsyncWrite, AsyncWriteExt, BufWriter};

use super::FileSinkConfig;
use crate::connectors::{ConnectorError, RowOp, Sink, SinkRow};
use crate::job::spec::JobSpec;

/// Writes each row's value as one line, flushed after every batch.
pub struct FileSink {
    name: String,
    writer: BufWriter<Box<dyn AsyncWrite + Send + Unpin>>,
}

impl FileSink {
    pub fn create(spec: &JobSpec, name: &str, config: &FileSinkConfig) -> Result<Self, ConnectorError> {
        let path = spec.resolve(&config.path);
        let out: Box<dyn AsyncWrite + Send + Unpin> = if path.as_os_str() == "-" {
            Box::new(tokio::io::stdout())
        } else {
            let config_error =
                |message: String| ConnectorError::Config { connector: "file sink", name: name.to_owned(), message };
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)
                    .map_err(|e| config_error(format!("cannot create {}: {e}", dir.display())))?;
            }
            let file = std::fs::OpenOptions::new()
                .create(true)
                .write(true)
                .append(config.append)
                .truncate(!config.append)
                .open(&path)
                .map_err(|e| config_error(format!("cannot open {} for writing: {e}", path.display())))?;
            Box::new(tokio::fs::File::from_std(file))
        };
        Ok(FileSink { name: name.to_owned(), writer: BufWriter::with_capacity(1 << 20, out) })
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
        }
        // One flush per batch: rows show up while a live job runs.
        self.writer.flush().await.map_err(|e| self.io_error(e))
    }

    async fn flush(&mut self) -> Result<(), ConnectorError> {
        self.writer.flush().await.map_err(|e| self.io_error(e))
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
