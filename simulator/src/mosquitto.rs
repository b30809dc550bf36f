//! A real Mosquitto broker for tests: starts the system `mosquitto` with a generated configuration in a
//! private temporary directory on a free `127.0.0.1` port, and kills it (and reaps it) on [`Mosquitto::stop`] or drop.
//!
//! Options cover what the bridge must be tested against: anonymous access or a password file, a TLS listener
//! (certificates from [`crate::tls`]), optional client certificates, the queue and inflight limits, and a
//! verbose packet log. Persistence is always off, so [`Mosquitto::restart`] on the same port models a broker
//! crash that loses every session. The broker's log goes to a file ([`Mosquitto::log`]) for diagnosis.
//!
//! Mosquitto's defaults lose acknowledged messages in a test bench (it drops messages for a subscriber
//! whose queue exceeds `max_queued_messages`, default 1000), so [`MosquittoBuilder`] raises that limit to
//! [`DEFAULT_MAX_QUEUED_MESSAGES`]. Its incoming QoS 2 window is `max_inflight_messages` (default 20):
//! publishers must keep their QoS 2 window at or below it (see docs/compatibility.md).
//!
//! Starting blocks the calling thread until the broker accepts connections (bounded by [`READY_TIMEOUT`]).

use std::fmt::Write as _;
use std::fs;
use std::io;
use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::tls::CertAndKey;

/// How long a start may take before it fails with [`MosquittoError::NotReady`].
pub const READY_TIMEOUT: Duration = Duration::from_secs(10);

/// The test default for `max_queued_messages` (Mosquitto's own default of 1000 drops acknowledged messages).
pub const DEFAULT_MAX_QUEUED_MESSAGES: u32 = 1_000_000;

/// Mosquitto's default `max_inflight_messages`, which also bounds a publisher's useful QoS 2 window.
pub const DEFAULT_MAX_INFLIGHT_MESSAGES: u16 = 20;

const INSTALL_HINT: &str =
    "install it with `apt-get install mosquitto mosquitto-clients` (or run ci/setup.sh)";

/// Why a test broker could not be prepared, started or stopped.
#[derive(Debug, thiserror::Error)]
pub enum MosquittoError {
    /// The `mosquitto` (or `mosquitto_passwd`) program is not on this machine.
    #[error("`{program}` not found (looked in PATH, /usr/sbin, /usr/local/sbin): {INSTALL_HINT}")]
    NotInstalled { program: &'static str },
    /// A file of the broker's private directory could not be written or read.
    #[error("mosquitto test broker: cannot {what}: {source}")]
    Io {
        what: String,
        #[source]
        source: io::Error,
    },
    /// `mosquitto_passwd` refused to write the password file.
    #[error("mosquitto_passwd failed for user `{user}` ({status}): {stderr}")]
    Passwd {
        user: String,
        status: ExitStatus,
        stderr: String,
    },
    /// The broker exited while starting (a bad configuration or a port already taken).
    #[error("mosquitto exited while starting on 127.0.0.1:{port} ({status}); its output:\n{output}")]
    Exited {
        port: u16,
        status: ExitStatus,
        output: String,
    },
    /// The broker kept running but did not accept connections in time.
    #[error("mosquitto did not accept connections on 127.0.0.1:{port} within {READY_TIMEOUT:?}; its output:\n{output}")]
    NotReady { port: u16, output: String },
    /// Generating test certificates failed.
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
}

fn io_err(what: impl Into<String>) -> impl FnOnce(io::Error) -> MosquittoError {
    let what = what.into();
    move |source| MosquittoError::Io { what, source }
}

/// Who may connect.
#[derive(Clone, Default)]
pub enum Auth {
    /// Any client, no credentials (`allow_anonymous true`).
    #[default]
    Anonymous,
    /// Only these `(user, password)` pairs, from a password file written by `mosquitto_passwd`.
    Passwords(Vec<(String, String)>),
}

impl std::fmt::Debug for Auth {
    // Passwords stay out of logs and assertion messages.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Auth::Anonymous => f.write_str("Anonymous"),
            Auth::Passwords(users) => f
                .debug_list()
                .entries(users.iter().map(|(user, _)| format!("{user}:***")))
                .finish(),
        }
    }
}

/// A TLS listener's certificates, PEM encoded.
#[derive(Debug, Clone)]
pub struct TlsListener {
    /// The CA that signed `server` and that client certificates must chain to.
    pub ca_pem: String,
    /// The broker's certificate and key.
    pub server: CertAndKey,
    /// Refuse clients without a certificate signed by `ca_pem`.
    pub require_client_cert: bool,
}

