//! Where a platform's connections may point: the hosts they may reach, the
//! folder their SQLite files must lie in, the URL parameters and Kafka
//! settings they may use. `sluice serve` gives each project's registry a
//! policy; `sluice run` (one developer, their own registry) has none.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Component, Path, PathBuf};

use ipnet::IpNet;
use percent_encoding::{AsciiSet, CONTROLS, percent_decode_str, utf8_percent_encode};

use super::kafka_properties;

/// The rules connections are held to. The default allows everything
/// (local runs); the console sets [`ConnectionPolicy::platform`].
#[derive(Debug, Clone, Default)]
pub struct ConnectionPolicy {
    /// `None`: no checks (a local run).
    platform: Option<PlatformRules>,
}

#[derive(Debug, Clone)]
struct PlatformRules {
    hosts: HostRules,
    /// SQLite files must lie in this folder (the project's file area).
    sqlite_dir: PathBuf,
    /// Kafka settings the operator allows connections beyond the standard list.
    kafka_properties: Vec<String>,
}

/// Where connections may point (`--allow-hosts`), and the platform's own
/// endpoints that its connections may use whatever the list says (the
/// embedded development broker).
#[derive(Debug, Clone, Default)]
pub struct HostRules {
    /// `None`: any host but loopback, link-local and unspecified addresses.
    /// `Some`: only these networks and names (loopback and link-local too
    /// when listed).
    pub allow: Option<Vec<HostRule>>,
    /// `host:port` endpoints always allowed.
    pub platform_endpoints: Vec<String>,
}

/// One entry of `--allow-hosts`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostRule {
    /// A network (`10.0.0.0/8`) or one address (`10.1.2.3`).
    Net(IpNet),
    /// A host name, exactly (`kafka.internal`), or every name under a
    /// domain (`.internal`).
    Name(String),
}

impl HostRule {
    /// Parses a comma-separated `--allow-hosts` list.
    pub fn parse_list(text: &str) -> Result<Vec<HostRule>, String> {
        text.split(',').map(str::trim).filter(|s| !s.is_empty()).map(HostRule::parse).collect()
    }

    pub fn parse(text: &str) -> Result<HostRule, String> {
        if let Ok(net) = text.parse::<IpNet>() {
            return Ok(HostRule::Net(net));
        }
        if let Ok(ip) = text.parse::<IpAddr>() {
            return Ok(HostRule::Net(IpNet::from(ip)));
        }
        let name = text.trim_end_matches('.').to_ascii_lowercase();
        let valid = !name.is_empty()
            && name.trim_start_matches('.').split('.').all(|label| {
                !label.is_empty() && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            });
        if !valid {
            return Err(format!(
                "`{text}` in --allow-hosts is neither a CIDR (10.0.0.0/8), an address nor a host name"
            ));
        }
        Ok(HostRule::Name(name))
    }

    fn allows_name(&self, host: &str) -> bool {
        match self {
            HostRule::Name(domain) if domain.starts_with('.') => host.ends_with(domain.as_str()),
            HostRule::Name(name) => host == name,
            HostRule::Net(_) => false,
        }
    }
}

impl HostRules {
    /// Checks that `host:port` may be reached: a platform endpoint, a name
    /// the list allows, or a name whose every address is allowed.
    pub async fn check(&self, host: &str, port: u16) -> Result<(), String> {
        let host = host.trim_start_matches('[').trim_end_matches(']').trim_end_matches('.').to_ascii_lowercase();
        if self.platform_endpoints.iter().any(|e| endpoint_is(e, &host, port)) {
            return Ok(());
        }
        if let Some(allow) = &self.allow
            && allow.iter().any(|r| r.allows_name(&host))
        {
            return Ok(());
        }
        let addresses: Vec<IpAddr> = match host.parse::<IpAddr>() {
            Ok(ip) => vec![ip],
            Err(_) => tokio::net::lookup_host((host.as_str(), port))
                .await
                .map_err(|e| {
                    format!("cannot resolve host `{host}` ({e}); a connection's host must resolve so it can be checked")
                })?
                .map(|a| a.ip())
                .collect(),
        };
        if addresses.is_empty() {
            return Err(format!("host `{host}` resolves to no address"));
        }
        for ip in addresses {
            let ip = canonical(ip);
            let refused = match &self.allow {
                Some(rules) => (!rules.iter().any(|r| matches!(r, HostRule::Net(net) if net.contains(&ip))))
                    .then(|| "which is not in the operator's --allow-hosts list".to_owned()),
                None => internal(ip)
                    .map(|kind| format!("a {kind} address, refused unless the operator allows it with --allow-hosts")),
            };
            if let Some(why) = refused {
                return Err(format!("host `{host}` ({ip}) is not allowed: {why}"));
            }
        }
        Ok(())
    }
}

