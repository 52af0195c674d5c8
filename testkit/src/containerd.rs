//! The private containerd the integration tests run against (`tests/engines.sh start` or
//! `tests/engines.sh containerd-start`).

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

/// Where `tests/engines.sh` puts the private containerd's socket.
pub const WELL_KNOWN_SOCK: &str = "/tmp/vigil-engines/containerd/containerd.sock";
/// The busybox image `tests/engines.sh` imports into `k8s.io`.
pub const DEFAULT_IMAGE: &str = "docker.io/vigil-test/busybox:latest";
const HOW: &str = "start it with `tests/engines.sh containerd-start` (as root; it installs \
                   containerd, runc and busybox-static from Debian, starts a private containerd \
                   and imports a busybox image into the k8s.io namespace)";

/// The private containerd, driven with `ctr` in the `k8s.io` namespace.
#[derive(Debug, Clone)]
pub struct Containerd {
    /// Its socket.
    pub sock: String,
    /// An image that exists in `k8s.io`.
    pub image: String,
    /// The snapshotter the kernel allows (`overlayfs`, else what `tests/engines.sh` found).
    pub snapshotter: String,
}

impl Containerd {
    /// Finds the private containerd (`VIGIL_TEST_CONTAINERD_SOCK`, else the well-known
    /// socket) or fails the test with a message saying how to start it.
    pub fn find() -> Containerd {
        let sock =
            std::env::var("VIGIL_TEST_CONTAINERD_SOCK").unwrap_or_else(|_| WELL_KNOWN_SOCK.into());
        let image =
            std::env::var("VIGIL_TEST_CONTAINERD_IMAGE").unwrap_or_else(|_| DEFAULT_IMAGE.into());
        assert!(Path::new(&sock).exists(), "no containerd at {sock}: {HOW}");
        // The engines script probes which snapshotter the kernel allows and records it.
        let snapshotter = Path::new(&sock)
            .parent()
            .map(|d| d.join("snapshotter"))
            .and_then(|f| std::fs::read_to_string(f).ok())
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "overlayfs".into());
        let c = Containerd {
            sock,
            image,
            snapshotter,
        };
        let version = c.try_ctr(&["version"]);
        assert!(
            version.is_ok(),
            "containerd at {} does not answer ({}): {HOW}",
            c.sock,
            version.unwrap_err()
        );
        let images = c.ctr(&["images", "ls", "-q"]);
        assert!(
            images.lines().any(|l| l == c.image),
            "the test image {} is missing from namespace k8s.io: {HOW}",
            c.image
        );
        c
    }

    /// `ctr` with the socket and namespace set.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new("ctr");
        cmd.args(["-a", &self.sock, "-n", "k8s.io"]).args(args);
        cmd
    }

    /// Runs `ctr`: its output, or its error message.
    pub fn try_ctr(&self, args: &[&str]) -> Result<String, String> {
        let out = self
            .command(args)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("cannot run ctr ({e}); install containerd"))?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).trim().to_owned())
        }
    }

    /// Runs `ctr`, failing the test when it fails.
    pub fn ctr(&self, args: &[&str]) -> String {
        self.try_ctr(args)
            .unwrap_or_else(|e| panic!("ctr {}: {e}", args.join(" ")))
    }

    /// Removes a container and its task, whatever state they are in.
    pub fn remove(&self, id: &str) {
        let _ = self.try_ctr(&["tasks", "kill", "-s", "KILL", id]);
        for _ in 0..50 {
            if self.try_ctr(&["tasks", "rm", "-f", id]).is_ok()
                || self
                    .try_ctr(&["tasks", "ls", "-q"])
                    .is_ok_and(|l| !l.lines().any(|t| t == id))
            {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.try_ctr(&["containers", "rm", id]);
    }
}
