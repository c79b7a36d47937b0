use std::sync::Mutex;

use async_trait::async_trait;

use super::MemoryDimensionConfig;
use crate::connectors::held_rows::HeldRows;
use crate::connectors::{ConnectorError, DimensionStore};
use crate::job::spec::JobSpec;

/// A dimension table held in memory.
#[derive(Debug, Default)]
pub struct MemoryDimension {
    rows: Mutex<HeldRows>,
}

impl MemoryDimension {
    pub fn open(spec: &JobSpec, name: &str, config: &MemoryDimensionConfig) -> Result<Self, ConnectorError> {
        let error =
            |message: String| ConnectorError::Config { connector: "memory dimension", name: name.to_owned(), message };
        let dim = MemoryDimension::default();
        let Some(path) = &config.path else { return Ok(dim) };
        let key_field =
            config.key_field.as_deref().ok_or_else(|| error("`key_field` is required with `path`".into()))?;
        let path = spec.resolve(path);
        let text = std::fs::read_to_string(&path).map_err(|e| error(format!("cannot read {}: {e}", path.display())))?;
        let mut rows = dim.rows.lock().expect("dimension lock");
        for (n, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
            let row: serde_json::Value = serde_json::from_str(line)
                .map_err(|e| error(format!("{}:{}: not JSON: {e}", path.display(), n + 1)))?;
            let key = match row.get(key_field) {
                Some(serde_json::Value::String(s)) => s.clone(),
                Some(v) if !v.is_null() => v.to_string(),
                _ => return Err(error(format!("{}:{}: no `{key_field}` field", path.display(), n + 1))),
            };
            rows.insert(key.into_bytes(), line.as_bytes().to_vec());
        }
        drop(rows);
        Ok(dim)
    }

    /// A table holding `rows` (key, JSON row).
    pub fn with_rows(rows: impl IntoIterator<Item = (Vec<u8>, Vec<u8>)>) -> Self {
        let mut held = HeldRows::default();
        for (key, row) in rows {
            held.insert(key, row);
        }
        MemoryDimension { rows: Mutex::new(held) }
    }
}

#[async_trait]
impl DimensionStore for MemoryDimension {
    async fn lookup(&self, key: &[u8]) -> Result<Option<Vec<u8>>, ConnectorError> {
        Ok(self.rows.lock().expect("dimension lock").get(key).cloned())
    }

    async fn upsert(&self, key: &[u8], row: &[u8]) -> Result<(), ConnectorError> {
        self.rows.lock().expect("dimension lock").insert(key.to_vec(), row.to_vec());
        Ok(())
    }

    async fn rows(&self) -> Result<Vec<(Vec<u8>, Vec<u8>)>, ConnectorError> {
        Ok(self
            .rows
            .lock()
            .expect("dimension lock")
            .sorted()
            .into_iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect())
    }

    fn held_bytes(&self) -> usize {
        self.rows.lock().expect("dimension lock").bytes()
    }
}
