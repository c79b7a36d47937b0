//! `spawn_app()`: a console of the test's own — a fresh data directory,
//! SQLite metadata, local snapshots, an in-process worker and scheduler,
//! the router on a free port — and a small HTTP client that signs in with
//! the session cookie or an API token.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sluice_console::api::{self, ApiSettings, AppState, Guards};
use sluice_console::auth;
use sluice_console::store::{Connection, NewRun, Run, RunState, SecretKey, Store};
use sluice_console::worker::plan::PlatformRules;
use sluice_console::worker::{self, Worker, WorkerOptions};
use sluice_runtime::connections::HostRule;
use sluice_runtime::snapshot::LocalSnapshotStore;

pub const ADMIN_PASSWORD: &str = "admin-password";
/// What the test consoles allow connections to reach (`--allow-hosts`).
pub const TEST_ALLOW_HOSTS: &str = "127.0.0.0/8,::1,.example";
/// Password of the users the tests create.
pub const PASSWORD: &str = "user-password";

pub struct TestApp {
    /// `http://127.0.0.1:PORT`
    pub address: String,
    pub store: Store,
    pub worker: Arc<Worker>,
    /// The API's limits and the counters that enforce them.
    pub guards: Arc<Guards>,
    pub dir: tempfile::TempDir,
    /// Signed in as the first admin (session cookie).
    pub admin: Client,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// A console on SQLite in a fresh temporary directory.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(test_options()).await
}

/// A console with the operator's settings `options`.
pub async fn spawn_app_with(options: WorkerOptions) -> TestApp {
    spawn_app_with_settings(options, ApiSettings::default()).await
}

/// A console with the operator's API `settings`.
pub async fn spawn_app_with_api(settings: ApiSettings) -> TestApp {
    spawn_app_with_settings(test_options(), settings).await
}

async fn spawn_app_with_settings(options: WorkerOptions, settings: ApiSettings) -> TestApp {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("sluice.db").display());
    let store = Store::connect(&url, SecretKey::generate()).await.expect("SQLite metadata store");
    spawn_app_on_with(store, dir, options, settings).await
}

/// The operator's settings of the test consoles. The test services run on
/// this machine: loopback is allowed explicitly, as an operator would with
/// --allow-hosts (the default refuses it); `.example` names stand for hosts
/// that are never reached.
pub fn test_options() -> WorkerOptions {
    let rules = PlatformRules::new(Some(HostRule::parse_list(TEST_ALLOW_HOSTS).unwrap()), Vec::new());
    WorkerOptions { rules, ..WorkerOptions::default() }
}

/// A console on `store` (already migrated), keeping its files in `dir`.
pub async fn spawn_app_on(store: Store, dir: tempfile::TempDir) -> TestApp {
    spawn_app_on_with(store, dir, test_options(), ApiSettings::default()).await
}

async fn spawn_app_on_with(
    store: Store,
    dir: tempfile::TempDir,
    options: WorkerOptions,
    settings: ApiSettings,
) -> TestApp {
    share_compiled_components(&dir);
    let snapshots = Arc::new(LocalSnapshotStore::new(dir.path().join("snapshots")));
    let worker = Worker::new(store.clone(), snapshots, dir.path().to_path_buf(), options).expect("worker");
    store.create_user("admin", &auth::hash_password(ADMIN_PASSWORD), true).await.expect("first admin");

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("a free port");
    let address = format!("http://{}", listener.local_addr().unwrap());
    let header_timeout = Duration::from_secs(settings.header_timeout_secs);
    let state = AppState::new(store.clone(), worker.clone(), settings);
    let guards = state.guards.clone();
    let router = api::app(state);
    let server = tokio::spawn(async move {
        api::server::serve(listener, router, header_timeout, std::future::pending()).await.expect("the console serves");
    });
    let scheduler = tokio::spawn(worker::scheduler::run(worker.clone(), store.clone(), worker.id.clone()));
    let leases = tokio::spawn(worker.clone().keep_leases());

    let admin = Client::anonymous(&address).login("admin", ADMIN_PASSWORD).await;
    TestApp { address, store, worker, guards, dir, admin, tasks: vec![server, scheduler, leases] }
}

