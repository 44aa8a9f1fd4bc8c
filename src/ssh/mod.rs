//! The SSH client every labctl provider ends in.
//!
//! One [`Session`] is one authenticated session with one node: a
//! connection of this process's own, or one the lab's session keeper
//! ([`keeper`]) holds between commands. Nodes are handled in parallel with
//! one `Session` per node, each used from one thread (`std::thread::scope`);
//! `Session` is `Send` for that reason.
//!
//! Rules this module keeps for every provider:
//! - Key authentication only (ed25519 or RSA private key file, no passphrase).
//! - Host keys are pinned in the lab's known_hosts file (OpenSSH format, so
//!   the system `ssh` accepts the same file) only by `up` on first contact;
//!   every connection names its [`HostKeyPolicy`], and an unknown or
//!   changed key is refused with an error that says what to do.
//! - [`Session::connect`] retries while a node boots, until a deadline.
//! - Remote commands are argv vectors: every element is quoted with
//!   [`quote`], so no remote shell string is ever built from unquoted values.
//!   [`Session::run_shell`] is for trusted constant scripts only. The remote
//!   user's login shell reads the command line, so it must be a POSIX shell
//!   (sh, dash, bash, zsh), as on every node labctl targets.
//! - Secrets (tokens, keys) go through stdin or [`Session::upload`], never
//!   through argv: argv appears in error messages and in the remote process
//!   list. The private key itself is only ever named by its path.
//! - Keepalives are sent every [`KEEPALIVE_SECS`] while a command runs, so
//!   long quiet steps (kubeadm init) do not drop. Commands have no timeout
//!   unless [`Session::set_command_timeout`] sets one.

mod exec;
mod host_key;
pub mod keeper;
pub mod keygen;
mod known_hosts;
mod pins;
mod pump;
mod session;

use std::path::PathBuf;
use std::time::Duration;

pub use host_key::{fingerprint, is_host_key_refusal, HostKeyPolicy, NewPin, PinSource};
pub use pins::{forget_node, is_pinned, move_pins, pin_own_key, pin_own_keys, OwnKey};
pub use session::Session;

/// Seconds between keepalive messages while a session waits on a node.
pub const KEEPALIVE_SECS: u32 = 15;

/// Where and how to reach one node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// The node's name in the lab: every error message starts from it.
    pub node: String,
    pub host: String,
    pub port: u16,
    pub user: String,
    /// Private key file (ed25519 or RSA, without passphrase).
    pub key: PathBuf,
    /// The lab's known_hosts file: host keys are pinned here.
    pub known_hosts: PathBuf,
}

impl Endpoint {
    /// `host:port` for messages (`[v6]:port` for IPv6 literals).
    pub fn address(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// What a remote command left behind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output {
    /// Exit status; 128 + N when the command was killed by signal N, like a
    /// shell reports it.
    pub status: i32,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

impl Output {
    pub fn success(&self) -> bool {
        self.status == 0
    }
    /// stdout as text (invalid UTF-8 replaced).
    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }
    /// stderr as text (invalid UTF-8 replaced).
    pub fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }
}

