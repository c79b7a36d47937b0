use serde::de::DeserializeOwned;

use crate::{Error, Result};

/// Where a record came from: its source, partition and offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Position {
    /// Index of the source in the job spec (see [`crate::Context::source_name`]).
    pub source: u32,
    pub partition: i32,
    pub offset: i64,
}

/// One input record, borrowed from the batch it arrived in.
#[derive(Debug, Clone)]
pub struct Record<'a> {
    pub(crate) key: Option<&'a [u8]>,
    pub(crate) value: &'a [u8],
    pub(crate) event_time: Option<i64>,
    pub(crate) headers: Headers<'a>,
    pub(crate) position: Position,
    /// Where the key and value are in the data of the batch being
    /// processed (the batch's four spans of the record), so
    /// [`crate::Context::forward`] can point at them instead of copying.
    pub(crate) in_batch: Option<[u32; 4]>,
}

/// A record's headers: four spans (name start, name length, value start,
/// value length) per header into the batch's bytes, checked when the batch
/// was decoded.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Headers<'a> {
    pub(crate) data: &'a [u8],
    pub(crate) spans: &'a [u32],
}

impl<'a> Headers<'a> {
    fn iter(self) -> impl Iterator<Item = (&'a [u8], &'a [u8])> {
        self.spans.chunks_exact(4).map(move |s| {
            let bytes = |start: u32, len: u32| &self.data[start as usize..][..len as usize];
            (bytes(s[0], s[1]), bytes(s[2], s[3]))
        })
    }
}

impl<'a> Record<'a> {
    /// Builds a record; used by tests and the runtime glue.
    pub fn new(key: Option<&'a [u8]>, value: &'a [u8], event_time: Option<i64>, position: Position) -> Self {
        Record { key, value, event_time, headers: Headers::default(), position, in_batch: None }
    }

    pub fn key(&self) -> Option<&'a [u8]> {
        self.key
    }

    /// The key as UTF-8 text, if it is.
    pub fn key_str(&self) -> Option<&'a str> {
        self.key.and_then(|k| std::str::from_utf8(k).ok())
    }

    pub fn value(&self) -> &'a [u8] {
        self.value
    }

    /// Decodes the value as JSON. A decode failure is a record error: with
    /// `?` the record goes to the dead-letter output with the reason.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T> {
        self.json_ref()
    }

    /// Decodes the value as JSON borrowing strings from the record (no
    /// copies): for hot paths, with `&'a str` fields.
    pub fn json_ref<T: serde::Deserialize<'a>>(&self) -> Result<T> {
        // JSON text is UTF-8 (RFC 8259). Checking the whole value once and
        // decoding from `str` is faster than serde_json checking each string
        // on its own (~10% of a small record's decode as WASM).
        let text = std::str::from_utf8(self.value)
            .map_err(|e| Error::Record(format!("value is not the expected JSON: it is not UTF-8 text ({e})")))?;
        serde_json::from_str(text).map_err(|e| Error::Record(format!("value is not the expected JSON: {e}")))
    }

    /// Event time in ms since the Unix epoch, if the source provides one.
    pub fn event_time(&self) -> Option<i64> {
        self.event_time
    }

    /// The value of the first header with this name.
    pub fn header(&self, name: &str) -> Option<&'a [u8]> {
        self.headers.iter().find(|(n, _)| *n == name.as_bytes()).map(|(_, v)| v)
    }

    pub fn position(&self) -> Position {
        self.position
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize, PartialEq)]
    struct Txn<'a> {
        user: &'a str,
        amount: f64,
    }

    fn record(value: &[u8]) -> Record<'_> {
        Record::new(None, value, None, Position { source: 0, partition: 0, offset: 7 })
    }

    #[test]
    fn decodes_borrowed_and_owned_values() {
        let value = br#"{"id":1,"user":"u-1","amount":12.5,"note":"caf\u00e9 \u00fc"}"#;
        assert_eq!(record(value).json_ref::<Txn>().unwrap(), Txn { user: "u-1", amount: 12.5 });
        let owned: serde_json::Value = record(value).json().unwrap();
        assert_eq!(owned["note"], "café ü");
    }

    #[test]
    fn a_value_that_is_not_utf8_is_a_record_error_saying_so() {
        let value = b"{\"user\":\"u-\xff\",\"amount\":1}";
        match record(value).json::<serde_json::Value>() {
            Err(Error::Record(reason)) => assert!(reason.contains("not UTF-8"), "{reason}"),
            other => panic!("want a record error, got {other:?}"),
        }
    }

    #[test]
    fn malformed_json_is_a_record_error_with_serde_jsons_reason() {
        match record(br#"{"user":"u-1","amount":}"#).json_ref::<Txn>() {
            Err(Error::Record(reason)) => assert!(reason.contains("expected value at line 1 column 24"), "{reason}"),
            other => panic!("want a record error, got {other:?}"),
        }
    }
}
