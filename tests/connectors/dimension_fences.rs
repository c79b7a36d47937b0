//! Fenced dimension commits (`writes = "snapshot"` under a worker's lease)
//! against the real stores: once the job's new owner committed under a
//! newer lease epoch, a commit of an older one (a worker that froze
//! mid-commit and woke after the takeover) is refused by the store itself
//! and writes nothing. Each test uses a fence and rows of its own and
//! removes them.

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result, ensure};
use redis::AsyncCommands;
use sluice_runtime::connections::Connections;
use sluice_runtime::connectors::registry::{BuildContext, build_dimension};
use sluice_runtime::connectors::staged::StagedDimension;
use sluice_runtime::connectors::{ConnectorError, DimensionStore};
use sluice_runtime::job::JobSpec;
use sluice_tests::services::redis_url;

use crate::sql::{Backend, Db};

/// Builds dimension `users` of `kind` with `options`, through the registry
/// as a job does (so behind the read cache).
async fn users(kind: &str, options: &str, connections: &Connections) -> Result<Arc<dyn DimensionStore>> {
    let text = format!(
        "name = \"fence_test\"\ncomponent = \"unused.wasm\"\n[sources.in]\nkind = \"file\"\npath = \"unused\"\n\
         [dimensions.users]\nkind = \"{kind}\"\n{options}\nwrites = \"snapshot\"\n"
    );
    let spec = JobSpec::parse(&text, Path::new(".")).context("test spec")?;
    Ok(build_dimension(BuildContext::new(&spec, connections), "users", &spec.dimensions["users"]).await?)
}

