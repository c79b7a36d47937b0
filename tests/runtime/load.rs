//! Loading components: what is not a valid Sluice job is refused with a
//! `LoadError` that says what is wrong and what to do about it; a valid job
//! loads, and loads the same way twice.

use std::path::Path;

use sluice_runtime::job::{JobSpec, TaskBuilder};
use sluice_runtime::wasm::{LoadError, LoadedComponent, StateKeying};
use sluice_tests::{engine, wasm};

/// Loads a fixture component by lib name and expects a refusal.
async fn refuse(name: &str) -> LoadError {
    match engine().load_file(&wasm(name)).await {
        Ok(_) => panic!("{name}: the runtime accepted a component it must refuse"),
        Err(e) => e,
    }
}

fn assert_mentions(error: &LoadError, needles: &[&str]) {
    let message = error.to_string();
    for needle in needles {
        assert!(message.contains(needle), "the message does not mention `{needle}`: {message}");
    }
}

#[tokio::test]
async fn bytes_that_are_not_wasm_are_refused() {
    let error = engine().load(b"hello").await.err().expect("`hello` is not wasm");
    assert!(matches!(error, LoadError::NotWasm), "{error:?}");
    assert_mentions(&error, &["not a WebAssembly file", "\\0asm"]);

    let error = engine().load(b"").await.err().expect("empty input is not wasm");
    assert!(matches!(error, LoadError::NotWasm), "{error:?}");
}

#[tokio::test]
async fn a_core_module_is_refused_with_how_to_build_a_component() {
    let error = engine().load(b"\0asm\x01\0\0\0").await.err().expect("a core module is not a component");
    assert!(matches!(error, LoadError::CoreModule), "{error:?}");
    assert_mentions(&error, &["core WebAssembly module, not a component", "--target wasm32-wasip2"]);
}

#[tokio::test]
async fn a_truncated_component_is_invalid() {
    let bytes = std::fs::read(wasm("last_page")).expect("last_page fixture");
    let half = &bytes[..bytes.len() / 2];
    let error = engine().load(half).await.err().expect("half a component is not a component");
    assert!(matches!(error, LoadError::Invalid(_)), "{error:?}");
    assert_mentions(&error, &["invalid component: "]);
    // The detail comes from the validator, not just the prefix.
    let LoadError::Invalid(detail) = &error else { unreachable!() };
    assert!(!detail.trim().is_empty(), "no detail in {error}");
}

#[tokio::test]
async fn a_component_without_the_job_export_is_refused() {
    let error = refuse("guest_no_export").await;
    let LoadError::MissingExport { found } = &error else { panic!("expected MissingExport, got {error:?}") };
    assert!(found.contains("acme:other/thing"), "the exports found are listed: {found}");
    assert!(!found.contains("sluice:job"), "{found}");
    assert_mentions(&error, &["does not export `sluice:job/job@0.4.0`", "acme:other/thing", "#[sluice_sdk::job]"]);
}

#[tokio::test]
async fn a_component_built_against_an_older_contract_is_refused() {
    let error = refuse("guest_old_contract").await;
    let LoadError::WrongVersion { found } = &error else { panic!("expected WrongVersion, got {error:?}") };
    assert_eq!(found, "sluice:job/job@0.0.9");
    assert_mentions(&error, &["sluice:job/job@0.0.9", "sluice:job@0.4.0", "rebuild it with a matching sluice-sdk"]);
}

#[tokio::test]
async fn a_component_importing_what_sluice_does_not_provide_is_refused() {
    let error = refuse("guest_foreign_import").await;
    let LoadError::UnknownImport(import) = &error else { panic!("expected UnknownImport, got {error:?}") };
    assert_eq!(import, "acme:net/fetch");
    assert_mentions(&error, &["`acme:net/fetch`", "Sluice does not provide", "sluice:job/*@0.4.0", "WASI"]);
}

#[tokio::test]
async fn a_component_with_another_abi_revision_is_refused() {
    let error = refuse("guest_abi_mismatch").await;
    let LoadError::AbiVersion { found } = &error else { panic!("expected AbiVersion, got {error:?}") };
    assert_eq!(*found, 99);
    assert_mentions(&error, &["ABI revision 99", &format!("needs {}", sluice_runtime::wasm::ABI_VERSION), "rebuild"]);
}

#[tokio::test]
async fn a_component_declaring_an_overlong_stage_name_is_refused() {
    let error = refuse("guest_bad_stages").await;
    let LoadError::Stages(message) = &error else { panic!("expected Stages, got {error:?}") };
    assert!(message.contains("reading them failed") && message.contains("at most 64 bytes"), "{message}");
    assert_mentions(&error, &["stages (`Job::STAGES`) cannot run"]);
}

#[tokio::test]
async fn a_component_declaring_stages_has_them_read_at_load() {
    let loaded = sluice_tests::load("hourly_premium_staged").await.expect("the staged job loads");
    assert_eq!(loaded.stages, ["last_order", "hour_totals"]);
    assert!(sluice_tests::load("hourly_premium").await.expect("loads").stages.is_empty(), "a job of one stage");
}

#[tokio::test]
async fn a_missing_file_is_named() {
    let path = wasm("no_such_fixture");
    let error = engine().load_file(&path).await.err().expect("the file does not exist");
    assert!(matches!(error, LoadError::Read { .. }), "{error:?}");
    assert_mentions(&error, &["no_such_fixture.wasm"]);
}

