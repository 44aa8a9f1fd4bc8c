//! Connecting: TCP + SSH handshake retried until a deadline, the host key
//! checked under the caller's [`HostKeyPolicy`], then key authentication.

use std::cell::RefCell;
use std::net::{TcpStream, ToSocketAddrs};
use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

use ssh2::MethodType;

use super::host_key::{self, HostKeyPolicy, NewPin};
use super::keeper::Kept;
use super::pump::{Pump, PumpError};
use super::Output;
use super::{Endpoint, SshError, KEEPALIVE_SECS};

/// Longest single TCP connect + handshake attempt: a node that accepts but
/// hangs is tried again rather than waited on forever.
const ATTEMPT_LIMIT: Duration = Duration::from_secs(10);
/// Pause between attempts grows from the first to the last value.
const FIRST_PAUSE: Duration = Duration::from_millis(100);
const LONGEST_PAUSE: Duration = Duration::from_secs(1);

/// Attempts until a deadline, the pause between two growing from
/// [`FIRST_PAUSE`] to [`LONGEST_PAUSE`]; the last attempt comes right at
/// the deadline. The handshake and the login retry alike.
struct Retry {
    started: Instant,
    deadline: Duration,
    pause: Duration,
    attempts: u32,
}

impl Retry {
    fn until(deadline: Duration) -> Retry {
        Retry {
            started: Instant::now(),
            deadline,
            pause: FIRST_PAUSE,
            attempts: 0,
        }
    }

    /// Counts an attempt; the time left for it.
    fn attempt(&mut self) -> Duration {
        self.attempts += 1;
        self.left()
    }

    fn left(&self) -> Duration {
        self.deadline.saturating_sub(self.started.elapsed())
    }

    fn waited(&self) -> Duration {
        self.started.elapsed()
    }

    /// After a failed attempt: false when the deadline has passed, else
    /// sleeps the pause (never past the deadline) and grows it.
    fn pause(&mut self) -> bool {
        let left = self.left();
        if left.is_zero() {
            return false;
        }
        thread::sleep(self.pause.min(left));
        self.pause = (self.pause * 2).min(LONGEST_PAUSE);
        true
    }
}

/// Host key algorithms in OpenSSH's order of preference (the ones libssh2
/// knows); algorithms of keys already pinned for the host go first.
const HOST_KEY_ALGORITHMS: [&str; 7] = [
    "ssh-ed25519",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "rsa-sha2-512",
    "rsa-sha2-256",
    "ssh-rsa",
];

/// One authenticated SSH session to one node: a connection of this
/// process's own, or one the lab's session keeper holds. Use it from one
/// thread at a time; open one per node per thread to work on nodes in
/// parallel.
pub struct Session {
    pub(super) endpoint: Endpoint,
    pub(super) transport: RefCell<Transport>,
    pub(super) command_timeout: Option<Duration>,
    /// Run every command through `sudo -n --` (the login user is not root).
    pub(super) sudo: bool,
    /// The pin this connection made (`up`'s first contact), if any.
    pub(super) new_pin: Option<NewPin>,
    /// How a direct login replacing a lost kept session goes: the
    /// connection's own policy and deadline.
    pub(super) policy: HostKeyPolicy,
    pub(super) deadline: Duration,
}

/// How a session reaches its node.
pub(super) enum Transport {
    Direct(ssh2::Session),
    Kept(Kept),
}

// Nodes are handled on their own threads: a Session must move there.
const _: fn() = || {
    fn assert_send<T: Send>() {}
    assert_send::<Session>();
};

impl Session {
    /// Connects to the node, retrying TCP connect and handshake while it
    /// boots until `deadline` has passed; then checks its host key under
    /// `policy` and logs in with the endpoint's key. Host key and login
    /// failures are final: they are not retried.
    pub fn connect(
        ep: &Endpoint,
        policy: &HostKeyPolicy,
        deadline: Duration,
    ) -> Result<Session, SshError> {
        Session::connect_observed(ep, policy, deadline, &|| {})
    }

