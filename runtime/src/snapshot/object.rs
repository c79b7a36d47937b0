//! Snapshots in an S3-compatible object store, for shared deployments: any
//! worker that can reach the bucket can restore any job. The layout mirrors
//! the local directory, `PREFIX/<job>/<id>[.e<epoch>][.delta].snapshot`, and
//! each object holds the same checksummed encoding as a file. An S3 PUT is
//! atomic, so an object is either the whole snapshot or absent.
//!
//! Fencing. S3 has no transactions, so a put cannot check the fence and
//! write in one step as PostgreSQL does: a zombie (a worker whose lease was
//! taken over) can pass the check, stall, and land its object after the new
//! owner raised the fence. Such a late object is not prevented but either
//! refused or made invisible:
//!
//! - each snapshot object is named with the lease epoch that wrote it
//!   (`.e<epoch>`). Objects without one count as epoch 0: written before
//!   fencing, or by an unfenced put while no fence was raised. The epoch is
//!   in the name, not in object metadata, because a listing returns no
//!   metadata;
//! - `PREFIX/<job>/_fence.json` holds the newest raised epoch and the
//!   snapshots of older epochs that were visible when it was raised;
//! - a snapshot of an older epoch than the fence that is not in that list
//!   was written after the raise: `list` and `get` (so `latest` and `load`)
//!   never show it, and the owner's next retention deletes it.
//!
//! A raise takes two conditional writes of the fence. Step A publishes the
//! new epoch as *pending*, keeping the replaced fence's rule (`prior`) for
//! what is shown, so readers see what they saw before. Step B then lists the
//! job's snapshots, keeps those the prior rule shows, and writes them as the
//! final fence's `valid` list. A raiser that finds a pending fence (its
//! raiser died between the steps) takes the prior rule as the fence's.
//!
//! A fenced put writes its object, then reads the fence again, and succeeds
//! only if the fence's epoch is still not above its own. So a successful
//! put's object was written before that read, which came before any newer
//! raise's step A, which comes before that raise's listing: the listing
//! sees the object (S3 lists are strongly consistent) and the final fence
//! keeps it, so the new owner restores it (or a newer one) and the zombie's
//! dimension writes, committed only after a successful put, match a
//! snapshot that stays visible. A put that reads a newer epoch, pending or
//! final, is refused and deletes nothing: the new owner's listing may have
//! taken its object, which it then restores with the dimension writes the
//! snapshot carries; if not, the object stays hidden until the owner's
//! retention deletes it. Retention deletes only hidden objects and the
//! putter's own or older expired ones, and reads the fence once more right
//! before deleting, skipping the deletes if a newer epoch was raised.

use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;
use object_store::aws::{AmazonS3, AmazonS3Builder, AmazonS3ConfigKey};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutPayload, RetryConfig, UpdateVersion};
use serde::{Deserialize, Serialize};

use super::store::{retention_cut, snapshot_file_name, snapshot_id_of};
use super::{Snapshot, SnapshotError, SnapshotStore};

/// How long the check at start may take before the store is declared
/// unreachable (each request also has object_store's own timeouts).
const PROBE_TIMEOUT: Duration = Duration::from_secs(20);

/// A job's fence object, beside its snapshots. Not a snapshot name, so
/// snapshot listings skip it.
const FENCE_OBJECT: &str = "_fence.json";

/// How often a raise of the fence reads it again after another raiser
/// changed it between the read and the write.
const RAISE_ATTEMPTS: usize = 8;

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

/// One snapshot object: its id, the lease epoch that wrote it (0: none)
/// and whether it is incremental. Ordered by id, then epoch.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct SnapshotObject {
    id: String,
    epoch: u64,
    delta: bool,
}

impl SnapshotObject {
    /// `<id>[.e<epoch>][.delta].snapshot`; epoch 0 keeps the name snapshots
    /// had before fencing (and have in a directory).
    fn name(&self) -> String {
        if self.epoch == 0 {
            snapshot_file_name(&self.id, self.delta)
        } else {
            snapshot_file_name(&format!("{}.e{}", self.id, self.epoch), self.delta)
        }
    }