/// A write of user `id` named `name`.
fn user(id: u32, name: &str) -> (Vec<u8>, Vec<u8>) {
    (id.to_string().into_bytes(), format!(r#"{{"name":"{name}"}}"#).into_bytes())
}

/// The store's rows as (key, name), read from the store (not the cache).
async fn names(store: &Arc<dyn DimensionStore>) -> Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    for (key, row) in store.rows().await? {
        let row: serde_json::Value = serde_json::from_slice(&row)?;
        let name = row["name"].as_str().context("a name")?.to_owned();
        out.push((String::from_utf8(key)?, name));
    }
    Ok(out)
}

fn expect(rows: &[(&str, &str)]) -> Vec<(String, String)> {
    rows.iter().map(|(k, n)| (k.to_string(), n.to_string())).collect()
}

/// What every shared store does with fenced commits, on fence `fence`;
/// leaves the fence at epoch 3.
async fn fencing_contract(store: &Arc<dyn DimensionStore>, fence: &str) -> Result<()> {
    // The new owner (epoch 2) commits: the fence goes up with its writes.
    store.commit_fenced(fence, 2, &[user(1, "ann@2")]).await.context("epoch 2 commits")?;
    ensure!(names(store).await? == expect(&[("1", "ann@2")]), "epoch 2 wrote: {:?}", names(store).await?);

    // The old owner (epoch 1) wakes mid-commit: refused, nothing written.
    let refused = store.commit_fenced(fence, 1, &[user(1, "ann@1"), user(2, "bob@1")]).await;
    match &refused {
        Err(ConnectorError::Fenced { name, fence: f, epoch: 1, fenced_at: 2, .. }) if name == "users" && f == fence => {
        }
        other => anyhow::bail!("an epoch 1 commit after epoch 2 must be fenced off: {other:?}"),
    }
    let message = refused.err().map(|e| e.to_string()).unwrap_or_default();
    ensure!(
        message.contains("`users`") && message.contains("epoch 1") && message.contains("epoch 2"),
        "names the dimension and both epochs: {message}"
    );
    ensure!(!ConnectorError::retryable(&store.commit_fenced(fence, 1, &[]).await.unwrap_err()), "not retried");
    ensure!(names(store).await? == expect(&[("1", "ann@2")]), "rows as epoch 2 left them: {:?}", names(store).await?);

    // The same epoch commits again, as often as it likes.
    store.commit_fenced(fence, 2, &[user(2, "bob@2")]).await.context("epoch 2 commits again")?;
    store.commit_fenced(fence, 2, &[user(2, "bob@2")]).await.context("a repeated commit (a retry) passes")?;
    ensure!(names(store).await? == expect(&[("1", "ann@2"), ("2", "bob@2")]), "{:?}", names(store).await?);

    // A commit with nothing to write raises the fence (a restore without writes).
    store.commit_fenced(fence, 3, &[]).await.context("epoch 3 raises the fence")?;
    let refused = store.commit_fenced(fence, 2, &[user(1, "ann@2 late")]).await;
    ensure!(matches!(refused, Err(ConnectorError::Fenced { epoch: 2, fenced_at: 3, .. })), "{refused:?}");

    // Without a lease (`sluice run`): plain upserts, as before fences.
    let staged = StagedDimension::new(store.clone());
    staged.upsert(b"1", br#"{"name":"ann@run"}"#).await?;
    staged.commit(&staged.pending()).await.context("an unfenced commit")?;
    ensure!(names(store).await? == expect(&[("1", "ann@run"), ("2", "bob@2")]), "{:?}", names(store).await?);
    Ok(())
}

/// Redis: the fence is a key under the prefix, never expiring; `rows()`
/// does not list it.
async fn redis_fencing(layout: &str) -> Result<()> {
    let base = format!("sluice-test:{}:fence-{layout}:", std::process::id());
    let outcome = async {
        let mut connections = Connections::default();
        connections.apply_override(&format!("cache={}", redis_url())).expect("a valid override");
        let options = format!("connection = \"cache\"\nkey_prefix = \"{base}\"\nlayout = \"{layout}\"\nttl = \"1h\"");
        let store = users("redis", &options, &connections).await?;
        let fence = "demo__premium-drop__p0-of-2:users";
        fencing_contract(&store, fence).await?;

        let client = redis::Client::open(redis_url())?;
        let mut redis = client.get_multiplexed_async_connection().await?;
        let fence_key = format!("{base}sluice-fence:{fence}");
        let epoch: Option<String> = redis.get(&fence_key).await?;
        ensure!(epoch.as_deref() == Some("3"), "the fence key holds the newest epoch: {epoch:?}");
        let pttl: i64 = redis.pttl(&fence_key).await?;
        ensure!(pttl == -1, "the fence never expires: PTTL {pttl}");
        let pttl: i64 = redis.pttl(format!("{base}2")).await?;
        ensure!(pttl > 0, "a row written by a fenced commit gets the ttl: PTTL {pttl}");
        Ok(())
    }
    .await;
    let client = redis::Client::open(redis_url())?;
    let mut redis = client.get_multiplexed_async_connection().await?;
    let keys: Vec<String> = redis.keys(format!("{base}*")).await?;
    if !keys.is_empty() {
        redis.del::<_, ()>(keys).await?;
    }
    outcome
}

#[tokio::test]
async fn redis_json_refuses_a_commit_from_an_older_epoch() -> Result<()> {
    redis_fencing("json").await
}

#[tokio::test]
async fn redis_hash_refuses_a_commit_from_an_older_epoch() -> Result<()> {
    redis_fencing("hash").await
}

/// SQL: the fence is a row of `sluice_dimension_fences`, created when
/// first needed.
async fn sql_fencing(backend: Backend) -> Result<()> {
    let db = Db::new(backend, "fence").await;
    let t = db.table.clone();
    let fence = format!("{t}:users");
    db.exec(&format!("CREATE TABLE {t} (id BIGINT PRIMARY KEY, name TEXT)")).await;
    let outcome = async {
        let options = format!("connection = \"db\"\ntable = \"{t}\"\nkey = [\"id\"]");
        let store = users("sql", &options, &db.connections()).await?;
        fencing_contract(&store, &fence).await?;
        let rows =
            db.rows(&format!("SELECT {} FROM sluice_dimension_fences WHERE fence = '{fence}'", db.text("epoch"))).await;
        ensure!(rows == vec![vec![Some("3".to_owned())]], "the fence row holds the newest epoch: {rows:?}");
        Ok(())
    }
    .await;
    if outcome.is_ok() {
        // (After a failure the table may not exist; a row left is the
        // process's own, by its name.)
        db.exec(&format!("DELETE FROM sluice_dimension_fences WHERE fence = '{fence}'")).await;
    }
    db.finish().await;
    outcome
}

#[tokio::test]
async fn postgres_refuses_a_commit_from_an_older_epoch() -> Result<()> {
    sql_fencing(Backend::Postgres).await
}

#[tokio::test]
async fn mariadb_refuses_a_commit_from_an_older_epoch() -> Result<()> {
    sql_fencing(Backend::MariaDb).await
}

#[tokio::test]
async fn sqlite_refuses_a_commit_from_an_older_epoch() -> Result<()> {
    sql_fencing(Backend::Sqlite).await
}