/// The broker's configuration; build it with [`Mosquitto::builder`].
#[derive(Debug, Clone)]
pub struct MosquittoBuilder {
    auth: Auth,
    tls: Option<TlsListener>,
    max_queued_messages: u32,
    max_inflight_messages: u16,
    verbose_log: bool,
    tcp_nodelay: bool,
}

impl Default for MosquittoBuilder {
    fn default() -> Self {
        Self {
            auth: Auth::Anonymous,
            tls: None,
            max_queued_messages: DEFAULT_MAX_QUEUED_MESSAGES,
            max_inflight_messages: DEFAULT_MAX_INFLIGHT_MESSAGES,
            verbose_log: false,
            tcp_nodelay: false,
        }
    }
}

impl MosquittoBuilder {
    /// Require one of these `(user, password)` pairs; anonymous clients are refused.
    pub fn passwords<U: Into<String>, P: Into<String>>(
        mut self,
        users: impl IntoIterator<Item = (U, P)>,
    ) -> Self {
        self.auth = Auth::Passwords(users.into_iter().map(|(u, p)| (u.into(), p.into())).collect());
        self
    }

    /// Serve TLS instead of plain TCP.
    pub fn tls(mut self, tls: TlsListener) -> Self {
        self.tls = Some(tls);
        self
    }

    /// Messages queued per client beyond the inflight window before Mosquitto drops them.
    pub fn max_queued_messages(mut self, n: u32) -> Self {
        self.max_queued_messages = n;
        self
    }

    /// Mosquitto's per-client QoS 1/2 window (0 = unlimited).
    pub fn max_inflight_messages(mut self, n: u16) -> Self {
        self.max_inflight_messages = n;
        self
    }

    /// Log every packet (`log_type all`): shows each client's protocol version, costs speed.
    pub fn verbose_log(mut self, on: bool) -> Self {
        self.verbose_log = on;
        self
    }

    /// Sets TCP_NODELAY on client sockets (`set_tcp_nodelay`): lower latency for QoS 2 handshakes.
    pub fn tcp_nodelay(mut self, on: bool) -> Self {
        self.tcp_nodelay = on;
        self
    }

    /// Writes the configuration and starts the broker; returns once it accepts connections.
    pub fn start(self) -> Result<Mosquitto, MosquittoError> {
        let program = find_program("mosquitto")?;
        let dir = tempfile::Builder::new()
            .prefix("mosquitto-test-")
            .tempdir()
            .map_err(io_err("create a temporary directory"))?;
        let mut broker = Mosquitto {
            program,
            dir,
            port: 0,
            child: None,
            builder: self,
        };
        broker.write_files()?;
        // A free port can be taken between probing it and Mosquitto binding it: try a few.
        let mut attempts = 0;
        loop {
            broker.port = crate::net::free_port()
                .map_err(io_err("find a free port"))?
                .port();
            attempts += 1;
            match broker.spawn_and_wait() {
                Err(MosquittoError::Exited { output, .. })
                    if attempts < 3 && output.contains("Address already in use") => {}
                result => return result.map(|()| broker),
            }
        }
    }
}

/// A running (or stopped, restartable) Mosquitto process with its private directory.
#[derive(Debug)]
pub struct Mosquitto {
    program: PathBuf,
    dir: tempfile::TempDir,
    port: u16,
    child: Option<Child>,
    builder: MosquittoBuilder,
}

impl Mosquitto {
    /// Options for a broker; [`MosquittoBuilder::start`] starts it.
    pub fn builder() -> MosquittoBuilder {
        MosquittoBuilder::default()
    }

    /// An anonymous plain-TCP broker with the test defaults.
    pub fn start() -> Result<Self, MosquittoError> {
        Self::builder().start()
    }

