//! A real Alertmanager for tests: Debian's `prometheus-alertmanager` (0.25, `scripts/test.sh` installs it)
//! on 127.0.0.1 at a free port, clustering off (`--cluster.listen-address=`), its storage in a temporary
//! directory, the config the test gives; killed (and its directory removed) on drop.
//!
//! Self-contained (no `super::`), so any test crate can include it by path:
//! - from a test file in `forward/tests/`: `#[path = "support/alertmanager.rs"] mod alertmanager;`
//! - from `vigil/tests/support/mod.rs`: `#[path = "../../../forward/tests/support/alertmanager.rs"] pub mod
//!   alertmanager;` (or from a file in `vigil/tests/`: `#[path = "../../forward/tests/support/alertmanager.rs"]`)
//!
//! It needs `tokio`, `hyper-util`, `http-body-util`, `http`, `bytes` and `serde_json` among the crate's
//! (dev-)dependencies. Typical use:
//!
//! ```ignore
//! let am = Alertmanager::start(&alertmanager::config(&["alertname"], None, "")).await;
//! // point Vigil's `forward.alertmanager` at am.alerts_url(), then:
//! let alerts = am.wait_for_alerts("the alert", Duration::from_secs(20), |a| (a.len() == 1).then_some(a.to_vec())).await;
//! assert_eq!(alertmanager::labels(&alerts[0])["alertname"], "HighLatency");
//! ```

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

/// An Alertmanager config: every alert to one receiver, grouped by `group_by`, groups sent fast
/// (`group_wait` 100ms, `group_interval` 1s, `repeat_interval` 1h). The receiver is `hook`, a webhook to
/// `webhook` (resolved alerts sent too), or `null`, which notifies nothing. `extra` is appended as is, e.g.
/// `inhibit_rules:` (top-level YAML).
pub(crate) fn config(group_by: &[&str], webhook: Option<&str>, extra: &str) -> String {
    let group_by = group_by.iter().map(|l| format!("{l:?}")).collect::<Vec<_>>().join(", ");
    let (name, receiver) = match webhook {
        Some(url) => (
            "hook",
            format!("  - name: hook\n    webhook_configs:\n      - url: {url:?}\n        send_resolved: true\n"),
        ),
        None => ("null", "  - name: \"null\"\n".to_owned()),
    };
    format!(
        "route:\n  receiver: {name:?}\n  group_by: [{group_by}]\n  group_wait: 100ms\n  group_interval: 1s\n  repeat_interval: 1h\nreceivers:\n{receiver}{extra}"
    )
}

/// The Alertmanager binary: Debian names it `prometheus-alertmanager`, upstream `alertmanager`.
pub(crate) fn binary() -> PathBuf {
    for p in ["/usr/bin/prometheus-alertmanager", "/usr/bin/alertmanager", "/usr/local/bin/alertmanager"] {
        if Path::new(p).exists() {
            return PathBuf::from(p);
        }
    }
    panic!(
        "Alertmanager is not installed. The real-Alertmanager tests need Debian's package: \
         apt-get install -y prometheus-alertmanager (scripts/test.sh does this)"
    );
}

pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free port")
}

/// An alert's labels, from the API's JSON.
pub(crate) fn labels(alert: &Value) -> BTreeMap<String, String> {
    let labels = alert["labels"].as_object().cloned().unwrap_or_default();
    labels.into_iter().map(|(k, v)| (k, v.as_str().unwrap_or_default().to_owned())).collect()
}

/// A running Alertmanager.
pub(crate) struct Alertmanager {
    child: Option<Child>,
    pub(crate) port: u16,
    dir: PathBuf,
}

impl Alertmanager {
    pub(crate) async fn start(config: &str) -> Self {
        Self::start_on(free_port(), config).await
    }

