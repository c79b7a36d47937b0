//! The browser test's machinery: `sluice serve`, chromedriver and a Kafka
//! feed as child processes and tasks, and `Ui`, the few browser moves the
//! test makes, each waiting for what it needs and saying what it waited
//! for when it gives up.

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail, ensure};
use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};

/// How long the UI may take to show something that needs the server only.
pub const QUICK: Duration = Duration::from_secs(15);
/// How long a job may take to start, snapshot, stop or show progress.
pub const SLOW: Duration = Duration::from_secs(60);

/// The paths of Chromium and chromedriver; fails (never skips) when they
/// are missing.
pub fn browser_binaries() -> (PathBuf, PathBuf) {
    let chromium = PathBuf::from(std::env::var("SLUICE_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into()));
    let driver = PathBuf::from(std::env::var("SLUICE_CHROMEDRIVER").unwrap_or_else(|_| "/usr/bin/chromedriver".into()));
    for (what, path) in [("Chromium", &chromium), ("chromedriver", &driver)] {
        assert!(
            path.is_file(),
            "{what} is not installed at {}: run `scripts/chromium.sh` (it installs Debian's chromium and \
             chromium-driver), or set SLUICE_CHROMIUM / SLUICE_CHROMEDRIVER",
            path.display()
        );
    }
    (chromium, driver)
}

/// A child process killed with its process group when dropped.
struct Process {
    child: Child,
}

impl Drop for Process {
    fn drop(&mut self) {
        // The group: chromedriver's browsers die with it.
        let _ = Command::new("kill").args(["-KILL", "--", &format!("-{}", self.child.id())]).status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn_in_group(command: &mut Command) -> std::io::Result<Process> {
    use std::os::unix::process::CommandExt;
    Ok(Process { child: command.process_group(0).spawn()? })
}

/// `sluice serve` on a free port, with a fresh data directory.
pub struct Console {
    pub url: String,
    log: PathBuf,
    _process: Process,
}

impl Console {
    /// Starts it with the first admin's password `admin_password`.
    pub fn start(dir: &Path, admin_password: &str) -> Result<Console> {
        let data = dir.join("data");
        let log = dir.join("serve.log");
        let mut command = Command::new(env!("CARGO_BIN_EXE_sluice"));
        command
            // The test services run on this machine, which the default refuses.
            .args(["serve", "--listen", "127.0.0.1:0", "--no-demo", "--no-broker", "--allow-hosts", "127.0.0.0/8,::1"])
            .arg("--data-dir")
            .arg(&data)
            .env("SLUICE_ADMIN_PASSWORD", admin_password)
            .env("SLUICE_LOG", "warn,sluice_console=info,sluice_runtime=info")
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log)?);
        let mut process = spawn_in_group(&mut command).context("spawning sluice serve")?;
        let stdout = process.child.stdout.take().expect("piped stdout");
        // `sluice serve` prints the address it listens on.
        let (tx, rx) = std::sync::mpsc::channel();
        let out_log = dir.join("serve.stdout.log");
        std::thread::spawn(move || {
            let mut file = std::fs::File::create(out_log).ok();
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(f) = file.as_mut() {
                    let _ = writeln!(f, "{line}");
                }
                if let Some(url) = line.split("listening on ").nth(1) {
                    let _ = tx.send(url.trim().to_owned());
                }
            }
        });
        let url = rx.recv_timeout(Duration::from_secs(60)).map_err(|_| {
            anyhow!(
                "sluice serve did not print its address within 60 s; its log:\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            )
        })?;
        Ok(Console { url, log, _process: process })
    }

    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(80)..].join("\n")
    }
}

pub struct ChromeDriver {
    url: String,
    _process: Process,
}

