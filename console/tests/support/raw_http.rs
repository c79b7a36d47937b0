//! A raw HTTP POST for the console's test binaries (`api`, `hostile`):
//! what the server answers before it has read a body.

use std::time::Duration;

/// What a raw HTTP exchange gave: whether the server asked for the body
/// (`100 Continue`), its final status and body.
#[derive(Debug)]
pub struct RawAnswer {
    pub continued: bool,
    pub status: u16,
    pub body: String,
}

/// POSTs `body_len` bytes of zeros to `path` over a plain TCP connection,
/// announcing them with `Expect: 100-continue`: the body is sent only if
/// the server asks for it, so a server that answers first is seen to
/// answer without having read it. `headers` are extra header lines.
pub async fn raw_post(address: &str, path: &str, headers: &[&str], body_len: usize) -> RawAnswer {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let host = address.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(host).await.expect("connect");
    let mut head = format!(
        "POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Length: {body_len}\r\nExpect: 100-continue\r\nConnection: close\r\n"
    );
    for h in headers {
        head.push_str(h);
        head.push_str("\r\n");
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).await.expect("send the head");
    let (mut reader, writer) = stream.into_split();
    let mut writer = Some(writer);
    let mut received = Vec::new();
    let mut continued = false;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = tokio::time::timeout(Duration::from_secs(60), reader.read(&mut buf))
            .await
            .expect("the server answers within 60 s")
            .unwrap_or(0);
        if n == 0 {
            break;
        }
        received.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&received).into_owned();
        if !continued && text.starts_with("HTTP/1.1 100") && text.contains("\r\n\r\n") {
            continued = true;
            received.drain(..text.find("\r\n\r\n").expect("a head") + 4);
            // Asked for the body: send it, aside (the server may stop reading).
            let mut writer = writer.take().expect("asked once");
            tokio::spawn(async move {
                let _ = writer.write_all(&vec![0u8; body_len]).await;
            });
        }
    }
    let text = String::from_utf8_lossy(&received).into_owned();
    let status = text.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default();
    RawAnswer { continued, status, body }
}
