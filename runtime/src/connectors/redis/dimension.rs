//! The Redis dimension store: row `key` at Redis key `key_prefix + key`,
//! as JSON text (GET/SET) or as a hash (HGETALL/HSET), over one
//! `ConnectionManager` that reconnects by itself. Fenced commits (a
//! snapshot's staged writes under a lease) run as one Lua script, which
//! Redis executes atomically, with each fence at `key_prefix +
//! "sluice-fence:" + fence`.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::time::Duration;

use async_trait::async_trait;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Cmd, IntoConnectionInfo, RedisError, RedisResult, RetryMethod, Script};
use serde_json::{Map, Value};

use super::{RedisDimensionConfig, RedisLayout};
use crate::connections::{read_secret, redact_url};
use crate::connectors::registry::BuildContext;
use crate::connectors::{ConnectorError, DimensionStore};

const CONNECTOR: &str = "redis dimension";
/// One TCP connect attempt; an address that drops packets fails after this.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// The whole start (connect attempts and a PING), so a job with a dead
/// Redis fails at start instead of hanging.
const START_TIMEOUT: Duration = Duration::from_secs(5);
/// A command with no answer after this fails (and is retried) rather than
/// stalling the task.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(5);
/// Tries per command; the manager reconnects in between.
const ATTEMPTS: u32 = 3;
/// Wait before the first retry, doubled for each next one.
const BACKOFF: Duration = Duration::from_millis(100);
/// Between the key prefix and a fence's name: the key of the fence. The
/// fence lives under the prefix so that an ACL limited to the prefix's keys
/// (`~user:*`) covers it; `rows()` skips it.
const FENCE_KEY: &[u8] = b"sluice-fence:";

/// A fenced commit: `KEYS[1..n]` the fences, `KEYS[n+1..]` the rows' keys;
/// `ARGV[1]` the number of fences `n`, `ARGV[2..n+1]` the task's epoch for
/// each fence, `ARGV[n+2]` the layout (`json` or `hash`), `ARGV[n+3]` the
/// expiry in ms or empty, then per row its JSON text (`json`) or its field
/// count and field/value pairs (`hash`). Refused (nothing written, no fence
/// moved) when a fence stands above its epoch, answering that fence's
/// position (from 1) and epoch; else every fence is set to its epoch (all
/// passed the check and their names are distinct, so none goes down) and
/// every row written, answering an empty list. Redis runs a script alone,
/// so no other command (a newer owner's raise of a fence) falls between
/// the checks and the writes.
const FENCED_COMMIT: &str = r"
local n = tonumber(ARGV[1])
for i = 1, n do
  local fenced_at = tonumber(redis.call('GET', KEYS[i]) or '0')
  if fenced_at > tonumber(ARGV[1 + i]) then
    return {i, fenced_at}
  end
end
for i = 1, n do
  redis.call('SET', KEYS[i], ARGV[1 + i])
end
local hash, ttl, a = ARGV[n + 2] == 'hash', ARGV[n + 3], n + 4
for i = n + 1, #KEYS do
  if hash then
    redis.call('DEL', KEYS[i])
    local fields = tonumber(ARGV[a])
    a = a + 1
    for _ = 1, fields do
      redis.call('HSET', KEYS[i], ARGV[a], ARGV[a + 1])
      a = a + 2
    end
    if fields > 0 and ttl ~= '' then
      redis.call('PEXPIRE', KEYS[i], ttl)
    end
  else
    if ttl ~= '' then
      redis.call('SET', KEYS[i], ARGV[a], 'PX', ttl)
    else
      redis.call('SET', KEYS[i], ARGV[a])
    end
    a = a + 1
  end
end
return {}
";

pub struct RedisDimension {
    name: String,
    conn: ConnectionManager,
    key_prefix: Vec<u8>,
    layout: RedisLayout,
    /// The write expiry in milliseconds (PX / PEXPIRE).
    ttl_ms: Option<i64>,
    fenced_commit: Script,
}

