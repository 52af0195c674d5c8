//! The private Docker engine the integration tests run against (`tests/engines.sh start`).

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

/// Where `tests/engines.sh` puts the private dockerd's socket.
pub const WELL_KNOWN_HOST: &str = "unix:///tmp/vigil-engines/docker/docker.sock";
/// The busybox image `tests/engines.sh` imports.
pub const DEFAULT_IMAGE: &str = "vigil-test/busybox:latest";

/// Turns at the one engine the tests of a binary share: a test that restarts dockerd
/// holds it alone, the others share it, so no test sees the engine vanish under it.
static ENGINE: RwLock<()> = RwLock::new(());

/// The private engine, with the test's turn at it (held until the value is dropped).
#[derive(Debug)]
pub struct DockerEngine {
    /// `unix://…` address of the daemon.
    pub host: String,
    /// An image that exists in it.
    pub image: String,
    _turn: Turn,
}

/// Never read: held for its `Drop`, which ends the test's turn.
#[derive(Debug)]
#[allow(dead_code)]
enum Turn {
    Shared(RwLockReadGuard<'static, ()>),
    Alone(RwLockWriteGuard<'static, ()>),
}

impl DockerEngine {
    /// Finds the engine (`VIGIL_TEST_DOCKER_HOST`, else the well-known socket) or fails the
    /// test with a message saying how to start it. Waits while a test that restarts the
    /// engine runs; hold the value for the whole test, and do not call this twice at once
    /// in one test.
    pub fn find() -> DockerEngine {
        let turn = Turn::Shared(ENGINE.read().unwrap_or_else(PoisonError::into_inner));
        Self::find_with(turn)
    }

    /// The engine for a test that stops or restarts it: waits until no other test of this
    /// binary uses it, and keeps them waiting until the value is dropped.
    pub fn find_alone() -> DockerEngine {
        let turn = Turn::Alone(ENGINE.write().unwrap_or_else(PoisonError::into_inner));
        Self::find_with(turn)
    }

    fn find_with(turn: Turn) -> DockerEngine {
        let host =
            std::env::var("VIGIL_TEST_DOCKER_HOST").unwrap_or_else(|_| WELL_KNOWN_HOST.into());
        let image =
            std::env::var("VIGIL_TEST_DOCKER_IMAGE").unwrap_or_else(|_| DEFAULT_IMAGE.into());
        let how = "start it with `tests/engines.sh start` (as root; it installs docker.io, \
                   containerd, runc and busybox-static from Debian and starts a private dockerd)";
        let socket = host.strip_prefix("unix://").unwrap_or(&host);
        assert!(
            Path::new(socket).exists(),
            "no Docker engine at {host}: {how}"
        );
        let engine = DockerEngine {
            host,
            image,
            _turn: turn,
        };
        if let Err(e) = engine.try_docker(&["version", "--format", "{{.Server.Version}}"]) {
            panic!(
                "the Docker engine at {} does not answer ({e}): {how}",
                engine.host
            );
        }
        if let Err(e) = engine.try_docker(&["image", "inspect", &engine.image]) {
            panic!("the test image {} is missing ({e}): {how}", engine.image);
        }
        engine
    }

    /// Runs the docker CLI against the engine.
    pub fn try_docker(&self, args: &[&str]) -> Result<String, String> {
        try_docker_at(&self.host, args)
    }

    /// Runs the docker CLI, failing the test on an error.
    pub fn docker(&self, args: &[&str]) -> String {
        self.try_docker(args)
            .unwrap_or_else(|e| panic!("docker {}: {e}", args.join(" ")))
    }
}

/// Runs the docker CLI against the engine at `host`, without a turn: for cleanups that
/// run when the test's [`DockerEngine`] may be gone.
pub fn try_docker_at(host: &str, args: &[&str]) -> Result<String, String> {
    let out = Command::new("docker")
        .args(args)
        .env("DOCKER_HOST", host)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run the docker CLI ({e}); install docker.io"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_owned())
    }
}
