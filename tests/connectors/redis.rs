//! The Redis dimension store against the local Redis, built through the
//! connector registry as a job would build it. Every test writes under its
//! own key prefix (test name + process id) and deletes its keys at the end,
//! failed or not; checks use `ensure!` so a failure still reaches the
//! clean-up.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use redis::aio::MultiplexedConnection;
use redis::{AsyncCommands, IntoConnectionInfo};
use sluice_runtime::connections::{Connection, Connections, RedisConnection, Secret};
use sluice_runtime::connectors::registry::{BuildContext, build_dimension};
use sluice_runtime::connectors::{ConnectorError, DimensionStore};
use sluice_runtime::job::JobSpec;
use sluice_tests::services::redis_url;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// Keys of test `test` in this run; free of glob characters, so `base*`
/// finds them all for the clean-up.
fn key_base(test: &str) -> String {
    format!("sluice-test:{}:{test}:", std::process::id())
}

/// A job spec whose dimension `dim` is `kind = "redis"` on connection
/// `cache`, plus the extra lines `table` of its table.
fn spec(table: &str) -> Result<JobSpec> {
    let text = format!(
        "name = \"redis_dimension_test\"\ncomponent = \"unused.wasm\"\n\
         [sources.in]\nkind = \"file\"\npath = \"in.jsonl\"\n\
         [dimensions.dim]\nkind = \"redis\"\nconnection = \"cache\"\n{table}\n"
    );
    JobSpec::parse(&text, Path::new(".")).context("test spec")
}

/// The registry of a local run: `cache` is the test Redis.
fn local_connections() -> Connections {
    let mut connections = Connections::default();
    connections.apply_override(&format!("cache={}", redis_url())).expect("a valid override");
    connections
}

async fn build(spec: &JobSpec, connections: &Connections) -> Result<Arc<dyn DimensionStore>, ConnectorError> {
    build_dimension(BuildContext::new(spec, connections), "dim", &spec.dimensions["dim"]).await
}

/// A plain client, to see what is really in Redis.
async fn plain_redis() -> Result<MultiplexedConnection> {
    let client = redis::Client::open(redis_url())?;
    Ok(client.get_multiplexed_async_connection().await?)
}

/// Deletes the keys under `base`, then hands back the test's outcome.
async fn clean_up(base: &str, outcome: Result<()>) -> Result<()> {
    let mut redis = plain_redis().await?;
    let keys: Vec<String> = redis.keys(format!("{base}*")).await?;
    if !keys.is_empty() {
        redis.del::<_, ()>(keys).await?;
    }
    outcome
}

#[tokio::test]
async fn json_rows_are_written_through_and_read_back() -> Result<()> {
    let base = key_base("json");
    let outcome = async {
        let store = build(&spec(&format!("key_prefix = \"{base}\""))?, &local_connections()).await?;
        ensure!(store.lookup(b"u1").await?.is_none(), "nothing stored yet");

        let row = br#"{"id":"u1","premium":120.5}"#;
        store.upsert(b"u1", row).await?;
        // The miss above is cached; the write must replace it.
        ensure!(store.lookup(b"u1").await?.as_deref() == Some(&row[..]), "reads its own write");

        let mut redis = plain_redis().await?;
        let stored: Option<Vec<u8>> = redis.get(format!("{base}u1")).await?;
        ensure!(stored.as_deref() == Some(&row[..]), "the JSON text is in Redis: {stored:?}");
        let pttl: i64 = redis.pttl(format!("{base}u1")).await?;
        ensure!(pttl == -1, "no ttl configured, no expiry: PTTL {pttl}");
        Ok(())
    }
    .await;
    clean_up(&base, outcome).await
}

