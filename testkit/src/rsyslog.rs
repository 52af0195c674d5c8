//! A private rsyslogd for the syslog tests (Debian's rsyslog; the test command installs it).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use vigil_core::event::Event;

use crate::certs::TestPki;

/// How to install what these tests need.
pub const INSTALL_HINT: &str = "run tests/run.sh, which installs them, or \
    `DEBIAN_FRONTEND=noninteractive apt-get install -y rsyslog rsyslog-gnutls`";

/// The rsyslogd binary, or a failure saying how to install it.
pub fn rsyslogd() -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin".into(), "/sbin".into()])
        .map(|d| d.join("rsyslogd"))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "rsyslogd is missing: these tests need rsyslog and rsyslog-gnutls; {INSTALL_HINT}"
            )
        })
}

/// A loopback TCP port free now.
pub fn free_tcp_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A loopback UDP port free now.
pub fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// What the private rsyslogd listens on.
#[derive(Clone, Copy)]
pub enum Listen<'a> {
    Tcp,
    /// TLS requiring a client certificate signed by the test CA.
    Tls(&'a TestPki),
    Udp,
}

/// A private rsyslogd (never the system service) writing the messages of one APP-NAME to
/// `events.log`, one line of `|`-separated fields each, and anything else to `other.log`.
pub struct Rsyslog {
    dir: PathBuf,
    conf: PathBuf,
    /// The port it listens on (TCP or UDP) on 127.0.0.1.
    pub port: u16,
    udp: bool,
    child: Option<Child>,
}

impl Rsyslog {
    /// Starts rsyslogd under `dir/rsyslog`, keeping the messages whose APP-NAME is `app`.
    pub fn start(dir: &Path, listen: Listen<'_>, app: &str) -> Rsyslog {
        let dir = dir.join("rsyslog");
        std::fs::create_dir_all(dir.join("work")).unwrap();
        let udp = matches!(listen, Listen::Udp);
        let port = if udp {
            free_udp_port()
        } else {
            free_tcp_port()
        };
        let d = dir.display();
        let (global_tls, input) = match listen {
            Listen::Tcp => (
                String::new(),
                format!(
                    "module(load=\"imtcp\")\ninput(type=\"imtcp\" address=\"127.0.0.1\" port=\"{port}\")"
                ),
            ),
            Listen::Tls(pki) => (
                format!(
                    " defaultNetstreamDriverCAFile=\"{}\" defaultNetstreamDriverCertFile=\"{}\" defaultNetstreamDriverKeyFile=\"{}\"",
                    pki.ca_cert.display(),
                    pki.server_cert.display(),
                    pki.server_key.display()
                ),
                format!(
                    "module(load=\"imtcp\" streamDriver.name=\"gtls\" streamDriver.mode=\"1\" streamDriver.authMode=\"x509/certvalid\")\n\
                     input(type=\"imtcp\" address=\"127.0.0.1\" port=\"{port}\")"
                ),
            ),
            Listen::Udp => (
                String::new(),
                format!(
                    "module(load=\"imudp\")\ninput(type=\"imudp\" address=\"127.0.0.1\" port=\"{port}\")"
                ),
            ),
        };
        let conf = dir.join("rsyslog.conf");
        std::fs::write(
            &conf,
            format!(
                "global(workDirectory=\"{d}/work\" maxMessageSize=\"64k\"{global_tls})\n\
                 {input}\n\
                 template(name=\"fields\" type=\"string\" string=\"%PRI%|%TIMESTAMP:::date-rfc3339%|%HOSTNAME%|%APP-NAME%|%PROCID%|%MSGID%|%STRUCTURED-DATA%|%msg%\\n\")\n\
                 if $app-name == \"{app}\" then {{\n\
                   action(type=\"omfile\" file=\"{d}/events.log\" template=\"fields\")\n\
                   stop\n\
                 }}\n\
                 action(type=\"omfile\" file=\"{d}/other.log\")\n"
            ),
        )
        .unwrap();
        let mut r = Rsyslog {
            dir,
            conf,
            port,
            udp,
            child: None,
        };
        r.launch();
        r
    }

    /// Starts (again) the rsyslogd process, and waits until it takes messages.
    pub fn launch(&mut self) {
        let log = std::fs::File::create(self.dir.join("rsyslogd.out")).unwrap();
        let child = Command::new(rsyslogd())
            .arg("-n")
            .arg("-f")
            .arg(&self.conf)
            .arg("-i")
            .arg(self.dir.join("rsyslogd.pid"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
        self.wait_ready();
    }

    /// rsyslogd's own output and what it wrote for other APP-NAMEs, for failure messages.
    pub fn diagnostics(&self) -> String {
        let read = |n: &str| std::fs::read_to_string(self.dir.join(n)).unwrap_or_default();
        format!(
            "rsyslogd output:\n{}\nother.log:\n{}",
            read("rsyslogd.out"),
            read("other.log")
        )
    }

    /// Waits until rsyslogd takes messages: a TCP listener that accepts, or for UDP a probe
    /// datagram that reaches its file.
    fn wait_ready(&mut self) {
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        let probe = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        loop {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!(
                    "rsyslogd exited ({status}); if a module is missing, {INSTALL_HINT}\n{}",
                    self.diagnostics()
                );
            }
            let ready = if self.udp {
                let _ = probe.send_to(b"<14>1 - - probe - - - ready", ("127.0.0.1", self.port));
                std::fs::read_to_string(self.dir.join("other.log"))
                    .is_ok_and(|s| s.contains("ready"))
            } else {
                std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok()
            };
            if ready {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "rsyslogd did not start listening on port {}\n{}",
                self.port,
                self.diagnostics()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops rsyslogd as a service manager does (SIGTERM) and waits for it to exit.
    pub fn stop(&mut self) {
        let mut child = self.child.take().unwrap();
        let status = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status()
            .unwrap();
        assert!(status.success());
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while child.try_wait().unwrap().is_none() {
            assert!(
                std::time::Instant::now() < deadline,
                "rsyslogd ignores SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// What it wrote for the kept APP-NAME.
    pub fn lines(&self) -> Vec<Line> {
        std::fs::read_to_string(self.dir.join("events.log"))
            .unwrap_or_default()
            .lines()
            .map(Line::parse)
            .collect()
    }
}

impl Drop for Rsyslog {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// One message as rsyslog parsed it.
#[derive(Debug)]
pub struct Line {
    pub pri: u8,
    pub timestamp: String,
    pub hostname: String,
    pub app_name: String,
    pub procid: String,
    pub msgid: String,
    pub structured_data: String,
    pub msg: String,
}

impl Line {
    /// Parses a line of `events.log`.
    pub fn parse(line: &str) -> Line {
        let f: Vec<&str> = line.splitn(8, '|').collect();
        assert_eq!(f.len(), 8, "unexpected line {line:?}");
        Line {
            pri: f[0].parse().unwrap(),
            timestamp: f[1].into(),
            hostname: f[2].into(),
            app_name: f[3].into(),
            procid: f[4].into(),
            msgid: f[5].into(),
            structured_data: f[6].into(),
            msg: f[7].into(),
        }
    }

    /// The message as a Vigil event.
    pub fn event(&self) -> Event {
        serde_json::from_str(&self.msg).unwrap_or_else(|e| {
            panic!(
                "rsyslog's message is not the event's JSON ({e}): {}",
                self.msg
            )
        })
    }
}