    /// The snapshot an object name holds; `None` for the fence and foreign
    /// objects. Snapshot ids (`<ms>-<seq>`) have no dot, so a `.e<digits>`
    /// tail is the epoch.
    fn parse(name: &str) -> Option<SnapshotObject> {
        let (stem, delta) = snapshot_id_of(name)?;
        let tagged = stem.rsplit_once(".e").filter(|(_, e)| !e.is_empty() && e.bytes().all(|b| b.is_ascii_digit()));
        Some(match tagged.and_then(|(id, e)| Some((id, e.parse().ok()?))) {
            Some((id, epoch)) => SnapshotObject { id: id.to_owned(), epoch, delta },
            None => SnapshotObject { id: stem, epoch: 0, delta },
        })
    }
}

/// A job's fence, stored as JSON in `PREFIX/<job>/_fence.json`. None
/// stored reads as the default: epoch 0, hiding nothing.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Fence {
    /// The newest lease epoch raised (pending or not): fenced puts of older
    /// epochs are refused.
    epoch: u64,
    /// The snapshots of older epochs that were visible when `epoch` was
    /// raised: the only older ones shown from then on. Empty while pending.
    valid: Vec<FencedIn>,
    /// Set while the raise to `epoch` is pending (step A written, step B
    /// not yet): the rule of the fence it replaces, which still decides
    /// what is shown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    prior: Option<Visibility>,
}

/// Which snapshots a fence shows: those of `epoch` or newer, and the older
/// ones in `valid`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Visibility {
    epoch: u64,
    valid: Vec<FencedIn>,
}

/// A snapshot of an older epoch that a fence keeps visible.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct FencedIn {
    id: String,
    epoch: u64,
}

impl Fence {
    /// The rule deciding what is shown: the prior one while pending.
    fn visibility(&self) -> Visibility {
        match &self.prior {
            Some(prior) => prior.clone(),
            None => Visibility { epoch: self.epoch, valid: self.valid.clone() },
        }
    }

    /// Whether `object` is shown: written under the rule's epoch or a newer
    /// one, or under an older one but visible when the rule was made. Any
    /// other object landed after a raise (a zombie's late write), and stays
    /// hidden under every later fence too, since a raise keeps only what
    /// the fence before it showed.
    fn shows(&self, object: &SnapshotObject) -> bool {
        let (epoch, valid) = match &self.prior {
            Some(prior) => (prior.epoch, &prior.valid),
            None => (self.epoch, &self.valid),
        };
        object.epoch >= epoch || valid.iter().any(|v| v.id == object.id && v.epoch == object.epoch)
    }
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

    /// The part of a fenced put after its check of the fence passed: writes
    /// the snapshot under `epoch`, then reads the fence again, since a raise
    /// may have come between the check and the write. If a newer epoch was
    /// raised since (pending or final), the put is refused and deletes
    /// nothing: that raise's listing may have taken the snapshot, and if
    /// not, it is hidden and the new owner's retention deletes it.
    /// Otherwise the put stands, and any later raise lists the snapshot (see
    /// the module doc), so retention runs.
    ///
    /// Public so that tests can play a zombie that stalled between the
    /// check and the write; tasks go through [`SnapshotStore::put_fenced`].
    #[doc(hidden)]
    pub async fn put_after_check(&self, snapshot: &Snapshot, retain: usize, epoch: u64) -> Result<u64, SnapshotError> {
        let job = &snapshot.meta.job;
        let size = self.write(snapshot, epoch).await?;
        let (fence, _) = self.fence(job).await?;
        if fence.epoch > epoch {
            return Err(SnapshotError::Fenced { job: job.clone(), epoch, fence: fence.epoch });
        }
        self.expire(job, &fence, epoch, retain).await?;
        Ok(size)
    }

    /// Step A of a raise alone: publishes `epoch` as pending, showing what
    /// the fence before it showed, as a raiser that dies before step B
    /// leaves it. Public so that tests can interleave a zombie's put
    /// between the two steps; [`SnapshotStore::raise_fence`] takes both.
    #[doc(hidden)]
    pub async fn raise_pending(&self, job: &str, epoch: u64) -> Result<(), SnapshotError> {
        self.raise(job, epoch, false).await
    }

