//! kmock (PyPI), an in-memory Kubernetes API server, behind the small shim of
//! `testkit/kmock/shim.py` that stamps what a real API server stamps on writes.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// The fake API server, stopped when dropped.
#[derive(Debug)]
pub struct Kmock {
    child: Child,
    url: String,
}

const HINT: &str = "these tests need python3 with kmock: `python3 -m pip install kmock` (tests/run.sh installs it)";

impl Kmock {
    /// Starts the shim on a free port; panics with an install hint when kmock is missing.
    pub fn start() -> Kmock {
        let check = Command::new("python3")
            .args(["-c", "import kmock"])
            .output()
            .unwrap_or_else(|e| panic!("cannot run python3 ({e}); {HINT}"));
        assert!(
            check.status.success(),
            "kmock is missing: {}; {HINT}",
            String::from_utf8_lossy(&check.stderr).trim()
        );
        let mut child = Command::new("python3")
            .arg(shim())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start the kmock shim ({e}); {HINT}"));
        let mut line = String::new();
        let stdout = child.stdout.take().expect("piped stdout");
        BufReader::new(stdout)
            .read_line(&mut line)
            .unwrap_or_else(|e| panic!("the kmock shim did not start: {e}"));
        let url = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("the kmock shim did not start: {line:?}; {HINT}"))
            .to_owned();
        Kmock { child, url }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// A kubeconfig file pointing at this server, with `namespace` as the default, for a
    /// child process (`KUBECONFIG=...`).
    pub fn write_kubeconfig(&self, path: &Path, namespace: &str) {
        let text = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: kmock\n  cluster: {{server: \"{}\"}}\nusers:\n- name: test\n  user: {{token: test}}\ncontexts:\n- name: kmock\n  context: {{cluster: kmock, user: test, namespace: {namespace}}}\ncurrent-context: kmock\n",
            self.url
        );
        std::fs::write(path, text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    }
}

/// The shim's path.
pub fn shim() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("kmock/shim.py")
}

impl Drop for Kmock {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
