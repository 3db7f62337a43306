//! A minimal W3C WebDriver client for the browser test: Debian's `chromedriver` driving headless
//! `chromium`. Only what the test needs: navigate, sign in, find, type, click, read text,
//! screenshot (saved as test artifacts under `target/test-artifacts`).

#![allow(dead_code)]

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{Value, json};

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

pub struct Browser {
    driver: Child,
    base: String,
    http: reqwest::Client,
}

/// Where a test artifact (a screenshot) goes: `$KAAS_TEST_ARTIFACTS` or `target/test-artifacts`.
pub fn artifact(name: &str) -> std::path::PathBuf {
    let dir = std::env::var_os("KAAS_TEST_ARTIFACTS")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            kaas_harness::repo_root()
                .unwrap()
                .join("target/test-artifacts")
        });
    dir.join(name)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn which(candidates: &[&str]) -> Option<String> {
    candidates
        .iter()
        .find(|p| std::path::Path::new(p).is_file())
        .map(|p| p.to_string())
}

impl Browser {
    /// Starts chromedriver and a headless Chromium session.
    pub async fn start() -> Browser {
        let driver_bin = std::env::var("KAAS_CHROMEDRIVER")
            .ok()
            .or_else(|| which(&["/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver"]))
            .expect(
                "chromedriver is needed for the browser test: apt-get install chromium chromium-driver (hack/test.sh does this)",
            );
        let chromium = std::env::var("KAAS_CHROMIUM")
            .ok()
            .or_else(|| which(&["/usr/bin/chromium", "/usr/bin/chromium-browser"]))
            .expect("chromium is needed for the browser test");
        let port = free_port();
        use std::os::unix::process::CommandExt;
        let driver = Command::new(driver_bin)
            .arg(format!("--port={port}"))
            .process_group(0)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let mut b = Browser {
            driver,
            base: format!("http://127.0.0.1:{port}"),
            http: reqwest::Client::new(),
        };
        let start = Instant::now();
        loop {
            if let Ok(r) = b.http.get(format!("{}/status", b.base)).send().await
                && r.status().is_success()
            {
                break;
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "chromedriver did not start"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,1100"]
            }
        }}});
        let v = b.post("/session", caps).await;
        let sid = v["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {v}"))
            .to_string();
        b.base = format!("{}/session/{sid}", b.base);
        b
    }

    async fn post(&self, path: &str, body: Value) -> Value {
        let r = self
            .http
            .post(format!("{}{path}", self.base))
            .json(&body)
            .send()
            .await
            .expect("chromedriver answers");
        r.json().await.expect("JSON from chromedriver")
    }

    async fn get(&self, path: &str) -> Value {
        let r = self
            .http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .expect("chromedriver answers");
        r.json().await.expect("JSON from chromedriver")
    }

    pub async fn goto(&self, url: &str) {
        let v = self.post("/url", json!({"url": url})).await;
        assert!(v["value"].is_null(), "navigating to {url}: {v}");
    }

    pub async fn current_url(&self) -> String {
        self.get("/url").await["value"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// The element matching the CSS selector, waiting up to 10 s for it.
    pub async fn find(&self, css: &str) -> String {
        let start = Instant::now();
        loop {
            let v = self
                .post("/element", json!({"using": "css selector", "value": css}))
                .await;
            if let Some(id) = v["value"][ELEMENT].as_str() {
                return id.to_string();
            }
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "no element {css}: {v}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Whether an element matches the CSS selector now (no waiting).
    pub async fn exists(&self, css: &str) -> bool {
        let v = self
            .post("/element", json!({"using": "css selector", "value": css}))
            .await;
        v["value"][ELEMENT].is_string()
    }

    pub async fn type_into(&self, css: &str, text: &str) {
        let id = self.find(css).await;
        self.post(&format!("/element/{id}/clear"), json!({})).await;
        let v = self
            .post(&format!("/element/{id}/value"), json!({"text": text}))
            .await;
        assert!(v["value"].is_null(), "typing into {css}: {v}");
    }

    pub async fn click(&self, css: &str) {
        let id = self.find(css).await;
        let v = self.post(&format!("/element/{id}/click"), json!({})).await;
        assert!(v["value"].is_null(), "clicking {css}: {v}");
    }

    pub async fn text(&self, css: &str) -> String {
        let id = self.find(css).await;
        self.get(&format!("/element/{id}/text")).await["value"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// Scrolls the element matching the CSS selector to the top of the window (for a
    /// screenshot of a part further down a page).
    pub async fn scroll_to(&self, css: &str) {
        let id = self.find(css).await;
        self.post(
            "/execute/sync",
            json!({"script": "arguments[0].scrollIntoView(true);", "args": [{ELEMENT: id}]}),
        )
        .await;
    }

    /// Accepts a `window.confirm` dialog if one is open.
    pub async fn accept_alert(&self) {
        self.post("/alert/accept", json!({})).await;
    }

    /// Signs in on the GUI at `base` (`http://host:port`) with `token`; waits for the clusters page.
    pub async fn sign_in(&self, base: &str, token: &str) {
        self.goto(&format!("{base}/ui/login")).await;
        self.type_into("#token", token).await;
        self.click("#signin").await;
        self.find("#new-cluster").await;
    }

    /// Saves a screenshot of what the browser shows as test artifact `name` (a PNG) and returns
    /// its path; a real page, not a blank one, is well over 10 kB.
    pub async fn shot(&self, name: &str) -> std::path::PathBuf {
        let path = artifact(name);
        self.screenshot(&path).await;
        let size = std::fs::metadata(&path).unwrap().len();
        assert!(size > 10_000, "{}: {size} bytes", path.display());
        eprintln!("screenshot: {}", path.display());
        path
    }

    pub async fn screenshot(&self, path: &std::path::Path) {
        let v = self.get("/screenshot").await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(v["value"].as_str().expect("screenshot data"))
            .expect("base64 PNG");
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).unwrap();
        }
        std::fs::write(path, png).unwrap();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // The driver and the browsers it started share a process group: end them all.
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.driver.id())])
            .status();
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}