    fn error(&self, e: object_store::Error) -> SnapshotError {
        SnapshotError::Storage { location: self.location.clone(), message: with_causes(&e) }
    }

    fn path(&self, job: &str, object: &SnapshotObject) -> Path {
        self.prefix.clone().join(job).join(object.name())
    }

    fn fence_path(&self, job: &str) -> Path {
        self.prefix.clone().join(job).join(FENCE_OBJECT)
    }

    /// A job's fence, with the version of its object for a conditional
    /// update (`None`: no fence was raised yet).
    async fn fence(&self, job: &str) -> Result<(Fence, Option<UpdateVersion>), SnapshotError> {
        let path = self.fence_path(job);
        let found = match self.store.get(&path).await {
            Ok(found) => found,
            Err(object_store::Error::NotFound { .. }) => return Ok((Fence::default(), None)),
            Err(e) => return Err(self.error(e)),
        };
        let version = UpdateVersion { e_tag: found.meta.e_tag.clone(), version: found.meta.version.clone() };
        let bytes = found.bytes().await.map_err(|e| self.error(e))?;
        let fence = serde_json::from_slice(&bytes).map_err(|e| SnapshotError::Storage {
            location: self.location.clone(),
            message: format!("unreadable fence s3://{}/{path}: {e}", self.bucket),
        })?;
        Ok((fence, Some(version)))
    }

    /// Raises `job`'s fence to `epoch` in the two steps of the module doc
    /// (only step A unless `finish`), keeping visible what the old fence
    /// showed; a pending fence of `epoch` left by another raiser is
    /// finished. Each step replaces the fence by a conditional write
    /// (create if absent, else only if its e-tag is the one read), so of
    /// two raisers the second reads the first's fence again instead of
    /// overwriting it with a rule computed under the older one. (The test
    /// server, s3s-fs, checks the condition before writing rather than
    /// atomically; S3, MinIO and R2 check it atomically.)
    async fn raise(&self, job: &str, epoch: u64, finish: bool) -> Result<(), SnapshotError> {
        for _ in 0..RAISE_ATTEMPTS {
            let (fence, version) = self.fence(job).await?;
            let pending = fence.prior.is_some();
            if fence.epoch > epoch || (fence.epoch == epoch && (!pending || !finish)) {
                return Ok(());
            }
            let (next, done) = if fence.epoch < epoch {
                // Step A: the new epoch, still showing what `fence` shows.
                (Fence { epoch, valid: Vec::new(), prior: Some(fence.visibility()) }, !finish)
            } else {
                // Step B, listed after step A: whatever of an older epoch
                // lands from here on is not in `valid`, so it stays hidden.
                let valid = self.objects(job).await?.into_iter().filter(|o| o.epoch < epoch && fence.shows(o));
                (
                    Fence { epoch, valid: valid.map(|o| FencedIn { id: o.id, epoch: o.epoch }).collect(), prior: None },
                    true,
                )
            };
            if self.replace_fence(job, &next, version).await? && done {
                return Ok(());
            }
            // Step A written (read it back for step B's condition), or
            // another raiser wrote the fence since it was read.
        }
        Err(SnapshotError::Storage {
            location: self.location.clone(),
            message: format!("the fence of `{job}` kept changing while it was raised to epoch {epoch}"),
        })
    }