    /// [`Session::connect`], calling `on_timeout` each time a handshake or
    /// login attempt times out (the caller may then work on fewer nodes at
    /// once): the node is there but too slow to answer, which is worth
    /// another try, unlike a refused connection or key.
    pub fn connect_observed(
        ep: &Endpoint,
        policy: &HostKeyPolicy,
        deadline: Duration,
        on_timeout: &(dyn Fn() + Sync),
    ) -> Result<Session, SshError> {
        let (ssh, new_pin) = login(ep, policy, deadline, on_timeout)?;
        Ok(Session::new(
            ep,
            Transport::Direct(ssh),
            new_pin,
            policy,
            deadline,
        ))
    }

    /// Like [`Session::connect_observed`], through the session keeper
    /// listening on `keeper` when it can serve this connection (the host key
    /// is pinned and `policy` would pin nothing): a command then costs no
    /// login. Connects directly when there is no keeper or it cannot serve.
    pub fn connect_kept(
        keeper: &Path,
        ep: &Endpoint,
        policy: &HostKeyPolicy,
        deadline: Duration,
        on_timeout: &(dyn Fn() + Sync),
    ) -> Result<Session, SshError> {
        if let Some(kept) = Kept::open(keeper, ep, policy, deadline, on_timeout) {
            return Ok(Session::new(
                ep,
                Transport::Kept(kept?),
                None,
                policy,
                deadline,
            ));
        }
        Session::connect_observed(ep, policy, deadline, on_timeout)
    }

    fn new(
        ep: &Endpoint,
        transport: Transport,
        new_pin: Option<NewPin>,
        policy: &HostKeyPolicy,
        deadline: Duration,
    ) -> Session {
        Session {
            endpoint: ep.clone(),
            transport: RefCell::new(transport),
            command_timeout: None,
            sudo: false,
            new_pin,
            policy: policy.clone(),
            deadline,
        }
    }

    /// Whether the session keeper holds this session.
    pub fn is_kept(&self) -> bool {
        matches!(*self.transport.borrow(), Transport::Kept(_))
    }

    /// Runs one command, pumping stdin, stdout and stderr. A kept session
    /// the keeper lost before the command ran is replaced by a connection
    /// of this process's own, and the command runs there.
    /// The error is the command's transport failure, or the direct
    /// login's own error (a replaced machine's host key is refused as such).
    pub(super) fn exchange(
        &self,
        command: &str,
        stdin: Option<&[u8]>,
    ) -> Result<Output, Result<String, SshError>> {
        let mut transport = self.transport.borrow_mut();
        if let Transport::Kept(kept) = &mut *transport {
            match kept.run(command, stdin, self.command_timeout) {
                Ok(output) => return Ok(output),
                Err(PumpError::Broken(cause)) => return Err(Ok(cause)),
                Err(PumpError::NotStarted(_)) => {
                    let (ssh, _) =
                        login(&self.endpoint, &self.policy, self.deadline, &|| {}).map_err(Err)?;
                    *transport = Transport::Direct(ssh);
                }
            }
        }
        match &*transport {
            Transport::Direct(ssh) => Pump {
                ssh,
                timeout: self.command_timeout,
            }
            .exchange(command, stdin)
            .map_err(|e| Ok(e.cause())),
            Transport::Kept(_) => Err(Ok("the kept session was not replaced".into())),
        }
    }

    /// Only the handshake and the host key check (no login): for handing
    /// the node to the system `ssh` knowing labctl's own check passed.
    pub fn check_host_key(
        ep: &Endpoint,
        policy: &HostKeyPolicy,
        deadline: Duration,
    ) -> Result<(), SshError> {
        let (ssh, _) = handshake_checked(ep, policy, deadline, &|| {})?;
        ssh.set_timeout(2000);
        let _ = ssh.disconnect(None, "host key checked", None);
        Ok(())
    }

    /// The pin this connection made, when it was `up`'s first contact.
    pub fn new_pin(&self) -> Option<&NewPin> {
        self.new_pin.as_ref()
    }

    /// The endpoint this session was opened to.
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// Limits how long each later command may run (`None`, the default:
    /// no limit). A command over the limit fails with a Transport error and
    /// the session should be dropped.
    pub fn set_command_timeout(&mut self, timeout: Option<Duration>) {
        self.command_timeout = timeout;
    }

    /// Runs every later command (uploads included) as root: through
    /// `sudo -n --` when the login user is not root (never prompting:
    /// Vagrant boxes and cloud images give passwordless sudo), unchanged
    /// for root.
    pub fn run_as_root(&mut self) {
        self.sudo = self.endpoint.user != "root";
    }
}

