//! Rows a connector keeps in the process for a job (an in-memory dimension
//! table, dimension writes staged until a snapshot), with their bytes
//! counted: a guest's writes to them are held to `limits.state_mb`, as its
//! state is, so no job can grow the process through a dimension.

use hashbrown::HashMap;

/// Rows by key, and the bytes of keys and rows together. Hashed, not
/// ordered: a lookup is on the path of every record that joins the table
/// (an ordered map compared ~15 keys per lookup in a table of 24k
/// customers, 8% of large-tx-alert's time); only listings sort.
#[derive(Debug, Default)]
pub struct HeldRows {
    rows: HashMap<Vec<u8>, Vec<u8>>,
    bytes: usize,
}

impl HeldRows {
    pub fn get(&self, key: &[u8]) -> Option<&Vec<u8>> {
        self.rows.get(key)
    }

    /// Keeps `row` under `key`, replacing what was there.
    pub fn insert(&mut self, key: Vec<u8>, row: Vec<u8>) {
        let (key_len, row_len) = (key.len(), row.len());
        match self.rows.insert(key, row) {
            // The key was counted already.
            Some(old) => self.bytes = self.bytes - old.len() + row_len,
            None => self.bytes += key_len + row_len,
        }
    }

    pub fn remove(&mut self, key: &[u8]) {
        if let Some(row) = self.rows.remove(key) {
            self.bytes -= key.len() + row.len();
        }
    }

    /// Rows in key order.
    pub fn sorted(&self) -> Vec<(&Vec<u8>, &Vec<u8>)> {
        let mut rows: Vec<_> = self.rows.iter().collect();
        rows.sort_unstable_by(|a, b| a.0.cmp(b.0));
        rows
    }

    /// Bytes of the keys and rows held.
    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_follow_inserts_replacements_and_removals() {
        let mut rows = HeldRows::default();
        rows.insert(b"ab".to_vec(), b"123".to_vec());
        rows.insert(b"c".to_vec(), b"4".to_vec());
        assert_eq!(rows.bytes(), 7);
        rows.insert(b"ab".to_vec(), b"123456".to_vec());
        assert_eq!(rows.bytes(), 10, "a replaced row counts once, at its new size");
        rows.remove(b"ab");
        rows.remove(b"missing");
        assert_eq!(rows.bytes(), 2);
        assert_eq!(rows.sorted(), vec![(&b"c".to_vec(), &b"4".to_vec())]);
        rows.insert(b"a".to_vec(), b"5".to_vec());
        let keys: Vec<&[u8]> = rows.sorted().into_iter().map(|(k, _)| k.as_slice()).collect();
        assert_eq!(keys, [b"a", b"c"], "listed in key order");
    }
}
