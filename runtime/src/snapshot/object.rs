//! Snapshots in an S3-compatible object store, for shared deployments: any
//! worker that can reach the bucket can restore any job. The layout mirrors
//! the local directory, `PREFIX/<job>/<id>[.delta].snapshot`, and each object
//! holds the same checksummed encoding as a file. An S3 PUT is atomic, so an
//! object is either the whole snapshot or absent.

use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;
use object_store::aws::{AmazonS3, AmazonS3Builder, AmazonS3ConfigKey};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload, RetryConfig};

use super::store::{retention_cut, snapshot_file_name, snapshot_id_of};
use super::{Snapshot, SnapshotError, SnapshotStore};

/// How long the check at start may take before the store is declared
/// unreachable (each request also has object_store's own timeouts).
const PROBE_TIMEOUT: Duration = Duration::from_secs(20);

/// `s3://BUCKET/PREFIX`, with endpoint, region and credentials from the
/// standard AWS environment variables (`AWS_ENDPOINT_URL`, `AWS_REGION`,
/// `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_ALLOW_HTTP`, …).
pub struct ObjectSnapshotStore {
    store: AmazonS3,
    bucket: String,
    prefix: Path,
    /// The URL as given, for errors.
    location: String,
}

impl ObjectSnapshotStore {
    /// Opens `s3://BUCKET/PREFIX` configured from the environment and checks
    /// that the bucket answers (a list call), so a wrong endpoint or bucket
    /// fails at start with an error naming the URL.
    pub async fn connect(url: &str) -> Result<Self, SnapshotError> {
        Self::connect_with(url, std::iter::empty::<(&str, &str)>()).await
    }

    /// As [`connect`](Self::connect), with object_store configuration keys
    /// (`aws_endpoint`, `aws_access_key_id`, `aws_allow_http`, …) applied
    /// over the environment's.
    pub async fn connect_with<K, V>(url: &str, options: impl IntoIterator<Item = (K, V)>) -> Result<Self, SnapshotError>
    where
        K: AsRef<str>,
        V: Into<String>,
    {
        let location = url.to_owned();
        let error = |message: String| SnapshotError::Storage { location: location.clone(), message };
        let (bucket, prefix) = parse_url(url).map_err(error)?;
        let mut builder = AmazonS3Builder::from_env().with_bucket_name(bucket);
        for (key, value) in options {
            let key: AmazonS3ConfigKey =
                key.as_ref().parse().map_err(|e| error(format!("option `{}`: {e}", key.as_ref())))?;
            builder = builder.with_config(key, value);
        }
        // The probe gives up after a few quick retries instead of the default
        // three minutes, so an unreachable endpoint fails the start promptly.
        let probe_retry = RetryConfig { max_retries: 2, retry_timeout: Duration::from_secs(10), ..Default::default() };
        let probe = builder.clone().with_retry(probe_retry).build().map_err(|e| error(e.to_string()))?;
        let store = builder.build().map_err(|e| error(e.to_string()))?;
        let prefix = Path::from(prefix);
        // The first page of a listing: one request, whatever the bucket holds.
        let mut listing = probe.list(Some(&prefix));
        match tokio::time::timeout(PROBE_TIMEOUT, listing.next()).await {
            Ok(None | Some(Ok(_))) => {}
            Ok(Some(Err(e))) => {
                let mut message = format!("cannot list the bucket: {}", with_causes(&e));
                if message.contains("URL scheme is not allowed") {
                    message.push_str(" (a plain-http endpoint needs AWS_ALLOW_HTTP=true)");
                }
                return Err(error(message));
            }
            Err(_) => return Err(error(format!("no answer within {}s", PROBE_TIMEOUT.as_secs()))),
        }
        Ok(ObjectSnapshotStore { store, bucket: bucket.to_owned(), prefix, location })
    }

    fn error(&self, e: object_store::Error) -> SnapshotError {
        SnapshotError::Storage { location: self.location.clone(), message: with_causes(&e) }
    }

    fn path(&self, job: &str, id: &str, delta: bool) -> Path {
        self.prefix.clone().join(job).join(snapshot_file_name(id, delta))
    }

    /// (id, is incremental) of a job's snapshot objects, oldest first.
    async fn objects(&self, job: &str) -> Result<Vec<(String, bool)>, SnapshotError> {
        let listed =
            self.store.list_with_delimiter(Some(&self.prefix.clone().join(job))).await.map_err(|e| self.error(e))?;
        let mut objects: Vec<_> =
            listed.objects.iter().filter_map(|o| o.location.filename().and_then(snapshot_id_of)).collect();
        objects.sort();
        Ok(objects)
    }
}