fn endpoint_is(endpoint: &str, host: &str, port: u16) -> bool {
    endpoint
        .rsplit_once(':')
        .is_some_and(|(h, p)| h.trim_matches(['[', ']']).eq_ignore_ascii_case(host) && p.parse() == Ok(port))
}

/// IPv4-mapped IPv6 addresses (`::ffff:127.0.0.1`) as the IPv4 they are.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// Cloud metadata endpoints outside the link-local range (where most
/// clouds' 169.254.169.254 is): AWS's over IPv6 and Alibaba Cloud's.
const CLOUD_METADATA: [IpAddr; 2] =
    [IpAddr::V6(Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254)), IpAddr::V4(Ipv4Addr::new(100, 100, 100, 200))];

/// What kind of address of the machine itself or its local link `ip` is,
/// if it is one: loopback, link-local (cloud metadata at 169.254.169.254),
/// cloud metadata elsewhere, unspecified, multicast and broadcast.
fn internal(ip: IpAddr) -> Option<&'static str> {
    let link = match ip {
        IpAddr::V4(v4) => v4.is_link_local() || v4.is_unspecified() || v4.is_multicast() || v4.is_broadcast(),
        IpAddr::V6(v6) => v6.is_unspecified() || v6.is_multicast() || v6.is_unicast_link_local(),
    };
    if ip.is_loopback() {
        Some("loopback")
    } else if CLOUD_METADATA.contains(&ip) {
        Some("cloud metadata")
    } else if link {
        Some("link-local, unspecified, multicast or broadcast")
    } else {
        None
    }
}

/// URL parameters a PostgreSQL connection may use: none that points it at
/// another host or socket, or makes it read files on the server.
const POSTGRES_PARAMS: &[&str] =
    &["sslmode", "ssl-mode", "application_name", "statement-cache-capacity", "dbname", "user", "password"];
const MYSQL_PARAMS: &[&str] =
    &["sslmode", "ssl-mode", "charset", "collation", "statement-cache-capacity", "timezone", "time-zone"];
/// SQLite: only how the file is opened (never `memory`, which could share
/// a database between projects by name, nor a `vfs`).
const SQLITE_MODES: &[&str] = &["ro", "rw", "rwc"];

impl ConnectionPolicy {
    /// The rules of a project on the platform: `hosts`, SQLite files inside
    /// `sqlite_dir`, the standard Kafka settings plus `kafka_properties`.
    pub fn platform(hosts: HostRules, sqlite_dir: PathBuf, kafka_properties: Vec<String>) -> Self {
        ConnectionPolicy { platform: Some(PlatformRules { hosts, sqlite_dir, kafka_properties }) }
    }

    /// Whether rules apply (false for a local run).
    pub fn is_platform(&self) -> bool {
        self.platform.is_some()
    }

    /// Checks a Kafka connection: every broker and its properties. Returns
    /// the brokers as given.
    pub async fn check_kafka(&self, brokers: &str, properties: &[(&str, &str)]) -> Result<(), String> {
        let Some(rules) = &self.platform else { return Ok(()) };
        for (key, value) in properties {
            kafka_properties::check_connection_property(key, &rules.kafka_properties)?;
            if *key == "sasl.oauthbearer.token.endpoint.url" {
                self.check_url_host(value, 443).await?;
            }
        }
        self.check_brokers(brokers).await
    }

    /// Checks brokers, `host:port[,host:port]` (the bootstrap list, or the
    /// brokers a cluster advertises).
    pub async fn check_brokers(&self, brokers: &str) -> Result<(), String> {
        let Some(rules) = &self.platform else { return Ok(()) };
        for broker in brokers.split(',').map(str::trim).filter(|b| !b.is_empty()) {
            let (host, port) = split_host_port(broker, 9092)?;
            rules.hosts.check(&host, port).await.map_err(|e| format!("broker `{broker}`: {e}"))?;
        }
        Ok(())
    }

