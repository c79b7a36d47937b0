//! Top-level fields of a JSON record (its event time, its key), read by a
//! scan that finds where each top-level value starts and ends without
//! checking what is inside it. This is on the path of every record of a
//! source with `event_time_field`, and the job decodes the record again
//! anyway: the scan costs 40% fewer instructions than the full parse it
//! replaced (docs/BENCHMARKS.md, "Fifth measurement").
//!
//! What is not checked here is checked where it matters: the job's decode
//! refuses a malformed record (it goes to the dead letters), and the task
//! feeds the watermark only the event times of records the job did not
//! refuse (`Task::observe_event_times`). A wanted value is itself read
//! strictly (`raw_millis`, `raw_text`). For a well-formed JSON object the
//! fields are those a full parse finds (the last of a repeated key), which
//! the property tests in `fuzz_records.rs` check against `serde_json::Value`.

use std::borrow::Cow;

/// The raw JSON text of the top-level fields `names` of `json` (the last
/// occurrence of a repeated one), or `None` for all when `json` does not
/// scan as one JSON object: `{`, then `"key": value` pairs separated by
/// commas, then `}` and nothing but whitespace. Values are delimited, not
/// checked; nesting is counted, not recursed into.
pub(crate) fn raw_fields<'a, const N: usize>(
    json: &'a [u8],
    names: [Option<&str>; N],
) -> Option<[Option<&'a [u8]>; N]> {
    let mut scan = Scan { json, at: 0 };
    let mut found = [None; N];
    scan.expect(b'{')?;
    if scan.peek()? == b'}' {
        scan.at += 1;
    } else {
        loop {
            scan.expect(b'"')?;
            let (key, escaped) = scan.string_body()?;
            scan.expect(b':')?;
            scan.whitespace();
            let start = scan.at;
            scan.value()?;
            let value = &json[start..scan.at];
            // Keys are compared as bytes; one with escapes as what they
            // stand for (an invalid one matches no name).
            let unescaped;
            let key = match escaped {
                false => Some(key),
                true => {
                    unescaped = unescape(key);
                    unescaped.as_deref()
                }
            };
            for (slot, name) in found.iter_mut().zip(&names) {
                // The same field may be asked for twice (one field as both
                // event time and key): every slot naming it gets it.
                if key.is_some_and(|k| name.is_some_and(|n| n.as_bytes() == k)) {
                    *slot = Some(value);
                }
            }
            match scan.next()? {
                b',' => continue,
                b'}' => break,
                _ => return None,
            }
        }
    }
    scan.whitespace();
    (scan.at == json.len()).then_some(found)
}

/// The event time (milliseconds) and key of a JSON record from the fields
/// named, as the file source reads them: neither when the record is not a
/// JSON object, or when no field is named (the record is not scanned then).
pub(crate) fn event_time_and_key(
    json: &[u8],
    event_time_field: Option<&str>,
    key_field: Option<&str>,
) -> (Option<i64>, Option<String>) {
    if event_time_field.is_none() && key_field.is_none() {
        return (None, None);
    }
    let Some([time, key]) = raw_fields(json, [event_time_field, key_field]) else { return (None, None) };
    (time.and_then(raw_millis), key.and_then(raw_text))
}

/// A field's value as milliseconds: a JSON integer, or a string of one.
pub(crate) fn raw_millis(raw: &[u8]) -> Option<i64> {
    if raw.starts_with(b"\"") {
        serde_json::from_slice::<Cow<'_, str>>(raw).ok()?.parse().ok()
    } else {
        // JSON's integers only: `parse` also takes `+5` and `007`, which a
        // job that never decodes the record (a forward) would be handed.
        let digits = raw.strip_prefix(b"-").unwrap_or(raw);
        let integer = match digits {
            [b'0'] => true,
            [b'1'..=b'9', rest @ ..] => rest.iter().all(u8::is_ascii_digit),
            _ => false,
        };
        if !integer {
            return None;
        }
        std::str::from_utf8(raw).ok()?.parse().ok()
    }
}

/// A field's value as text: a string's contents, else its JSON text;
/// `None` when a string does not decode or the text is not UTF-8.
pub(crate) fn raw_text(raw: &[u8]) -> Option<String> {
    if raw.starts_with(b"\"") {
        serde_json::from_slice::<String>(raw).ok()
    } else {
        std::str::from_utf8(raw).ok().map(str::to_owned)
    }
}

/// What a key with escapes stands for (UTF-8); `None` when an escape is
/// invalid.
fn unescape(body: &[u8]) -> Option<Vec<u8>> {
    let mut quoted = Vec::with_capacity(body.len() + 2);
    quoted.push(b'"');
    quoted.extend_from_slice(body);
    quoted.push(b'"');
    serde_json::from_slice::<String>(&quoted).ok().map(String::into_bytes)
}

/// A cursor over the record.
struct Scan<'a> {
    json: &'a [u8],
    at: usize,
}

impl<'a> Scan<'a> {
    fn whitespace(&mut self) {
        while self.json.get(self.at).is_some_and(|b| matches!(b, b' ' | b'\t' | b'\n' | b'\r')) {
            self.at += 1;
        }
    }

