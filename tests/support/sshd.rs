//! A real OpenSSH server for tests: `/usr/sbin/sshd -D -e` with its own
//! config, host key and authorized_keys in a temporary folder, killed when
//! the [`Sshd`] is dropped. Needs root (sshd's privilege separation) and the
//! `openssh-server` package.
//!
//! ```ignore
//! let dir = tempfile::tempdir()?;
//! let key = keygen(&dir.path().join("id_ed25519"), KeyKind::Ed25519);
//! let sshd = Sshd::builder().authorize(&key).start();
//! // ssh root@127.0.0.1 -p sshd.port -i key
//! ```
//!
//! In a network namespace: `.wrap(["ip", "netns", "exec", NS])`,
//! `.listen(lab_ip)` and `.port(22)`. Readiness is read from sshd's own log
//! ("Server listening on"), so it works where the test cannot connect.

use std::fs;
use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

const SSHD: &str = "/usr/sbin/sshd";
const STARTUP_LIMIT: Duration = Duration::from_secs(10);

/// True when running as root; otherwise prints why `test` is skipped.
pub fn root_or_skip(test: &str) -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let root = unsafe { libc::geteuid() } == 0;
    root || super::skip(test, "needs root to run a real sshd (privilege separation)")
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    Ed25519,
    Rsa,
}

impl KeyKind {
    fn keygen_type(self) -> &'static str {
        match self {
            KeyKind::Ed25519 => "ed25519",
            KeyKind::Rsa => "rsa",
        }
    }
}

/// Generates a key pair without passphrase at `path` (+ `path.pub`) with
/// `ssh-keygen`; returns `path`.
pub fn keygen(path: &Path, kind: KeyKind) -> PathBuf {
    let mut command = Command::new("ssh-keygen");
    command.args([
        "-q",
        "-t",
        kind.keygen_type(),
        "-N",
        "",
        "-C",
        "labctl-test",
        "-f",
    ]);
    command.arg(path);
    if kind == KeyKind::Rsa {
        command.args(["-b", "3072"]);
    }
    let output = command
        .stdin(Stdio::null())
        .output()
        .expect("run ssh-keygen");
    assert!(
        output.status.success(),
        "ssh-keygen for {} failed: {}",
        path.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    path.to_path_buf()
}

/// The public half ssh-keygen wrote next to the private key `key`.
pub fn public_key_path(key: &Path) -> PathBuf {
    let mut path = key.as_os_str().to_owned();
    path.push(".pub");
    PathBuf::from(path)
}

/// The fingerprint `ssh-keygen -l -f KEY.pub` prints (`SHA256:...`) for
/// the private key `key`.
pub fn fingerprint_of(key: &Path) -> String {
    let output = Command::new("ssh-keygen")
        .arg("-l")
        .arg("-f")
        .arg(public_key_path(key))
        .output()
        .expect("run ssh-keygen -l");
    assert!(output.status.success(), "ssh-keygen -l: {output:?}");
    let text = String::from_utf8_lossy(&output.stdout);
    text.split_whitespace()
        .nth(1)
        .expect("a fingerprint")
        .to_string()
}

/// `TYPE BASE64` of the private key `key`'s public half (no comment).
pub fn public_line(key: &Path) -> String {
    let text = fs::read_to_string(public_key_path(key)).expect("read a public key");
    text.split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" ")
}

/// A server for `test` with a fresh client key of `kind` it accepts, and
/// a labctl endpoint for it whose known_hosts is nested in the returned
/// folder (connect must create its folders); `None` where `test` cannot
/// run (see [`root_or_skip`]).
pub fn with_client(
    test: &str,
    kind: KeyKind,
) -> Option<(Sshd, labctl::ssh::Endpoint, tempfile::TempDir)> {
    if !root_or_skip(test) {
        return None;
    }
    let dir = tempfile::tempdir().expect("temporary folder");
    let key = keygen(&dir.path().join("client_key"), kind);
    let sshd = Sshd::builder().authorize(&key).start();
    let endpoint = labctl::ssh::Endpoint {
        node: format!("node-{test}"),
        host: "127.0.0.1".into(),
        port: sshd.port,
        user: "root".into(),
        key,
        known_hosts: dir.path().join("state/lab/known_hosts"),
    };
    Some((sshd, endpoint, dir))
}

/// A TCP port on 127.0.0.1 that nothing listens on right now.
pub fn free_port() -> u16 {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind an ephemeral port");
    listener.local_addr().expect("ephemeral port").port()
}

pub struct SshdBuilder {
    listen: IpAddr,
    port: Option<u16>,
    host_key_kind: KeyKind,
    authorized: Vec<PathBuf>,
    wrap: Vec<String>,
    config: Vec<String>,
}