    /// Checks a database URL and returns the one to connect to: a SQLite
    /// path resolved inside the project's folder; for PostgreSQL and MySQL
    /// the host checked and only harmless parameters.
    pub async fn database_url(&self, url: &str) -> Result<String, String> {
        let Some(rules) = &self.platform else { return Ok(url.to_owned()) };
        let scheme = url.split_once(':').map(|(s, _)| s.to_ascii_lowercase()).unwrap_or_default();
        match scheme.as_str() {
            "sqlite" => confine_sqlite(url, &rules.sqlite_dir),
            "postgres" | "postgresql" => {
                self.check_server_url(url, 5432, POSTGRES_PARAMS).await.map(|()| url.to_owned())
            }
            "mysql" | "mariadb" => self.check_server_url(url, 3306, MYSQL_PARAMS).await.map(|()| url.to_owned()),
            _ => Err("a database url starts with postgres://, mysql://, mariadb:// or sqlite:".into()),
        }
    }

    /// Checks a Redis URL's host.
    pub async fn check_redis(&self, url: &str) -> Result<(), String> {
        if self.platform.is_none() {
            return Ok(());
        }
        if !(url.starts_with("redis://") || url.starts_with("rediss://")) {
            return Err("a redis url starts with redis:// or rediss://".into());
        }
        self.check_server_url(url, 6379, &["protocol"]).await
    }

    async fn check_server_url(&self, url: &str, default_port: u16, params: &[&str]) -> Result<(), String> {
        let parsed = url::Url::parse(url).map_err(|e| format!("invalid url: {e}"))?;
        for (key, _) in parsed.query_pairs() {
            if !params.contains(&key.as_ref()) {
                return Err(format!(
                    "url parameter `{key}` is not allowed: it could point the connection elsewhere or read files \
                     on the server; allowed: {}",
                    params.join(", ")
                ));
            }
        }
        let host = parsed.host_str().filter(|h| !h.is_empty()).ok_or("the url needs a host (no unix sockets)")?;
        self.check_url_host(url, default_port).await.map_err(|e| format!("{e} ({host})"))
    }

    async fn check_url_host(&self, url: &str, default_port: u16) -> Result<(), String> {
        let Some(rules) = &self.platform else { return Ok(()) };
        let parsed = url::Url::parse(url).map_err(|e| format!("invalid url: {e}"))?;
        let host = parsed.host_str().filter(|h| !h.is_empty()).ok_or("the url needs a host")?;
        rules.hosts.check(host, parsed.port().unwrap_or(default_port)).await
    }
}

/// `host:port`, `[v6]:port` or `host` (with `default_port`).
fn split_host_port(text: &str, default_port: u16) -> Result<(String, u16), String> {
    let bad = || format!("`{text}` is not host:port");
    if let Some(rest) = text.strip_prefix('[') {
        let (host, after) = rest.split_once(']').ok_or_else(bad)?;
        let port = match after.strip_prefix(':') {
            Some(p) => p.parse().map_err(|_| bad())?,
            None if after.is_empty() => default_port,
            None => return Err(bad()),
        };
        return Ok((host.to_owned(), port));
    }
    match text.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') => Ok((host.to_owned(), port.parse().map_err(|_| bad())?)),
        Some(_) => Err(bad()),
        None => Ok((text.to_owned(), default_port)),
    }
}