    /// Writes `fence` if the stored one is still `version` (`None`: absent);
    /// `false` if another writer changed it first.
    async fn replace_fence(
        &self,
        job: &str,
        fence: &Fence,
        version: Option<UpdateVersion>,
    ) -> Result<bool, SnapshotError> {
        let path = self.fence_path(job);
        let body = serde_json::to_vec(fence).expect("a fence always serializes");
        let mode = match version {
            Some(version) => PutMode::Update(version),
            None => PutMode::Create,
        };
        match self.store.put_opts(&path, PutPayload::from(body.clone()), mode.into()).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::Precondition { .. } | object_store::Error::AlreadyExists { .. }) => Ok(false),
            // A store configured without conditional writes
            // (`AWS_CONDITIONAL_PUT=disabled`, for servers without them): a
            // plain write. Raises stay one at a time, because only the
            // leader takes a run over and it gives the run to one worker.
            Err(object_store::Error::NotImplemented { .. }) => {
                self.store.put(&path, PutPayload::from(body)).await.map_err(|e| self.error(e))?;
                Ok(true)
            }
            Err(e) => Err(self.error(e)),
        }
    }

    /// Stores `snapshot` as written under lease `epoch`; returns its size.
    async fn write(&self, snapshot: &Snapshot, epoch: u64) -> Result<u64, SnapshotError> {
        let object = SnapshotObject { id: snapshot.meta.id.clone(), epoch, delta: snapshot.base.is_some() };
        let bytes = snapshot.encode();
        let size = bytes.len() as u64;
        let path = self.path(&snapshot.meta.job, &object);
        self.store.put(&path, PutPayload::from(bytes)).await.map_err(|e| self.error(e))?;
        Ok(size)
    }

    /// Retention after a put under lease `epoch`, with `fence` read after
    /// the write (its epoch not above `epoch`): drops the oldest shown
    /// snapshots beyond `retain` (keeping the bases of the kept ones) but
    /// none of a newer epoch than `epoch`, and every hidden one (hidden for
    /// good, see [`Fence::shows`]). Nothing is deleted if the fence went
    /// above `epoch` meanwhile: the new owner's retention decides then. As
    /// on disk, a leftover is dropped by a later put's retention.
    async fn expire(&self, job: &str, fence: &Fence, epoch: u64, retain: usize) -> Result<(), SnapshotError> {
        let (shown, hidden): (Vec<_>, Vec<_>) = self.objects(job).await?.into_iter().partition(|o| fence.shows(o));
        let ids: Vec<(String, bool)> = shown.iter().map(|o| (o.id.clone(), o.delta)).collect();
        let expired = shown[..retention_cut(&ids, retain)].iter().filter(|o| o.epoch <= epoch);
        let doomed: Vec<_> = expired.chain(&hidden).collect();
        if doomed.is_empty() || self.fence(job).await?.0.epoch > epoch {
            return Ok(());
        }
        for object in doomed {
            if let Err(e) = self.store.delete(&self.path(job, object)).await {
                tracing::warn!(job = %job, snapshot = %object.id, "cannot delete an expired snapshot: {e}");
            }
        }
        Ok(())
    }

    /// All of a job's snapshot objects, hidden ones too, oldest first.
    async fn objects(&self, job: &str) -> Result<Vec<SnapshotObject>, SnapshotError> {
        let listed =
            self.store.list_with_delimiter(Some(&self.prefix.clone().join(job))).await.map_err(|e| self.error(e))?;
        let mut objects: Vec<_> =
            listed.objects.iter().filter_map(|o| o.location.filename().and_then(SnapshotObject::parse)).collect();
        objects.sort();
        Ok(objects)
    }

    /// The snapshot objects a job's fence shows, oldest first. The fence is
    /// read first: an owner that raised it lists after its own raise.
    async fn shown(&self, job: &str) -> Result<Vec<SnapshotObject>, SnapshotError> {
        let (fence, _) = self.fence(job).await?;
        let mut objects = self.objects(job).await?;
        objects.retain(|o| fence.shows(o));
        Ok(objects)
    }
}

#[async_trait]
impl SnapshotStore for ObjectSnapshotStore {
    /// An unfenced put (`sluice run`, no lease) is written under the
    /// fence's current epoch, so it is neither refused nor hidden, as an
    /// unfenced put to PostgreSQL is stored whatever the fence says.
    async fn put(&self, snapshot: &Snapshot, retain: usize) -> Result<u64, SnapshotError> {
        let job = &snapshot.meta.job;
        let (fence, _) = self.fence(job).await?;
        let size = self.write(snapshot, fence.epoch).await?;
        self.expire(job, &fence, fence.epoch, retain).await?;
        Ok(size)
    }

