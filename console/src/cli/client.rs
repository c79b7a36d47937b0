//! The CLI verbs that talk to a console's REST API: `login`, `job …` and
//! `snapshot …`. The console URL and token come from flags, the
//! environment (SLUICE_URL, SLUICE_TOKEN) or the file `sluice login` writes.
//!
//! Request bodies are the API's own request types, and answers are read
//! as its answer types where those can be read back, so a field renamed in
//! the API breaks the CLI at compile time. An answer stays a JSON `Value`
//! only where it is printed as it comes.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::secret_input::SecretInput;
use crate::api::{
    DebugRequest, DeploymentInput, ErrorBody, JobAnswer, JobSummary, LoginRequest, MetricsAnswer, NewJob,
    RescaleRequest, RestoreRequest, SnapshotInfo, StartRequest, StopRequest, TokenAnswer, TokenRequest, UpgradeRequest,
};
use crate::store::{Run, Version};

/// Where to reach the console.
#[derive(Debug, Clone, Args)]
pub struct Target {
    /// Console URL, e.g. http://127.0.0.1:8080.
    #[arg(long, env = "SLUICE_URL", global = true)]
    pub url: Option<String>,
    /// API token (see `sluice login`).
    #[arg(long, env = "SLUICE_TOKEN", global = true, hide_env_values = true)]
    pub token: Option<String>,
}

#[derive(Debug, Args)]
pub struct LoginArgs {
    #[arg(long, env = "SLUICE_URL", default_value = "http://127.0.0.1:8080")]
    pub url: String,
    #[arg(long, default_value = "admin")]
    pub user: String,
    /// Read the password from the first line of standard input; without
    /// it: $SLUICE_PASSWORD, else a prompt.
    #[arg(long)]
    pub password_stdin: bool,
    /// Refused: a password on the command line is visible to every user
    /// of the machine.
    #[arg(long, hide = true)]
    pub password: Option<String>,
    /// Days the CLI's API token works (at most what the console allows).
    #[arg(long)]
    pub token_days: Option<u32>,
}

/// The refusal of `--password`.
const NO_PASSWORD_FLAG: &str = "`--password` is not accepted: a password on the command line is visible \
     to every user of the machine; use --password-stdin, the SLUICE_PASSWORD variable, or the prompt";

#[derive(Debug, Args)]
pub struct JobArgs {
    #[command(flatten)]
    pub target: Target,
    /// The project.
    #[arg(short, long, global = true, default_value = "demo")]
    pub project: String,
    #[command(subcommand)]
    pub command: JobCommand,
}

#[derive(Debug, Subcommand)]
pub enum JobCommand {
    /// The project's jobs and their states.
    List,
    Create {
        name: String,
        #[arg(long, default_value = "")]
        description: String,
    },
    /// Upload a compiled component as the job's next version.
    Upload {
        job: String,
        component: PathBuf,
        #[arg(long)]
        note: Option<String>,
    },
    /// Save the deployment: spec, version, parameters, resources, schedule.
    Deploy {
        job: String,
        /// The job spec (TOML).
        #[arg(long)]
        spec: PathBuf,
        /// Version number; default the newest.
        #[arg(long)]
        version: Option<i64>,
        #[arg(long = "param", value_parser = parse_param)]
        params: Vec<(String, String)>,
        /// Tasks (an operator's setting; default: as deployed, else 1).
        #[arg(long)]
        parallelism: Option<i64>,
        /// Memory per task, MiB (an operator's setting; default: as deployed).
        #[arg(long)]
        memory_mb: Option<i64>,
        /// CPU per guest call, ms (an operator's setting; default: as deployed).
        #[arg(long)]
        cpu_ms: Option<i64>,
        /// Cron schedule, seconds first (`0 0 2 * * *`; an operator's
        /// setting; default: as deployed; `none` removes it).
        #[arg(long)]
        schedule: Option<String>,
    },
    /// Run the job over JSON lines with its sinks disabled.
    Debug {
        job: String,
        /// JSON lines to feed.
        #[arg(long, conflicts_with = "from_topic")]
        records: Option<PathBuf>,
        /// Or the first N records of its live sources.
        #[arg(long)]
        from_topic: Option<usize>,
    },
    /// Start: `--restore none|latest|SNAPSHOT`, optionally at a time.
    Start {
        job: String,
        #[arg(long, default_value = "latest")]
        restore: String,
        /// earliest, latest, an RFC 3339 time or epoch ms.
        #[arg(long)]
        start_position: Option<String>,
        /// RFC 3339 start time.
        #[arg(long)]
        at: Option<String>,
    },
    Stop {
        job: String,
        /// Stop without a final snapshot.
        #[arg(long)]
        no_snapshot: bool,
    },
    /// State, counters and tasks.
    Status { job: String },
    /// Run history.
    Runs { job: String },
    /// Run the newest (or given) version, keeping state.
    Upgrade { job: String, version: i64 },
    /// Run the job's shards in this many tasks (worker slots): a running
    /// job stops with a snapshot and starts again from it.
    Rescale {
        job: String,
        #[arg(long)]
        parallelism: i64,
    },
}

