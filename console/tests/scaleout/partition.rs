//! A worker on another host (a network namespace with its own address)
//! cut off from the metadata store while its sink database stays
//! reachable: the dangerous partition, where a worker that kept going
//! would write beside the worker that took its run over. The test routes
//! the namespace's PostgreSQL traffic through two proxies of its own (one
//! for the metadata store, one for the warehouse), cuts the first, and
//! counts the bytes the cut-off worker still sends to the warehouse (and
//! to its snapshot storage, behind the same proxy).

use std::net::{IpAddr, SocketAddr};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;
use sluice_tests::services::postgres_url;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::client::Client;
use crate::cluster::{ADMIN_PASSWORD, PATIENCE, Shared};
use crate::wait::wait_for;

/// A network namespace joined to this host by a veth pair; removed on drop.
struct Host {
    namespace: String,
    /// This side's address, where the proxies listen.
    outside: IpAddr,
    /// The namespace's address.
    inside: IpAddr,
}

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("iproute2's `ip`");
    assert!(out.status.success(), "ip {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr));
}

impl Host {
    fn create() -> Host {
        let id = std::process::id() % 200 + 20;
        let (namespace, outer, inner) = (format!("sluice-w{id}"), format!("slh{id}"), format!("sln{id}"));
        let _ = Command::new("ip").args(["netns", "del", &namespace]).output();
        ip(&["netns", "add", &namespace]);
        ip(&["link", "add", &outer, "type", "veth", "peer", "name", &inner]);
        ip(&["link", "set", &inner, "netns", &namespace]);
        let (outside, inside) = (format!("10.231.{id}.1"), format!("10.231.{id}.2"));
        ip(&["addr", "add", &format!("{outside}/24"), "dev", &outer]);
        ip(&["link", "set", &outer, "up"]);
        ip(&["netns", "exec", &namespace, "ip", "addr", "add", &format!("{inside}/24"), "dev", &inner]);
        ip(&["netns", "exec", &namespace, "ip", "link", "set", &inner, "up"]);
        ip(&["netns", "exec", &namespace, "ip", "link", "set", "lo", "up"]);
        Host { namespace, outside: outside.parse().unwrap(), inside: inside.parse().unwrap() }
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        // Deleting the namespace deletes its end of the pair, and so both.
        let _ = Command::new("ip").args(["netns", "del", &self.namespace]).output();
    }
}

/// A TCP proxy on `host.outside` to the local PostgreSQL. It counts the
/// bytes clients in the namespace send, and can be cut: every connection
/// through it is closed and new ones are refused.
struct Proxy {
    port: u16,
    from_inside: Arc<AtomicU64>,
    cut: Arc<AtomicBool>,
    cut_now: tokio::sync::watch::Sender<bool>,
}

impl Proxy {
    async fn start(host: &Host) -> Proxy {
        let listener = TcpListener::bind(SocketAddr::new(host.outside, 0)).await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (from_inside, cut) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicBool::new(false)));
        let (cut_now, cut_rx) = tokio::sync::watch::channel(false);
        let (counter, is_cut, inside) = (from_inside.clone(), cut.clone(), host.inside);
        tokio::spawn(async move {
            loop {
                let Ok((client, peer)) = listener.accept().await else { return };
                if is_cut.load(Ordering::SeqCst) {
                    continue; // dropped: refused
                }
                let counter = (peer.ip() == inside).then(|| counter.clone());
                tokio::spawn(forward(client, counter, cut_rx.clone()));
            }
        });
        Proxy { port, from_inside, cut, cut_now }
    }

    fn url(&self, host: &Host, database: &str) -> String {
        format!("postgres://postgres@{}:{}/{database}", host.outside, self.port)
    }

    fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
        let _ = self.cut_now.send(true);
    }

    fn mend(&self) {
        self.cut.store(false, Ordering::SeqCst);
        let _ = self.cut_now.send(false);
    }
}