    /// The host to connect to (the listener binds loopback only).
    pub fn host(&self) -> &'static str {
        "127.0.0.1"
    }

    /// The listener's port; it stays the same across [`Mosquitto::restart`].
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The listener's address.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// `mqtt://127.0.0.1:PORT`, or `mqtts://` for a TLS listener.
    pub fn url(&self) -> String {
        let scheme = if self.builder.tls.is_some() {
            "mqtts"
        } else {
            "mqtt"
        };
        format!("{scheme}://127.0.0.1:{}", self.port)
    }

    /// The broker's log file.
    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("mosquitto.log")
    }

    /// Everything the broker logged so far (its log file, then anything it wrote to stdout/stderr).
    pub fn log(&self) -> String {
        let mut text = fs::read_to_string(self.log_path()).unwrap_or_default();
        let output = fs::read_to_string(self.output_path()).unwrap_or_default();
        if !output.is_empty() {
            let _ = write!(text, "--- stdout/stderr ---\n{output}");
        }
        text
    }

    /// Whether the process is alive.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.as_mut().map(|c| c.try_wait()), Some(Ok(None)))
    }

    /// Kills the broker (SIGKILL: no goodbye to clients, like a crash) and reaps it. Idempotent.
    pub fn stop(&mut self) -> Result<(), MosquittoError> {
        if let Some(mut child) = self.child.take() {
            // kill() fails only if the process already exited; wait() reaps it either way.
            let _ = child.kill();
            child.wait().map_err(io_err("wait for mosquitto to exit"))?;
        }
        Ok(())
    }

    /// Stops the broker if it runs and starts it again on the same port with the same configuration.
    /// With persistence off, every session, subscription and queued message is gone afterwards.
    pub fn restart(&mut self) -> Result<(), MosquittoError> {
        self.stop()?;
        self.spawn_and_wait()
    }

    fn config_path(&self) -> PathBuf {
        self.dir.path().join("mosquitto.conf")
    }

    fn output_path(&self) -> PathBuf {
        self.dir.path().join("mosquitto.out")
    }

    fn write_files(&self) -> Result<(), MosquittoError> {
        let dir = self.dir.path();
        if let Auth::Passwords(users) = &self.builder.auth {
            write_password_file(&dir.join("passwords"), users)?;
        }
        if let Some(tls) = &self.builder.tls {
            write(&dir.join("ca.pem"), &tls.ca_pem)?;
            write(&dir.join("server.pem"), &tls.server.cert_pem)?;
            write(&dir.join("server.key"), &tls.server.key_pem)?;
        }
        Ok(())
    }

    /// The configuration for the current port (rewritten on each start, the port being part of it).
    fn config(&self) -> Result<String, MosquittoError> {
        let dir = self.dir.path();
        let b = &self.builder;
        let mut c = String::new();
        let _ = writeln!(c, "listener {} 127.0.0.1", self.port);
        if let Some(tls) = &b.tls {
            let _ = writeln!(c, "cafile {}", dir.join("ca.pem").display());
            let _ = writeln!(c, "certfile {}", dir.join("server.pem").display());
            let _ = writeln!(c, "keyfile {}", dir.join("server.key").display());
            let _ = writeln!(c, "require_certificate {}", tls.require_client_cert);
        }
        match &b.auth {
            Auth::Anonymous => c.push_str("allow_anonymous true\n"),
            Auth::Passwords(_) => {
                c.push_str("allow_anonymous false\n");
                let _ = writeln!(c, "password_file {}", dir.join("passwords").display());
            }
        }
        c.push_str("persistence false\n");
        let _ = writeln!(c, "set_tcp_nodelay {}", b.tcp_nodelay);
        let _ = writeln!(c, "max_queued_messages {}", b.max_queued_messages);
        let _ = writeln!(c, "max_inflight_messages {}", b.max_inflight_messages);
        let _ = writeln!(c, "log_dest file {}", self.log_path().display());
        if b.verbose_log {
            c.push_str("log_type all\n");
        } else {
            c.push_str("log_type error\nlog_type warning\nlog_type notice\nlog_type information\n");
        }
        c.push_str("connection_messages true\nlog_timestamp_format %H:%M:%S\n");
        // Started as root, Mosquitto switches to the `mosquitto` user, which cannot read our private directory.
        let owner = fs::metadata(dir)
            .map_err(io_err("inspect the temporary directory"))?
            .uid();
        if owner == 0 {
            c.push_str("user root\n");
        }
        Ok(c)
    }

    fn spawn_and_wait(&mut self) -> Result<(), MosquittoError> {
        write(&self.config_path(), &self.config()?)?;
        // The log file survives restarts: only what this process writes after `log_start` counts.
        let log_start = fs::metadata(self.log_path()).map(|m| m.len()).unwrap_or(0);
        let output =
            fs::File::create(self.output_path()).map_err(io_err("create mosquitto's output file"))?;
        let errors = output
            .try_clone()
            .map_err(io_err("share mosquitto's output file"))?;
        let child = Command::new(&self.program)
            .arg("-c")
            .arg(self.config_path())
            .stdin(Stdio::null())
            .stdout(output)
            .stderr(errors)
            .spawn()
            .map_err(io_err(format!("run {}", self.program.display())))?;
        self.child = Some(child);
        match self.wait_ready(log_start) {
            Ok(()) => Ok(()),
            Err(e) => {
                let _ = self.stop();
                Err(e)
            }
        }
    }

    /// Polls until this process logged that it runs (all listeners open) and a TCP connection succeeds,
    /// the process exits, or [`READY_TIMEOUT`] passes. A connection alone proves nothing: another test's
    /// broker may hold the port, ours then exits with "Address already in use" a moment later.
    fn wait_ready(&mut self, log_start: u64) -> Result<(), MosquittoError> {
        let deadline = Instant::now() + READY_TIMEOUT;
        let addr = self.addr();
        loop {
            let child = self.child.as_mut().expect("spawned");
            if let Some(status) = child.try_wait().map_err(io_err("check on mosquitto"))? {
                self.child = None;
                return Err(MosquittoError::Exited {
                    port: self.port,
                    status,
                    output: self.log(),
                });
            }
            if self.logged_running(log_start)
                && TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
            {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(MosquittoError::NotReady {
                    port: self.port,
                    output: self.log(),
                });
            }
            // A refused connect returns at once: pace the poll instead of spinning on a shared CPU.
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Mosquitto {
    /// Whether the log, from byte `log_start` on, holds Mosquitto's "mosquitto version X running" line,
    /// written once every listener is bound.
    fn logged_running(&self, log_start: u64) -> bool {
        let Ok(log) = fs::read(self.log_path()) else {
            return false;
        };
        let fresh = log.get(log_start as usize..).unwrap_or_default();
        String::from_utf8_lossy(fresh)
            .lines()
            .any(|line| line.contains("mosquitto version") && line.ends_with(" running"))
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

fn write(path: &Path, text: &str) -> Result<(), MosquittoError> {
    fs::write(path, text).map_err(io_err(format!("write {}", path.display())))
}

fn write_password_file(path: &Path, users: &[(String, String)]) -> Result<(), MosquittoError> {
    let program = find_program("mosquitto_passwd")?;
    for (i, (user, password)) in users.iter().enumerate() {
        let mut cmd = Command::new(&program);
        if i == 0 {
            cmd.arg("-c");
        }
        let out = cmd
            .arg("-b")
            .arg(path)
            .arg(user)
            .arg(password)
            .stdin(Stdio::null())
            .output()
            .map_err(io_err(format!("run {}", program.display())))?;
        if !out.status.success() {
            return Err(MosquittoError::Passwd {
                user: user.clone(),
                status: out.status,
                stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            });
        }
    }
    Ok(())
}

/// Where [`find_program`] looks instead of PATH and the sbin directories when set: a machine without
/// Mosquitto can be played on one that has it (`SIMULATOR_MOSQUITTO_DIR=/nonexistent`).
pub const DIR_ENV: &str = "SIMULATOR_MOSQUITTO_DIR";

/// Finds `mosquitto` or `mosquitto_passwd` in PATH or the sbin directories (Debian installs `mosquitto` in
/// /usr/sbin, which is not in every user's PATH), or only in `$SIMULATOR_MOSQUITTO_DIR` when that is set.
pub fn find_program(name: &'static str) -> Result<PathBuf, MosquittoError> {
    let dirs: Vec<PathBuf> = match std::env::var_os(DIR_ENV) {
        Some(dir) => vec![PathBuf::from(dir)],
        None => {
            let path = std::env::var_os("PATH").unwrap_or_default();
            std::env::split_paths(&path)
                .chain(["/usr/sbin", "/usr/local/sbin", "/usr/bin", "/usr/local/bin"].map(PathBuf::from))
                .collect()
        }
    };
    dirs.into_iter()
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
        .ok_or(MosquittoError::NotInstalled { program: name })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auth_debug_hides_passwords() {
        let auth = Auth::Passwords(vec![("bridge".into(), "s3cret".into())]);
        let shown = format!("{auth:?}");
        assert!(shown.contains("bridge"));
        assert!(!shown.contains("s3cret"));
    }

    #[test]
    fn missing_program_names_the_install_command() {
        let err = find_program("mosquitto-that-does-not-exist")
            .unwrap_err()
            .to_string();
        assert!(err.contains("apt-get install mosquitto"), "{err}");
    }
}