/// A SQLite URL (`sqlite:NAME`, `sqlite://PATH`, with `?mode=`) as the
/// absolute URL of a file inside `dir`: relative names resolve in `dir`;
/// `..`, symbolic links out of it, absolute paths elsewhere, in-memory
/// databases and parameters other than `mode=ro|rw|rwc` are refused.
///
/// The path is checked as the driver will open it: sqlx decodes `%XX` in
/// a SQLite path, so `%2e%2e/` is `../` to it and is checked as such; the
/// URL returned encodes the checked file so that decoding gives it back.
fn confine_sqlite(url: &str, dir: &Path) -> Result<String, String> {
    let rest = url.split_once(':').map(|(_, r)| r).unwrap_or_default();
    let rest = rest.strip_prefix("//").unwrap_or(rest);
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    let refuse = |why: &str| {
        Err(format!(
            "a SQLite connection is a file in the project's folder ({}), named relative to it \
             (`sqlite:warehouse.db`); {why}",
            dir.display()
        ))
    };
    let Ok(path) = percent_decode_str(path).decode_utf8() else {
        return refuse("its name, with `%XX` decoded, is not UTF-8");
    };
    let path = path.as_ref();
    if path.is_empty() || path == ":memory:" || path.starts_with("file:") {
        return refuse("in-memory and `file:` URLs are not allowed");
    }
    let mut mode = None;
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        match pair.split_once('=') {
            Some(("mode", m)) if SQLITE_MODES.contains(&m) => mode = Some(m),
            _ => return refuse(&format!("parameter `{pair}` is not allowed (only mode=ro, rw or rwc)")),
        }
    }
    let path = Path::new(path);
    let relative = match path.strip_prefix(dir) {
        Ok(inside) => inside.to_path_buf(),
        Err(_) if path.is_absolute() => {
            // The same folder named through a link (e.g. /tmp on macOS).
            match dir.canonicalize().ok().and_then(|d| path.strip_prefix(d).ok().map(Path::to_path_buf)) {
                Some(inside) => inside,
                None => return refuse(&format!("`{}` is outside it", path.display())),
            }
        }
        Err(_) => path.to_path_buf(),
    };
    if relative.as_os_str().is_empty() || !relative.components().all(|c| matches!(c, Component::Normal(_))) {
        return refuse("the name may not hold `..` or `.` or be empty");
    }
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create the project's folder {}: {e}", dir.display()))?;
    let root = dir.canonicalize().map_err(|e| format!("cannot resolve {}: {e}", dir.display()))?;
    let file = root.join(&relative);
    // Every existing part of the path must stay inside once links are
    // followed; the file itself must not be a link.
    if file.symlink_metadata().is_ok_and(|m| m.file_type().is_symlink()) {
        return refuse("the file is a symbolic link");
    }
    let mut existing = file.as_path();
    while !existing.exists() {
        existing = existing.parent().unwrap_or(&root);
    }
    let resolved = existing.canonicalize().map_err(|e| format!("cannot resolve {}: {e}", existing.display()))?;
    if !resolved.starts_with(&root) {
        return refuse("a symbolic link leads out of it");
    }
    if let Some(parent) = file.parent() {
        std::fs::create_dir_all(parent).map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
    }
    let mode = mode.map(|m| format!("?mode={m}")).unwrap_or_default();
    let file = file.to_str().ok_or_else(|| format!("the project's folder {} is not UTF-8", dir.display()))?;
    Ok(format!("sqlite://{}{mode}", utf8_percent_encode(file, SQLITE_PATH_ESCAPES)))
}

/// What a file name must not hold as itself in a SQLite URL: `%` (sqlx
/// decodes `%XX`), `?` (starts the parameters), `#` and control characters.
const SQLITE_PATH_ESCAPES: &AsciiSet = &CONTROLS.add(b'%').add(b'?').add(b'#');

#[cfg(test)]
mod tests {
    use super::*;

    fn platform(dir: &Path, allow: Option<&str>) -> ConnectionPolicy {
        let hosts = HostRules {
            allow: allow.map(|a| HostRule::parse_list(a).unwrap()),
            platform_endpoints: vec!["127.0.0.1:19999".into()],
        };
        ConnectionPolicy::platform(hosts, dir.to_path_buf(), Vec::new())
    }

    #[tokio::test]
    async fn loopback_and_link_local_need_the_operator() {
        let dir = tempfile::tempdir().unwrap();
        let default = platform(dir.path(), None);
        for url in [
            "postgres://u@127.0.0.1/db",
            "postgres://u@localhost:5432/db",
            "mysql://root@[::1]:3306/test",
            "postgres://u@169.254.169.254/db",
            "postgres://u@0.0.0.0/db",
            "postgres://u@[::ffff:127.0.0.1]/db",
            "postgres://u@[fd00:ec2::254]/db",
            "postgres://u@100.100.100.200/db",
        ] {
            let err = default.database_url(url).await.unwrap_err();
            assert!(err.contains("is not allowed") && err.contains("--allow-hosts"), "{url}: {err}");
        }
        default.database_url("postgres://u@203.0.113.7/db").await.unwrap();
        default.check_brokers("127.0.0.1:19999").await.unwrap();
        assert!(default.check_brokers("127.0.0.1:9092").await.is_err());

        let listed = platform(dir.path(), Some("127.0.0.0/8, db.internal"));
        listed.database_url("postgres://u@127.0.0.1/db").await.unwrap();
        listed.database_url("postgres://u@db.internal/db").await.unwrap();
        let err = listed.database_url("postgres://u@203.0.113.7/db").await.unwrap_err();
        assert!(err.contains("not in the operator's --allow-hosts list"), "{err}");
        ConnectionPolicy::default().database_url("postgres://u@127.0.0.1/db").await.unwrap();
    }