#[tokio::test]
async fn hash_rows_round_trip_and_a_replaced_hash_drops_old_fields() -> Result<()> {
    let base = key_base("hash");
    let outcome = async {
        // No cache: every lookup reads the hash back from Redis.
        let table = format!("key_prefix = \"{base}\"\nlayout = \"hash\"\ncache = {{ max_entries = 0 }}");
        let store = build(&spec(&table)?, &local_connections()).await?;
        ensure!(store.lookup(b"u1").await?.is_none(), "nothing stored yet");

        store.upsert(b"u1", br#"{"name":"ann","premium":12.5,"tags":["a"],"vip":true}"#).await?;
        let row: serde_json::Value = serde_json::from_slice(&store.lookup(b"u1").await?.context("row u1")?)?;
        let expected = serde_json::json!({"name": "ann", "premium": "12.5", "tags": "[\"a\"]", "vip": "true"});
        ensure!(row == expected, "fields come back as strings: {row}");

        store.upsert(b"u1", br#"{"name":"bob"}"#).await?;
        let mut redis = plain_redis().await?;
        let fields: Vec<String> = redis.hkeys(format!("{base}u1")).await?;
        ensure!(fields == ["name"], "old fields are gone: {fields:?}");
        let rows = store.rows().await?;
        ensure!(rows == [(b"u1".to_vec(), br#"{"name":"bob"}"#.to_vec())], "rows: {rows:?}");

        let err = store.upsert(b"u2", b"[1,2]").await.err().context("an array is not a hash")?.to_string();
        ensure!(err.contains("layout = \"hash\"") && err.contains("`u2`"), "{err}");
        Ok(())
    }
    .await;
    clean_up(&base, outcome).await
}

#[tokio::test]
async fn ttl_is_set_on_every_write_in_both_layouts() -> Result<()> {
    let base = key_base("ttl");
    let outcome = async {
        let connections = local_connections();
        let mut redis = plain_redis().await?;
        for layout in ["json", "hash"] {
            let table = format!("key_prefix = \"{base}{layout}:\"\nlayout = \"{layout}\"\nttl = \"1h\"");
            let store = build(&spec(&table)?, &connections).await?;
            store.upsert(b"k", br#"{"v":1}"#).await?;
            let pttl: i64 = redis.pttl(format!("{base}{layout}:k")).await?;
            ensure!(pttl > 0 && pttl <= 3_600_000, "{layout}: PTTL {pttl}");
        }
        Ok(())
    }
    .await;
    clean_up(&base, outcome).await
}

#[tokio::test]
async fn rows_lists_only_the_prefix_sorted_by_key() -> Result<()> {
    let base = key_base("rows");
    let outcome = async {
        // Glob characters in the prefix are literal: the decoy would match
        // the prefix read as a pattern (`[1]` matches `1`).
        let prefix = format!("{base}a[1]*:");
        let mut redis = plain_redis().await?;
        redis.set::<_, _, ()>(format!("{base}a1x:decoy"), "{}").await?;

        let store = build(&spec(&format!("key_prefix = '{prefix}'"))?, &local_connections()).await?;
        for key in ["b", "a", "c"] {
            store.upsert(key.as_bytes(), format!(r#"{{"k":"{key}"}}"#).as_bytes()).await?;
        }
        let rows: Vec<(String, String)> = store
            .rows()
            .await?
            .into_iter()
            .map(|(k, v)| (String::from_utf8_lossy(&k).into_owned(), String::from_utf8_lossy(&v).into_owned()))
            .collect();
        let expected: Vec<(String, String)> =
            ["a", "b", "c"].iter().map(|k| (k.to_string(), format!(r#"{{"k":"{k}"}}"#))).collect();
        ensure!(rows == expected, "rows: {rows:?}");
        Ok(())
    }
    .await;
    clean_up(&base, outcome).await
}

/// A TCP proxy in front of the test Redis, and its URL. Sending on the
/// returned channel drops every open link (as a Redis restart or a network
/// blip would); new connections still go through.
async fn cuttable_proxy() -> Result<(String, watch::Sender<()>)> {
    let url = redis_url();
    let target = url.as_str().into_connection_info()?.addr.to_string();
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let proxy_url = url.replace(&target, &listener.local_addr()?.to_string());
    let (cut, _) = watch::channel(());
    let links = cut.clone();
    tokio::spawn(async move {
        while let Ok((mut client, _)) = listener.accept().await {
            let (mut cut, target) = (links.subscribe(), target.clone());
            tokio::spawn(async move {
                let Ok(mut server) = TcpStream::connect(&target).await else { return };
                tokio::select! {
                    _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                    _ = cut.changed() => {}
                }
            });
        }
    });
    Ok((proxy_url, cut))
}

#[tokio::test]
async fn commands_are_retried_over_a_dropped_connection() -> Result<()> {
    let base = key_base("reconnect");
    let outcome = async {
        let (url, cut) = cuttable_proxy().await?;
        let mut connections = Connections::default();
        connections.apply_override(&format!("cache={url}")).expect("a valid override");
        // No cache, so the lookup has to reach Redis.
        let table = format!("key_prefix = \"{base}\"\ncache = {{ max_entries = 0 }}");
        let store = build(&spec(&table)?, &connections).await?;
        store.upsert(b"k", br#"{"v":1}"#).await?;
        cut.send_replace(());
        let row = store.lookup(b"k").await.context("lookup after the connection dropped")?;
        ensure!(row.as_deref() == Some(&br#"{"v":1}"#[..]), "{row:?}");
        Ok(())
    }
    .await;
    clean_up(&base, outcome).await
}

#[tokio::test]
async fn unreachable_redis_fails_at_connect_quickly_without_the_password() -> Result<()> {
    let mut connections = Connections::default();
    connections.apply_override("cache=redis://:hunter2@127.0.0.1:1").expect("a valid override");
    let started = Instant::now();
    let err = build(&spec("")?, &connections).await.err().context("nothing listens on port 1")?;
    let elapsed = started.elapsed();
    let message = err.to_string();
    ensure!(elapsed < Duration::from_secs(10), "failed after {elapsed:?}, not fast");
    ensure!(message.contains("`cache`") && message.contains("127.0.0.1:1"), "names connection and URL: {message}");
    ensure!(!message.contains("hunter2"), "the password is not shown: {message}");
    ensure!(err.retryable(), "Redis may come back: {message}");
    Ok(())
}

#[tokio::test]
async fn a_missing_password_variable_is_named() -> Result<()> {
    let var = "SLUICE_TEST_REDIS_PASSWORD_NOT_SET";
    let mut connections = Connections::default();
    let password = Some(Secret::Env(var.into()));
    connections.insert("cache", Connection::Redis(RedisConnection { url: redis_url(), password }));
    let err = build(&spec("")?, &connections).await.err().context("the variable is not set")?;
    ensure!(err.to_string().contains(var) && !err.retryable(), "{err}");
    Ok(())
}

#[tokio::test]
async fn the_password_secret_is_sent() -> Result<()> {
    // The test Redis has no password (or another one): sending this wrong
    // one must make the connect fail, which shows the secret is applied.
    let file = tempfile::NamedTempFile::new()?;
    std::fs::write(file.path(), "not-the-password\n")?;
    let mut connections = Connections::default();
    let password = Some(Secret::File(file.path().to_path_buf()));
    connections.insert("cache", Connection::Redis(RedisConnection { url: redis_url(), password }));
    let err = build(&spec("")?, &connections).await.err().context("a wrong password is refused")?;
    let message = err.to_string();
    ensure!(message.contains("`cache`") && !message.contains("not-the-password"), "{message}");
    ensure!(!err.retryable(), "a wrong password stays wrong: {message}");
    Ok(())
}