impl SshdBuilder {
    /// Address to listen on (default 127.0.0.1).
    pub fn listen(mut self, address: IpAddr) -> Self {
        self.listen = address;
        self
    }
    /// Fixed port (default: a free ephemeral port on 127.0.0.1).
    pub fn port(mut self, port: u16) -> Self {
        self.port = Some(port);
        self
    }
    /// Type of the freshly generated host key (default ed25519).
    pub fn host_key(mut self, kind: KeyKind) -> Self {
        self.host_key_kind = kind;
        self
    }
    /// Allows the private key at `key` (its `.pub` is read) to log in.
    pub fn authorize(mut self, key: &Path) -> Self {
        self.authorized.push(key.to_path_buf());
        self
    }
    /// Runs sshd through a prefix command, e.g. `ip netns exec NS`.
    pub fn wrap<S: Into<String>>(mut self, prefix: impl IntoIterator<Item = S>) -> Self {
        self.wrap = prefix.into_iter().map(Into::into).collect();
        self
    }
    /// Adds a line to sshd_config.
    pub fn config(mut self, line: &str) -> Self {
        self.config.push(line.to_string());
        self
    }

    /// Starts sshd and waits until it listens; panics with its log if not.
    pub fn start(self) -> Sshd {
        // sshd refuses to start without its privilege separation folder.
        fs::create_dir_all("/run/sshd").expect("create /run/sshd");
        let dir = tempfile::tempdir().expect("temporary folder for sshd");
        let host_key = keygen(&dir.path().join("ssh_host_key"), self.host_key_kind);
        let authorized_keys = dir.path().join("authorized_keys");
        let mut keys = String::new();
        for key in &self.authorized {
            keys += &fs::read_to_string(public_key_path(key)).expect("read a public key");
        }
        fs::write(&authorized_keys, keys).expect("write authorized_keys");

        // An ephemeral port can be taken between free_port() and sshd's
        // bind: try a few.
        let tries = if self.port.is_some() { 1 } else { 5 };
        let mut last_log = String::new();
        for _ in 0..tries {
            let port = self.port.unwrap_or_else(free_port);
            match self.spawn(dir.path(), &host_key, &authorized_keys, port) {
                Ok((child, log)) => {
                    return Sshd {
                        listen: self.listen,
                        port,
                        host_key,
                        authorized_keys,
                        child,
                        log,
                        dir,
                    }
                }
                Err(log) => last_log = log,
            }
        }
        panic!("sshd did not start; its log:\n{last_log}");
    }

    fn spawn(
        &self,
        dir: &Path,
        host_key: &Path,
        authorized_keys: &Path,
        port: u16,
    ) -> Result<(Child, PathBuf), String> {
        let config_path = dir.join("sshd_config");
        let mut config = format!(
            "Port {port}\nListenAddress {listen}\nHostKey {host_key}\n\
             PidFile {dir}/sshd.pid\nAuthorizedKeysFile {authorized_keys}\n\
             UsePAM no\nStrictModes no\nPermitRootLogin prohibit-password\n\
             PubkeyAuthentication yes\nPasswordAuthentication no\n\
             KbdInteractiveAuthentication no\nSubsystem sftp internal-sftp\n\
             MaxStartups 100\nMaxSessions 100\nLogLevel INFO\n",
            listen = self.listen,
            host_key = host_key.display(),
            dir = dir.display(),
            authorized_keys = authorized_keys.display(),
        );
        for line in &self.config {
            config += line;
            config.push('\n');
        }
        fs::write(&config_path, config).map_err(|e| format!("write sshd_config: {e}"))?;

        let log = dir.join(format!("sshd-{port}.log"));
        let log_file = fs::File::create(&log).map_err(|e| format!("create sshd log: {e}"))?;
        let mut command = match self.wrap.split_first() {
            Some((program, args)) => {
                let mut c = Command::new(program);
                c.args(args).arg(SSHD);
                c
            }
            None => Command::new(SSHD),
        };
        command.arg("-D").arg("-e").arg("-f").arg(&config_path);
        command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log_file);
        let mut child = command
            .spawn()
            .map_err(|e| format!("cannot run {SSHD}: {e}"))?;

        let started = Instant::now();
        loop {
            let text = fs::read_to_string(&log).unwrap_or_default();
            if text.contains("Server listening on") {
                return Ok((child, log));
            }
            let exited = child.try_wait().ok().flatten();
            if exited.is_some() || started.elapsed() > STARTUP_LIMIT {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("(exit {exited:?})\n{text}"));
            }
            thread::sleep(Duration::from_millis(20));
        }
    }
}

/// A running sshd; killed (with everything in its folder removed) on drop.
pub struct Sshd {
    pub listen: IpAddr,
    pub port: u16,
    /// The server's private host key (its public half at `.pub`).
    pub host_key: PathBuf,
    pub authorized_keys: PathBuf,
    child: Child,
    log: PathBuf,
    dir: tempfile::TempDir,
}

impl Sshd {
    pub fn builder() -> SshdBuilder {
        SshdBuilder {
            listen: IpAddr::V4(Ipv4Addr::LOCALHOST),
            port: None,
            host_key_kind: KeyKind::Ed25519,
            authorized: Vec::new(),
            wrap: Vec::new(),
            config: Vec::new(),
        }
    }

    /// Allows one more client key (its `.pub`) to log in.
    pub fn authorize(&self, key: &Path) {
        let public = fs::read_to_string(public_key_path(key)).expect("read a public key");
        let mut file = fs::OpenOptions::new()
            .append(true)
            .open(&self.authorized_keys)
            .expect("open authorized_keys");
        file.write_all(public.as_bytes())
            .expect("append to authorized_keys");
    }

    /// What sshd logged so far (useful in assertion messages).
    pub fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The server's temporary folder.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
