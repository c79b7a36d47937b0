//! The Kubernetes manifests (deploy/kubernetes/) without a cluster:
//! `scripts/kubernetes-check.sh` validates them strictly against the
//! Kubernetes API schema (kubernetes-validate from PyPI, in a virtualenv
//! under the target directory), then acts as a kubelet for the console and
//! worker Deployments — every replica started as this `sluice` binary with
//! the environment, volumes and args the manifests give it, on a fresh
//! PostgreSQL database — waits for their probes, signs in as the Secret's
//! admin, checks the consoles list every worker pod by name, and checks each
//! process exits cleanly within its grace period after SIGTERM. Without
//! python3 (venv, pip) or PostgreSQL the test fails; it never skips.
//!
//! Not covered: a real scheduler, the image build, network policies, the
//! read-only root file system and the pods' user (the processes run as the
//! test's user, on this machine's network).

use std::path::Path;
use std::process::Command;

use sluice_tests::services::repo_root;

#[path = "support/fresh_database.rs"]
mod fresh_database;

use fresh_database::FreshDatabase;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_kubernetes_manifests_validate_and_their_pods_start_answer_and_stop() {
    let database = FreshDatabase::create("sluice_deploy").await;
    let target = Path::new(env!("CARGO_TARGET_TMPDIR")).parent().expect("the target directory").to_owned();
    let script = repo_root().join("scripts/kubernetes-check.sh");
    let url = database.url.clone();
    // The script prints each step and, on failure, the processes' logs.
    let status = tokio::task::spawn_blocking(move || {
        Command::new("bash")
            .arg(&script)
            .arg(&url)
            .arg(env!("CARGO_BIN_EXE_sluice"))
            .env("CARGO_TARGET_DIR", &target)
            .status()
            .expect("bash runs scripts/kubernetes-check.sh")
    })
    .await
    .unwrap();
    database.remove().await;
    assert!(
        status.success(),
        "scripts/kubernetes-check.sh failed ({status}); its output above says which check \
         (python3 with venv and pip is needed to install kubernetes-validate)"
    );
}
