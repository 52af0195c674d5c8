//! A real SMTP server (aiosmtpd, from PyPI) behind `testkit/smtp/server.py`: STARTTLS and
//! AUTH on demand, every accepted message kept as a JSON file.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// Options of the SMTP server.
#[derive(Default)]
pub struct SmtpOptions<'a> {
    /// Certificate and key: STARTTLS offered and required.
    pub tls: Option<(&'a Path, &'a Path)>,
    /// User and password: AUTH required.
    pub auth: Option<(&'a str, &'a str)>,
}

/// The aiosmtpd server of `testkit/notify/smtp_server.py`.
pub struct SmtpServer {
    pub port: u16,
    out: tempfile::TempDir,
    child: Child,
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("smtp/server.py")
}

/// Fails the test unless python3 with aiosmtpd is there: an email test must not pass
/// without a server.
fn require_aiosmtpd() {
    let ok = Command::new("python3")
        .args(["-c", "import aiosmtpd"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success());
    match ok {
        Ok(true) => {}
        Ok(false) => panic!(
            "the email tests need the Python package aiosmtpd: `pip install aiosmtpd` (python3 is there, the package is not)"
        ),
        Err(e) => panic!(
            "the email tests need python3 with aiosmtpd (`pip install aiosmtpd`): cannot run python3: {e}"
        ),
    }
}

impl SmtpServer {
    pub fn start(opts: SmtpOptions<'_>) -> SmtpServer {
        require_aiosmtpd();
        let out = tempfile::tempdir().unwrap();
        let mut cmd = Command::new("python3");
        cmd.arg(script()).arg("--out-dir").arg(out.path());
        if let Some((cert, key)) = opts.tls {
            cmd.arg("--cert").arg(cert).arg("--key").arg(key);
        }
        if let Some((user, password)) = opts.auth {
            let file = out.path().join(".password");
            std::fs::write(&file, password).unwrap();
            cmd.args(["--user", user]).arg("--password-file").arg(file);
        }
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", script().display()));
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let ready: serde_json::Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("the SMTP server did not start ({e}): {line:?}"));
        SmtpServer {
            port: u16::try_from(ready["port"].as_u64().unwrap()).unwrap(),
            out,
            child,
        }
    }

    /// The messages accepted so far, in order.
    pub fn messages(&self) -> Vec<serde_json::Value> {
        let mut files: Vec<(u64, PathBuf)> = std::fs::read_dir(self.out.path())
            .unwrap()
            .filter_map(|e| {
                let p = e.ok()?.path();
                let n = p.file_stem()?.to_str()?.parse().ok()?;
                (p.extension()? == "json").then_some((n, p))
            })
            .collect();
        files.sort();
        files
            .into_iter()
            .map(|(_, p)| serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap())
            .collect()
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        if let Some(mut stdin) = self.child.stdin.take() {
            let _ = stdin.flush();
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
