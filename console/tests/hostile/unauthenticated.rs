//! Issue 16, items 5 and 9: what a caller without the right credential
//! can make the console do or tell. Uploads are refused before their body
//! is read; bodies are bounded per route; `/metrics`, `/readyz` and the
//! API description name nothing of project b.

use crate::client::raw_post;
use crate::platform::{B_SECRET, Platform};

/// Names that would tell an outsider what project b runs.
const B_NAMES: [&str; 3] = ["ledger", "b-warehouse", B_SECRET];

#[track_caller]
fn tells_nothing_of_b(what: &str, text: &str) {
    for name in B_NAMES {
        assert!(!text.contains(name), "{what} names project b's `{name}`: {text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callers_without_the_right_credential_get_nothing_read_or_told() {
    let platform = Platform::start().await;
    let b_before = platform.b_ledger().await;
    let address = &platform.address;
    let fifty_mib = 50 * 1024 * 1024;
    let versions = "/api/v1/projects/b/jobs/ledger/versions";

    // Nobody: answered 401 without the server asking for the body.
    for path in ["/api/v1/validate", versions, "/api/v1/projects/a/jobs/j/versions"] {
        let answer = raw_post(address, path, &[], fifty_mib).await;
        assert_eq!((answer.status, answer.continued), (401, false), "{path}: {answer:?}");
        assert!(answer.body.contains("sign in first"), "{path}: {answer:?}");
    }
    // A's developer uploading to project b: 403, body unread.
    let cookie = platform.dev.cookie_header();
    let answer = raw_post(address, versions, &[&cookie], fifty_mib).await;
    assert_eq!((answer.status, answer.continued), (403, false), "{answer:?}");
    assert!(answer.body.contains("you are not a member of project `b`"), "{answer:?}");
    // Over the upload limit (64 MiB by default): refused from its declared length.
    let answer = raw_post(address, "/api/v1/projects/a/jobs/j/versions", &[&cookie], 65 * 1024 * 1024).await;
    assert_eq!((answer.status, answer.continued), (413, false), "{answer:?}");
    assert!(answer.body.contains("larger than 64 MiB") && answer.body.contains("--max-upload-mb"), "{answer:?}");
    // A body sent without waiting is still answered, not read into memory for ever.
    let sent = platform.anonymous().post_bytes("/validate", vec![0u8; 8 * 1024 * 1024]).await;
    assert_eq!(sent.status, 401, "{}", sent.text);
    // Sign-in and every other JSON route take 1 MiB.
    let json = "Content-Type: application/json";
    for (path, signed_in) in [("/api/v1/login", false), ("/api/v1/projects", true)] {
        let headers = if signed_in { vec![json, cookie.as_str()] } else { vec![json] };
        let answer = raw_post(address, path, &headers, 2 * 1024 * 1024).await;
        assert_eq!(answer.status, 413, "{path}: {answer:?}");
        assert!(answer.body.contains("larger than the 1024 KiB this route accepts"), "{path}: {answer:?}");
    }

    // Leaks: the metrics name every job, so only Prometheus and global admins read them.
    let nobody = platform.anonymous();
    let metrics = nobody.get_raw("/metrics").await;
    assert_eq!(metrics.status, 401, "{}", metrics.text);
    tells_nothing_of_b("/metrics for nobody", &metrics.text);
    let metrics = platform.dev.get_raw("/metrics").await;
    assert_eq!(metrics.status, 403, "{}", metrics.text);
    assert!(metrics.text.contains("global admins"), "{}", metrics.text);
    tells_nothing_of_b("/metrics for a's developer", &metrics.text);
    let scraped = platform.admin.get_raw("/metrics").await;
    assert_eq!(scraped.status, 200, "{}", scraped.text);
    assert!(scraped.text.contains("ledger"), "the metrics do name b's job, for the admin: {}", scraped.text);
    for path in ["/readyz", "/healthz", "/api/openapi.json"] {
        let answer = nobody.get_raw(path).await;
        assert_eq!(answer.status, 200, "{path}: {}", answer.text);
        tells_nothing_of_b(path, &answer.text);
    }
    for path in ["/projects", "/projects/b", "/projects/b/jobs/ledger/exceptions", "/projects/b/events"] {
        let answer = nobody.get(path).await;
        tells_nothing_of_b(path, &answer.text);
        answer.refused(401, &["sign in first"]);
    }

    platform.assert_b_kept_producing(&b_before).await;
}
