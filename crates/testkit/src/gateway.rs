//! The real `portcullis` binary as a child process, with its standard
//! output (access log, security events) and standard error (diagnostics)
//! collected line by line.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

type Lines = Arc<Mutex<Vec<String>>>;

pub struct GatewayProcess {
    child: Child,
    dir: tempfile::TempDir,
    stdout: Lines,
    stderr: Lines,
    listeners: HashMap<String, SocketAddr>,
    admin: Option<SocketAddr>,
}

/// Polls `cond` every 20ms until it holds or `timeout` passes.
pub fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn collect(reader: impl std::io::Read + Send + 'static, lines: Lines) {
    std::thread::spawn(move || {
        for line in BufReader::new(reader).lines() {
            let Ok(line) = line else { break };
            lines.lock().unwrap().push(line);
        }
    });
}

impl GatewayProcess {
    /// Writes `files` and the config into a fresh directory, starts
    /// `portcullis run`, and waits until it reports it is ready; panics with
    /// the gateway's standard error if it does not get ready.
    pub fn start(bin: &Path, config: &str, files: &[(&str, &[u8])]) -> GatewayProcess {
        let dir = tempfile::tempdir().unwrap();
        for (name, contents) in files {
            std::fs::write(dir.path().join(name), contents).unwrap();
        }
        let config_path = dir.path().join("portcullis.yaml");
        std::fs::write(&config_path, config).unwrap();
        let mut child = Command::new(bin)
            .arg("run")
            .arg("--config")
            .arg(&config_path)
            .env("PORTCULLIS_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout: Lines = Arc::default();
        let stderr: Lines = Arc::default();
        collect(child.stdout.take().unwrap(), stdout.clone());
        collect(child.stderr.take().unwrap(), stderr.clone());
        let mut gw = GatewayProcess {
            child,
            dir,
            stdout,
            stderr,
            listeners: HashMap::new(),
            admin: None,
        };
        let ready = wait_until(Duration::from_secs(15), || {
            gw.stderr_contains("gateway ready") || gw.child.try_wait().ok().flatten().is_some()
        });
        if !ready || !gw.stderr_contains("gateway ready") {
            panic!(
                "the gateway did not get ready; stderr:\n{}",
                gw.stderr_text()
            );
        }
        for line in gw.stderr_json() {
            let (Some(name), Some(addr)) = (line["listener"].as_str(), line["address"].as_str())
            else {
                continue;
            };
            let Ok(addr) = addr.parse() else { continue };
            if name == "admin" {
                gw.admin = Some(addr);
            } else {
                gw.listeners.insert(name.to_owned(), addr);
            }
        }
        gw
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("portcullis.yaml")
    }

    /// Replaces the config file in one step (write aside, then rename), as
    /// deployment tools do.
    pub fn replace_config(&self, config: &str) {
        let tmp = self.dir.path().join(".portcullis.yaml.tmp");
        std::fs::write(&tmp, config).unwrap();
        std::fs::rename(tmp, self.config_path()).unwrap();
    }

    pub fn addr(&self, listener: &str) -> SocketAddr {
        *self
            .listeners
            .get(listener)
            .unwrap_or_else(|| panic!("no listener {listener}; have {:?}", self.listeners))
    }

    /// Listener addresses reported since start (reloads add new ones).
    pub fn refresh_addresses(&mut self) {
        for line in self.stderr_json() {
            if let (Some(name), Some(addr)) = (line["listener"].as_str(), line["address"].as_str())
                && let (Ok(a), true) = (addr.parse(), name != "admin")
            {
                self.listeners.insert(name.to_owned(), a);
            }
        }
    }

    pub fn url(&self, listener: &str, path: &str) -> String {
        format!("http://{}{path}", self.addr(listener))
    }

    pub fn admin_addr(&self) -> SocketAddr {
        self.admin.expect("no admin listener")
    }

    pub fn admin_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.admin_addr())
    }

    /// The admin listener's Prometheus page.
    pub async fn metrics(&self) -> String {
        crate::fetch_text(&self.admin_url("/metrics")).await
    }

    pub fn stdout_lines(&self) -> Vec<String> {
        self.stdout.lock().unwrap().clone()
    }

    pub fn stderr_text(&self) -> String {
        self.stderr.lock().unwrap().join("\n")
    }

    pub fn stderr_contains(&self, needle: &str) -> bool {
        self.stderr
            .lock()
            .unwrap()
            .iter()
            .any(|l| l.contains(needle))
    }

    pub fn stderr_json(&self) -> Vec<Value> {
        self.stderr
            .lock()
            .unwrap()
            .iter()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    fn stdout_of_type(&self, kind: &str) -> Vec<Value> {
        self.stdout
            .lock()
            .unwrap()
            .iter()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|v| v["type"] == kind)
            .collect()
    }

    /// Access log lines so far.
    pub fn access_log(&self) -> Vec<Value> {
        self.stdout_of_type("access")
    }

    /// Security events so far.
    pub fn security_events(&self) -> Vec<Value> {
        self.stdout_of_type("security")
    }

    /// Waits until the access log satisfies `cond`, then returns it.
    pub fn access_log_when(&self, cond: impl Fn(&[Value]) -> bool) -> Vec<Value> {
        let mut lines = Vec::new();
        wait_until(Duration::from_secs(5), || {
            lines = self.access_log();
            cond(&lines)
        });
        lines
    }

    /// Waits for an access log line for the request with this id.
    pub fn access_entry(&self, request_id: &str) -> Value {
        let mut found = None;
        wait_until(Duration::from_secs(5), || {
            found = self
                .access_log()
                .into_iter()
                .find(|l| l["request_id"] == request_id);
            found.is_some()
        });
        found.unwrap_or_else(|| panic!("no access log line for {request_id}"))
    }

    /// Waits for a security event matching `pred`.
    pub fn wait_for_event(&self, pred: impl Fn(&Value) -> bool) -> Value {
        let mut found = None;
        wait_until(Duration::from_secs(5), || {
            found = self.security_events().into_iter().find(|e| pred(e));
            found.is_some()
        });
        found.unwrap_or_else(|| panic!("no such security event; have {:?}", self.security_events()))
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends a signal by name (HUP, TERM, INT).
    pub fn signal(&self, sig: &str) {
        let status = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.pid().to_string())
            .status()
            .unwrap();
        assert!(status.success());
    }

    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let mut status = None;
        wait_until(timeout, || {
            status = self.child.try_wait().ok().flatten();
            status.is_some()
        });
        status
    }
}

impl Drop for GatewayProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
