//! The console's web UI: a single-page app with no build step
//! (`console/assets/`: `index.html`, `app.js`, its modules under `js/`, and
//! uPlot 1.6.32 (MIT) under `vendor/` for the charts), compiled into the
//! binary with `include_str!` so `sluice serve` needs no files beside it.
//!
//! Client-side routes are hash routes (`/#/projects/x/jobs/y/overview`):
//! the browser never sends the part after `#`, so `/` serves every screen
//! and no fallback route is needed (a second fallback would also clash with
//! the API router's when the two are merged).

use axum::Router;
use axum::http::header::{CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, X_CONTENT_TYPE_OPTIONS};
use axum::response::IntoResponse;
use axum::routing::get;

use crate::api::AppState;

/// One file of the UI, served at `path`.
struct Asset {
    path: &'static str,
    content_type: &'static str,
    body: &'static str,
}

const HTML: &str = "text/html; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";

macro_rules! asset {
    ($path:literal, $content_type:expr) => {
        Asset { path: $path, content_type: $content_type, body: include_str!(concat!("../../assets", $path)) }
    };
}

/// Every file of `console/assets/` except licence texts (a test checks the
/// list is complete, so a new module cannot be forgotten here).
static ASSETS: &[Asset] = &[
    asset!("/index.html", HTML),
    asset!("/app.js", JS),
    asset!("/style.css", CSS),
    asset!("/js/api.js", JS),
    asset!("/js/charts.js", JS),
    asset!("/js/dom.js", JS),
    asset!("/js/params.js", JS),
    asset!("/js/roles.js", JS),
    asset!("/js/views/account.js", JS),
    asset!("/js/views/job.js", JS),
    asset!("/js/views/job_debug.js", JS),
    asset!("/js/views/job_deployment.js", JS),
    asset!("/js/views/job_history.js", JS),
    asset!("/js/views/job_operate.js", JS),
    asset!("/js/views/job_overview.js", JS),
    asset!("/js/views/job_versions.js", JS),
    asset!("/js/views/login.js", JS),
    asset!("/js/views/project.js", JS),
    asset!("/js/views/projects.js", JS),
    asset!("/js/views/tokens.js", JS),
    asset!("/js/views/users.js", JS),
    asset!("/js/views/workers.js", JS),
    asset!("/vendor/uPlot.iife.min.js", JS),
    asset!("/vendor/uPlot.min.css", CSS),
];

/// Scripts only from the console itself, never inline: the UI puts every
/// server string into text nodes, and the policy stops an injected script
/// if one ever slipped through. (uPlot sizes elements through the CSSOM,
/// which `style-src` does not restrict.)
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'";

impl Asset {
    fn response(&'static self) -> impl IntoResponse {
        (
            [
                (CONTENT_TYPE, self.content_type),
                // Revalidate every time: a new binary must never run with a
                // stale module cached from the previous one.
                (CACHE_CONTROL, "no-cache"),
                (X_CONTENT_TYPE_OPTIONS, "nosniff"),
                (CONTENT_SECURITY_POLICY, CSP),
            ],
            self.body,
        )
    }
}

/// The UI's routes: `/` (and `/index.html`) and every asset by its path.
pub fn routes() -> Router<AppState> {
    router()
}

fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    let index = ASSETS.iter().find(|a| a.path == "/index.html").expect("index.html is an asset");
    let mut router = Router::new().route("/", get(move || async move { index.response() }));
    for asset in ASSETS {
        router = router.route(asset.path, get(move || async move { asset.response() }));
    }
    router
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use tower::ServiceExt;

    use super::*;

    /// Every file under assets/ (but licence texts) is served, so adding a
    /// JS module without registering it fails here, not in a browser.
    #[test]
    fn every_asset_file_is_served() {
        fn walk(dir: &Path, root: &Path, out: &mut Vec<String>) {
            for entry in std::fs::read_dir(dir).expect("assets dir") {
                let path = entry.expect("dir entry").path();
                if path.is_dir() {
                    walk(&path, root, out);
                } else if !path.to_string_lossy().ends_with("LICENSE") {
                    let rel = path.strip_prefix(root).expect("under root").to_string_lossy().replace('\\', "/");
                    out.push(format!("/{rel}"));
                }
            }
        }
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("assets");
        let mut files = Vec::new();
        walk(&root, &root, &mut files);
        files.sort();
        let mut served: Vec<String> = ASSETS.iter().map(|a| a.path.to_owned()).collect();
        served.sort();
        assert_eq!(files, served, "console/assets and ui.rs's ASSETS list differ");
    }

    #[tokio::test]
    async fn serves_index_and_modules_with_their_types() {
        for (path, content_type, needle) in [
            ("/", HTML, "<main id=\"view\">"),
            ("/app.js", JS, "import"),
            ("/js/views/job.js", JS, "renderJob"),
            ("/style.css", CSS, ".error"),
            ("/vendor/uPlot.iife.min.js", JS, "uPlot"),
            ("/vendor/uPlot.min.css", CSS, ".uplot"),
        ] {
            let response = router::<()>()
                .oneshot(Request::get(path).body(Body::empty()).expect("request"))
                .await
                .expect("response");
            assert_eq!(response.status(), StatusCode::OK, "{path}");
            assert_eq!(response.headers()[CONTENT_TYPE], content_type, "{path}");
            let body = axum::body::to_bytes(response.into_body(), usize::MAX).await.expect("body");
            assert!(String::from_utf8_lossy(&body).contains(needle), "{path} lacks {needle}");
        }
        let missing = router::<()>()
            .oneshot(Request::get("/js/nope.js").body(Body::empty()).expect("request"))
            .await
            .expect("response");
        assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    }
}