#[derive(Debug, Args)]
pub struct SnapshotArgs {
    #[command(flatten)]
    pub target: Target,
    #[arg(short, long, global = true, default_value = "demo")]
    pub project: String,
    #[command(subcommand)]
    pub command: SnapshotCommand,
}

#[derive(Debug, Subcommand)]
pub enum SnapshotCommand {
    List {
        job: String,
    },
    /// Take a snapshot of the running job now.
    Take {
        job: String,
    },
    /// Stop the job and start it from a snapshot.
    Restore {
        job: String,
        snapshot: String,
    },
}

fn parse_param(text: &str) -> Result<(String, String), String> {
    text.split_once('=').map(|(k, v)| (k.to_owned(), v.to_owned())).ok_or_else(|| format!("`{text}` is not name=value"))
}

/// What `sluice login` saves: the console and an API token for it.
#[derive(Default, Serialize, Deserialize)]
struct Credentials {
    url: Option<String>,
    token: Option<String>,
}

/// The file `sluice login` keeps the console URL and token in.
fn credentials_path() -> PathBuf {
    std::env::var_os("SLUICE_CREDENTIALS").map(PathBuf::from).unwrap_or_else(|| {
        PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".config/sluice/credentials.json")
    })
}

pub async fn login(args: LoginArgs) -> anyhow::Result<ExitCode> {
    if args.password.is_some() {
        bail!(NO_PASSWORD_FLAG);
    }
    let password = SecretInput::new(args.password_stdin).read("password", "SLUICE_PASSWORD")?;
    let http = reqwest::Client::new();
    let url = args.url.trim_end_matches('/').to_owned();
    let answer = http
        .post(format!("{url}/api/v1/login"))
        .json(&LoginRequest { name: args.user.clone(), password })
        .send()
        .await
        .with_context(|| format!("cannot reach the console at {url}"))?;
    let cookie = answer
        .headers()
        .get(reqwest::header::SET_COOKIE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(str::to_owned);
    check(answer).await?;
    let host = std::fs::read_to_string("/etc/hostname").unwrap_or_default();
    let token = http
        .post(format!("{url}/api/v1/tokens"))
        .header(reqwest::header::COOKIE, cookie.unwrap_or_default())
        .json(&TokenRequest { name: format!("cli@{}", host.trim()), expires_in_days: args.token_days })
        .send()
        .await?;
    let token: TokenAnswer = decode(&check(token).await?, "/tokens")?;
    let path = credentials_path();
    let credentials = Credentials { url: Some(url.clone()), token: Some(token.token) };
    save_credentials(&path, &credentials)?;
    println!("signed in to {url} as {}; token saved in {}", args.user, path.display());
    Ok(ExitCode::SUCCESS)
}

/// Writes the credentials file readable by its owner only (0600, in a
/// 0700 directory when the CLI creates it): it holds a bearer token.
fn save_credentials(path: &Path, credentials: &Credentials) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty() && !d.exists()) {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    // A file left by an older CLI keeps its mode on open: set it.
    file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    file.write_all(&serde_json::to_vec_pretty(credentials)?)?;
    Ok(())
}

/// A client for one console.
pub(super) struct Console {
    http: reqwest::Client,
    url: String,
    token: String,
}

impl Console {
    pub(super) fn new(target: &Target) -> anyhow::Result<Console> {
        let saved: Credentials =
            std::fs::read(credentials_path()).ok().and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or_default();
        let url = target.url.clone().or(saved.url);
        let token = target.token.clone().or(saved.token);
        let (Some(url), Some(token)) = (url, token) else {
            bail!("no console to talk to: run `sluice login --url URL` first, or set SLUICE_URL and SLUICE_TOKEN");
        };
        Ok(Console { http: reqwest::Client::new(), url: url.trim_end_matches('/').to_owned(), token })
    }

    fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.http.request(method, format!("{}/api/v1{path}", self.url)).bearer_auth(&self.token)
    }

    /// Sends the request; the answer's body, or its error message as the error.
    async fn answer(&self, request: reqwest::RequestBuilder) -> anyhow::Result<String> {
        check(request.send().await.with_context(|| format!("cannot reach the console at {}", self.url))?).await
    }

    /// A request with an untyped body, and its answer's JSON (`Null` when
    /// it has none), for the verbs of `cli/accounts.rs`.
    pub(super) async fn call(&self, method: Method, path: &str, body: Option<Value>) -> anyhow::Result<Value> {
        let mut request = self.request(method, path);
        if let Some(body) = body {
            request = request.json(&body);
        }
        Ok(serde_json::from_str(&self.answer(request).await?).unwrap_or(Value::Null))
    }

    /// A request without a body, its answer read as `A`.
    async fn read<A: DeserializeOwned>(&self, method: Method, path: &str) -> anyhow::Result<A> {
        decode(&self.answer(self.request(method, path)).await?, path)
    }

    /// Sends `body`, one of the API's request types, and reads the answer
    /// as `A`: the API's answer type, or `Value` where it is printed as is.
    async fn send<A: DeserializeOwned>(&self, method: Method, path: &str, body: &impl Serialize) -> anyhow::Result<A> {
        decode(&self.answer(self.request(method, path).json(body)).await?, path)
    }

    /// Uploads a component as the job's next version.
    async fn upload(&self, path: &str, bytes: Vec<u8>) -> anyhow::Result<Version> {
        let request =
            self.request(Method::POST, path).header(reqwest::header::CONTENT_TYPE, "application/wasm").body(bytes);
        decode(&check(request.send().await?).await?, path)
    }
}

/// Reads an answer as `A`.
fn decode<A: DeserializeOwned>(text: &str, path: &str) -> anyhow::Result<A> {
    serde_json::from_str(text).with_context(|| format!("the console's answer to {path} is not what this CLI reads"))
}

/// The answer's body, or its error message as the error.
async fn check(answer: reqwest::Response) -> anyhow::Result<String> {
    let status = answer.status();
    let text = answer.text().await.unwrap_or_default();
    if status.is_success() {
        return Ok(text);
    }
    let message = serde_json::from_str::<ErrorBody>(&text).map_or(text, |body| body.error);
    if status == StatusCode::UNAUTHORIZED {
        bail!("{message} (run `sluice login`)");
    }
    bail!("{message}")
}

fn print(value: &Value) {
    println!("{}", serde_json::to_string_pretty(value).unwrap_or_default());
}