/// Points the worker's compiled-component cache at the one the fixture
/// suites share, so each test does not compile the same components again.
fn share_compiled_components(dir: &tempfile::TempDir) {
    let shared = sluice_tests::wasm("hourly_premium").parent().expect("fixture dir").join("compiled");
    std::fs::create_dir_all(&shared).expect("shared compile cache");
    std::os::unix::fs::symlink(&shared, dir.path().join("cache")).expect("cache link");
}

impl TestApp {
    pub fn anonymous(&self) -> Client {
        Client::anonymous(&self.address)
    }

    /// Creates a project as the admin.
    pub async fn project(&self, name: &str) -> Value {
        self.admin.post("/projects", json!({ "name": name, "description": "a test project" })).await.expect(201)
    }

    /// Creates user `name`, gives it `role` in `project` (unless `None`) and
    /// signs it in.
    pub async fn member(&self, name: &str, project: Option<&str>, role: &str) -> Client {
        self.admin.post("/users", json!({ "name": name, "password": PASSWORD, "is_admin": false })).await.expect(201);
        if let Some(p) = project {
            self.admin.put(&format!("/projects/{p}/members/{name}"), json!({ "role": role })).await.expect(204);
        }
        self.anonymous().login(name, PASSWORD).await
    }

    /// Creates project `project` (as the admin) with a SQLite `warehouse`
    /// connection and job `job` holding v1 of the hourly-premium component.
    pub async fn project_with_job(&self, project: &str, job: &str) {
        self.project(project).await;
        let a = &self.admin;
        let warehouse = json!({ "kind": "database", "url": self.sqlite_url(project, &format!("{project}-w.db")) });
        a.put(&format!("/projects/{project}/connections/warehouse"), warehouse).await.expect(204);
        a.post(&format!("/projects/{project}/jobs"), json!({ "name": job })).await.expect(201);
        a.post_bytes(&format!("/projects/{project}/jobs/{job}/versions"), component("hourly_premium"))
            .await
            .expect(201);
    }

    /// A path inside the test's data directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// A file in `project`'s file area (`DATA/files/<project>`), where the
    /// file connectors of its jobs read and write.
    pub fn project_file(&self, project: &str, name: &str) -> PathBuf {
        let dir = self.dir.path().join("files").join(project);
        std::fs::create_dir_all(&dir).expect("the project's file area");
        dir.join(name)
    }

    /// `sqlite://…` URL of a database file in `project`'s file area, where
    /// its SQLite connections must be.
    pub fn sqlite_url(&self, project: &str, name: &str) -> String {
        format!("sqlite://{}?mode=rwc", self.project_file(project, name).display())
    }
}

#[derive(Debug, Clone)]
enum Credential {
    None,
    Cookie(String),
    Bearer(String),
}

/// An HTTP client of the console acting as one user (or nobody).
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    pub address: String,
    credential: Credential,
}

/// An answer: its status and body.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub text: String,
    pub what: String,
}

impl Answer {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|e| panic!("{}: not JSON ({e}): {}", self.what, self.text))
    }

    /// The answer's JSON after checking its status (null for an empty body).
    #[track_caller]
    pub fn expect(self, status: u16) -> Value {
        assert_eq!(self.status.as_u16(), status, "{} answered {}: {}", self.what, self.status, self.text);
        if self.text.is_empty() { Value::Null } else { self.json() }
    }

    /// The `error` message of a refusal with `status`.
    #[track_caller]
    pub fn error(self, status: u16) -> String {
        let body = self.expect(status);
        body["error"].as_str().unwrap_or_else(|| panic!("no `error` in {body}")).to_owned()
    }
}

impl Client {
    pub fn anonymous(address: &str) -> Client {
        Client { http: reqwest::Client::new(), address: address.to_owned(), credential: Credential::None }
    }