impl RedisDimension {
    pub async fn connect(cx: BuildContext<'_>, name: &str, c: &RedisDimensionConfig) -> Result<Self, ConnectorError> {
        let config_error = |message: String| ConnectorError::config(CONNECTOR, name, message);
        let ttl_ms = match c.ttl {
            Some(ttl) if ttl.as_millis() == 0 => return Err(config_error("ttl must be at least 1ms".into())),
            Some(ttl) => Some(i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX)),
            None => None,
        };
        let connection = cx
            .connections
            .redis(&c.connection, &format!("dimension `{name}`"))
            .map_err(|e| config_error(e.to_string()))?;
        cx.connections
            .policy
            .check_redis(&connection.url)
            .await
            .map_err(|e| config_error(format!("connection `{}`: {e}", c.connection)))?;
        let url = redact_url(&connection.url);
        let mut info = connection
            .url
            .as_str()
            .into_connection_info()
            .map_err(|e| config_error(format!("connection `{}`: invalid Redis URL {url}: {e}", c.connection)))?;
        if let Some(password) =
            read_secret(&connection.password, &c.connection).map_err(|e| config_error(e.to_string()))?
        {
            info.redis.password = Some(password);
        }
        let client = redis::Client::open(info)
            .map_err(|e| config_error(format!("connection `{}` ({url}): {e}", c.connection)))?;