impl ChromeDriver {
    pub fn start(binary: &Path, dir: &Path) -> Result<ChromeDriver> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let process = spawn_in_group(
            Command::new(binary)
                .arg(format!("--port={port}"))
                .stdout(std::fs::File::create(dir.join("chromedriver.log"))?)
                .stderr(Stdio::null()),
        )
        .with_context(|| format!("spawning {}", binary.display()))?;
        let address: SocketAddr = ([127, 0, 0, 1], port).into();
        let started = Instant::now();
        while std::net::TcpStream::connect_timeout(&address, Duration::from_millis(200)).is_err() {
            ensure!(
                started.elapsed() < Duration::from_secs(20),
                "chromedriver did not listen on {address} within 20 s"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(ChromeDriver { url: format!("http://{address}"), _process: process })
    }
}

/// Writes page views to the job's topic, about 50 a second, until stopped,
/// so a running job's counters keep moving.
pub struct PageViewFeed {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl PageViewFeed {
    pub fn start(brokers: &str, topic: &str) -> PageViewFeed {
        let stop = Arc::new(AtomicBool::new(false));
        let producer = sluice_tests::kafka::producer(brokers, 1);
        let (topic, flag) = (topic.to_owned(), stop.clone());
        let task = tokio::spawn(async move {
            let pages = ["home", "claims", "checkout", "life-insurance", "car-insurance"];
            let mut i: u64 = 0;
            while !flag.load(Ordering::Relaxed) {
                for _ in 0..5 {
                    let value = json!({
                        "log_time": 1_710_469_800 + i,
                        "device_id": format!("dev-{}", i % 7),
                        "account_id": format!("acc-{:03}", i % 40),
                        "bury_point_type": "page",
                        "page_name": pages[(i as usize / 3) % pages.len()],
                    })
                    .to_string();
                    let record = rdkafka::producer::FutureRecord::<str, str>::to(&topic).payload(&value);
                    if let Err((e, _)) = producer.send(record, Duration::from_secs(5)).await {
                        eprintln!("page view feed: {e}");
                    }
                    i += 1;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
        PageViewFeed { stop, task }
    }

    pub async fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.task.await;
    }
}

/// The browser, with the few moves the test makes: each waits for what it
/// needs and says what it waited for when it gives up.
pub struct Ui {
    pub client: Client,
    base: String,
}

impl Ui {
    pub async fn connect(driver: &ChromeDriver, chromium: &Path, profile: &Path, base: &str) -> Result<Ui> {
        let mut caps = serde_json::Map::new();
        caps.insert("browserName".into(), json!("chrome"));
        // A confirm() the test does not answer itself is accepted.
        caps.insert("unhandledPromptBehavior".into(), json!("accept"));
        caps.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": chromium,
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                    "--disable-background-networking", "--disable-component-update", "--disable-sync",
                    "--disable-quic", "--disable-dev-shm-usage", "--window-size=1400,1000",
                    format!("--user-data-dir={}", profile.display()),
                ],
            }),
        );
        let client = ClientBuilder::native()
            .capabilities(caps)
            .connect(&driver.url)
            .await
            .with_context(|| format!("opening a WebDriver session at {}", driver.url))?;
        Ok(Ui { client, base: base.trim_end_matches('/').to_owned() })
    }

    /// Opens a hash route, e.g. `/projects/x/jobs`.
    pub async fn goto(&self, route: &str) -> Result<()> {
        self.client.goto(&format!("{}/#{route}", self.base)).await?;
        Ok(())
    }