#[async_trait]
impl SnapshotStore for ObjectSnapshotStore {
    async fn put(&self, snapshot: &Snapshot, retain: usize) -> Result<u64, SnapshotError> {
        let meta = &snapshot.meta;
        let bytes = snapshot.encode();
        let size = bytes.len() as u64;
        let path = self.path(&meta.job, &meta.id, snapshot.base.is_some());
        self.store.put(&path, PutPayload::from(bytes)).await.map_err(|e| self.error(e))?;
        let objects = self.objects(&meta.job).await?;
        for (id, delta) in &objects[..retention_cut(&objects, retain)] {
            // As on disk: a leftover is dropped by the next put's retention.
            if let Err(e) = self.store.delete(&self.path(&meta.job, id, *delta)).await {
                tracing::warn!(job = %meta.job, snapshot = %id, "cannot delete an expired snapshot: {e}");
            }
        }
        Ok(size)
    }

    async fn list(&self, job: &str) -> Result<Vec<String>, SnapshotError> {
        Ok(self.objects(job).await?.into_iter().map(|(id, _)| id).collect())
    }

    async fn get(&self, job: &str, id: &str) -> Result<Snapshot, SnapshotError> {
        // A full snapshot first, then an increment: one request when full.
        for delta in [false, true] {
            let path = self.path(job, id, delta);
            let bytes = match self.store.get(&path).await {
                Ok(found) => found.bytes().await.map_err(|e| self.error(e))?,
                Err(object_store::Error::NotFound { .. }) => continue,
                Err(e) => return Err(self.error(e)),
            };
            return Snapshot::decode(&format!("s3://{}/{path}", self.bucket), &bytes);
        }
        Err(SnapshotError::NotFound { job: job.to_owned(), id: id.to_owned() })
    }
}

/// An error with its causes: object_store's own message stops at "error
/// sending request", and the reason (connection refused, plain http not
/// allowed, …) is in the sources.
fn with_causes(e: &object_store::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text = format!("{text}: {cause_text}");
        }
        source = cause.source();
    }
    text
}

/// `s3://BUCKET/PREFIX` as (bucket, prefix without surrounding slashes).
fn parse_url(url: &str) -> Result<(&str, &str), String> {
    let rest = url.strip_prefix("s3://").ok_or("not an s3://BUCKET/PREFIX URL")?;
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    if bucket.is_empty() {
        return Err("the URL names no bucket (s3://BUCKET/PREFIX)".into());
    }
    Ok((bucket, prefix.trim_matches('/')))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_name_a_bucket_and_a_prefix() {
        assert_eq!(parse_url("s3://b/snaps/prod/").unwrap(), ("b", "snaps/prod"));
        assert_eq!(parse_url("s3://b").unwrap(), ("b", ""));
        assert!(parse_url("s3:///x").is_err());
        assert!(parse_url("gs://b/x").is_err());
    }

    /// Nothing listens on the port: the start fails quickly, naming the URL.
    #[tokio::test]
    async fn an_unreachable_endpoint_fails_at_start_naming_the_url() {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let endpoint = format!("http://127.0.0.1:{port}");
        let options = [
            ("aws_endpoint", endpoint.as_str()),
            ("aws_allow_http", "true"),
            ("aws_access_key_id", "k"),
            ("aws_secret_access_key", "s"),
            ("aws_region", "us-east-1"),
        ];
        let started = std::time::Instant::now();
        let err = ObjectSnapshotStore::connect_with("s3://nowhere/snaps", options).await.err().expect("no server");
        assert!(started.elapsed() < PROBE_TIMEOUT + Duration::from_secs(5), "took {:?}", started.elapsed());
        let text = err.to_string();
        assert!(text.starts_with("snapshot storage s3://nowhere/snaps: cannot list the bucket"), "{text}");
        assert!(text.contains(&endpoint) && text.contains("Connection refused"), "{text}");

        let plain_http = [options[0], options[2], options[3], options[4]];
        let err =
            ObjectSnapshotStore::connect_with("s3://nowhere/snaps", plain_http).await.err().expect("http refused");
        assert!(err.to_string().contains("needs AWS_ALLOW_HTTP=true"), "{err}");
    }
}