pub async fn job(args: JobArgs) -> anyhow::Result<ExitCode> {
    let console = Console::new(&args.target)?;
    let p = &args.project;
    let base = |job: &str| format!("/projects/{p}/jobs/{job}");
    match args.command {
        JobCommand::List => {
            let jobs: Vec<JobSummary> = console.read(Method::GET, &format!("/projects/{p}/jobs")).await?;
            for j in jobs {
                let version = j.version.map(|v| format!("v{v}")).unwrap_or_else(|| "-".into());
                println!("{:<24} {:<10} {version}", j.job.name, j.state);
            }
        }
        JobCommand::Create { name, description } => print(
            &console.send::<Value>(Method::POST, &format!("/projects/{p}/jobs"), &NewJob { name, description }).await?,
        ),
        JobCommand::Upload { job, component, note } => {
            let bytes = std::fs::read(&component).with_context(|| format!("cannot read {}", component.display()))?;
            let note = note.map(|n| format!("?note={}", n.replace(' ', "%20"))).unwrap_or_default();
            let v: Version = console.upload(&format!("{}/versions{note}", base(&job)), bytes).await?;
            println!("uploaded {job} v{} (sha256 {})", v.number, v.hash);
        }
        JobCommand::Deploy { job, spec, version, params, parallelism, memory_mb, cpu_ms, schedule } => {
            let text = std::fs::read_to_string(&spec).with_context(|| format!("cannot read {}", spec.display()))?;
            // The operator's settings not given stay as deployed, so a
            // developer's deploy does not touch them.
            let answer: JobAnswer = console.read(Method::GET, &base(&job)).await?;
            let deployed = answer.deployment.as_ref();
            let schedule = match schedule.as_deref().map(str::trim) {
                Some("none" | "") => None,
                Some(s) => Some(s.to_owned()),
                None => deployed.and_then(|d| d.schedule.clone()),
            };
            let body = DeploymentInput {
                version,
                spec: text,
                parameters: params.into_iter().collect(),
                parallelism: parallelism.or(deployed.map(|d| d.parallelism)).unwrap_or(1),
                memory_mb: memory_mb.or(deployed.and_then(|d| d.memory_mb)),
                cpu_ms: cpu_ms.or(deployed.and_then(|d| d.cpu_ms)),
                schedule,
            };
            let _: Value = console.send(Method::PUT, &format!("{}/deployment", base(&job)), &body).await?;
            println!("deployment of {job} saved");
        }
        JobCommand::Debug { job, records, from_topic } => {
            let (records, from_topic) = match (records, from_topic) {
                (Some(path), _) => (
                    Some(std::fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?),
                    None,
                ),
                (None, Some(n)) => (None, Some(n)),
                (None, None) => bail!("give --records FILE or --from-topic N"),
            };
            // Unset: the deployed version, spec and parameters.
            let body = DebugRequest {
                version: None,
                spec: None,
                records,
                source: None,
                from_topic,
                parameters: Default::default(),
            };
            print(&console.send::<Value>(Method::POST, &format!("{}/debug", base(&job)), &body).await?);
        }
        JobCommand::Start { job, restore, start_position, at } => {
            let body = StartRequest { restore: Some(restore), start_position, at };
            let run: Run = console.send(Method::POST, &format!("{}/start", base(&job)), &body).await?;
            println!("{job}: run {} {}", run.id, run.state.as_str());
        }
        JobCommand::Stop { job, no_snapshot } => {
            let body = StopRequest { snapshot: !no_snapshot };
            let run: Run = console.send(Method::POST, &format!("{}/stop", base(&job)), &body).await?;
            println!("{job}: run {} {}", run.id, run.state.as_str());
        }
        JobCommand::Status { job } => {
            let m: MetricsAnswer = console.read(Method::GET, &format!("{}/metrics?seconds=10", base(&job))).await?;
            let t = m.totals;
            println!(
                "{job}: {} — in {}, out {}, dead letters {}, snapshots {}, lag {}",
                m.state,
                t.records_in,
                t.records_out,
                t.dead_letters,
                t.snapshots,
                t.lag.map_or_else(|| "-".into(), |l| l.to_string())
            );
            for task in m.tasks {
                // Only a job deduplicating an upstream's rows drops replays.
                let replays = match task.replays_dropped {
                    0 => String::new(),
                    n => format!(", replays dropped {n}"),
                };
                let stage = if task.stage > 0 { format!("stage {} ", task.stage) } else { String::new() };
                let lag = task.lag.map_or_else(String::new, |l| format!(", lag {l}"));
                println!(
                    "  task {} {stage}shard {} on {}: in {}, out {}{replays}{lag}",
                    task.task, task.shard, task.worker, task.records_in, task.records_out
                );
            }
        }
        JobCommand::Runs { job } => {
            print(&console.read::<Value>(Method::GET, &format!("{}/runs", base(&job))).await?);
        }
        JobCommand::Upgrade { job, version } => print(
            &console
                .send::<Value>(Method::POST, &format!("{}/upgrade", base(&job)), &UpgradeRequest { version })
                .await?,
        ),
        JobCommand::Rescale { job, parallelism } => print(
            &console
                .send::<Value>(Method::POST, &format!("{}/rescale", base(&job)), &RescaleRequest { parallelism })
                .await?,
        ),
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn snapshot(args: SnapshotArgs) -> anyhow::Result<ExitCode> {
    let console = Console::new(&args.target)?;
    let base = |job: &str| format!("/projects/{}/jobs/{job}", args.project);
    match args.command {
        SnapshotCommand::List { job } => {
            let list: Vec<SnapshotInfo> = console.read(Method::GET, &format!("{}/snapshots", base(&job))).await?;
            for s in list {
                println!("{}  {:<8} {}", s.id, s.trigger, if s.incremental { "incremental" } else { "full" });
            }
        }
        SnapshotCommand::Take { job } => {
            let taken: Vec<SnapshotInfo> = console.read(Method::POST, &format!("{}/snapshots", base(&job))).await?;
            for s in taken {
                println!("{}", s.id);
            }
        }
        SnapshotCommand::Restore { job, snapshot } => {
            let body = RestoreRequest { snapshot: snapshot.clone() };
            let run: Run = console.send(Method::POST, &format!("{}/restore", base(&job)), &body).await?;
            println!("{job}: run {} from snapshot {snapshot}", run.id);
        }
    }
    Ok(ExitCode::SUCCESS)
}