impl Drop for Session {
    /// Says goodbye so the node's sshd logs a clean disconnect; bounded in
    /// time so a dead node cannot hold labctl up.
    fn drop(&mut self) {
        if let Transport::Direct(ssh) = &*self.transport.borrow() {
            ssh.set_blocking(true);
            ssh.set_timeout(2000);
            let _ = ssh.disconnect(None, "labctl is done", None);
        }
    }
}

/// Handshakes and logs in, retrying until `deadline` a login that times
/// out or loses its socket under load: only a key the node answered "no"
/// to is a refusal. The session comes back in blocking mode without a
/// timeout, sending keepalives.
pub(super) fn login(
    ep: &Endpoint,
    policy: &HostKeyPolicy,
    deadline: Duration,
    on_timeout: &(dyn Fn() + Sync),
) -> Result<(ssh2::Session, Option<NewPin>), SshError> {
    let mut retry = Retry::until(deadline);
    // A retry finds the key pinned already: report the first attempt's pin.
    let mut pinned = None;
    let (ssh, new_pin) = loop {
        let left = retry.attempt();
        let (ssh, new_pin) = handshake_checked(ep, policy, left, on_timeout)?;
        pinned = pinned.or(new_pin);
        match authenticate(ep, &ssh) {
            Ok(()) => break (ssh, pinned),
            Err(Login::Refused(e)) => return Err(e),
            Err(Login::Interrupted(cause)) => {
                on_timeout();
                if !retry.pause() {
                    return Err(SshError::LoginIncomplete {
                        node: ep.node.clone(),
                        address: ep.address(),
                        waited: retry.waited(),
                        attempts: retry.attempts,
                        cause,
                    });
                }
            }
        }
    };
    // Commands wait as long as they need (see set_command_timeout); the
    // keepalives keep NAT and firewalls from dropping quiet sessions.
    ssh.set_timeout(0);
    ssh.set_keepalive(false, KEEPALIVE_SECS);
    Ok((ssh, new_pin))
}

/// Handshakes (retrying until `deadline`) and checks the host key.
fn handshake_checked(
    ep: &Endpoint,
    policy: &HostKeyPolicy,
    deadline: Duration,
    on_timeout: &(dyn Fn() + Sync),
) -> Result<(ssh2::Session, Option<NewPin>), SshError> {
    let wanted = host_key::wanted_key_types(ep, policy)?;
    let mut retry = Retry::until(deadline);
    let ssh = loop {
        let limit = retry
            .attempt()
            .clamp(Duration::from_millis(200), ATTEMPT_LIMIT);
        match handshake(ep, &wanted, limit) {
            Ok(ssh) => break ssh,
            Err(last_error) => {
                if timed_out(&last_error) {
                    on_timeout();
                }
                if !retry.pause() {
                    return Err(SshError::Unreachable {
                        node: ep.node.clone(),
                        address: ep.address(),
                        waited: retry.waited(),
                        attempts: retry.attempts,
                        last_error,
                    });
                }
            }
        }
    };
    let Some((blob, _)) = ssh.host_key() else {
        return Err(SshError::Transport {
            node: ep.node.clone(),
            action: "reading the host key".into(),
            cause: "the server sent none".into(),
        });
    };
    let new_pin = host_key::check(ep, policy, blob)?;
    Ok((ssh, new_pin))
}

