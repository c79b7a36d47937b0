//! Fenced dimension commits (`writes = "snapshot"` under a worker's lease)
//! against the real stores: once the job's new owner committed under a
//! newer lease epoch, a commit of an older one (a worker that froze
//! mid-commit and woke after the takeover) is refused by the store itself
//! and writes nothing. A task commits under its job's fence at its run's
//! floor epoch and its own fence at its own epoch, so the partition groups
//! of one run, each with an epoch of its own, all commit. Each test uses
//! fences and rows of its own and removes them.

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result, ensure};
use redis::AsyncCommands;
use sluice_runtime::connections::Connections;
use sluice_runtime::connectors::registry::{BuildContext, build_dimension};
use sluice_runtime::connectors::staged::{DimensionFence, StagedDimension, fence_name, task_fence_name};
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

/// One fence `fence` at `epoch`.
fn at(fence: &str, epoch: u64) -> Vec<(String, u64)> {
    vec![(fence.to_owned(), epoch)]
}

/// What every shared store does with fenced commits, on fence `fence`;
/// leaves the fence at epoch 3.
async fn fencing_contract(store: &Arc<dyn DimensionStore>, fence: &str) -> Result<()> {
    // The new owner (epoch 2) commits: the fence goes up with its writes.
    store.commit_fenced(&at(fence, 2), &[user(1, "ann@2")]).await.context("epoch 2 commits")?;
    ensure!(names(store).await? == expect(&[("1", "ann@2")]), "epoch 2 wrote: {:?}", names(store).await?);

    // The old owner (epoch 1) wakes mid-commit: refused, nothing written.
    let refused = store.commit_fenced(&at(fence, 1), &[user(1, "ann@1"), user(2, "bob@1")]).await;
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
    ensure!(!ConnectorError::retryable(&store.commit_fenced(&at(fence, 1), &[]).await.unwrap_err()), "not retried");
    ensure!(names(store).await? == expect(&[("1", "ann@2")]), "rows as epoch 2 left them: {:?}", names(store).await?);

    // The same epoch commits again, as often as it likes.
    store.commit_fenced(&at(fence, 2), &[user(2, "bob@2")]).await.context("epoch 2 commits again")?;
    store.commit_fenced(&at(fence, 2), &[user(2, "bob@2")]).await.context("a repeated commit (a retry) passes")?;
    ensure!(names(store).await? == expect(&[("1", "ann@2"), ("2", "bob@2")]), "{:?}", names(store).await?);

    // A commit with nothing to write raises the fence (a restore without writes).
    store.commit_fenced(&at(fence, 3), &[]).await.context("epoch 3 raises the fence")?;
    let refused = store.commit_fenced(&at(fence, 2), &[user(1, "ann@2 late")]).await;
    ensure!(matches!(refused, Err(ConnectorError::Fenced { epoch: 2, fenced_at: 3, .. })), "{refused:?}");

    // Without a lease (`sluice run`): plain upserts, as before fences.
    let staged = StagedDimension::new(store.clone());
    staged.upsert(b"1", br#"{"name":"ann@run"}"#).await?;
    staged.commit(&staged.pending()).await.context("an unfenced commit")?;
    ensure!(names(store).await? == expect(&[("1", "ann@run"), ("2", "bob@2")]), "{:?}", names(store).await?);
    Ok(())
}

/// The keys of job `job`'s tasks in [`sibling_contract`]: the one task of
/// its earlier run at parallelism 1 (the job's own key), and the two of its
/// run at parallelism 2.
fn task_keys(job: &str) -> [String; 3] {
    [job.to_owned(), format!("{job}__p0-of-2"), format!("{job}__p1-of-2")]
}

/// The fences [`sibling_contract`] raises in the store, by name.
fn sibling_fences(job: &str) -> Vec<String> {
    let mut names = vec![fence_name(job, "users")];
    names.extend(task_keys(job).iter().map(|key| task_fence_name(key, "users")));
    names
}

/// Expects `outcome` to be refused by fence `fence`, which stands at
/// `fenced_at` above the commit's `epoch` for it.
fn refused_by(outcome: Result<(), ConnectorError>, fence: &str, epoch: u64, fenced_at: u64) -> Result<()> {
    match &outcome {
        Err(ConnectorError::Fenced { fence: f, epoch: e, fenced_at: at, .. })
            if f == fence && *e == epoch && *at == fenced_at => {}
        other => anyhow::bail!("expected a refusal by fence `{fence}` (epoch {epoch} < {fenced_at}): {other:?}"),
    }
    ensure!(!ConnectorError::retryable(&outcome.unwrap_err()), "not retried");
    Ok(())
}

/// The partition groups of one run hold their own leases, with epochs of
/// their own, and commit under two fences each: the job's at the run's
/// floor epoch and their own at their epoch. Job `job`: an earlier run at
/// parallelism 1 (floor 1), then a run at parallelism 2 (floor 2) whose
/// group A holds epoch 5 and group B epoch 3, B later taken over at 6.
async fn sibling_contract(store: &Arc<dyn DimensionStore>, job: &str) -> Result<()> {
    let [single, key_a, key_b] = &task_keys(job);
    let job_fence = fence_name(job, "users");
    let task_fence_b = task_fence_name(key_b, "users");
    let fences = |floor, key: &str, epoch| DimensionFence::for_task(job, floor, key, epoch, "users").fences;
    let (a, b) = (fences(2, key_a, 5), fences(2, key_b, 3));
    ensure!(fences(1, single, 1)[0].0 != fences(1, single, 1)[1].0, "a task keyed as its job has a fence of its own");

    // The earlier run's only task commits.
    store.commit_fenced(&fences(1, single, 1), &[user(9, "old@1")]).await.context("the earlier run commits")?;

    // The new run's groups commit, again and again, in either order: B's
    // epoch below A's does not matter, their own fences are apart.
    for (round, order) in [[&a, &b], [&b, &a], [&b, &a], [&a, &b]].into_iter().enumerate() {
        for group in order {
            let (id, name) = if group == &a { (1, format!("ann@A{round}")) } else { (2, format!("bob@B{round}")) };
            let what = format!("round {round}: the group at epoch {} commits", group[1].1);
            store.commit_fenced(group, &[user(id, &name)]).await.context(what)?;
        }
    }
    let after_run = expect(&[("1", "ann@A3"), ("2", "bob@B3"), ("9", "old@1")]);
    ensure!(names(store).await? == after_run, "both groups wrote: {:?}", names(store).await?);

    // The earlier run's task wakes: its floor is below the run's.
    let late = store.commit_fenced(&fences(1, single, 1), &[user(9, "old@1 late")]).await;
    refused_by(late, &job_fence, 1, 2).context("the earlier run at parallelism 1")?;
    // A task of an earlier run at parallelism 2, keyed as B, whose own
    // epoch is above every one of the new run's (a floor alone refuses).
    let late = store.commit_fenced(&fences(1, key_b, 9), &[user(2, "bob@9 late")]).await;
    refused_by(late, &job_fence, 1, 2).context("an earlier run's task with a high epoch")?;
    ensure!(names(store).await? == after_run, "the refused commits wrote nothing: {:?}", names(store).await?);

    // B is taken over within the run at epoch 6; the new holder raises its
    // fences as it restores. (The refused epoch 9 commit raised no fence.)
    store.commit_fenced(&fences(2, key_b, 6), &[]).await.context("B's new holder at epoch 6")?;
    // B's earlier holders wake: the job's fence lets them by, B's does not.
    for zombie in [3, 2] {
        let late = store.commit_fenced(&fences(2, key_b, zombie), &[user(2, &format!("bob@{zombie} late"))]).await;
        refused_by(late, &task_fence_b, zombie, 6).with_context(|| format!("B's zombie at epoch {zombie}"))?;
    }
    // A zombie with a higher floor than the run's: refused by B's fence
    // before anything moved, so the job's fence still stands at the floor.
    let late = store.commit_fenced(&fences(7, key_b, 3), &[user(2, "bob@3 late")]).await;
    refused_by(late, &task_fence_b, 3, 6).context("B's zombie with a higher floor")?;
    ensure!(names(store).await? == after_run, "the zombies wrote nothing: {:?}", names(store).await?);

    // A and B's new holder go on committing.
    store.commit_fenced(&a, &[user(1, "ann@A")]).await.context("A commits after B's takeover")?;
    store.commit_fenced(&fences(2, key_b, 6), &[user(2, "bob@6")]).await.context("B commits at epoch 6")?;
    store.commit_fenced(&fences(2, key_b, 6), &[user(2, "bob@6")]).await.context("a retry passes")?;
    let after = expect(&[("1", "ann@A"), ("2", "bob@6"), ("9", "old@1")]);
    ensure!(names(store).await? == after, "{:?}", names(store).await?);
    Ok(())
}

/// Redis: the fence is a key under the prefix, never expiring; `rows()`
/// does not list it.
async fn redis_fencing(layout: &str) -> Result<()> {
    let base = format!("sluice-test:{}:fence-{layout}:", std::process::id());
    with_redis(&base, layout, async |store| {
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
    })
    .await
}

/// Redis: the sibling tasks' fences are keys under the prefix, each at the
/// newest epoch it was raised to.
async fn redis_siblings(layout: &str) -> Result<()> {
    let base = format!("sluice-test:{}:fence-siblings-{layout}:", std::process::id());
    with_redis(&base, layout, async |store| {
        let job = "demo__premium-drop";
        sibling_contract(&store, job).await?;

        let client = redis::Client::open(redis_url())?;
        let mut redis = client.get_multiplexed_async_connection().await?;
        let mut epochs = Vec::new();
        for fence in sibling_fences(job) {
            let epoch: Option<String> = redis.get(format!("{base}sluice-fence:{fence}")).await?;
            epochs.push(epoch);
        }
        let newest = [Some("2"), Some("1"), Some("5"), Some("6")].map(|e| e.map(str::to_owned));
        ensure!(epochs == newest, "the job's fence at the floor, each task's at its newest epoch: {epochs:?}");
        Ok(())
    })
    .await
}

/// Runs `test` on dimension `users` in Redis under key prefix `base` with
/// `layout`, then removes every key under `base`.
async fn with_redis(
    base: &str,
    layout: &str,
    test: impl AsyncFnOnce(Arc<dyn DimensionStore>) -> Result<()>,
) -> Result<()> {
    let outcome = async {
        let mut connections = Connections::default();
        connections.apply_override(&format!("cache={}", redis_url())).expect("a valid override");
        let options = format!("connection = \"cache\"\nkey_prefix = \"{base}\"\nlayout = \"{layout}\"\nttl = \"1h\"");
        test(users("redis", &options, &connections).await?).await
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

#[tokio::test]
async fn redis_json_sibling_tasks_commit_under_their_own_epochs() -> Result<()> {
    redis_siblings("json").await
}

#[tokio::test]
async fn redis_hash_sibling_tasks_commit_under_their_own_epochs() -> Result<()> {
    redis_siblings("hash").await
}

/// SQL: the fence is a row of `sluice_dimension_fences`, created when
/// first needed.
async fn sql_fencing(backend: Backend) -> Result<()> {
    let db = Db::new(backend, "fence").await;
    let fence = format!("{}:users", db.table);
    with_sql(db, std::slice::from_ref(&fence), async |store, db| {
        fencing_contract(&store, &fence).await?;
        let epochs = fence_epochs(db, std::slice::from_ref(&fence)).await;
        ensure!(epochs == [Some("3".to_owned())], "the fence row holds the newest epoch: {epochs:?}");
        Ok(())
    })
    .await
}

/// SQL: the sibling tasks' fences are rows of `sluice_dimension_fences`,
/// each at the newest epoch it was raised to.
async fn sql_siblings(backend: Backend) -> Result<()> {
    let db = Db::new(backend, "fence_siblings").await;
    let job = db.table.clone();
    let fences = sibling_fences(&job);
    with_sql(db, &fences, async |store, db| {
        sibling_contract(&store, &job).await?;
        let epochs = fence_epochs(db, &fences).await;
        let newest = [Some("2"), Some("1"), Some("5"), Some("6")].map(|e| e.map(str::to_owned));
        ensure!(epochs == newest, "the job's fence at the floor, each task's at its newest epoch: {epochs:?}");
        Ok(())
    })
    .await
}

/// The epochs of `fences` in the fence table, in their order.
async fn fence_epochs(db: &Db, fences: &[String]) -> Vec<Option<String>> {
    let mut epochs = Vec::new();
    for fence in fences {
        let sql = format!("SELECT {} FROM sluice_dimension_fences WHERE fence = '{fence}'", db.text("epoch"));
        epochs.push(db.rows(&sql).await.into_iter().next().and_then(|mut row| row.remove(0)));
    }
    epochs
}

/// Runs `test` on dimension `users` of the table `db.table` (a key `id`
/// and a `name`), then removes the table and the rows of `fences`.
async fn with_sql(
    db: Db,
    fences: &[String],
    test: impl AsyncFnOnce(Arc<dyn DimensionStore>, &Db) -> Result<()>,
) -> Result<()> {
    let t = db.table.clone();
    db.exec(&format!("CREATE TABLE {t} (id BIGINT PRIMARY KEY, name TEXT)")).await;
    let outcome = async {
        let options = format!("connection = \"db\"\ntable = \"{t}\"\nkey = [\"id\"]");
        test(users("sql", &options, &db.connections()).await?, &db).await
    }
    .await;
    if outcome.is_ok() {
        // (After a failure the table may not exist; rows left are the
        // process's own, by their names.)
        let names: Vec<String> = fences.iter().map(|f| format!("'{f}'")).collect();
        db.exec(&format!("DELETE FROM sluice_dimension_fences WHERE fence IN ({})", names.join(", "))).await;
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

#[tokio::test]
async fn postgres_sibling_tasks_commit_under_their_own_epochs() -> Result<()> {
    sql_siblings(Backend::Postgres).await
}

#[tokio::test]
async fn mariadb_sibling_tasks_commit_under_their_own_epochs() -> Result<()> {
    sql_siblings(Backend::MariaDb).await
}

#[tokio::test]
async fn sqlite_sibling_tasks_commit_under_their_own_epochs() -> Result<()> {
    sql_siblings(Backend::Sqlite).await
}
