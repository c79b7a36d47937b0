//! The console's web UI end to end, in a real browser: headless Chromium
//! driven through chromedriver (WebDriver) by fantoccini, against a real
//! `sluice serve`. It walks the job development flow of the platform seed
//! step by step — sign in, project, connections, job, upload, debug,
//! deployment, start, watch the counters and charts, snapshot, stop,
//! restore, upgrade, parameters — and the mistakes a user makes on the
//! way (a file that is not a component, an unknown spec field, a bad cron
//! expression, another job's snapshot, a role too low, a wrong old
//! password), each refused with the server's message shown on the page.
//!
//! The job reads a Kafka topic the test keeps feeding: a datagen source
//! cannot resume from a position, so a job on one cannot be snapshotted.
//!
//! Needs `/usr/bin/chromium` and `/usr/bin/chromedriver` (installed by
//! `scripts/chromium.sh`; `SLUICE_CHROMIUM` / `SLUICE_CHROMEDRIVER`
//! override the paths) and the suites' Kafka broker (Tansu, started by
//! `scripts/tansu.sh` when down). Without them the test fails; it never
//! skips. On failure it leaves a screenshot and the page text in
//! `target/tmp/` and prints the console's log; with `SLUICE_BROWSER_SHOTS=1`
//! it leaves a screenshot of every step there too.

#[path = "browser/harness.rs"]
mod harness;

use std::path::Path;

use anyhow::{Context, Result, anyhow, ensure};
use fantoccini::Locator;
use harness::{ChromeDriver, Console, PageViewFeed, QUICK, SLOW, Ui, browser_binaries};

const ADMIN_PASSWORD: &str = "browser-test-admin";
const VIEWER: &str = "viewer-vic";
const VIEWER_PASSWORD: &str = "viewer-password";
const PROJECT: &str = "insurance";
const JOB: &str = "last-page";
const OTHER_JOB: &str = "other-job";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_job_development_flow_in_a_browser() {
    let (chromium, chromedriver) = browser_binaries();
    let brokers = sluice_tests::services::kafka_brokers();
    let topic = sluice_tests::kafka::unique_topic("browser-user-log");
    sluice_tests::kafka::create_topic(&brokers, &topic, 1).await;
    let feed = PageViewFeed::start(&brokers, &topic);

    let dir = tempfile::tempdir().expect("temp dir");
    let console = Console::start(dir.path(), ADMIN_PASSWORD).expect("sluice serve starts");
    let driver = ChromeDriver::start(&chromedriver, dir.path()).expect("chromedriver starts");
    let ui = Ui::connect(&driver, &chromium, &dir.path().join("chrome-profile"), &console.url)
        .await
        .expect("a browser session");

    let flow = Flow { ui: &ui, dir: dir.path(), brokers: &brokers, topic: &topic };
    let result = flow.run().await;
    if let Err(e) = &result {
        ui.dump("failure").await;
        eprintln!("--- sluice serve log ---\n{}", console.log_tail());
        eprintln!("--- the browser test failed: {e:#}");
    }
    let _ = ui.client.clone().close().await;
    feed.stop().await;
    result.expect("the job development flow works in the browser");
}

/// The steps, in the order of the development flow.
struct Flow<'a> {
    ui: &'a Ui,
    dir: &'a Path,
    brokers: &'a str,
    topic: &'a str,
}

