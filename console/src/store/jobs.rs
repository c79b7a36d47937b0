//! Jobs, their versions (uploaded components) and their deployment.

use serde::{Deserialize, Serialize};
use sqlx::Row;
use sqlx::any::AnyRow;

use super::{RunState, Store, StoreError, StoreResult, conflict, new_id, now_ms};

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Job {
    pub id: String,
    pub project_id: String,
    pub name: String,
    pub description: String,
    pub created_ms: i64,
}

impl Job {
    fn from_row(r: &AnyRow) -> StoreResult<Job> {
        Ok(Job {
            id: r.try_get("id")?,
            project_id: r.try_get("project_id")?,
            name: r.try_get("name")?,
            description: r.try_get("description")?,
            created_ms: r.try_get("created_ms")?,
        })
    }
}

/// A job as its project's listing shows it.
#[derive(Debug, Clone)]
pub struct JobOverview {
    pub job: Job,
    /// Its newest run: id and state.
    pub latest_run: Option<(String, RunState)>,
    /// The deployed version's number.
    pub version: Option<i64>,
}

/// An uploaded, validated component of a job.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Version {
    pub id: String,
    pub job_id: String,
    /// 1, 2, … per job.
    pub number: i64,
    /// SHA-256 of the component.
    pub hash: String,
    pub size: i64,
    pub note: String,
    pub created_ms: i64,
    pub created_by: String,
    /// What the component declares about its state: `global` (parallelism 1
    /// only) or `by-record-key` (may run split by partition); null for
    /// components uploaded before the declaration existed.
    pub state_keying: Option<String>,
}

impl Version {
    fn from_row(r: &AnyRow) -> StoreResult<Version> {
        Ok(Version {
            id: r.try_get("id")?,
            job_id: r.try_get("job_id")?,
            number: r.try_get("number")?,
            hash: r.try_get("hash")?,
            size: r.try_get("size")?,
            note: r.try_get("note")?,
            created_ms: r.try_get("created_ms")?,
            created_by: r.try_get("created_by")?,
            state_keying: r.try_get("state_keying")?,
        })
    }
}

/// What runs when the job starts.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Deployment {
    pub job_id: String,
    pub version_id: String,
    /// The job spec (TOML, as `job.toml`; `name` and `component` are set by
    /// the console).
    pub spec: String,
    /// Parameters over the spec's own.
    #[schema(value_type = Object)]
    pub parameters: indexmap::IndexMap<String, String>,
    /// Tasks to run (partition groups).
    pub parallelism: i64,
    /// Memory limit per task, MiB (over the spec's `limits.memory`).
    pub memory_mb: Option<i64>,
    /// CPU deadline per guest call, ms (over the spec's `limits.cpu`).
    pub cpu_ms: Option<i64>,
    /// Cron expression (seconds first, as the `cron` crate reads it) for
    /// scheduled starts, e.g. `0 0 2 * * *` daily at 02:00.
    pub schedule: Option<String>,
    pub updated_ms: i64,
}

const VERSION_COLUMNS: &str =
    "v.id, v.job_id, v.number, v.hash, c.size, v.note, v.created_ms, v.created_by, c.state_keying";

impl Store {
    pub async fn create_job(&self, project_id: &str, name: &str, description: &str) -> StoreResult<Job> {
        let job = Job {
            id: new_id(),
            project_id: project_id.to_owned(),
            name: name.to_owned(),
            description: description.to_owned(),
            created_ms: now_ms(),
        };
        sqlx::query("insert into jobs (id, project_id, name, description, created_ms) values ($1, $2, $3, $4, $5)")
            .bind(&job.id)
            .bind(&job.project_id)
            .bind(&job.name)
            .bind(&job.description)
            .bind(job.created_ms)
            .execute(&self.pool)
            .await
            .map_err(|e| conflict(e, || format!("the project already has a job named `{name}`")))?;
        Ok(job)
    }

    pub async fn job(&self, project_id: &str, name: &str) -> StoreResult<Option<Job>> {
        let row = sqlx::query(
            "select id, project_id, name, description, created_ms from jobs where project_id = $1 and name = $2",
        )
        .bind(project_id)
        .bind(name)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(Job::from_row).transpose()
    }

