//! Top-level fields of a JSON record (its event time, its key), read
//! without building the document: the other fields are skipped as they are
//! parsed, and the wanted ones are borrowed as raw JSON text. This is on the
//! path of every record of a source with `event_time_field`.

use std::fmt;

use serde::Deserializer;
use serde::de::{DeserializeSeed, IgnoredAny, MapAccess, Visitor};
use serde_json::value::RawValue;

/// The raw JSON text of the top-level fields `names` of `json` (the last
/// occurrence of a repeated one), or `None` for all when `json` is not a
/// JSON object.
pub(crate) fn raw_fields<'a, const N: usize>(
    json: &'a [u8],
    names: [Option<&str>; N],
) -> Option<[Option<&'a RawValue>; N]> {
    // One UTF-8 check of the whole record, then a parse that trusts it:
    // from bytes, serde_json checks every string on its own, which cost
    // more than the check of the record (the file source reads ~270-byte
    // orders at ~600k/s).
    let text = std::str::from_utf8(json).ok()?;
    let mut de = serde_json::Deserializer::from_str(text);
    let found = de.deserialize_map(FieldsVisitor { names }).ok()?;
    de.end().ok()?;
    Some(found)
}

/// The event time (milliseconds) and key of a JSON record from the fields
/// named, as the file source reads them: neither when the record is not a
/// JSON object, or when no field is named (the record is not parsed then).
pub(crate) fn event_time_and_key(
    json: &[u8],
    event_time_field: Option<&str>,
    key_field: Option<&str>,
) -> (Option<i64>, Option<String>) {
    if event_time_field.is_none() && key_field.is_none() {
        return (None, None);
    }
    let Some([time, key]) = raw_fields(json, [event_time_field, key_field]) else { return (None, None) };
    (time.and_then(raw_millis), key.map(raw_text))
}

/// A field's value as milliseconds: a JSON integer, or a string of one.
pub(crate) fn raw_millis(raw: &RawValue) -> Option<i64> {
    let text = raw.get();
    if text.starts_with('"') {
        serde_json::from_str::<std::borrow::Cow<'_, str>>(text).ok()?.parse().ok()
    } else {
        text.parse().ok()
    }
}

/// A field's value as text: a string's contents, else its JSON text.
pub(crate) fn raw_text(raw: &RawValue) -> String {
    let text = raw.get();
    if text.starts_with('"') {
        serde_json::from_str::<String>(text).unwrap_or_else(|_| text.to_owned())
    } else {
        text.to_owned()
    }
}

struct FieldsVisitor<'n, const N: usize> {
    names: [Option<&'n str>; N],
}

impl<'de, const N: usize> Visitor<'de> for FieldsVisitor<'_, N> {
    type Value = [Option<&'de RawValue>; N];

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut found = [None; N];
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            let wanted = |n: &Option<&str>| *n == Some(key.as_ref());
            if self.names.iter().any(wanted) {
                // The same field may be asked for twice (one field as both
                // event time and key): every slot naming it gets it.
                let raw = map.next_value_seed(Raw)?;
                for (slot, name) in found.iter_mut().zip(&self.names) {
                    if wanted(name) {
                        *slot = Some(raw);
                    }
                }
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(found)
    }
}

/// Borrows a value as raw JSON text.
struct Raw;

impl<'de> DeserializeSeed<'de> for Raw {
    type Value = &'de RawValue;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        serde::Deserialize::deserialize(d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(json: &str) -> Option<(Option<i64>, Option<String>)> {
        let [time, key] = raw_fields(json.as_bytes(), [Some("ts"), Some("id")])?;
        Some((time.and_then(raw_millis), key.map(raw_text)))
    }

    #[test]
    fn reads_the_fields_it_is_asked_for() {
        assert_eq!(
            fields(r#"{"a":[1,{"ts":9}],"ts":1700000000000,"id":"u\"1"}"#),
            Some((Some(1_700_000_000_000), Some("u\"1".into())))
        );
        assert_eq!(fields(r#"{"ts":"42","id":7}"#), Some((Some(42), Some("7".into()))));
        assert_eq!(fields(r#"{"ts":1.5,"id":{"x":1}}"#), Some((None, Some(r#"{"x":1}"#.into()))));
        assert_eq!(
            fields(r#"{"ts":1,"ts":2}"#),
            Some((Some(2), None)),
            "the last of a repeated field, as serde_json's Value"
        );
        assert_eq!(fields("{}"), Some((None, None)));
    }

    #[test]
    fn refuses_what_is_not_a_json_object() {
        assert_eq!(fields(r#"{"ts":1"#), None);
        assert_eq!(fields(r#"{"ts":1} x"#), None);
        assert_eq!(fields("[1]"), None);
        assert_eq!(fields("not json"), None);
        // Not UTF-8 (a Latin-1 "é"), in an unread field's string: the
        // record is refused whole, as the SDK's `record.json()` refuses it
        // (serde_json from bytes skipped unread strings unchecked, so such
        // a record used to give the host an event time the job never saw).
        assert_eq!(raw_fields(b"{\"ts\":1,\"name\":\"caf\xe9\"}", [Some("ts")]).map(|_| ()), None);
        assert!(raw_fields("{\"ts\":1,\"name\":\"café\"}".as_bytes(), [Some("ts")]).is_some());
    }
}