    pub fn with_token(&self, token: &str) -> Client {
        Client { credential: Credential::Bearer(token.to_owned()), ..self.clone() }
    }

    /// Signs in with the password; the client then sends the session cookie.
    pub async fn login(&self, name: &str, password: &str) -> Client {
        let answer = self
            .http
            .post(format!("{}/api/v1/login", self.address))
            .json(&json!({ "name": name, "password": password }))
            .send()
            .await
            .expect("the console answers");
        assert_eq!(answer.status(), StatusCode::OK, "login of {name}");
        let cookie = answer
            .headers()
            .get_all(reqwest::header::SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find(|v| v.starts_with(auth::SESSION_COOKIE))
            .and_then(|v| v.split(';').next())
            .expect("a session cookie")
            .to_owned();
        Client { credential: Credential::Cookie(cookie), ..self.clone() }
    }

    /// The session cookie (`sluice_session=…`) of a signed-in client.
    pub fn cookie(&self) -> Option<&str> {
        match &self.credential {
            Credential::Cookie(c) => Some(c),
            _ => None,
        }
    }

    fn request(&self, method: Method, url: String) -> reqwest::RequestBuilder {
        let request = self.http.request(method, url);
        match &self.credential {
            Credential::None => request,
            Credential::Cookie(c) => request.header(reqwest::header::COOKIE, c),
            Credential::Bearer(t) => request.bearer_auth(t),
        }
    }

    async fn send(&self, what: String, request: reqwest::RequestBuilder) -> Answer {
        let answer = request.send().await.unwrap_or_else(|e| panic!("{what}: {e}"));
        let status = answer.status();
        Answer { status, text: answer.text().await.unwrap_or_default(), what }
    }

    /// `method` on a path under `/api/v1`, with a JSON body.
    pub async fn call(&self, method: Method, path: &str, body: Option<Value>) -> Answer {
        let what = format!("{method} {path}");
        let mut request = self.request(method, format!("{}/api/v1{path}", self.address));
        if let Some(body) = body {
            request = request.json(&body);
        }
        self.send(what, request).await
    }

    pub async fn get(&self, path: &str) -> Answer {
        self.call(Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: Value) -> Answer {
        self.call(Method::POST, path, Some(body)).await
    }

    pub async fn put(&self, path: &str, body: Value) -> Answer {
        self.call(Method::PUT, path, Some(body)).await
    }

    pub async fn delete(&self, path: &str) -> Answer {
        self.call(Method::DELETE, path, None).await
    }

    /// POSTs raw bytes (a component) to a path under `/api/v1`.
    pub async fn post_bytes(&self, path: &str, bytes: Vec<u8>) -> Answer {
        let request = self
            .request(Method::POST, format!("{}/api/v1{path}", self.address))
            .header(reqwest::header::CONTENT_TYPE, "application/wasm")
            .body(bytes);
        self.send(format!("POST {path}"), request).await
    }

    /// GET of a path outside the API (`/healthz`, `/metrics`, …).
    pub async fn get_raw(&self, path: &str) -> Answer {
        let request = self.request(Method::GET, format!("{}{path}", self.address));
        self.send(format!("GET {path}"), request).await
    }
}

/// A fixture component's bytes, e.g. `component("hourly_premium")`.
pub fn component(name: &str) -> Vec<u8> {
    let path = sluice_tests::wasm(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

pub use crate::wait::wait_for;

/// (task, stage, shard) of every group of the running job at `job` (its
/// path), by stage and shard, once all `groups` run.
pub async fn group_map(client: &Client, job: &str, groups: usize) -> Result<Vec<(u64, u64, u64)>, String> {
    let metrics = client.get(&format!("{job}/metrics")).await.expect(200);
    let field = |t: &Value, f: &str| t[f].as_u64().unwrap_or(99);
    let mut map: Vec<(u64, u64, u64)> = metrics["tasks"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|t| (field(t, "task"), field(t, "stage"), field(t, "shard")))
        .collect();
    map.sort_by_key(|(_, stage, shard)| (*stage, *shard));
    if metrics["state"] == "running" && map.len() == groups { Ok(map) } else { Err(metrics.to_string()) }
}

/// (task, shard) of every shard of the running job of one stage at `job`,
/// by shard, once all `shards` run.
pub async fn shard_map(client: &Client, job: &str, shards: usize) -> Result<Vec<(u64, u64)>, String> {
    let map = group_map(client, job, shards).await?;
    Ok(map.into_iter().map(|(task, _, shard)| (task, shard)).collect())
}

/// Records the running job at `job` read since its run started: after a
/// restore, only what came after its snapshots.
pub async fn run_records_in(client: &Client, job: &str) -> u64 {
    client.get(&format!("{job}/metrics")).await.expect(200)["totals"]["records_in"].as_u64().unwrap_or(0)
}

/// Generous: the machine is shared, and a first start compiles the component.
pub const PATIENCE: Duration = Duration::from_secs(120);

/// Waits until the job's latest run is in `state`; returns the run.
/// A run of `job` as a stopped console leaves it: created with
/// `restore_from`, held by no worker. The caller sets its shape, then
/// `Running`, before recovering it.
pub async fn left_run(app: &TestApp, project: &str, job: &str, version_id: &str, restore_from: &str) -> Run {
    let project = app.store.project(project).await.unwrap().expect("the project");
    let job = app.store.job(&project.id, job).await.unwrap().expect("the job").id;
    let run = NewRun {
        job_id: &job,
        version_id,
        state: RunState::Starting,
        restore_from: Some(restore_from),
        start_position: None,
        scheduled_ms: None,
        created_by: "test",
        worker: None,
    };
    app.store.create_run(run).await.unwrap()
}

pub async fn wait_for_run(client: &Client, project: &str, job: &str, state: &str) -> Value {
    wait_for(&format!("job {job} to be {state}"), PATIENCE, || async {
        let runs = client.get(&format!("/projects/{project}/jobs/{job}/runs")).await.expect(200);
        let latest = runs[0].clone();
        if latest["state"] == state { Ok(latest) } else { Err(runs.to_string()) }
    })
    .await
}

/// Waits until the job's metrics count at least `records` records in.
pub async fn wait_for_records_in(client: &Client, project: &str, job: &str, records: u64) -> Value {
    wait_for(&format!("job {job} to read {records} records"), PATIENCE, || async {
        let m = client.get(&format!("/projects/{project}/jobs/{job}/metrics?seconds=60")).await.expect(200);
        if m["totals"]["records_in"].as_u64().unwrap_or(0) >= records { Ok(m) } else { Err(m.to_string()) }
    })
    .await
}

/// Events of the project (newest first) as (action, actor, detail).
pub async fn events(client: &Client, project: &str, query: &str) -> Vec<(String, Option<String>, String)> {
    let events = client.get(&format!("/projects/{project}/events?{query}")).await.expect(200);
    events
        .as_array()
        .expect("a list")
        .iter()
        .map(|e| {
            (
                e["action"].as_str().unwrap_or("").to_owned(),
                e["actor"].as_str().map(str::to_owned),
                e["detail"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect()
}

/// Asserts the audit log holds `action` by `actor`.
#[track_caller]
pub fn assert_audited(log: &[(String, Option<String>, String)], action: &str, actor: &str) {
    assert!(
        log.iter().any(|(a, who, _)| a == action && who.as_deref() == Some(actor)),
        "no `{action}` by {actor} in the event log: {log:#?}"
    );
}

/// A database connection with a password in its URL and a secret.
pub fn warehouse_connection() -> Connection {
    Connection {
        name: "warehouse".into(),
        kind: "database".into(),
        url: "postgres://sluice:hunter2@db.example/wh".into(),
        secret: Some("s3cr3t-pw".into()),
        properties: "{}".into(),
        updated_ms: 0,
    }
}

#[path = "../support/raw_http.rs"]
mod raw_http;
pub use raw_http::raw_post;
