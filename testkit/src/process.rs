//! Child processes of tests.

use std::path::Path;
use std::process::{Child, Command, Stdio};

/// A running `vigil-agent run`, killed (SIGKILL) when dropped so a failing test never leaves
/// one behind; dropping it is also how tests crash it on purpose.
#[derive(Debug)]
pub struct AgentProcess(pub Child);

impl AgentProcess {
    /// Starts `binary run --config config`, its log on the test's stderr at `warn`.
    pub fn start(binary: &Path, config: &Path) -> AgentProcess {
        let child = Command::new(binary)
            .args(["run", "--config"])
            .arg(config)
            .env("VIGIL_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        AgentProcess(child)
    }
}

impl AgentProcess {
    /// Stops it as a service manager does (SIGTERM) and fails the test unless it exits
    /// cleanly within 20 s.
    pub fn terminate(mut self) {
        let child = &mut self.0;
        let status = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        loop {
            if let Some(s) = child.try_wait().unwrap() {
                assert!(s.success(), "agent exited with {s}");
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "agent did not stop on SIGTERM"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }
}

impl Drop for AgentProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