/// Copies both ways between `client` and PostgreSQL until either side ends
/// or the proxy is cut; counts the client's bytes into `counter`.
async fn forward(mut client: TcpStream, counter: Option<Arc<AtomicU64>>, mut cut: tokio::sync::watch::Receiver<bool>) {
    let target = postgres_url();
    let server = target.split('@').nth(1).and_then(|rest| rest.split('/').next()).unwrap_or("127.0.0.1:5432");
    let Ok(mut server) = TcpStream::connect(server).await else { return };
    let (mut client_read, mut client_write) = client.split();
    let (mut server_read, mut server_write) = server.split();
    let upstream = async {
        let mut buffer = vec![0u8; 16 * 1024];
        loop {
            let n = client_read.read(&mut buffer).await.unwrap_or(0);
            if n == 0 || server_write.write_all(&buffer[..n]).await.is_err() {
                return;
            }
            if let Some(counter) = &counter {
                counter.fetch_add(n as u64, Ordering::SeqCst);
            }
        }
    };
    let downstream = tokio::io::copy(&mut server_read, &mut client_write);
    tokio::select! {
        _ = upstream => {}
        _ = downstream => {}
        _ = cut.wait_for(|c| *c) => {}
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_cut_off_from_the_metadata_store_stops_writing_before_its_run_moves() {
    let host = Host::create();
    let mut shared = Shared::new().await;
    shared.allow_hosts = format!("127.0.0.1,{}", host.outside);
    let metadata = Proxy::start(&host).await;
    let warehouse = Proxy::start(&host).await;
    let (_console, address) = shared.console("console");
    let database = shared.database.rsplit('/').next().unwrap().to_owned();
    // The snapshots go through the warehouse's proxy: only the metadata
    // store is cut off, so nothing but the lease stops the far worker.
    let (metadata_url, snapshots_url) = (metadata.url(&host, &database), warehouse.url(&host, &database));
    let mut isolated = shared.worker_in("far", &host.namespace, &metadata_url, &snapshots_url);
    let admin = Client::anonymous(&address).login("admin", ADMIN_PASSWORD).await;
    admin.post("/projects", json!({ "name": "p", "description": "partition" })).await.expect(201);
    let test_database = postgres_url().rsplit('/').next().unwrap().to_owned();
    let sink_url = warehouse.url(&host, &test_database);
    admin.put("/projects/p/connections/warehouse", json!({ "kind": "database", "url": sink_url })).await.expect(204);
    let table = format!("scaleout_partition_{}", std::process::id());
    let spec = format!(
        "[sources.ticks]\nkind = \"datagen\"\nrate = 200\nseed = 3\nstart_time = 1710432000000\n\n\
         [sources.ticks.fields]\nseq = {{ gen = \"sequence\" }}\n\n\
         [sinks.out]\nkind = \"sql\"\nconnection = \"warehouse\"\ntable = \"{table}\"\nprimary_key = [\"seq\"]\n\
         create_table = true\ncolumns = {{ seq = \"bigint\" }}\nflush_interval = \"100ms\"\n\n\
         [snapshot]\ninterval = \"300ms\"\n"
    );
    admin.post("/projects/p/jobs", json!({ "name": "ticks" })).await.expect(201);
    let forward = std::fs::read(sluice_tests::wasm("forward")).unwrap();
    admin.post_bytes("/projects/p/jobs/ticks/versions", forward).await.expect(201);
    admin.put("/projects/p/jobs/ticks/deployment", json!({ "spec": spec })).await.expect(200);
    admin.post("/projects/p/jobs/ticks/start", json!({ "restore": "none" })).await.expect(201);
    let holder = || async {
        let runs = admin.get("/projects/p/jobs/ticks/runs").await.expect(200);
        (
            runs[0]["worker"].as_str().unwrap_or_default().to_owned(),
            runs[0]["state"].as_str().unwrap_or_default().to_owned(),
        )
    };
    wait_for("the far worker to write rows", PATIENCE, || async {
        let (worker, state) = holder().await;
        let sent = warehouse.from_inside.load(Ordering::SeqCst);
        if worker == "far" && state == "running" && sent > 20_000 {
            Ok(())
        } else {
            Err(format!("{worker} {state} {sent}"))
        }
    })
    .await;
    let mut near = shared.worker("near");

    // Cut the far worker off the metadata store; the warehouse stays up.
    // Its last renewal was before the cut, so 3/4 of the 2 s lease after
    // the cut its tasks have stopped writing (0.3 s more for a write that
    // was under way): from then on not one byte to the warehouse, sink
    // rows or snapshots, though it can reach it. The lease expires for
    // the leader only after 2 s, so without that deadline the far worker
    // would write beside the near one until the takeover fences it off.
    metadata.cut();
    let cut_at = Instant::now();
    tokio::time::sleep_until((cut_at + Duration::from_millis(1800)).into()).await;
    let at_deadline = warehouse.from_inside.load(Ordering::SeqCst);
    wait_for("the run to move to the near worker", PATIENCE, || async {
        match holder().await {
            (w, s) if w == "near" && s == "running" => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    eprintln!("the run moved {:?} after the cut", cut_at.elapsed());
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        warehouse.from_inside.load(Ordering::SeqCst),
        at_deadline,
        "the cut-off worker sent nothing to the warehouse after its lease deadline"
    );

    // Mended, it learns the run is gone and keeps off it.
    metadata.mend();
    wait_for("the far worker to report no run", PATIENCE, || async {
        let view = admin.get("/workers").await.expect(200);
        let far = view.as_array().unwrap().iter().find(|w| w["id"] == "far").cloned().unwrap_or_default();
        if far["state"] == "up" && far["status"] == json!([]) { Ok(()) } else { Err(far.to_string()) }
    })
    .await;
    let runs = admin.get("/projects/p/jobs/ticks/runs").await.expect(200);
    assert_eq!((runs[0]["worker"].as_str(), runs[0]["state"].as_str()), (Some("near"), Some("running")), "{runs}");
    let events = admin.get("/projects/p/events?kind=run").await.expect(200);
    assert!(events.as_array().unwrap().iter().any(|e| e["action"] == "run.takeover"), "{events}");

    isolated.kill();
    near.kill();
    let pool = sqlx::PgPool::connect(&postgres_url()).await.unwrap();
    let _ = sqlx::query(&format!("drop table if exists {table}")).execute(&pool).await;
    shared.drop_database().await;
}