    pub async fn job_by_id(&self, id: &str) -> StoreResult<Option<Job>> {
        let row = sqlx::query("select id, project_id, name, description, created_ms from jobs where id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(Job::from_row).transpose()
    }

    pub async fn jobs(&self, project_id: &str) -> StoreResult<Vec<Job>> {
        let rows = sqlx::query(
            "select id, project_id, name, description, created_ms from jobs where project_id = $1 order by name",
        )
        .bind(project_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(Job::from_row).collect()
    }

    /// The project's jobs with their latest run and deployed version, in
    /// one query (a listing of hundreds of jobs must not cost a query each).
    pub async fn job_overviews(&self, project_id: &str) -> StoreResult<Vec<JobOverview>> {
        let rows = sqlx::query(
            "select j.id, j.project_id, j.name, j.description, j.created_ms, \
                    r.id as run_id, r.state as run_state, v.number as version \
             from jobs j \
             left join runs r on r.id = (select l.id from runs l where l.job_id = j.id \
                                         order by l.created_ms desc, l.id desc limit 1) \
             left join deployments d on d.job_id = j.id \
             left join versions v on v.id = d.version_id \
             where j.project_id = $1 order by j.name",
        )
        .bind(project_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let run_id: Option<String> = r.try_get("run_id")?;
                let run_state: Option<String> = r.try_get("run_state")?;
                Ok(JobOverview {
                    job: Job::from_row(r)?,
                    latest_run: run_id.zip(run_state).map(|(id, state)| (id, RunState::parse(&state))),
                    version: r.try_get("version")?,
                })
            })
            .collect()
    }

    /// Stores a component (once per content) and a new version of the job.
    /// Records what component `hash` declares about its state (`global` or
    /// `by-record-key`), for the Versions view.
    pub async fn set_state_keying(&self, hash: &str, keying: &str) -> StoreResult<()> {
        sqlx::query("update components set state_keying = $1 where hash = $2")
            .bind(keying)
            .bind(hash)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn add_version(
        &self,
        job_id: &str,
        hash: &str,
        bytes: &[u8],
        note: &str,
        created_by: &str,
    ) -> StoreResult<Version> {
        let mut tx = self.pool.begin().await?;
        let known =
            sqlx::query("select hash from components where hash = $1").bind(hash).fetch_optional(&mut *tx).await?;
        if known.is_none() {
            sqlx::query("insert into components (hash, bytes, size) values ($1, $2, $3)")
                .bind(hash)
                .bind(bytes.to_vec())
                .bind(bytes.len() as i64)
                .execute(&mut *tx)
                .await?;
        }
        let number: i64 = sqlx::query("select coalesce(max(number), 0) + 1 as n from versions where job_id = $1")
            .bind(job_id)
            .fetch_one(&mut *tx)
            .await?
            .try_get("n")?;
        let id = new_id();
        sqlx::query(
            "insert into versions (id, job_id, number, hash, note, created_ms, created_by)
             values ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&id)
        .bind(job_id)
        .bind(number)
        .bind(hash)
        .bind(note)
        .bind(now_ms())
        .bind(created_by)
        .execute(&mut *tx)
        .await
        .map_err(|e| conflict(e, || "another version was uploaded at the same time; try again".into()))?;
        tx.commit().await?;
        self.version(&id).await?.ok_or_else(|| StoreError::Conflict("the version vanished".into()))
    }

    pub async fn version(&self, id: &str) -> StoreResult<Option<Version>> {
        let row = sqlx::query(&format!(
            "select {VERSION_COLUMNS} from versions v join components c on c.hash = v.hash where v.id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(Version::from_row).transpose()
    }

    pub async fn version_by_number(&self, job_id: &str, number: i64) -> StoreResult<Option<Version>> {
        let row = sqlx::query(&format!(
            "select {VERSION_COLUMNS} from versions v join components c on c.hash = v.hash
             where v.job_id = $1 and v.number = $2"
        ))
        .bind(job_id)
        .bind(number)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(Version::from_row).transpose()
    }

    pub async fn versions(&self, job_id: &str) -> StoreResult<Vec<Version>> {
        let rows = sqlx::query(&format!(
            "select {VERSION_COLUMNS} from versions v join components c on c.hash = v.hash
             where v.job_id = $1 order by v.number desc"
        ))
        .bind(job_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(Version::from_row).collect()
    }

    pub async fn component(&self, hash: &str) -> StoreResult<Option<Vec<u8>>> {
        let row =
            sqlx::query("select bytes from components where hash = $1").bind(hash).fetch_optional(&self.pool).await?;
        Ok(row.map(|r| r.try_get("bytes")).transpose()?)
    }

    pub async fn put_deployment(&self, d: &Deployment) -> StoreResult<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("delete from deployments where job_id = $1").bind(&d.job_id).execute(&mut *tx).await?;
        sqlx::query(
            "insert into deployments (job_id, version_id, spec, parameters, parallelism, memory_mb, cpu_ms, schedule, updated_ms)
             values ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(&d.job_id)
        .bind(&d.version_id)
        .bind(&d.spec)
        .bind(serde_json::to_string(&d.parameters).expect("a map of strings serializes"))
        .bind(d.parallelism)
        .bind(d.memory_mb)
        .bind(d.cpu_ms)
        .bind(&d.schedule)
        .bind(now_ms())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn deployment(&self, job_id: &str) -> StoreResult<Option<Deployment>> {
        let row = sqlx::query(
            "select job_id, version_id, spec, parameters, parallelism, memory_mb, cpu_ms, schedule, updated_ms
             from deployments where job_id = $1",
        )
        .bind(job_id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(deployment_from_row).transpose()
    }

    /// Every deployment with a cron schedule.
    pub async fn scheduled_deployments(&self) -> StoreResult<Vec<Deployment>> {
        self.deployments_where("schedule is not null", None).await
    }

    /// Every deployment of project `project_id`'s jobs.
    pub async fn project_deployments(&self, project_id: &str) -> StoreResult<Vec<Deployment>> {
        self.deployments_where("job_id in (select id from jobs where project_id = $1)", Some(project_id)).await
    }

    async fn deployments_where(&self, condition: &str, bind: Option<&str>) -> StoreResult<Vec<Deployment>> {
        let sql = format!(
            "select job_id, version_id, spec, parameters, parallelism, memory_mb, cpu_ms, schedule, updated_ms
             from deployments where {condition}"
        );
        let mut query = sqlx::query(&sql);
        if let Some(value) = bind {
            query = query.bind(value);
        }
        let rows = query.fetch_all(&self.pool).await?;
        rows.iter().map(deployment_from_row).collect()
    }
}

fn deployment_from_row(r: &AnyRow) -> StoreResult<Deployment> {
    let parameters: String = r.try_get("parameters")?;
    Ok(Deployment {
        job_id: r.try_get("job_id")?,
        version_id: r.try_get("version_id")?,
        spec: r.try_get("spec")?,
        parameters: serde_json::from_str(&parameters).unwrap_or_default(),
        parallelism: r.try_get("parallelism")?,
        memory_mb: r.try_get("memory_mb")?,
        cpu_ms: r.try_get("cpu_ms")?,
        schedule: r.try_get("schedule")?,
        updated_ms: r.try_get("updated_ms")?,
    })
}
