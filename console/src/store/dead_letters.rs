//! Dead letters of console runs, durable in the metadata store: a bounded
//! number per job (oldest dropped first, and counted), so that neither a
//! restart nor a flood of bad records loses track of what was rejected.

use std::sync::atomic::{AtomicU32, Ordering};

use sqlx::Row;

use super::{Store, StoreResult, now_ms};

/// Orders dead letters written in the same millisecond by this process.
static SEQUENCE: AtomicU32 = AtomicU32::new(0);

/// A dead letter's JSON is cut to this many bytes of its `value`: the
/// bound on rows per job is then a bound on bytes too.
const MAX_VALUE_BYTES: usize = 16 * 1024;

impl Store {
    /// Keeps `rows` (dead-letter JSON objects) of `job_id`'s run `run_id`,
    /// then drops the oldest beyond `keep`, counting them.
    pub async fn add_dead_letters(
        &self,
        job_id: &str,
        run_id: &str,
        rows: &[serde_json::Value],
        keep: usize,
    ) -> StoreResult<()> {
        let mut tx = self.pool.begin().await?;
        for row in rows {
            let id = format!("{:013x}{:08x}", now_ms(), SEQUENCE.fetch_add(1, Ordering::Relaxed));
            sqlx::query("insert into dead_letters (id, job_id, run_id, created_ms, body) values ($1, $2, $3, $4, $5)")
                .bind(id)
                .bind(job_id)
                .bind(run_id)
                .bind(now_ms())
                .bind(bounded(row).to_string())
                .execute(&mut *tx)
                .await?;
        }
        // Everything older than the `keep`-th newest goes.
        let dropped = sqlx::query(
            "delete from dead_letters where job_id = $1 and id < \
             (select id from dead_letters where job_id = $1 order by id desc limit 1 offset $2)",
        )
        .bind(job_id)
        .bind(i64::try_from(keep.max(1) - 1).unwrap_or(i64::MAX))
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if dropped > 0 {
            sqlx::query(
                "insert into dead_letter_drops (job_id, dropped) values ($1, $2) \
                 on conflict (job_id) do update set dropped = dead_letter_drops.dropped + excluded.dropped",
            )
            .bind(job_id)
            .bind(dropped as i64)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// The newest `limit` dead letters of a job, newest first.
    pub async fn dead_letters(&self, job_id: &str, limit: i64) -> StoreResult<Vec<serde_json::Value>> {
        let rows = sqlx::query("select body from dead_letters where job_id = $1 order by id desc limit $2")
            .bind(job_id)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| Ok(serde_json::from_str(&r.try_get::<String, _>("body")?).unwrap_or(serde_json::Value::Null)))
            .collect()
    }

    /// How many dead letters of a job were kept, and how many were dropped
    /// because the job had more than the bound.
    pub async fn dead_letter_counts(&self, job_id: &str) -> StoreResult<(i64, i64)> {
        let kept: i64 = sqlx::query("select count(*) as n from dead_letters where job_id = $1")
            .bind(job_id)
            .fetch_one(&self.pool)
            .await?
            .try_get("n")?;
        let dropped: Option<i64> = sqlx::query("select dropped from dead_letter_drops where job_id = $1")
            .bind(job_id)
            .fetch_optional(&self.pool)
            .await?
            .map(|r| r.try_get("dropped"))
            .transpose()?;
        Ok((kept, dropped.unwrap_or(0)))
    }
}

/// The row with its `value` cut to [`MAX_VALUE_BYTES`] (marked so).
fn bounded(row: &serde_json::Value) -> serde_json::Value {
    let mut row = row.clone();
    if let Some(value) = row.get_mut("value").and_then(|v| v.as_str().map(str::to_owned))
        && value.len() > MAX_VALUE_BYTES
    {
        let mut cut = MAX_VALUE_BYTES;
        while !value.is_char_boundary(cut) {
            cut -= 1;
        }
        row["value"] = value[..cut].into();
        row["value_truncated"] = true.into();
    }
    row
}
