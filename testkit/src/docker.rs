//! The private Docker engine the integration tests run against (`tests/engines.sh start`).

use std::path::Path;
use std::process::{Command, Stdio};

/// Where `tests/engines.sh` puts the private dockerd's socket.
pub const WELL_KNOWN_HOST: &str = "unix:///tmp/vigil-engines/docker/docker.sock";
/// The busybox image `tests/engines.sh` imports.
pub const DEFAULT_IMAGE: &str = "vigil-test/busybox:latest";

/// The private engine.
#[derive(Debug, Clone)]
pub struct DockerEngine {
    /// `unix://…` address of the daemon.
    pub host: String,
    /// An image that exists in it.
    pub image: String,
}

impl DockerEngine {
    /// Finds the engine (`VIGIL_TEST_DOCKER_HOST`, else the well-known socket) or fails the
    /// test with a message saying how to start it.
    pub fn find() -> DockerEngine {
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
        let engine = DockerEngine { host, image };
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
        let out = Command::new("docker")
            .args(args)
            .env("DOCKER_HOST", &self.host)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("cannot run the docker CLI ({e}); install docker.io"))?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).trim().to_owned())
        }
    }

    /// Runs the docker CLI, failing the test on an error.
    pub fn docker(&self, args: &[&str]) -> String {
        self.try_docker(args)
            .unwrap_or_else(|e| panic!("docker {}: {e}", args.join(" ")))
    }
}