        let start = async {
            // One retry per (re)connect, after about a second: redis 0.32
            // passes `factor` to backon as the growth of a 1s first delay,
            // so its default of 100 would wait up to a minute.
            let manager = ConnectionManagerConfig::new()
                .set_connection_timeout(CONNECT_TIMEOUT)
                .set_response_timeout(RESPONSE_TIMEOUT)
                .set_number_of_retries(1)
                .set_factor(2)
                .set_max_delay(2_000);
            let mut conn = ConnectionManager::new_with_config(client, manager).await?;
            // Connecting alone does not prove the server answers (or that
            // the password is right): ask it something.
            redis::cmd("PING").query_async::<()>(&mut conn).await?;
            Ok::<_, RedisError>(conn)
        };
        // A server that cannot be reached may come back; a refused password
        // will not.
        let cannot_connect = |why: String, retryable: bool| {
            let message = format!("cannot connect to Redis connection `{}` at {url}: {why}", c.connection);
            ConnectorError::io(CONNECTOR, name, message, retryable)
        };
        let conn = match tokio::time::timeout(START_TIMEOUT, start).await {
            Ok(Ok(conn)) => conn,
            Ok(Err(e)) => return Err(cannot_connect(e.to_string(), retryable(&e))),
            Err(_) => return Err(cannot_connect(format!("no answer within {START_TIMEOUT:?}"), true)),
        };
        Ok(RedisDimension {
            name: name.to_owned(),
            conn,
            key_prefix: c.key_prefix.clone().into_bytes(),
            layout: c.layout,
            ttl_ms,
            fenced_commit: Script::new(FENCED_COMMIT),
        })
    }

    fn redis_key(&self, key: &[u8]) -> Vec<u8> {
        [self.key_prefix.as_slice(), key].concat()
    }

    /// The fenced commit's script answered something it never answers.
    fn unexpected_answer(&self, answer: &[u64]) -> ConnectorError {
        ConnectorError::io(CONNECTOR, &self.name, format!("fenced commit: unexpected answer {answer:?}"), false)
    }

    /// Runs `command` on the connection, retrying connection trouble with a
    /// short back-off while the manager reconnects. Every command here is
    /// idempotent, so repeating one whose reply was lost is safe.
    async fn run<T, F, Fut>(&self, what: &str, mut command: F) -> Result<T, ConnectorError>
    where
        F: FnMut(ConnectionManager) -> Fut,
        Fut: Future<Output = RedisResult<T>>,
    {
        let mut attempt = 1;
        loop {
            match command(self.conn.clone()).await {
                Ok(value) => return Ok(value),
                Err(e) if retryable(&e) && attempt < ATTEMPTS => {
                    tracing::warn!(dimension = %self.name, attempt, error = %e, "redis {what} failed; retrying");
                    tokio::time::sleep(BACKOFF * 2u32.pow(attempt - 1)).await;
                    attempt += 1;
                }
                Err(e) => {
                    return Err(ConnectorError::io(CONNECTOR, &self.name, format!("{what}: {e}"), retryable(&e)));
                }
            }
        }
    }

    /// The row at the full Redis key `key`.
    async fn read(&self, key: &[u8]) -> Result<Option<Vec<u8>>, ConnectorError> {
        match self.layout {
            RedisLayout::Json => {
                let get = &redis::cmd("GET").arg(key).to_owned();
                self.run("GET", |mut c| async move { get.query_async(&mut c).await }).await
            }
            RedisLayout::Hash => {
                let hgetall = &redis::cmd("HGETALL").arg(key).to_owned();
                let fields: BTreeMap<String, String> =
                    self.run("HGETALL", |mut c| async move { hgetall.query_async(&mut c).await }).await?;
                // Redis drops a hash with no fields, so empty means missing.
                if fields.is_empty() {
                    return Ok(None);
                }
                let row: Map<String, Value> = fields.into_iter().map(|(k, v)| (k, Value::String(v))).collect();
                Ok(Some(Value::Object(row).to_string().into_bytes()))
            }
        }
    }

    /// The hash fields of the row for `key`: one per top-level field of its
    /// JSON object, strings as they are and other values as JSON text.
    fn hash_fields(&self, key: &[u8], row: &[u8]) -> Result<Vec<(String, String)>, ConnectorError> {
        let not_an_object = |what: String| {
            let key = String::from_utf8_lossy(key);
            let message = format!(
                "layout = \"hash\" stores JSON objects, but the row for key `{key}` is {what}; use layout = \"json\" \
                 for other values"
            );
            ConnectorError::config(CONNECTOR, &self.name, message)
        };
        let fields = match serde_json::from_slice(row) {
            Ok(Value::Object(fields)) => fields,
            Ok(other) => return Err(not_an_object(format!("`{other}`"))),
            Err(e) => return Err(not_an_object(format!("not JSON ({e})"))),
        };
        Ok(fields
            .into_iter()
            .map(|(name, value)| match value {
                Value::String(s) => (name, s),
                other => (name, other.to_string()),
            })
            .collect())
    }

    /// DEL + HSET (+ PEXPIRE) in one MULTI, so readers never see a mix of
    /// the old and new row and fields the new row lacks do not linger.
    fn replace_hash(&self, redis_key: &[u8], key: &[u8], row: &[u8]) -> Result<redis::Pipeline, ConnectorError> {
        let fields = self.hash_fields(key, row)?;
        let mut pipe = redis::pipe();
        pipe.atomic().del(redis_key).ignore();
        // An empty object leaves no hash at all (HSET needs a field): it
        // reads back as missing.
        if !fields.is_empty() {
            pipe.hset_multiple(redis_key, &fields).ignore();
            if let Some(ms) = self.ttl_ms {
                pipe.pexpire(redis_key, ms).ignore();
            }
        }
        Ok(pipe)
    }
}

#[async_trait]
impl DimensionStore for RedisDimension {
    async fn lookup(&self, key: &[u8]) -> Result<Option<Vec<u8>>, ConnectorError> {
        self.read(&self.redis_key(key)).await
    }

    async fn upsert(&self, key: &[u8], row: &[u8]) -> Result<(), ConnectorError> {
        let redis_key = self.redis_key(key);
        match self.layout {
            RedisLayout::Json => {
                let mut set = Cmd::new();
                set.arg("SET").arg(&redis_key).arg(row);
                if let Some(ms) = self.ttl_ms {
                    set.arg("PX").arg(ms);
                }
                let set = &set;
                self.run("SET", |mut c| async move { set.query_async(&mut c).await }).await
            }
            RedisLayout::Hash => {
                let pipe = &self.replace_hash(&redis_key, key, row)?;
                self.run("DEL+HSET", |mut c| async move { pipe.query_async(&mut c).await }).await
            }
        }
    }