    /// The next byte after whitespace, not consumed.
    fn peek(&mut self) -> Option<u8> {
        self.whitespace();
        self.json.get(self.at).copied()
    }

    /// The next byte after whitespace, consumed.
    fn next(&mut self) -> Option<u8> {
        let byte = self.peek()?;
        self.at += 1;
        Some(byte)
    }

    fn expect(&mut self, byte: u8) -> Option<()> {
        (self.next()? == byte).then_some(())
    }

    /// The body of a string whose opening quote was consumed, up to its
    /// closing quote (consumed), and whether it has escapes (skipped, not
    /// decoded). A plain loop: record strings are short, and a call to a
    /// vectorized search cost more than it saved.
    fn string_body(&mut self) -> Option<(&'a [u8], bool)> {
        let start = self.at;
        let mut escaped = false;
        loop {
            let rest = self.json.get(self.at..)?;
            self.at += rest.iter().position(|&b| b == b'"' || b == b'\\')?;
            if self.json[self.at] == b'"' {
                self.at += 1;
                return Some((&self.json[start..self.at - 1], escaped));
            }
            escaped = true;
            self.at += 2; // the backslash and the byte it escapes
        }
    }

    /// Moves past one value: a string, an object or array (to the bracket
    /// that closes it, counting nesting without recursion), or a scalar (to
    /// the whitespace, comma or bracket after it).
    fn value(&mut self) -> Option<()> {
        match *self.json.get(self.at)? {
            b'"' => {
                self.at += 1;
                self.string_body().map(drop)
            }
            b'{' | b'[' => {
                let mut depth = 0usize;
                loop {
                    match *self.json.get(self.at)? {
                        b'"' => {
                            self.at += 1;
                            self.string_body()?;
                            continue;
                        }
                        b'{' | b'[' => depth += 1,
                        b'}' | b']' => {
                            depth -= 1;
                            if depth == 0 {
                                self.at += 1;
                                return Some(());
                            }
                        }
                        _ => {}
                    }
                    self.at += 1;
                }
            }
            _ => {
                let start = self.at;
                while self
                    .json
                    .get(self.at)
                    .is_some_and(|b| !matches!(b, b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r'))
                {
                    self.at += 1;
                }
                (self.at > start).then_some(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(json: &str) -> Option<(Option<i64>, Option<String>)> {
        let [time, key] = raw_fields(json.as_bytes(), [Some("ts"), Some("id")])?;
        Some((time.and_then(raw_millis), key.and_then(raw_text)))
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
        assert_eq!(fields(" { \"t\\u0073\" : 5 , \"s\":\"}\\\\\" } \n"), Some((Some(5), None)), "escaped key, spaces");
        for not_json_integers in [r#"{"ts":+5}"#, r#"{"ts":007}"#, r#"{"ts":-05}"#, r#"{"ts":-}"#, r#"{"ts":1_0}"#] {
            assert_eq!(fields(not_json_integers), Some((None, None)), "{not_json_integers}");
        }
        assert_eq!(fields(r#"{"ts":0}"#), Some((Some(0), None)));
        assert_eq!(fields(r#"{"ts":-0}"#), Some((Some(0), None)));
        assert_eq!(fields(r#"{"ts":-12}"#), Some((Some(-12), None)));
    }

    #[test]
    fn refuses_what_does_not_scan_as_an_object() {
        assert_eq!(fields(r#"{"ts":1"#), None);
        assert_eq!(fields(r#"{"ts":1} x"#), None);
        assert_eq!(fields(r#"{"ts":1,}"#), None);
        assert_eq!(fields(r#"{"ts":}"#), None);
        assert_eq!(fields(r#"{"ts" 1}"#), None);
        assert_eq!(fields(r#"{"ts":"1}"#), None);
        assert_eq!(fields(r#"{"ts":[1}"#), None);
        assert_eq!(fields("{\"ts\":\"\\"), None);
        assert_eq!(fields("[1]"), None);
        assert_eq!(fields("not json"), None);
        assert_eq!(fields(""), None);
    }

    /// What the scan does not check: bytes inside values it skips. Such a
    /// record's time is read, and the job's decode refuses the record, so
    /// its time never reaches the watermark (tested through the task by
    /// `tests/guests/guest-windows`, case `a_refused_record_does_not_move_event_time`,
    /// which `tests/runtime/parity.rs` runs as WASM).
    #[test]
    fn does_not_check_inside_the_values_it_skips() {
        // Not UTF-8 (a Latin-1 "é") in an unread field's string.
        assert_eq!(
            raw_fields(b"{\"ts\":1,\"name\":\"caf\xe9\"}", [Some("ts")]).map(|[t]| t.and_then(raw_millis)),
            Some(Some(1))
        );
        assert_eq!(fields(r#"{"ts":5,"x":tru}"#), Some((Some(5), None)));
        assert_eq!(fields(r#"{"ts":5,"x":[1 2]}"#), Some((Some(5), None)));
        // A wanted string is decoded strictly.
        assert_eq!(raw_fields(b"{\"id\":\"caf\xe9\"}", [Some("id")]).map(|[k]| k.and_then(raw_text)), Some(None));
    }
}
