//! Helpers for end-to-end tests that run the real `vigil` binary next to real servers from Debian's
//! packages (`victoria-metrics`, `prometheus`), all on 127.0.0.1.
//!
//! Missing servers fail the test with the command that installs them: a skipped end-to-end test would
//! report green while proving nothing.

#![allow(dead_code, unreachable_pub)]

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

pub mod load;
pub mod spike;
pub mod stubs;

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free loopback port")
}

pub fn require_binary(name: &str) -> PathBuf {
    for dir in ["/usr/bin", "/usr/local/bin", "/usr/sbin"] {
        let p = Path::new(dir).join(name);
        if p.exists() {
            return p;
        }
    }
    panic!(
        "`{name}` is not installed. The end-to-end tests need Debian's packages: \
         apt-get install -y victoria-metrics prometheus prometheus-alertmanager (scripts/test.sh does this)"
    );
}

/// A child process killed when the test ends, whatever way it ends.
pub struct Proc {
    pub name: String,
    pub child: Option<Child>,
    pub log: PathBuf,
}

impl Proc {
    pub fn spawn(name: &str, program: &Path, args: &[String], dir: &Path) -> Self {
        let log = dir.join(format!("{name}.log"));
        let out = std::fs::File::create(&log).expect("log file");
        let err = out.try_clone().expect("log file");
        let child = Command::new(program)
            .args(args)
            .current_dir(dir)
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err))
            .spawn()
            .unwrap_or_else(|e| panic!("starting {name} ({}): {e}", program.display()));
        Self { name: name.into(), child: Some(child), log }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(Child::id).unwrap_or(0)
    }

    /// SIGTERM, then wait up to `timeout` for exit.
    pub fn terminate(&mut self, timeout: Duration) {
        if let Some(child) = self.child.as_mut() {
            let _ = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status();
            let deadline = Instant::now() + timeout;
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    self.child = None;
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
            self.child = None;
        }
    }

    /// SIGTERM, then wait up to `timeout`: how it exited and how long it took, or `None` if it had to be
    /// killed.
    pub fn sigterm(&mut self, timeout: Duration) -> Option<(std::process::ExitStatus, Duration)> {
        let child = self.child.as_mut()?;
        let started = Instant::now();
        let _ = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status();
        while started.elapsed() < timeout {
            if let Ok(Some(status)) = child.try_wait() {
                self.child = None;
                return Some((status, started.elapsed()));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.kill9();
        None
    }

    /// Resident memory now, from `/proc/<pid>/status`.
    pub fn rss_bytes(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map_or(0, |kb| kb * 1024)
    }

    /// SIGKILL: no chance to flush or clean up.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> Self {
        let p = std::env::temp_dir().join(format!("vigil-e2e-{tag}-{}-{}", std::process::id(), fastish_nonce()));
        std::fs::create_dir_all(&p).expect("temp dir");
        Self(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn fastish_nonce() -> u128 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0)
}

pub struct HttpResponse {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: Bytes,
}

impl HttpResponse {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

pub async fn request(method: &str, url: &str, headers: &[(&str, &str)], body: Bytes) -> Result<HttpResponse, String> {
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let mut req = http::Request::builder().method(method).uri(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let req = req.body(Full::new(body)).map_err(|e| e.to_string())?;
    let resp = tokio::time::timeout(Duration::from_secs(30), client.request(req))
        .await
        .map_err(|_| format!("{url}: timed out"))?
        .map_err(|e| format!("{url}: {e}"))?;
    let (parts, body) = resp.into_parts();
    let body = body.collect().await.map_err(|e| e.to_string())?.to_bytes();
    Ok(HttpResponse { status: parts.status.as_u16(), headers: parts.headers, body })
}

pub async fn get(url: &str) -> Result<HttpResponse, String> {
    request("GET", url, &[], Bytes::new()).await
}

/// Polls `f` until it returns `Some`, or panics with `what` after `timeout`.
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        if Instant::now() > deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Reads one sample value from a Prometheus text exposition, summing all series of `name` whose label
/// text contains every string in `filters`.
pub fn metric_sum(exposition: &str, name: &str, filters: &[&str]) -> f64 {
    exposition
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| l.starts_with(name) && matches!(l.as_bytes().get(name.len()), Some(b'{') | Some(b' ')))
        .filter(|l| filters.iter().all(|f| l.contains(f)))
        .filter_map(|l| l.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()))
        .sum()
}

/// A running VictoriaMetrics single node.
pub struct VictoriaMetrics {
    pub proc: Proc,
    pub port: u16,
}

impl VictoriaMetrics {
    pub async fn start(dir: &Path) -> Self {
        Self::start_on(dir, free_port()).await
    }

    /// [`VictoriaMetrics::start`] on a given port (a destination configured before the server runs).
    pub async fn start_on(dir: &Path, port: u16) -> Self {
        let bin = require_binary("victoria-metrics");
        let args = vec![
            format!("-storageDataPath={}", dir.join("vm-data").display()),
            format!("-httpListenAddr=127.0.0.1:{port}"),
            // Make fresh samples queryable at once instead of after the default 30 s.
            "-search.latencyOffset=0s".into(),
            "-search.disableCache".into(),
        ];
        let proc = Proc::spawn("victoria-metrics", &bin, &args, dir);
        let vm = Self { proc, port };
        let health = format!("http://127.0.0.1:{port}/health");
        wait_for("victoria-metrics /health", Duration::from_secs(30), || {
            let u = health.clone();
            async move { get(&u).await.ok().filter(|r| r.status == 200).map(|_| ()) }
        })
        .await;
        vm
    }

    pub fn write_url(&self) -> String {
        format!("http://127.0.0.1:{}/api/v1/write", self.port)
    }

    /// Rows VictoriaMetrics has inserted from remote write.
    pub async fn rows_inserted(&self) -> f64 {
        let r = get(&format!("http://127.0.0.1:{}/metrics", self.port)).await.map(|r| r.text()).unwrap_or_default();
        metric_sum(&r, "vm_rows_inserted_total", &["type=\"promremotewrite\""])
    }

    /// Every raw sample of every series matching `selector`, keyed by the series' labels.
    pub async fn export(&self, selector: &str) -> BTreeMap<BTreeMap<String, String>, Vec<(i64, f64)>> {
        let url = format!("http://127.0.0.1:{}/api/v1/export?match[]={}", self.port, urlencode(selector));
        let text = get(&url).await.expect("export").text();
        let mut out: BTreeMap<BTreeMap<String, String>, Vec<(i64, f64)>> = BTreeMap::new();
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let v: serde_json::Value = serde_json::from_str(line).expect("export line is JSON");
            let labels: BTreeMap<String, String> = v["metric"]
                .as_object()
                .map(|m| m.iter().map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_owned())).collect())
                .unwrap_or_default();
            let ts = v["timestamps"].as_array().cloned().unwrap_or_default();
            let vals = v["values"].as_array().cloned().unwrap_or_default();
            let entry = out.entry(labels).or_default();
            for (t, val) in ts.iter().zip(vals.iter()) {
                let value = match val {
                    serde_json::Value::Number(n) => n.as_f64().unwrap_or(f64::NAN),
                    serde_json::Value::String(s) => s.parse().unwrap_or(f64::NAN),
                    _ => f64::NAN,
                };
                entry.push((t.as_i64().unwrap_or(0), value));
            }
            entry.sort_by_key(|(t, _)| *t);
        }
        out
    }
}

