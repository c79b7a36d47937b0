//! Hostile inputs for the property tests that fuzz what tenants control:
//! spec TOML (`job/fuzz_spec.rs`), record values (`connectors/fuzz_records.rs`)
//! and database cells (`connectors/sql/fuzz_rows.rs`). Each strategy mixes
//! plain arbitrary data with the shapes that break parsers: huge and
//! negative numbers, deep nesting, odd unicode, very long text, injection
//! text, invalid UTF-8, repeated keys.

use proptest::prelude::*;
use proptest::test_runner::Config;

/// Cases per property: a few hundred keeps each property well under a
/// second or two in a debug build, so the suite runs them every time.
pub(crate) const CASES: u32 = 512;

/// The runner settings every fuzz property uses. Failures are not written
/// to `proptest-regressions/` files: a failing input is kept as a plain
/// regression test next to the property instead, where it says why.
pub(crate) fn config() -> Config {
    Config { cases: CASES, failure_persistence: None, ..Config::default() }
}

/// Nesting deep enough to overflow a recursive parser's stack (a test
/// thread has 2 MiB), yet cheap to build.
pub(crate) const DEEP: usize = 50_000;

/// Text a tenant might send where a name, a value or a cell is expected.
pub(crate) fn hostile_text() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => any::<String>(),
        2 => prop::sample::select(SAMPLES).prop_map(str::to_owned),
        1 => (prop::sample::select(SAMPLES), 1..20_000usize).prop_map(|(s, n)| s.repeat(n.min(100_000 / s.len().max(1)))),
        1 => "[a-z0-9_-]{1,12}",
        1 => any::<i64>().prop_map(|n| n.to_string()),
        1 => any::<f64>().prop_map(|n| n.to_string()),
    ]
}

/// Numbers, times, quoting and injection text that parsers get wrong.
const SAMPLES: &[&str] = &[
    "",
    " ",
    "-0",
    "-1",
    "0",
    "1e309",
    "-1e309",
    "1e-400",
    "NaN",
    "inf",
    "-inf",
    "9223372036854775807",
    "9223372036854775808",
    "-9223372036854775808",
    "-9223372036854775809",
    "18446744073709551616",
    "123456789012345678901234567890.123456789",
    "0x1F",
    "1_000",
    "2024-01-01 10:00:00",
    "2024-01-01 10:00:00.123+00",
    "2024-02-30 25:61:61",
    "2023-11-14T22:13:20.123Z",
    "9999-12-31T23:59:59.999999999+23:59",
    "0000-01-01T00:00:00-23:59",
    "+262143-12-31T23:59:59Z",
    "-262144-01-01T00:00:00Z",
    "2024-01-01 10:00:00.99999999999999999999+99",
    "true",
    "false",
    "t",
    "f",
    "null",
    "{}",
    "[]",
    "{\"a\":",
    "\"",
    "\\",
    "\\u0000",
    "\u{0}",
    "\u{7f}",
    "\u{feff}",
    "\u{202e}gnp.exe",
    "\u{10ffff}",
    "é",
    "ß\u{301}",
    "日本語",
    "🦀",
    "'; DROP TABLE users; --",
    "\" OR \"1\"=\"1",
    "` ; ATTACH DATABASE 'x' AS y; --",
    "../../../../etc/passwd",
    "/etc/shadow",
    "C:\\Windows\\system32",
    "${HOME}",
    "$(rm -rf /)",
    "%s%s%s%n",
    "<script>alert(1)</script>",
    "a|b\\c",
    "\r\n",
    "\n[sources.evil]\nkind = \"file\"\n",
    "1s",
    "0s",
    "-5s",
    "18446744073709551615s",
    "99999999999999999999h",
    "584942417355y",
    "1 fortnight",
    "100ms 100ms",
];

