//! Property tests (fuzzing) of the console's side of a spec: a tenant's
//! spec text with the deployment's settings laid over it ([`job_spec`]),
//! then parsed by the runtime. Any text, parameters, limits or start
//! position give a spec or an error, never a panic; and a spec the console
//! accepts never reaches a file outside the project's area. The runtime's
//! own spec parser is fuzzed in `runtime/src/job/fuzz_spec.rs`; see
//! docs/SECURITY.md, "Fuzzing".

use std::path::{Component, Path};

use proptest::prelude::*;
use proptest::test_runner::Config;
use sluice_runtime::connectors::registry::{DimensionSpec, SinkSpec, SourceSpec};

use super::plan::{StartPosition, job_spec};
use crate::store::Deployment;

/// A spec as a tenant uploads it (the console sets `name` and
/// `component`), with every file-reading connector.
const SPEC: &str = r#"
[parameters]
threshold = "0.5"

[sources.lines]
kind = "file"
path = "in/orders.jsonl"

[sources.orders]
kind = "kafka"
connection = "events"
topic = "orders"

[sinks.out]
kind = "file"
path = "out.jsonl"

[dimensions.users]
kind = "memory"
path = "users.jsonl"

[dead_letter]
kind = "file"
path = "dead.jsonl"

[limits]
memory_mb = 64
"#;

fn config() -> Config {
    Config { cases: 512, failure_persistence: None, ..Config::default() }
}

/// Text where a path, a parameter or a start position goes: traversal,
/// absolute and odd paths, numbers and dates at their limits, anything.
fn hostile_text() -> impl Strategy<Value = String> {
    prop_oneof![
        2 => any::<String>(),
        3 => prop::sample::select(SAMPLES).prop_map(str::to_owned),
        1 => (prop::sample::select(SAMPLES), 1..2000usize).prop_map(|(s, n)| s.repeat(n)),
        1 => "[a-z./-]{0,20}",
    ]
}

const SAMPLES: &[&str] = &[
    "",
    "-",
    ".",
    "..",
    "./",
    "/",
    "//x",
    "../x",
    "a/../../x",
    "a/./b",
    "./a/../..",
    "/etc/passwd",
    "~/.ssh/id_rsa",
    "C:\\Windows\\system32",
    "\\\\server\\share",
    "a\u{0}b",
    "\u{202e}txt.exe",
    "%2e%2e/x",
    "..\\..\\x",
    "\"\n[sources.evil]\nkind = \"file\"\npath = \"/etc/passwd",
    "earliest",
    "latest",
    "9223372036854775807",
    "-9223372036854775808",
    "2024-03-15T00:00:00+08:00",
    "+262143-12-31T23:59:59Z",
    "9999-12-31T23:59:59.999999999-23:59",
];

/// The spec text: the base with one file path replaced, with text
/// spliced in or cut off at any byte, or any text at all.
fn spec_text() -> impl Strategy<Value = String> {
    let paths = &["in/orders.jsonl", "out.jsonl", "users.jsonl", "dead.jsonl"][..];
    prop_oneof![
        3 => (prop::sample::select(paths), hostile_text()).prop_map(|(old, new)| {
            SPEC.replace(&format!("\"{old}\""), &toml::Value::String(new).to_string())
        }),
        2 => (any::<prop::sample::Index>(), any::<bool>(), hostile_text()).prop_map(|(at, cut, junk)| {
            let mut text = SPEC.to_owned();
            let at = at.index(text.len() + 1);
            if cut {
                text.truncate(at);
            }
            text.insert_str(at, &junk);
            text
        }),
        1 => any::<String>(),
        1 => (1..20_000usize).prop_map(|depth| format!("{SPEC}\n[sources.deep]\nkind = \"file\"\npath = {}\"x\"{}\n", "[".repeat(depth), "]".repeat(depth))),
    ]
}

fn deployment() -> impl Strategy<Value = Deployment> {
    (
        spec_text(),
        prop::collection::vec((hostile_text(), hostile_text()), 0..3),
        any::<Option<i64>>(),
        any::<Option<i64>>(),
    )
        .prop_map(|(spec, parameters, memory_mb, cpu_ms)| Deployment {
            job_id: "j".into(),
            version_id: "v".into(),
            spec,
            parameters: parameters.into_iter().collect(),
            parallelism: 1,
            memory_mb,
            cpu_ms,
            schedule: None,
            updated_ms: 0,
        })
}

/// Whether `path` stays inside the directory it is resolved against.
fn inside(path: &Path) -> bool {
    path != Path::new("-") && path.components().all(|c| matches!(c, Component::Normal(_) | Component::CurDir))
}

proptest! {
    #![proptest_config(config())]

    /// Any deployment: a spec or an error; an accepted spec has the
    /// console's name and component and only paths inside the project's
    /// file area.
    #[test]
    fn fuzz_console_job_spec(
        deployment in deployment(),
        key in prop_oneof![4 => Just("demo__orders".to_owned()), 1 => hostile_text()],
        start in prop::option::of(prop_oneof![Just(StartPosition::Earliest), Just(StartPosition::Latest), any::<i64>().prop_map(StartPosition::Timestamp)]),
    ) {
        let Ok(spec) = job_spec(&deployment, &key, start.as_ref(), Path::new("/data/files/demo")) else { return Ok(()) };
        prop_assert_eq!(&spec.name, &key);
        prop_assert_eq!(spec.component.as_path(), Path::new("component.wasm"));
        let mut paths = Vec::new();
        for source in spec.sources.values() {
            if let SourceSpec::File(c) = source {
                paths.push(c.path.clone());
            }
        }
        for sink in spec.sinks.values().chain(&spec.dead_letter) {
            if let SinkSpec::File(c) = sink {
                paths.push(c.path.clone());
            }
        }
        for dimension in spec.dimensions.values() {
            if let DimensionSpec::Memory(c) = dimension {
                paths.extend(c.path.clone());
            }
        }
        for path in paths {
            prop_assert!(inside(&path), "{} escapes the project's file area", path.display());
        }
    }

    /// Any start position text: one of the three, or an error.
    #[test]
    fn fuzz_console_start_position(text in hostile_text()) {
        let _ = StartPosition::parse(&text);
    }
}