    #[tokio::test]
    async fn urls_cannot_point_elsewhere_through_parameters() {
        let dir = tempfile::tempdir().unwrap();
        let policy = platform(dir.path(), Some("0.0.0.0/0"));
        for url in [
            "postgres://u@203.0.113.7/db?host=/var/run/postgresql",
            "postgres://u@203.0.113.7/db?hostaddr=127.0.0.1",
            "postgres://u@203.0.113.7/db?sslrootcert=/etc/sluice/secret.key",
            "mysql://u@203.0.113.7/db?socket=/run/mysqld/mysqld.sock",
        ] {
            let err = policy.database_url(url).await.unwrap_err();
            assert!(err.contains("is not allowed"), "{url}: {err}");
        }
        policy.database_url("postgres://u@203.0.113.7/db?sslmode=require").await.unwrap();
        assert!(policy.database_url("postgres:///db").await.unwrap_err().contains("needs a host"));
    }

    #[tokio::test]
    async fn sqlite_files_stay_in_the_project_folder() {
        let data = tempfile::tempdir().unwrap();
        let project = data.path().join("files").join("alpha");
        std::fs::write(data.path().join("sluice.db"), b"").unwrap();
        let policy = platform(&project, None);
        let url = policy.database_url("sqlite:warehouse.db?mode=rwc").await.unwrap();
        let root = project.canonicalize().unwrap();
        assert_eq!(url, format!("sqlite://{}?mode=rwc", root.join("warehouse.db").display()));
        let inside = format!("sqlite://{}", project.join("sub/w.db").display());
        assert!(policy.database_url(&inside).await.unwrap().ends_with("sub/w.db"));

        std::os::unix::fs::symlink(data.path().join("sluice.db"), project.join("link.db")).unwrap();
        std::os::unix::fs::symlink(data.path(), project.join("up")).unwrap();
        let metadata = format!("sqlite://{}?mode=rwc", data.path().join("sluice.db").display());
        for url in [
            metadata.as_str(),
            "sqlite:../../sluice.db",
            "sqlite:/etc/passwd",
            "sqlite:link.db",
            "sqlite:up/sluice.db",
            "sqlite::memory:",
            "sqlite:file:x?mode=memory&cache=shared",
            "sqlite:w.db?mode=memory",
            "sqlite:w.db?vfs=unix-none",
            "sqlite:w.db?immutable=1",
            // sqlx decodes `%XX` in the path: these are `..` to it.
            "sqlite:%2e%2e/%2e%2e/sluice.db?mode=rw",
            "sqlite:%2E%2E%2F%2E%2E%2Fsluice.db",
            "sqlite:sub%2f..%2f..%2f..%2fsluice.db",
            "sqlite:%3Amemory%3A",
        ] {
            let err = policy.database_url(url).await.unwrap_err();
            assert!(err.contains("a SQLite connection is a file in the project's folder"), "{url}: {err}");
        }
    }

    /// The URL handed to the driver opens the very file that was checked,
    /// even when its name holds `%`, `?` or `#`.
    #[tokio::test]
    async fn the_checked_sqlite_file_is_the_one_the_driver_opens() {
        use std::str::FromStr;
        let data = tempfile::tempdir().unwrap();
        let project = data.path().join("files").join("alpha");
        let policy = platform(&project, None);
        std::fs::create_dir_all(&project).unwrap();
        let root = project.canonicalize().unwrap();
        for (url, name) in [
            ("sqlite:w.db?mode=rwc", "w.db"),
            ("sqlite:100%25.db", "100%.db"),
            ("sqlite:what%3F.db?mode=ro", "what?.db"),
            ("sqlite:a%2Fb.db", "a/b.db"),
            ("sqlite:%2e%2e.db", "...db"),
        ] {
            let checked = policy.database_url(url).await.unwrap_or_else(|e| panic!("{url}: {e}"));
            let options = sqlx::sqlite::SqliteConnectOptions::from_str(&checked).unwrap();
            assert_eq!(options.get_filename(), root.join(name), "{url} as {checked}");
        }
    }
}