#[tokio::test]
async fn a_valid_job_loads_with_a_stable_content_hash() {
    let path = wasm("last_page");
    let first: LoadedComponent = engine().load_file(&path).await.expect("last_page loads");
    let second = engine().load_file(&path).await.expect("last_page loads again");
    assert_eq!(first.hash, second.hash);
    assert_eq!(first.hash.len(), 64, "a SHA-256 in hex: {}", first.hash);
    assert!(first.hash.bytes().all(|b| b.is_ascii_hexdigit()), "{}", first.hash);

    // A different component has a different hash.
    let other = engine().load_file(&wasm("guest_hostile")).await.expect("guest_hostile loads");
    assert_ne!(other.hash, first.hash);
}

/// A job's declaration of how its state is keyed is read at load: the
/// SDK's default (`Global`) for jobs that aggregate across keys,
/// `ByRecordKey` where a job declares it, and for function jobs (stateless).
#[tokio::test]
async fn a_component_declares_how_its_state_is_keyed() {
    for (name, expected) in [
        ("hourly_premium", StateKeying::Global),
        ("lending_report", StateKeying::Global),
        ("last_page", StateKeying::ByRecordKey),
        ("guest_keyed_count", StateKeying::ByRecordKey),
        ("bench_passthrough", StateKeying::ByRecordKey),
    ] {
        let loaded = engine().load_file(&wasm(name)).await.unwrap_or_else(|e| panic!("{name} loads: {e}"));
        assert_eq!(loaded.state_keying, expected, "{name}");
    }
}

/// A task of a job whose state is global is refused at parallelism above
/// 1, with why and what to declare (issue 19: hourly-premium at
/// parallelism 2 wrote a third of the truth); at parallelism 1 it builds.
#[tokio::test]
async fn a_job_with_global_state_is_refused_in_parallel() {
    let spec = JobSpec::parse(
        "name = \"hourly\"\ncomponent = \"c.wasm\"\n[sources.in]\nkind = \"datagen\"\npartitions = 2\n\
         [sources.in.fields]\nid = { gen = \"key\" }\n[sinks.hs_order]\nkind = \"memory\"\n",
        Path::new("."),
    )
    .expect("spec");
    let global = engine().load_file(&wasm("hourly_premium")).await.expect("hourly_premium loads");
    let refused = TaskBuilder::new(&spec).partition_group(1, 2).build(engine(), &global).await;
    let message = refused.err().expect("refused at parallelism 2").to_string();
    for needle in [
        "job `hourly` cannot run at parallelism 2",
        "partial results",
        "Run it at parallelism 1",
        "StateKeying::ByRecordKey",
    ] {
        assert!(message.contains(needle), "`{needle}` in: {message}");
    }
    TaskBuilder::new(&spec).build(engine(), &global).await.expect("hourly premium builds at parallelism 1");

    let keyed = engine().load_file(&wasm("guest_keyed_count")).await.expect("guest_keyed_count loads");
    let spec = JobSpec::parse(
        "name = \"counts\"\ncomponent = \"c.wasm\"\n[sources.in]\nkind = \"datagen\"\npartitions = 2\n\
         [sources.in.fields]\nid = { gen = \"key\" }\n[sinks.counts]\nkind = \"memory\"\n",
        Path::new("."),
    )
    .expect("spec");
    TaskBuilder::new(&spec)
        .partition_group(1, 2)
        .build(engine(), &keyed)
        .await
        .expect("a keyed count builds in parallel");
}

/// A job keyed by record key is sharded by the greatest common divisor of
/// its inputs' partition counts, so that co-partitioned inputs of 8 and 4
/// partitions meet in 4 shards; a job with a connector that cannot be
/// split (here a file sink) has one shard, and a file sink refuses to be
/// built for a share of the partitions.
#[tokio::test]
async fn shards_are_what_every_input_can_be_split_into() {
    let spec = |sink: &str| {
        let text = format!(
            "name = \"join\"\ncomponent = \"c.wasm\"\n\
             [sources.orders]\nkind = \"datagen\"\npartitions = 8\nkeys = 8\n[sources.orders.fields]\nid = {{ gen = \"key\" }}\n\
             [sources.users]\nkind = \"datagen\"\npartitions = 4\nkeys = 4\n[sources.users.fields]\nid = {{ gen = \"key\" }}\n\
             [sinks.out]\n{sink}\n"
        );
        JobSpec::parse(&text, Path::new("/tmp")).expect("spec")
    };
    let connections = sluice_runtime::connections::Connections::default();
    let shards = |spec: JobSpec| {
        let connections = connections.clone();
        async move { sluice_runtime::connectors::registry::shard_count(&spec, &connections).await.expect("counted") }
    };
    assert_eq!(shards(spec("kind = \"memory\"")).await, 4);
    assert_eq!(shards(spec("kind = \"file\"\npath = \"out.jsonl\"")).await, 1);

    let keyed = engine().load_file(&wasm("guest_keyed_count")).await.expect("guest_keyed_count loads");
    let file_spec = spec("kind = \"file\"\npath = \"out.jsonl\"");
    let split_file = TaskBuilder::new(&file_spec).partition_group(1, 4);
    let refused = split_file.build(engine(), &keyed).await.err().expect("a file sink cannot be split").to_string();
    assert!(refused.contains("a file sink writes one file"), "{refused}");
}