/// One TCP connect + SSH handshake attempt within `limit`.
fn handshake(ep: &Endpoint, pinned: &[String], limit: Duration) -> Result<ssh2::Session, String> {
    let addresses = (ep.host.as_str(), ep.port)
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {}: {e}", ep.host))?;
    let mut last = format!("{} resolves to no address", ep.host);
    for address in addresses {
        let tcp = match TcpStream::connect_timeout(&address, limit) {
            Ok(tcp) => tcp,
            Err(e) => {
                last = format!("TCP connect to {address}: {e}");
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        let mut ssh = ssh2::Session::new().map_err(|e| format!("libssh2 init: {e}"))?;
        prefer_host_key_algorithms(&ssh, pinned);
        ssh.set_timeout(u32::try_from(limit.as_millis()).unwrap_or(u32::MAX));
        ssh.set_tcp_stream(tcp);
        match ssh.handshake() {
            Ok(()) => return Ok(ssh),
            Err(e) => last = format!("SSH handshake with {address}: {e}"),
        }
    }
    Err(last)
}

/// Whether a failed attempt's message (from [`handshake`]) says the node
/// did not answer in time, rather than refused or was not there.
pub(super) fn timed_out(attempt_error: &str) -> bool {
    let e = attempt_error.to_ascii_lowercase();
    e.contains("timed out") || e.contains("timeout")
}

/// Asks for a host key of a type labctl will check against (pinned, or
/// vouched for), so a node with several host keys shows the right one.
fn prefer_host_key_algorithms(ssh: &ssh2::Session, pinned: &[String]) {
    let mut wanted: Vec<&str> = Vec::new();
    for key_type in pinned {
        match key_type.as_str() {
            "ssh-rsa" => wanted.extend(["rsa-sha2-512", "rsa-sha2-256", "ssh-rsa"]),
            other => wanted.extend(HOST_KEY_ALGORITHMS.iter().filter(|a| **a == other)),
        }
    }
    wanted.extend(HOST_KEY_ALGORITHMS);
    let supported = ssh.supported_algs(MethodType::HostKey).unwrap_or_default();
    let mut preference: Vec<&str> = Vec::new();
    for algorithm in wanted {
        if supported.contains(&algorithm) && !preference.contains(&algorithm) {
            preference.push(algorithm);
        }
    }
    // On failure libssh2 keeps its own order, which still works.
    if !preference.is_empty() {
        let _ = ssh.method_pref(MethodType::HostKey, &preference.join(","));
    }
}

/// How a login attempt failed.
enum Login {
    /// The node answered and said no (or the key is unreadable): final.
    Refused(SshError),
    /// The login did not complete (timed out, the socket went away): the
    /// node may just be overloaded, so it is worth another try.
    Interrupted(String),
}

fn authenticate(ep: &Endpoint, ssh: &ssh2::Session) -> Result<(), Login> {
    let refused = |cause: String| {
        Login::Refused(SshError::Auth {
            node: ep.node.clone(),
            user: ep.user.clone(),
            key: ep.key.clone(),
            cause,
        })
    };
    // libssh2's message for a missing file is vague: check it first.
    std::fs::File::open(&ep.key).map_err(|e| refused(format!("cannot read the key file: {e}")))?;
    ssh.userauth_pubkey_file(&ep.user, None, &ep.key, None)
        .map_err(|e| {
            if login_interrupted(e.code()) {
                Login::Interrupted(e.message().to_string())
            } else {
                refused(e.message().to_string())
            }
        })?;
    if !ssh.authenticated() {
        return Err(refused("the server did not accept the key".into()));
    }
    Ok(())
}

/// libssh2 errors that mean the login never got an answer, as opposed to
/// an answer of "no": a timeout, or the socket failing or closing.
fn login_interrupted(code: ssh2::ErrorCode) -> bool {
    const TIMEOUT: i32 = -9;
    const SOCKET_SEND: i32 = -7;
    const SOCKET_DISCONNECT: i32 = -13;
    const SOCKET_TIMEOUT: i32 = -30;
    const SOCKET_RECV: i32 = -43;
    matches!(
        code,
        ssh2::ErrorCode::Session(
            TIMEOUT | SOCKET_SEND | SOCKET_DISCONNECT | SOCKET_TIMEOUT | SOCKET_RECV
        )
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_pause_longer_each_time_and_end_at_the_deadline() {
        let mut retry = Retry::until(Duration::ZERO);
        assert_eq!(retry.attempt(), Duration::ZERO);
        assert!(!retry.pause(), "no time left: no second attempt");
        assert_eq!(retry.attempts, 1);

        let mut retry = Retry::until(Duration::from_millis(250));
        let mut attempts_at = Vec::new();
        loop {
            retry.attempt();
            attempts_at.push(retry.waited());
            if !retry.pause() {
                break;
            }
        }
        // 0, then after 100 ms, then 200 ms later cut to the deadline.
        assert_eq!(retry.attempts, 3, "{attempts_at:?}");
        assert!(
            attempts_at[1] >= Duration::from_millis(100),
            "{attempts_at:?}"
        );
        assert!(
            attempts_at[2] >= Duration::from_millis(250),
            "{attempts_at:?}"
        );
    }
}