pub fn urlencode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A running `vigil serve`.
pub struct Vigil {
    pub proc: Proc,
    pub http_port: u16,
    pub grpc_port: u16,
}

impl Vigil {
    pub async fn start(dir: &Path, extra: &[String]) -> Self {
        Self::start_as("vigil", dir, extra).await
    }

    /// [`Vigil::start`] with its own log file name (`{name}.log`), for restarts in one directory.
    pub async fn start_as(name: &str, dir: &Path, extra: &[String]) -> Self {
        let http_port = free_port();
        let grpc_port = free_port();
        let mut args = vec![
            "serve".to_string(),
            "--http-listen".into(),
            format!("127.0.0.1:{http_port}"),
            "--grpc-listen".into(),
            format!("127.0.0.1:{grpc_port}"),
            "--data-dir".into(),
            dir.join("vigil-data").display().to_string(),
        ];
        args.extend_from_slice(extra);
        let proc = Proc::spawn(name, Path::new(env!("CARGO_BIN_EXE_vigil")), &args, dir);
        let v = Self { proc, http_port, grpc_port };
        let ready = v.url("/health/ready");
        wait_for("vigil /health/ready", Duration::from_secs(30), || {
            let u = ready.clone();
            async move { get(&u).await.ok().filter(|r| r.status == 200).map(|_| ()) }
        })
        .await;
        v
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.http_port)
    }

    pub async fn metrics(&self) -> String {
        get(&self.url("/metrics")).await.map(|r| r.text()).unwrap_or_default()
    }

    /// Waits until everything Vigil accepted has been delivered to its forwarders.
    /// `destinations` is the number of forwarder URLs (each gets every sample).
    pub async fn wait_forwarded(&self, timeout: Duration, destinations: usize) -> f64 {
        wait_for("vigil to forward everything it accepted", timeout, || async {
            let m = self.metrics().await;
            let accepted = metric_sum(&m, "vigil_ingest_samples_total", &[]);
            let forwarded = metric_sum(&m, "vigil_forward_samples_total", &[]);
            (accepted > 0.0 && accepted * destinations as f64 == forwarded).then_some(accepted)
        })
        .await
    }
}