    /// [`Alertmanager::start`] on a given port: for a destination configured before the server runs.
    pub(crate) async fn start_on(port: u16, config: &str) -> Self {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("vigil-alertmanager-{}-{n}-{port}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("data")).expect("alertmanager dir");
        std::fs::write(dir.join("alertmanager.yml"), config).expect("alertmanager config");
        let log = std::fs::File::create(dir.join("alertmanager.log")).expect("alertmanager log");
        let child = Command::new(binary())
            .arg(format!("--config.file={}", dir.join("alertmanager.yml").display()))
            .arg(format!("--storage.path={}", dir.join("data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--cluster.listen-address=")
            .current_dir(&dir)
            .stdout(Stdio::from(log.try_clone().expect("log")))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("starting alertmanager");
        let mut am = Self { child: Some(child), port, dir };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok((200, _)) = am.request("GET", "/-/ready", None).await {
                return am;
            }
            let exited = am.child.as_mut().and_then(|c| c.try_wait().ok().flatten());
            if exited.is_some() || Instant::now() > deadline {
                panic!("alertmanager did not become ready ({exited:?}):\n{}", am.log());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// `http://127.0.0.1:<port>`.
    pub(crate) fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The endpoint alerts are posted to: what `forward.alertmanager` URLs point at.
    pub(crate) fn alerts_url(&self) -> String {
        format!("{}/api/v2/alerts", self.base_url())
    }

    /// `GET /api/v2/alerts`: the alerts it holds that have not ended (active, silenced, inhibited alike;
    /// `status.state` tells them apart). Resolved alerts are not listed.
    pub(crate) async fn alerts(&self) -> Vec<Value> {
        self.get_list("/api/v2/alerts").await
    }

    /// `GET /api/v2/alerts/groups`: the alerts by aggregation group (`labels`, `receiver`, `alerts`).
    pub(crate) async fn groups(&self) -> Vec<Value> {
        self.get_list("/api/v2/alerts/groups").await
    }

    /// Posts `body` (a JSON array of alerts) as a client would: the status and body of the answer.
    pub(crate) async fn post_alerts(&self, body: &str) -> (u16, String) {
        self.request("POST", "/api/v2/alerts", Some(body.to_owned())).await.expect("posting alerts")
    }

    /// Polls [`Alertmanager::alerts`] until `f` returns `Some`; panics with `what` and the alerts last seen
    /// after `timeout`.
    pub(crate) async fn wait_for_alerts<T>(
        &self,
        what: &str,
        timeout: Duration,
        mut f: impl FnMut(&[Value]) -> Option<T>,
    ) -> T {
        let deadline = Instant::now() + timeout;
        loop {
            let alerts = self.alerts().await;
            if let Some(v) = f(&alerts) {
                return v;
            }
            if Instant::now() > deadline {
                panic!("timed out after {timeout:?} waiting for {what}; Alertmanager holds {alerts:#?}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Alertmanager's own log so far.
    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("alertmanager.log")).unwrap_or_default()
    }

    /// Kills the server (the directory stays until drop).
    pub(crate) fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    async fn get_list(&self, path: &str) -> Vec<Value> {
        match self.request("GET", path, None).await {
            Ok((200, body)) => serde_json::from_str(&body).expect("Alertmanager answers a JSON array"),
            other => panic!("GET {path}: {other:?}"),
        }
    }

    async fn request(&self, method: &str, path: &str, body: Option<String>) -> Result<(u16, String), String> {
        let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
        let request = http::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base_url()))
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .map_err(|e| e.to_string())?;
        let exchange = async {
            let response = client.request(request).await.map_err(|e| e.to_string())?;
            let status = response.status().as_u16();
            let body = response.into_body().collect().await.map_err(|e| e.to_string())?.to_bytes();
            Ok((status, String::from_utf8_lossy(&body).into_owned()))
        };
        tokio::time::timeout(Duration::from_secs(10), exchange)
            .await
            .map_err(|_| format!("{path}: no answer in 10s"))?
    }
}

impl Drop for Alertmanager {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
