//! A real S3-protocol server on loopback for the object-store tests: s3s
//! serving a temporary directory (s3s-fs) on 127.0.0.1:0, with static
//! credentials and one bucket. It runs on the test's runtime and stops with
//! it (or when dropped).

use std::path::PathBuf;

use hyper_util::rt::TokioIo;
use s3s::auth::SimpleAuth;
use s3s::service::S3ServiceBuilder;
use s3s_fs::FileSystem;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

const ACCESS_KEY: &str = "sluice-test";
const SECRET_KEY: &str = "sluice-test-secret";

pub struct S3Server {
    pub endpoint: String,
    pub bucket: &'static str,
    root: tempfile::TempDir,
    accept: JoinHandle<()>,
}

impl S3Server {
    /// Serves a fresh directory holding the (empty) bucket `snapshots`.
    pub async fn start() -> S3Server {
        let root = tempfile::tempdir().unwrap();
        let bucket = "snapshots";
        // s3s-fs keeps a bucket as a directory of the root.
        std::fs::create_dir(root.path().join(bucket)).unwrap();
        let service = {
            let mut builder = S3ServiceBuilder::new(FileSystem::new(root.path()).unwrap());
            builder.set_auth(SimpleAuth::from_single(ACCESS_KEY, SECRET_KEY));
            builder.build()
        };
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let accept = tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                let service = service.clone();
                tokio::spawn(
                    hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(socket), service),
                );
            }
        });
        S3Server { endpoint, bucket, root, accept }
    }

    /// object_store options that reach this server (in place of the
    /// `AWS_*` variables a deployment sets).
    pub fn options(&self) -> Vec<(&'static str, String)> {
        vec![
            ("aws_endpoint", self.endpoint.clone()),
            ("aws_allow_http", "true".into()),
            ("aws_access_key_id", ACCESS_KEY.into()),
            ("aws_secret_access_key", SECRET_KEY.into()),
            ("aws_region", "us-east-1".into()),
        ]
    }

    /// Where the server keeps the object `key` of its bucket.
    pub fn object_file(&self, key: &str) -> PathBuf {
        self.root.path().join(self.bucket).join(key)
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        self.accept.abort();
    }
}
