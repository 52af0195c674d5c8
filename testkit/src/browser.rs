//! A real headless Chromium driven through the DevTools protocol (`testkit/browser/driver.py`).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;

const HINT: &str = "the console's browser tests need Debian's chromium and python3 with websocket-client: \
    `apt-get install chromium` and `python3 -m pip install websocket-client` (tests/run.sh installs both)";

/// Runs `steps` (see the driver's documentation) in one tab of a fresh browser and returns
/// one result per step. Panics, naming the step, when a step fails or a component is
/// missing: a browser test never passes without a browser. With `trust_any_certificate`,
/// a server certificate from a test CA is accepted.
pub fn run(steps: &[Value], trust_any_certificate: bool) -> Vec<Value> {
    let check = Command::new("python3")
        .args(["-c", "import websocket"])
        .output()
        .unwrap_or_else(|e| panic!("cannot run python3 ({e}); {HINT}"));
    assert!(
        check.status.success(),
        "websocket-client is missing: {}; {HINT}",
        String::from_utf8_lossy(&check.stderr).trim()
    );
    let chromium = ["chromium", "chromium-browser", "google-chrome"]
        .iter()
        .any(|b| {
            Command::new("sh")
                .args(["-c", &format!("command -v {b}")])
                .output()
                .is_ok_and(|o| o.status.success())
        })
        || std::env::var_os("CHROMIUM").is_some();
    assert!(chromium, "no chromium found; {HINT}");
    let mut cmd = Command::new("python3");
    cmd.arg(driver());
    if trust_any_certificate {
        cmd.arg("--ignore-certificate-errors");
    }
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start the browser driver ({e}); {HINT}"));
    child
        .stdin
        .take()
        .unwrap()
        .write_all(serde_json::to_string(steps).unwrap().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let results: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("driver said {l:?}: {e}")))
        .collect();
    if let Some(err) = results.iter().find_map(|r| r.get("error")) {
        panic!("browser step failed: {err}");
    }
    assert!(
        out.status.success() && results.len() == steps.len(),
        "the browser driver failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    results
}

/// The driver script.
pub fn driver() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("browser/driver.py")
}

/// A screenshot read back from its PNG: its size, and its bytes (a blank page compresses
/// to a few kilobytes, a page of tables to far more).
#[derive(Debug)]
pub struct Shot {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Bytes of the file.
    pub bytes: usize,
}

/// Reads a screenshot's header, checking it is a PNG.
pub fn shot(path: &Path) -> Shot {
    let data = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(
        &data[..8],
        b"\x89PNG\r\n\x1a\n",
        "{} is not a PNG",
        path.display()
    );
    let width = u32::from_be_bytes(data[16..20].try_into().unwrap());
    let height = u32::from_be_bytes(data[20..24].try_into().unwrap());
    Shot {
        width,
        height,
        bytes: data.len(),
    }
}