/// Everything that can go wrong talking to a node. Each message is one
/// sentence naming the node. Serializable: the session keeper reports its
/// login failures as these.
#[derive(Debug, thiserror::Error, serde::Serialize, serde::Deserialize)]
pub enum SshError {
    #[error(
        "could not reach node {node} over SSH at {address}: kept trying for {:.1} s \
         ({attempts} attempts); last error: {last_error}{}",
        waited.as_secs_f64(),
        unreachable_hint(last_error)
    )]
    Unreachable {
        node: String,
        address: String,
        waited: Duration,
        attempts: u32,
        last_error: String,
    },

    #[error(
        "refusing node {node} at {address}: its SSH host key {seen} is not the one pinned \
         in {}; {}",
        known_hosts.display(),
        changed_hint(*during_up, address, known_hosts)
    )]
    HostKeyChanged {
        node: String,
        address: String,
        /// Fingerprint and type of the key the node presented.
        seen: String,
        known_hosts: PathBuf,
        /// `up` met it on a machine it did not just create.
        during_up: bool,
    },

    #[error(
        "refusing node {node} at {address}: its SSH host key {seen} is not pinned in {}, \
         and only `labctl up` pins keys; run `labctl up` if the node is new or labctl \
         re-created it, otherwise investigate: this is not a machine labctl has reached",
        known_hosts.display()
    )]
    HostKeyUnknown {
        node: String,
        address: String,
        /// Fingerprint and type of the key the node presented.
        seen: String,
        known_hosts: PathBuf,
    },

    #[error(
        "refusing node {node} at {address}: its SSH host key is {seen}, but {vouched_by} \
         expects {expected}; if the host's key changed on purpose, update {vouched_by}, \
         otherwise investigate: something may be intercepting the connection"
    )]
    HostKeyMismatch {
        node: String,
        address: String,
        /// Fingerprint and type of the key the node presented.
        seen: String,
        expected: String,
        /// Who vouches for `expected`: the lab file, or a known_hosts path.
        vouched_by: String,
    },

    #[error("node {node}: could not {action} the known_hosts file {}: {source}", path.display())]
    KnownHosts {
        node: String,
        action: String,
        path: PathBuf,
        #[serde(with = "io_error_text")]
        source: std::io::Error,
    },

    #[error(
        "node {node} at {address}: the SSH login did not complete: kept trying for {:.1} s \
         ({attempts} attempts; last: {cause}); the node did not refuse the key, it (or \
         this host) is too busy to answer in time",
        waited.as_secs_f64()
    )]
    LoginIncomplete {
        node: String,
        address: String,
        waited: Duration,
        attempts: u32,
        cause: String,
    },

    #[error("node {node} refused SSH login as {user} with the key {}: {cause}", key.display())]
    Auth {
        node: String,
        user: String,
        key: PathBuf,
        cause: String,
    },

    #[error("node {node}: SSH failed while {action}: {cause}")]
    Transport {
        node: String,
        action: String,
        cause: String,
    },

    #[error(
        "command `{command}` on node {node} failed with exit status {status}{}",
        stderr_tail(stderr)
    )]
    Command {
        node: String,
        command: String,
        status: i32,
        stderr: String,
    },

    #[error("node {node}: could not put {path} in place: {problem}")]
    Upload {
        node: String,
        path: String,
        problem: String,
    },

    #[error("node {node}: cannot run `{command}`: {problem}")]
    InvalidCommand {
        node: String,
        command: String,
        problem: String,
    },
}

/// An I/O error travels as its message (its kind stays behind).
mod io_error_text {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(error: &std::io::Error, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&error.to_string())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<std::io::Error, D::Error> {
        String::deserialize(d).map(std::io::Error::other)
    }
}

/// What the last attempt's error means: a timeout (the node is there
/// but too slow), a refused connection (nothing listens), or no route.
fn unreachable_hint(last_error: &str) -> &'static str {
    let e = last_error.to_ascii_lowercase();
    if session::timed_out(&e) {
        " (timed out: the node did not answer in time; it or this host is too busy, or \
         something drops its packets; nothing refused the connection or the key)"
    } else if e.contains("refused") {
        " (connection refused: nothing listens on that port; is the node's sshd running?)"
    } else if e.contains("no route") || e.contains("unreachable") {
        " (no route to the node: check its address and this host's routes)"
    } else {
        ""
    }
}

/// What to do about a changed host key.
fn changed_hint(during_up: bool, address: &str, known_hosts: &std::path::Path) -> String {
    if during_up {
        // known_hosts' name: the host alone for port 22, else `[host]:port`.
        let (host, port) = address.rsplit_once(':').unwrap_or((address, "22"));
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let host_pattern = if port == "22" {
            host.to_string()
        } else {
            format!("[{host}]:{port}")
        };
        format!(
            "labctl did not create this machine in this run, so it does not trust a new key: \
             investigate; if the host was rebuilt on purpose, check the fingerprint on it \
             (`ssh-keygen -l -f /etc/ssh/ssh_host_ed25519_key.pub`), drop the old pin with \
             `ssh-keygen -R '{host_pattern}' -f {}` and run `labctl up` again",
            known_hosts.display()
        )
    } else {
        "if labctl re-created this node, `labctl up` pins its new key; otherwise investigate: \
         the machine was replaced, or something is intercepting the connection"
            .to_string()
    }
}

/// At most this much of a failed command's stderr goes into its message
/// (the end, where the reason usually is).
const STDERR_SHOWN: usize = 4000;

fn stderr_tail(stderr: &str) -> String {
    let trimmed = stderr.trim();
    if trimmed.is_empty() {
        return " (no stderr)".to_string();
    }
    let mut start = trimmed.len().saturating_sub(STDERR_SHOWN);
    while !trimmed.is_char_boundary(start) {
        start += 1;
    }
    let cut = if start > 0 { "…" } else { "" };
    format!("; stderr: {cut}{}", &trimmed[start..])
}

