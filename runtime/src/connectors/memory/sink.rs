use std::sync::{Arc, Mutex};

use async_trait::async_trait;

use crate::connectors::{ConnectorError, Sink, SinkRow};

/// Keeps every row; clones share the same rows, so a caller keeps a clone to
/// read what the task wrote.
#[derive(Debug, Clone, Default)]
pub struct MemorySink {
    rows: Arc<Mutex<Vec<SinkRow>>>,
}

impl MemorySink {
    pub fn rows(&self) -> Vec<SinkRow> {
        self.rows.lock().expect("sink lock").clone()
    }

    pub fn len(&self) -> usize {
        self.rows.lock().expect("sink lock").len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[async_trait]
impl Sink for MemorySink {
    async fn write(&mut self, rows: &[SinkRow]) -> Result<(), ConnectorError> {
        self.rows.lock().expect("sink lock").extend_from_slice(rows);
        Ok(())
    }

    async fn flush(&mut self) -> Result<(), ConnectorError> {
        Ok(())
    }
}