impl Flow<'_> {
    async fn run(&self) -> Result<()> {
        self.sign_in().await.context("signing in")?;
        self.ui.shot("1-projects").await;
        self.api_tokens().await.context("API tokens")?;
        self.ui.shot("2-tokens").await;
        self.users_and_project().await.context("users and the project")?;
        self.ui.shot("3-members").await;
        self.connections().await.context("connections")?;
        self.ui.shot("4-connections").await;
        self.job_and_versions().await.context("the job and its versions")?;
        self.ui.shot("5-versions").await;
        self.debug_run().await.context("the debug run")?;
        self.ui.shot("6-debug").await;
        self.deployment().await.context("the deployment")?;
        self.ui.shot("7-deployment").await;
        self.start_and_watch().await.context("starting and watching the job")?;
        self.ui.shot("8-preview-data-check").await;
        let snapshot = self.snapshot_stop_restore().await.context("snapshot, stop and restore")?;
        self.upgrade_and_parameters().await.context("upgrade and parameters")?;
        self.ui.shot("9-operate-stopped").await;
        self.another_jobs_snapshot(&snapshot).await.context("starting from another job's snapshot")?;
        self.ui.shot("10-other-job").await;
        self.viewer_role().await.context("a viewer's rights")?;
        self.ui.shot("11-events").await;
        let errors = self.ui.js_errors().await?;
        ensure!(errors.is_empty(), "the page had script errors: {errors:?}");
        Ok(())
    }

    async fn sign_in(&self) -> Result<()> {
        let ui = self.ui;
        ui.goto("/projects").await?;
        // Not signed in: the app sends us to the login screen.
        ui.find("#login-form").await?;
        ui.type_into("#login-name", "admin").await?;
        ui.type_into("#login-password", "not-the-password").await?;
        ui.click("#login-submit").await?;
        ui.wait_error("#login-error", "wrong user name or password").await?;
        ui.type_into("#login-password", ADMIN_PASSWORD).await?;
        ui.click("#login-submit").await?;
        ui.wait_text("#user-name", "admin", QUICK).await?;
        ui.wait_text("#projects-table", "no projects yet", QUICK).await?;
        Ok(())
    }

    async fn api_tokens(&self) -> Result<()> {
        let ui = self.ui;
        ui.click("#nav-tokens").await?;
        ui.type_into("#token-name", "ci-deploy").await?;
        ui.click("#token-create").await?;
        let token = ui.wait_text("#token-secret", "", QUICK).await?;
        ensure!(token.trim().len() >= 16, "the new token is shown once: got {token:?}");
        ui.wait_text("#tokens-table", "ci-deploy", QUICK).await?;
        ui.click_and_confirm("[data-test=token-delete]").await?;
        ui.wait_text("#tokens-table", "no API tokens", QUICK).await?;
        Ok(())
    }

    async fn users_and_project(&self) -> Result<()> {
        let ui = self.ui;
        // A second account, for the permission checks at the end.
        ui.click("#nav-users").await?;
        ui.type_into("#user-new-name", VIEWER).await?;
        ui.type_into("#user-new-password", "short").await?;
        ui.click("#user-create").await?;
        ui.wait_error("#user-create-error", "at least 8 characters").await?;
        ui.type_into("#user-new-password", VIEWER_PASSWORD).await?;
        ui.click("#user-create").await?;
        ui.wait_text("#users-table", VIEWER, QUICK).await?;

        // The console's own worker, registered and heartbeating.
        ui.click("#nav-workers").await?;
        ui.wait_text("#workers-table", "up", QUICK).await?;
        ui.wait_text("#workers-table", "s ago", QUICK).await?;

        ui.click("#nav-projects").await?;
        ui.type_into("#project-name", "Not A Name").await?;
        ui.click("#project-create").await?;
        ui.wait_error("#project-create-error", "is not valid").await?;
        ui.type_into("#project-name", PROJECT).await?;
        ui.type_into("#project-description", "Insurance real-time jobs").await?;
        ui.click("#project-create").await?;
        ui.wait_text("#project-title", PROJECT, QUICK).await?;

        ui.click("#tab-members").await?;
        ui.type_into("#member-user", "nobody-here").await?;
        ui.click("#member-save").await?;
        ui.wait_error("#member-error", "no user named").await?;
        ui.type_into("#member-user", VIEWER).await?;
        ui.select("#member-role", "viewer").await?;
        ui.click("#member-save").await?;
        ui.wait_text("#members-table", VIEWER, QUICK).await?;
        Ok(())
    }

    async fn connections(&self) -> Result<()> {
        let ui = self.ui;
        ui.click("#tab-connections").await?;
        ui.type_into("#conn-name", "events").await?;
        ui.select("#conn-kind", "kafka").await?;
        ui.type_into("#conn-url", self.brokers).await?;
        ui.click("#conn-save").await?;
        ui.wait_text("#connections-table", self.brokers, QUICK).await?;
        // A secret is write-only: the page says it is set, never shows it.
        ui.type_into("#conn-name", "warehouse").await?;
        ui.select("#conn-kind", "database").await?;
        ui.type_into("#conn-url", "postgres://sluice@127.0.0.1:5432/warehouse").await?;
        ui.type_into("#conn-secret", "s3cret-pw").await?;
        ui.click("#conn-save").await?;
        ui.wait_text("#connections-table", "secret set", QUICK).await?;
        ensure!(!ui.page_text().await?.contains("s3cret-pw"), "the secret is shown on the page");
        Ok(())
    }

    async fn job_and_versions(&self) -> Result<()> {
        let ui = self.ui;
        ui.click("#tab-jobs").await?;
        ui.type_into("#job-name", JOB).await?;
        ui.type_into("#job-description", "Last page per account and device").await?;
        ui.click("#job-create").await?;
        ui.find("#version-file").await?;

        // Random bytes are refused with the validator's reason.
        let junk = self.dir.join("junk.wasm");
        std::fs::write(&junk, (0..4096u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect::<Vec<_>>())?;
        ui.upload("#version-file", &junk).await?;
        ui.click("#version-upload").await?;
        ui.wait_error("#version-error", "not a valid job component").await?;

        ui.upload("#version-file", &sluice_tests::wasm("last_page")).await?;
        ui.click("#version-validate").await?;
        ui.wait_text("#version-valid", "is a valid job component", SLOW).await?;
        ui.wait_text("#version-valid", "may run in parallel", QUICK).await?;
        ui.type_into("#version-note", "first cut").await?;
        ui.click("#version-upload").await?;
        ui.wait_text("#version-uploaded", "as v1", SLOW).await?;
        ui.wait_text("#versions-table", "first cut", QUICK).await?;
        // last-page keys its state by account (and device): it may run split.
        ui.wait_text("#versions-table", "by record key", QUICK).await?;
        Ok(())
    }

    async fn debug_run(&self) -> Result<()> {
        let ui = self.ui;
        ui.click("#tab-debug").await?;
        ui.set_value("#debug-spec", &self.spec("")).await?;
        let lines = [
            r#"{"log_time": 1710469800, "device_id": "dev-d1", "account_id": "acc-004", "bury_point_type": "page", "page_name": "life-insurance"}"#,
            r#"{"log_time": 1710469817, "device_id": "dev-x9", "account_id": null, "bury_point_type": "page", "page_name": "claims"}"#,
            r#"{"log_time": 1710469868, "device_id": "dev-d1", "account_id": "acc-004", "bury_point_type": "page", "page_name": "home"}"#,
            r#"this line is not JSON"#,
        ];
        ui.set_value("#debug-records", &lines.join("\n")).await?;
        ui.click("#debug-run").await?;
        let rows = ui.wait_text("#debug-rows-user_last_log", "acc-004", SLOW).await?;
        ensure!(rows.contains("life-insurance") && rows.contains("home"), "both page changes are emitted: {rows}");
        ensure!(ui.attr_number("#debug-records-in", "data-value").await? == 4, "four records went in");
        ensure!(ui.attr_number("#debug-dead-count", "data-value").await? == 1, "the non-JSON line is a dead letter");
        let dead = ui.text("#debug-dead-letters").await?;
        ensure!(dead.contains("this line is not JSON"), "the dead letter shows the record: {dead}");

        // The first records of the live topic instead of pasted ones.
        ui.click("#debug-mode-topic").await?;
        ui.type_into("#debug-from-topic", "5").await?;
        ui.click("#debug-run").await?;
        ui.wait_text("#debug-summary", "5 records in", SLOW).await?;
        Ok(())
    }

    async fn deployment(&self) -> Result<()> {
        let ui = self.ui;
        ui.click("#tab-deployment").await?;
        ui.find("#deploy-version").await?;
        // An unknown field in the spec: the server names it.
        ui.set_value("#deploy-spec", &self.spec("bogus_field = 1\n")).await?;
        ui.click("#deploy-save").await?;
        ui.wait_error("#deploy-error", "bogus_field").await?;
        // A schedule that is not a cron expression.
        ui.set_value("#deploy-spec", &self.spec("")).await?;
        ui.type_into("#deploy-schedule", "every day at two").await?;
        ui.click("#deploy-save").await?;
        ui.wait_error("#deploy-error", "is not a cron expression").await?;
        // Fixed: saved.
        ui.type_into("#deploy-schedule", "").await?;
        ui.click("#deploy-params-add").await?;
        ui.type_into(".param-row:last-child .param-key", "region").await?;
        ui.type_into(".param-row:last-child .param-value", "south").await?;
        ui.type_into("#deploy-memory", "64").await?;
        ui.click("#deploy-save").await?;
        ui.wait_text("#deploy-saved", "Saved", QUICK).await?;
        ensure!(ui.text("#deploy-error").await?.is_empty(), "no error after a good save");
        Ok(())
    }

    async fn start_and_watch(&self) -> Result<()> {
        let ui = self.ui;
        ui.click("#tab-operate").await?;
        ui.select("#start-restore", "none").await?;
        ui.select("#start-position", "earliest").await?;
        ui.click("#start-button").await?;
        ui.wait_text("#operate-status", "Started", SLOW).await?;

        ui.click("#tab-overview").await?;
        ui.wait_text("#job-state", "running", SLOW).await?;
        let first = ui.wait_number_above("#counter-records-in", 0, SLOW).await?;
        // The feed keeps producing: the counter keeps moving.
        ui.wait_number_above("#counter-records-in", first, SLOW).await?;
        ui.wait_number_above("#counter-records-out", 0, SLOW).await?;
        // The charts have points and are drawn.
        ui.wait_number_above_attr("#chart-rates", "data-points", 1, SLOW).await?;
        ui.find("#chart-rates canvas").await?;
        ui.find("#chart-lag canvas").await?;
        ui.wait_text("#tasks-table", "0", QUICK).await?;
        ui.shot("8-overview").await;

        // The data check: the first records of the live source, sinks off.
        ui.click("#tab-preview").await?;
        ui.type_into("#preview-limit", "3").await?;
        ui.click("#preview-run").await?;
        ui.wait_text("#preview-summary", "3 records in", SLOW).await?;
        Ok(())
    }

    /// Returns the id of the snapshot taken by hand.
    async fn snapshot_stop_restore(&self) -> Result<String> {
        let ui = self.ui;
        ui.click("#tab-operate").await?;
        ui.click("#snapshot-button").await?;
        ui.wait_text("#snapshot-taken", "taken", SLOW).await?;
        let snapshot =
            ui.find("#snapshot-taken").await?.attr("data-snapshot").await?.ok_or_else(|| anyhow!("no snapshot id"))?;
        ensure!(!snapshot.is_empty(), "the snapshot has an id");

        // Stop with a final snapshot (the box is ticked by default).
        ensure!(ui.find("#stop-snapshot").await?.is_selected().await?, "stop takes a snapshot by default");
        ui.click("#stop-button").await?;
        ui.wait_text("#operate-status", "Stopped", SLOW).await?;
        ui.click("#tab-overview").await?;
        ui.wait_text("#job-state", "stopped", SLOW).await?;

        // Both snapshots are listed; restore the one taken by hand.
        ui.click("#tab-snapshots").await?;
        ui.wait_text("#snapshots-table", &snapshot, QUICK).await?;
        let rows = ui.client.find_all(Locator::Css("#snapshots-table tbody tr[data-snapshot]")).await?;
        ensure!(rows.len() >= 2, "the manual and the stop snapshot are listed, found {}", rows.len());
        ui.shot("9-snapshots").await;
        ui.click_and_confirm(&format!("tr[data-snapshot='{snapshot}'] [data-test=snapshot-restore]")).await?;
        ui.wait_text("#snapshots-status", "Restored", SLOW).await?;

        ui.click("#tab-overview").await?;
        ui.wait_text("#job-state", "running", SLOW).await?;
        let first = ui.wait_number_above("#counter-records-in", 0, SLOW).await?;
        ui.wait_number_above("#counter-records-in", first, SLOW).await?;
        ui.wait_text("#current-run", &snapshot, QUICK).await?;

        ui.click("#tab-runs").await?;
        ui.wait_text("#runs-table", "stopped", QUICK).await?;
        Ok(snapshot)
    }

    /// On the restored, running job: upgrade to a new version with its
    /// state, change a parameter, read logs and exceptions, stop for good.
    async fn upgrade_and_parameters(&self) -> Result<()> {
        let ui = self.ui;
        ui.click("#tab-versions").await?;
        ui.upload("#version-file", &sluice_tests::wasm("last_page")).await?;
        ui.type_into("#version-note", "second cut").await?;
        ui.click("#version-upload").await?;
        ui.wait_text("#version-uploaded", "as v2", SLOW).await?;

        ui.click("#tab-operate").await?;
        ui.select("#upgrade-version", "2").await?;
        ui.click("#upgrade-button").await?;
        ui.wait_text("#operate-status", "Upgraded", SLOW).await?;
        ui.wait_text("#job-version", "v2", QUICK).await?;

        ui.type_into("#op-params .param-value", "north").await?;
        ui.click("#params-save").await?;
        ui.wait_text("#params-saved", "restarted", SLOW).await?;

        // A rescale restarts it from a snapshot of each shard; its topic
        // has one partition, so one shard runs in one task whatever it asks.
        ui.set_value("#rescale-parallelism", "2").await?;
        ui.click("#rescale-button").await?;
        ui.wait_text("#operate-status", "Rescaled", SLOW).await?;

        ui.click("#tab-overview").await?;
        ui.wait_text("#job-state", "running", SLOW).await?;
        ui.wait_number_above("#counter-records-in", 0, SLOW).await?;
        ui.wait_text("#current-run", "v2", QUICK).await?;
        ui.wait_text("#run-parallelism", "1 task(s) over 1 shard(s)", QUICK).await?;
        ui.click("#tab-logs").await?;
        ui.find("#logs-table").await?;
        ui.click("#tab-exceptions").await?;
        ui.find("#exceptions-dead-letters").await?;
        ui.find("#exceptions-errors").await?;

        // Stop for good, without a snapshot.
        ui.click("#tab-operate").await?;
        ui.find("#stop-snapshot").await?.click().await?;
        ui.click("#stop-button").await?;
        ui.wait_text("#operate-status", "Stopped", SLOW).await?;
        Ok(())
    }

    async fn another_jobs_snapshot(&self, snapshot: &str) -> Result<()> {
        let ui = self.ui;
        ui.goto(&format!("/projects/{PROJECT}/jobs")).await?;
        ui.wait_text("#jobs-table", JOB, QUICK).await?;
        ui.type_into("#job-name", OTHER_JOB).await?;
        ui.click("#job-create").await?;
        ui.upload("#version-file", &sluice_tests::wasm("last_page")).await?;
        ui.click("#version-upload").await?;
        ui.wait_text("#versions-table", "v1", SLOW).await?;
        ui.click("#tab-deployment").await?;
        ui.set_value("#deploy-spec", &self.spec("")).await?;
        ui.click("#deploy-save").await?;
        ui.wait_text("#deploy-saved", "Saved", QUICK).await?;

        ui.click("#tab-operate").await?;
        ui.select("#start-restore", "snapshot").await?;
        ui.type_into("#start-snapshot-id", snapshot).await?;
        ui.click("#start-button").await?;
        ui.wait_error("#start-error", "is not a snapshot of job").await?;
        Ok(())
    }

    async fn viewer_role(&self) -> Result<()> {
        let ui = self.ui;
        ui.click("#logout").await?;
        ui.find("#login-form").await?;
        ui.type_into("#login-name", VIEWER).await?;
        ui.type_into("#login-password", VIEWER_PASSWORD).await?;
        ui.click("#login-submit").await?;
        ui.wait_text("#user-name", VIEWER, QUICK).await?;
        ui.wait_text("#projects-table", PROJECT, QUICK).await?;
        // A viewer reads everything but may not operate.
        ui.goto(&format!("/projects/{PROJECT}/jobs/{JOB}/operate")).await?;
        ui.select("#start-restore", "latest").await?;
        ui.click("#start-button").await?;
        ui.wait_error("#start-error", "needs the operator role").await?;
        ui.goto(&format!("/projects/{PROJECT}/events")).await?;
        ui.wait_text("#events-table", "job.start", QUICK).await?;
        // Resources and the schedule are an operator's: shown, not editable.
        ui.goto(&format!("/projects/{PROJECT}/jobs/{JOB}/deployment")).await?;
        ui.wait_text("#deploy-operator-note", "set by an operator", QUICK).await?;
        // Changing one's own password, under Account.
        ui.click("#nav-account").await?;
        ui.type_into("#account-old-password", "not-my-password").await?;
        ui.type_into("#account-new-password", "viewer-password-2").await?;
        ui.type_into("#account-new-password-again", "viewer-password-2").await?;
        ui.click("#account-change-password").await?;
        ui.wait_error("#account-password-error", "the old password is wrong").await?;
        ui.type_into("#account-old-password", VIEWER_PASSWORD).await?;
        ui.click("#account-change-password").await?;
        ui.wait_text("#account-password-changed", "Password changed", QUICK).await?;
        Ok(())
    }

    /// The spec of the live job: the topic the feed writes, last pages to
    /// a memory sink; `extra` goes into the source table.
    fn spec(&self, extra: &str) -> String {
        format!(
            "[sources.user_log]\nkind = \"kafka\"\nconnection = \"events\"\ntopic = \"{topic}\"\n{extra}\n\
             [sinks.user_last_log]\nkind = \"memory\"\n",
            topic = self.topic
        )
    }
}