    /// The first element matching `css`, waiting for it to appear.
    pub async fn find(&self, css: &str) -> Result<Element> {
        let started = Instant::now();
        loop {
            match self.client.find(Locator::Css(css)).await {
                Ok(el) => return Ok(el),
                Err(e) if started.elapsed() > QUICK => bail!("no element `{css}` after {QUICK:?}: {e}"),
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }

    pub async fn click(&self, css: &str) -> Result<()> {
        self.find(css).await?.click().await.with_context(|| format!("clicking `{css}`"))
    }

    /// Clicks and accepts the confirmation the click asks for.
    pub async fn click_and_confirm(&self, css: &str) -> Result<()> {
        self.click(css).await?;
        let started = Instant::now();
        while self.client.accept_alert().await.is_err() {
            ensure!(started.elapsed() < QUICK, "`{css}` asked for no confirmation");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(())
    }

    /// Replaces the text of an input.
    pub async fn type_into(&self, css: &str, text: &str) -> Result<()> {
        let el = self.find(css).await?;
        el.clear().await.with_context(|| format!("clearing `{css}`"))?;
        if !text.is_empty() {
            el.send_keys(text).await.with_context(|| format!("typing into `{css}`"))?;
        }
        Ok(())
    }

    /// Sets a textarea's value at once (typing a spec key by key is slow).
    pub async fn set_value(&self, css: &str, text: &str) -> Result<()> {
        self.find(css).await?;
        let script = "const el = document.querySelector(arguments[0]); el.value = arguments[1]; \
                      el.dispatchEvent(new Event('input', { bubbles: true })); return true;";
        self.client.execute(script, vec![json!(css), json!(text)]).await?;
        Ok(())
    }

    pub async fn select(&self, css: &str, value: &str) -> Result<()> {
        self.find(css).await?.select_by_value(value).await.with_context(|| format!("choosing `{value}` in `{css}`"))
    }

    /// Chooses a file in an `<input type=file>`.
    pub async fn upload(&self, css: &str, file: &Path) -> Result<()> {
        ensure!(file.is_file(), "{} does not exist", file.display());
        let path = file.canonicalize()?;
        self.find(css)
            .await?
            .send_keys(&path.to_string_lossy())
            .await
            .with_context(|| format!("choosing {}", path.display()))
    }

    pub async fn text(&self, css: &str) -> Result<String> {
        Ok(self.find(css).await?.text().await?)
    }

    pub async fn page_text(&self) -> Result<String> {
        self.text("body").await
    }

    /// Waits until an element matching `css` is shown and its text contains
    /// `needle` (and is not empty); returns that text.
    pub async fn wait_text(&self, css: &str, needle: &str, timeout: Duration) -> Result<String> {
        let started = Instant::now();
        let mut last = String::new();
        loop {
            if let Ok(elements) = self.client.find_all(Locator::Css(css)).await {
                for el in elements {
                    let Ok(text) = el.text().await else { continue };
                    if !text.trim().is_empty() && text.contains(needle) && el.is_displayed().await.unwrap_or(false) {
                        return Ok(text);
                    }
                    last = text;
                }
            }
            if started.elapsed() > timeout {
                let errors = self.visible_errors().await.unwrap_or_default();
                bail!(
                    "`{css}` did not show {needle:?} within {timeout:?}; it shows {last:?}; errors on the page: {errors:?}"
                );
            }
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
    }

    /// Waits for the server's message in an error box: shown, styled as an
    /// error, containing `needle`.
    pub async fn wait_error(&self, css: &str, needle: &str) -> Result<String> {
        let text = self.wait_text(css, needle, SLOW).await?;
        let class = self.find(css).await?.attr("class").await?.unwrap_or_default();
        ensure!(class.split_whitespace().any(|c| c == "error"), "`{css}` has class {class:?}, not `error`");
        Ok(text)
    }

    /// The texts of all error boxes now shown.
    pub async fn visible_errors(&self) -> Result<Vec<String>> {
        let mut out = Vec::new();
        for el in self.client.find_all(Locator::Css(".error")).await? {
            let text = el.text().await.unwrap_or_default();
            if !text.trim().is_empty() {
                out.push(text);
            }
        }
        Ok(out)
    }

    pub async fn attr_number(&self, css: &str, attr: &str) -> Result<i64> {
        let value = self.find(css).await?.attr(attr).await?.unwrap_or_default();
        value.trim().parse().with_context(|| format!("`{css}` {attr} is {value:?}, not a number"))
    }

    /// Waits until a counter's `data-value` is above `floor`; returns it.
    pub async fn wait_number_above(&self, css: &str, floor: i64, timeout: Duration) -> Result<i64> {
        self.wait_number_above_attr(css, "data-value", floor, timeout).await
    }

    pub async fn wait_number_above_attr(&self, css: &str, attr: &str, floor: i64, timeout: Duration) -> Result<i64> {
        let started = Instant::now();
        loop {
            let value = self.attr_number(css, attr).await.unwrap_or(i64::MIN);
            if value > floor {
                return Ok(value);
            }
            if started.elapsed() > timeout {
                let errors = self.visible_errors().await.unwrap_or_default();
                bail!(
                    "`{css}` {attr} stayed at {value}, not above {floor}, for {timeout:?}; errors on the page: {errors:?}"
                );
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// Script errors the app recorded (`window.sluiceErrors`); the app not
    /// loading at all is one too.
    pub async fn js_errors(&self) -> Result<Vec<String>> {
        let value = self
            .client
            .execute("return window.sluiceErrors === undefined ? null : window.sluiceErrors;", vec![])
            .await?;
        match value {
            Value::Null => Ok(vec!["the app did not load (window.sluiceErrors is missing)".into()]),
            Value::Array(items) => Ok(items.into_iter().map(|v| v.as_str().unwrap_or_default().to_owned()).collect()),
            other => Ok(vec![format!("unexpected window.sluiceErrors: {other}")]),
        }
    }

    /// With SLUICE_BROWSER_SHOTS set, a screenshot of the page in target/tmp.
    pub async fn shot(&self, label: &str) {
        if std::env::var_os("SLUICE_BROWSER_SHOTS").is_none() {
            return;
        }
        if let Ok(png) = self.client.screenshot().await {
            let _ =
                std::fs::write(PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("browser-{label}.png")), png);
        }
    }

    /// Leaves a screenshot and the page's text in target/tmp for a failed run.
    pub async fn dump(&self, label: &str) {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
        if let Ok(png) = self.client.screenshot().await {
            let path = dir.join(format!("browser-{label}.png"));
            if std::fs::write(&path, png).is_ok() {
                eprintln!("screenshot: {}", path.display());
            }
        }
        let url = self.client.current_url().await.map(|u| u.to_string()).unwrap_or_default();
        let text = self.page_text().await.unwrap_or_default();
        let errors = self.js_errors().await.unwrap_or_default();
        let path = dir.join(format!("browser-{label}.txt"));
        if std::fs::write(&path, format!("{url}\nscript errors: {errors:?}\n\n{text}")).is_ok() {
            eprintln!("page text: {}", path.display());
        }
    }
}