    fn fences(&self) -> bool {
        true
    }

    async fn raise_fence(&self, job: &str, epoch: u64) -> Result<(), SnapshotError> {
        self.raise(job, epoch, true).await
    }

    async fn put_fenced(&self, snapshot: &Snapshot, retain: usize, epoch: u64) -> Result<u64, SnapshotError> {
        let job = &snapshot.meta.job;
        let (fence, _) = self.fence(job).await?;
        if fence.epoch > epoch {
            return Err(SnapshotError::Fenced { job: job.clone(), epoch, fence: fence.epoch });
        }
        if fence.epoch < epoch || fence.prior.is_some() {
            // A newer owner that has not raised the fence yet (or not
            // finished raising it): its first put does, as with PostgreSQL.
            self.raise(job, epoch, true).await?;
        }
        self.put_after_check(snapshot, retain, epoch).await
    }

    async fn list(&self, job: &str) -> Result<Vec<String>, SnapshotError> {
        let mut ids: Vec<String> = self.shown(job).await?.into_iter().map(|o| o.id).collect();
        ids.dedup();
        Ok(ids)
    }

    async fn get(&self, job: &str, id: &str) -> Result<Snapshot, SnapshotError> {
        let not_found = || SnapshotError::NotFound { job: job.to_owned(), id: id.to_owned() };
        // Should two owners have written one id, the newer epoch's.
        let shown = self.shown(job).await?;
        let object = shown.iter().rev().find(|o| o.id == id).ok_or_else(not_found)?;
        let path = self.path(job, object);
        let bytes = match self.store.get(&path).await {
            Ok(found) => found.bytes().await.map_err(|e| self.error(e))?,
            // Expired since the listing.
            Err(object_store::Error::NotFound { .. }) => return Err(not_found()),
            Err(e) => return Err(self.error(e)),
        };
        Snapshot::decode(&format!("s3://{}/{path}", self.bucket), &bytes)
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

    #[test]
    fn object_names_carry_the_writing_epoch() {
        let cases = [
            ("1-2.snapshot", "1-2", 0, false),
            ("1-2.delta.snapshot", "1-2", 0, true),
            ("1-2.e7.snapshot", "1-2", 7, false),
            ("1-2.e7.delta.snapshot", "1-2", 7, true),
        ];
        for (name, id, epoch, delta) in cases {
            let object = SnapshotObject::parse(name).unwrap();
            assert_eq!(object, SnapshotObject { id: id.into(), epoch, delta });
            assert_eq!(object.name(), name);
        }
        assert_eq!(SnapshotObject::parse("x.e.snapshot").unwrap().id, "x.e", "no digits, no epoch");
        assert!(SnapshotObject::parse(FENCE_OBJECT).is_none());
    }

    #[test]
    fn a_fence_hides_older_writes_it_did_not_list() {
        let object = |id: &str, epoch| SnapshotObject { id: id.into(), epoch, delta: false };
        let fence = Fence { epoch: 3, valid: vec![FencedIn { id: "1-1".into(), epoch: 0 }], prior: None };
        assert!(fence.shows(&object("1-1", 0)), "listed when raised");
        assert!(fence.shows(&object("1-5", 3)) && fence.shows(&object("1-6", 4)), "the fence's epoch or newer");
        assert!(!fence.shows(&object("1-2", 2)), "an older epoch, landed after the raise");
        assert!(!fence.shows(&object("1-1", 2)), "the id alone is not enough");
        assert!(Fence::default().shows(&object("1-1", 0)), "no fence hides nothing");

        let pending = Fence { epoch: 4, valid: Vec::new(), prior: Some(fence.visibility()) };
        for o in [object("1-1", 0), object("1-2", 2), object("1-5", 3), object("1-6", 4)] {
            assert_eq!(pending.shows(&o), fence.shows(&o), "a pending fence shows what the prior one did: {o:?}");
        }
        assert_eq!(pending.visibility(), fence.visibility(), "raised again, a pending fence passes its prior rule on");
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