/// Quotes one argument for a POSIX shell: plain words stay as they are (so
/// messages stay readable), anything else is single-quoted with `'` written
/// as `'\''`. `=` and `~` are not plain: a first word `A=b` would be an
/// assignment and `~` would expand.
pub fn quote(arg: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "_./:@%+,-".contains(c);
    if !arg.is_empty() && arg.chars().all(plain) {
        return arg.to_string();
    }
    format!("'{}'", arg.replace('\'', r"'\''"))
}

/// The remote command line for `argv`: each element quoted, joined by spaces.
pub fn command_line(argv: &[&str]) -> String {
    argv.iter().map(|a| quote(a)).collect::<Vec<_>>().join(" ")
}

/// Arguments for the system `ssh` that open a shell on the node with the
/// lab's key and pinned host key (`ssh ARGS` for an interactive shell).
/// Words appended after these are joined by ssh and run by the remote
/// shell: pass them through [`quote`].
pub fn system_ssh_args(ep: &Endpoint) -> Vec<String> {
    // ssh splits option values on whitespace (UserKnownHostsFile takes a
    // list), so a path with spaces must be double-quoted inside the value.
    let known_hosts = ep.known_hosts.display().to_string();
    let known_hosts = if known_hosts.contains(char::is_whitespace) {
        format!("\"{known_hosts}\"")
    } else {
        known_hosts
    };
    let options = [
        format!("UserKnownHostsFile={known_hosts}"),
        "GlobalKnownHostsFile=/dev/null".to_string(),
        "StrictHostKeyChecking=yes".to_string(),
        "IdentitiesOnly=yes".to_string(),
        "BatchMode=yes".to_string(),
        format!("ServerAliveInterval={KEEPALIVE_SECS}"),
    ];
    let mut args = vec![
        "-i".to_string(),
        ep.key.display().to_string(),
        "-p".to_string(),
        ep.port.to_string(),
    ];
    for option in options {
        args.push("-o".to_string());
        args.push(option);
    }
    args.push(format!("{}@{}", ep.user, ep.host));
    args
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quote_leaves_plain_words_and_quotes_the_rest() {
        assert_eq!(quote("ip"), "ip");
        assert_eq!(quote("/run/flannel/subnet.env"), "/run/flannel/subnet.env");
        assert_eq!(quote(""), "''");
        assert_eq!(quote("a b"), "'a b'");
        assert_eq!(quote("it's"), r"'it'\''s'");
        assert_eq!(quote("A=b"), "'A=b'");
        assert_eq!(quote("~"), "'~'");
        assert_eq!(quote("$(id)"), "'$(id)'");
    }

    #[test]
    fn unreachable_says_timeout_or_refused() {
        let error = |last: &str| {
            SshError::Unreachable {
                node: "w7".into(),
                address: "192.168.1.8:22".into(),
                waited: Duration::from_secs(20),
                attempts: 9,
                last_error: last.into(),
            }
            .to_string()
        };
        let timeout = error("SSH handshake with 192.168.1.8:22: [Session(-9)] API timeout expired");
        assert!(timeout.contains("timed out") && timeout.contains("nothing refused"));
        let tcp = error("TCP connect to 192.168.1.8:22: connection timed out");
        assert!(tcp.contains("(timed out"));
        let refused = error("TCP connect to 192.168.1.8:22: Connection refused (os error 111)");
        assert!(refused.contains("connection refused: nothing listens"));
        assert!(!refused.contains("timed out"));
    }

    #[test]
    fn long_stderr_keeps_its_end() {
        let long = format!("{}THE END", "x".repeat(10_000));
        let shown = stderr_tail(&long);
        assert!(shown.ends_with("THE END"));
        assert!(shown.len() < STDERR_SHOWN + 40);
        assert_eq!(stderr_tail("  \n"), " (no stderr)");
    }

    #[test]
    fn system_ssh_args_pin_key_and_host_key() {
        let ep = Endpoint {
            node: "worker1".into(),
            host: "10.0.0.2".into(),
            port: 2222,
            user: "vagrant".into(),
            key: "/lab/id_ed25519".into(),
            known_hosts: "/my labs/known_hosts".into(),
        };
        let args = system_ssh_args(&ep);
        assert_eq!(&args[..4], ["-i", "/lab/id_ed25519", "-p", "2222"]);
        assert!(args.contains(&"UserKnownHostsFile=\"/my labs/known_hosts\"".to_string()));
        assert!(args.contains(&"StrictHostKeyChecking=yes".to_string()));
        assert_eq!(args.last().unwrap(), "vagrant@10.0.0.2");
    }
}
