//! A TCP proxy that can cut the line, to test what connectors do when a
//! service goes away: [`Proxy::cut`] drops every live connection and
//! resets new ones, [`Proxy::restore`] lets them through again.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::io::copy_bidirectional;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// A proxy on 127.0.0.1 (a free port) to one target; stops when dropped.
pub struct Proxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    accept: JoinHandle<()>,
}

struct Shared {
    target: String,
    cut: AtomicBool,
    /// Bumped on every cut; live connections end when it changes.
    cuts: watch::Sender<u64>,
}

impl Proxy {
    /// Starts forwarding to `target` (`host:port`).
    pub async fn start(target: &str) -> std::io::Result<Proxy> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let shared =
            Arc::new(Shared { target: target.to_owned(), cut: AtomicBool::new(false), cuts: watch::channel(0).0 });
        let accept = tokio::spawn(accept_loop(listener, shared.clone()));
        Ok(Proxy { addr, shared, accept })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `url` with its `host:port` replaced by the proxy's, e.g.
    /// `postgres://u@127.0.0.1:5432/db` -> `postgres://u@127.0.0.1:41234/db`.
    pub fn url(&self, url: &str) -> String {
        let (scheme, rest) = url.split_once("://").expect("a URL with a scheme");
        let (user, rest) = rest.rsplit_once('@').map_or(("", rest), |(u, r)| (u, r));
        let path = rest.find(['/', '?']).map_or("", |i| &rest[i..]);
        let user = if user.is_empty() { String::new() } else { format!("{user}@") };
        format!("{scheme}://{user}{}{path}", self.addr)
    }

    /// Drops every live connection and resets new ones until [`restore`](Self::restore).
    pub fn cut(&self) {
        self.shared.cut.store(true, Ordering::SeqCst);
        self.shared.cuts.send_modify(|n| *n += 1);
    }

    pub fn restore(&self) {
        self.shared.cut.store(false, Ordering::SeqCst);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.cut();
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    while let Ok((client, _)) = listener.accept().await {
        if shared.cut.load(Ordering::SeqCst) {
            reset(client);
            continue;
        }
        tokio::spawn(forward(client, shared.clone()));
    }
}

/// Closes with a reset (RST), as a dead server or a firewall would.
fn reset(stream: TcpStream) {
    let _ = stream.set_zero_linger();
    drop(stream);
}

async fn forward(mut client: TcpStream, shared: Arc<Shared>) {
    let mut cuts = shared.cuts.subscribe();
    let Ok(mut server) = TcpStream::connect(&shared.target).await else {
        reset(client);
        return;
    };
    tokio::select! {
        _ = copy_bidirectional(&mut client, &mut server) => {}
        _ = cuts.changed() => {
            reset(client);
            reset(server);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn rewrites_urls() {
        let proxy = Proxy::start("127.0.0.1:9").await.unwrap();
        let port = proxy.addr().port();
        assert_eq!(proxy.url("postgres://u:p@h:5432/db?x=1"), format!("postgres://u:p@127.0.0.1:{port}/db?x=1"));
        assert_eq!(proxy.url("mysql://h:3306"), format!("mysql://127.0.0.1:{port}"));
    }
}