    async fn commit_fenced(
        &self,
        fences: &[(String, u64)],
        writes: &[(Vec<u8>, Vec<u8>)],
    ) -> Result<(), ConnectorError> {
        let mut invocation = self.fenced_commit.prepare_invoke();
        invocation.arg(fences.len());
        for (fence, epoch) in fences {
            invocation.key([self.key_prefix.as_slice(), FENCE_KEY, fence.as_bytes()].concat());
            invocation.arg(*epoch);
        }
        invocation.arg(match self.layout {
            RedisLayout::Json => "json",
            RedisLayout::Hash => "hash",
        });
        invocation.arg(self.ttl_ms.map_or(String::new(), |ms| ms.to_string()));
        for (key, row) in writes {
            invocation.key(self.redis_key(key));
            match self.layout {
                RedisLayout::Json => {
                    invocation.arg(row.as_slice());
                }
                RedisLayout::Hash => {
                    let fields = self.hash_fields(key, row)?;
                    invocation.arg(fields.len());
                    for (name, value) in fields {
                        invocation.arg(name).arg(value);
                    }
                }
            }
        }
        let invocation = &invocation;
        // Repeating a script whose answer was lost is safe: its fences then
        // stand at its epochs, which pass, and the writes are upserts.
        let refused: Vec<u64> =
            self.run("fenced commit", |mut c| async move { invocation.invoke_async(&mut c).await }).await?;
        match refused[..] {
            [] => Ok(()),
            [position, fenced_at] => {
                let (fence, epoch) = (usize::try_from(position).ok())
                    .and_then(|p| fences.get(p.checked_sub(1)?))
                    .ok_or_else(|| self.unexpected_answer(&refused))?;
                Err(ConnectorError::Fenced {
                    connector: CONNECTOR,
                    name: self.name.clone(),
                    fence: fence.clone(),
                    epoch: *epoch,
                    fenced_at,
                })
            }
            _ => Err(self.unexpected_answer(&refused)),
        }
    }

    async fn rows(&self) -> Result<Vec<(Vec<u8>, Vec<u8>)>, ConnectorError> {
        let fences = [self.key_prefix.as_slice(), FENCE_KEY].concat();
        let pattern = [escape_glob(&self.key_prefix), b"*".to_vec()].concat();
        // SCAN may return a key more than once; the set also sorts them
        // (all share the prefix, so this is the order of the row keys).
        let mut keys = BTreeSet::new();
        let mut cursor = 0u64;
        loop {
            let scan = &redis::cmd("SCAN").arg(cursor).arg("MATCH").arg(&pattern).arg("COUNT").arg(500).to_owned();
            let (next, batch): (u64, Vec<Vec<u8>>) =
                self.run("SCAN", |mut c| async move { scan.query_async(&mut c).await }).await?;
            keys.extend(batch.into_iter().filter(|key| !key.starts_with(&fences)));
            if next == 0 {
                break;
            }
            cursor = next;
        }
        let mut rows = Vec::with_capacity(keys.len());
        for key in keys {
            // A key that expired since the scan is simply not listed.
            if let Some(row) = self.read(&key).await? {
                rows.push((key[self.key_prefix.len()..].to_vec(), row));
            }
        }
        Ok(rows)
    }
}

/// Connection trouble (which the manager repairs by reconnecting) and a
/// server still loading its data are worth retrying; an error the server
/// gave to the command itself (wrong type, bad password) is not.
fn retryable(e: &RedisError) -> bool {
    e.is_io_error() || matches!(e.retry_method(), RetryMethod::WaitAndRetry)
}

/// `prefix` as a literal in a SCAN MATCH pattern.
fn escape_glob(prefix: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(prefix.len());
    for &b in prefix {
        if matches!(b, b'*' | b'?' | b'[' | b']' | b'\\') {
            out.push(b'\\');
        }
        out.push(b);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_characters_in_the_prefix_are_literal() {
        assert_eq!(escape_glob(b"user:*[a]?\\"), b"user:\\*\\[a\\]\\?\\\\".to_vec());
    }
}