/// JSON text, valid or not, as bytes: what a Kafka message or a file line
/// may hold.
pub(crate) fn hostile_json() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        3 => json_text().prop_map(String::into_bytes),
        3 => json_object().prop_map(String::into_bytes),
        2 => any::<Vec<u8>>(),
        1 => deep_nesting().prop_map(String::into_bytes),
        1 => (json_text(), any::<Vec<u8>>(), any::<prop::sample::Index>()).prop_map(|(text, junk, at)| {
            // Bytes spliced in anywhere: cut strings, invalid UTF-8.
            let mut bytes = text.into_bytes();
            let at = at.index(bytes.len() + 1);
            bytes.splice(at..at, junk);
            bytes
        }),
        1 => (json_text(), any::<prop::sample::Index>()).prop_map(|(text, at)| {
            // A document cut short.
            let mut bytes = text.into_bytes();
            bytes.truncate(at.index(bytes.len() + 1));
            bytes
        }),
    ]
}

/// Arrays or objects nested up to [`DEEP`] levels, closed or not, alone or
/// as the value of a field a decoder looks for.
pub(crate) fn deep_nesting() -> impl Strategy<Value = String> {
    (1..DEEP, any::<bool>(), any::<bool>(), prop::sample::select(&["ts", "id", "a"][..])).prop_map(
        |(depth, objects, closed, field)| {
            let (open, close) = if objects { ("{\"a\":", "}") } else { ("[", "]") };
            let mut text = format!("{{\"{field}\":");
            text.push_str(&open.repeat(depth));
            text.push('1');
            if closed {
                text.push_str(&close.repeat(depth));
                text.push('}');
            }
            text
        },
    )
}

/// Well-formed JSON text with hostile contents: numbers beyond every
/// integer and float type, repeated keys, odd strings, some nesting.
pub(crate) fn json_text() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        Just("null".to_owned()),
        Just("true".to_owned()),
        Just("false".to_owned()),
        any::<i64>().prop_map(|n| n.to_string()),
        any::<u64>().prop_map(|n| n.to_string()),
        any::<f64>().prop_filter("JSON has no NaN or infinity", |f| f.is_finite()).prop_map(|f| f.to_string()),
        prop::sample::select(JSON_NUMBERS).prop_map(str::to_owned),
        hostile_text().prop_map(|s| serde_json::Value::String(s).to_string()),
    ];
    leaf.prop_recursive(6, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(|items| format!("[{}]", items.join(","))),
            prop::collection::vec((json_key(), inner), 0..8).prop_map(|fields| {
                let fields: Vec<String> = fields.into_iter().map(|(k, v)| format!("{k}:{v}")).collect();
                format!("{{{}}}", fields.join(","))
            }),
        ]
    })
}

/// A JSON object whose keys are mostly the names decoders look for, so
/// wanted fields are present, repeated or escaped.
pub(crate) fn json_object() -> impl Strategy<Value = String> {
    prop::collection::vec((json_key(), json_text()), 0..6).prop_map(|fields| {
        let fields: Vec<String> = fields.into_iter().map(|(k, v)| format!("{k}:{v}")).collect();
        format!("{{{}}}", fields.join(","))
    })
}

/// Number literals that are valid JSON but fit no machine type.
const JSON_NUMBERS: &[&str] = &[
    "-0",
    "1e309",
    "-1e309",
    "1E+400",
    "1e-400",
    "9223372036854775808",
    "-9223372036854775809",
    "18446744073709551616",
    "123456789012345678901234567890123456789012345678901234567890",
    "0.000000000000000000000000000000000000000000001",
    "1.5",
    "1700000000000",
];

/// An object key, quoted: mostly the few names the decoders look for, so
/// they repeat, sometimes anything.
fn json_key() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop::sample::select(&["ts", "id", "a", "ts"][..]).prop_map(|k| format!("\"{k}\"")),
        1 => Just("\"t\\u0073\"".to_owned()),
        1 => hostile_text().prop_map(|s| serde_json::Value::String(s).to_string()),
    ]
}
