//! The session keeper (`labctl::ssh::keeper`) against a real OpenSSH server
//! on 127.0.0.1: sessions it holds are used again without a login, it never
//! pins a key and re-checks the pin each time it hands a session out, a
//! session it lost is replaced by a direct one, and it ends when asked,
//! when its socket goes, or when idle. Needs root (sshd) and says so.

mod support;

use std::path::{Path, PathBuf};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use labctl::ssh::{keeper, Endpoint, HostKeyPolicy, Session, SshError};
use support::sshd::{keygen, public_line, with_client, KeyKind, Sshd};

const DEADLINE: Duration = Duration::from_secs(10);
const FIRST_CONTACT: HostKeyPolicy = HostKeyPolicy::PinNew {
    expected: None,
    user_known_hosts: None,
};

/// A keeper serving a socket of the test's, stopped when dropped.
struct Keeper {
    socket: PathBuf,
    thread: Option<JoinHandle<()>>,
}

impl Keeper {
    fn start(dir: &Path, idle: Duration) -> Keeper {
        let socket = dir.join("keeper.sock");
        let path = socket.clone();
        let thread = thread::spawn(move || keeper::serve(&path, idle).expect("keeper serves"));
        let started = Instant::now();
        while !keeper::is_listening(&socket) {
            assert!(started.elapsed() < DEADLINE, "the keeper did not listen");
            thread::sleep(Duration::from_millis(5));
        }
        Keeper {
            socket,
            thread: Some(thread),
        }
    }

    /// Waits for the keeper to end by itself; true when it did in `limit`.
    fn ended_within(&mut self, limit: Duration) -> bool {
        let started = Instant::now();
        while started.elapsed() < limit {
            if self.thread.as_ref().is_some_and(JoinHandle::is_finished) {
                self.thread.take().unwrap().join().unwrap();
                return true;
            }
            thread::sleep(Duration::from_millis(50));
        }
        false
    }
}

impl Drop for Keeper {
    fn drop(&mut self) {
        if let Some(thread) = self.thread.take() {
            keeper::stop(&self.socket);
            let _ = thread.join();
        }
    }
}

fn kept(keeper: &Keeper, ep: &Endpoint, sshd: &Sshd) -> Session {
    Session::connect_kept(
        &keeper.socket,
        ep,
        &HostKeyPolicy::RequireKnown,
        DEADLINE,
        &|| {},
    )
    .unwrap_or_else(|e| panic!("{e}\nsshd log:\n{}", sshd.log()))
}

/// The client end of the session's TCP connection, as sshd sees it.
fn connection_of(session: &Session) -> String {
    let output = session.run_shell("echo $SSH_CONNECTION").unwrap();
    assert!(output.success(), "{}", output.stderr_text());
    output.stdout_text().trim().to_string()
}

fn pin(ep: &Endpoint, sshd: &Sshd) {
    Session::connect(ep, &FIRST_CONTACT, DEADLINE)
        .unwrap_or_else(|e| panic!("{e}\nsshd log:\n{}", sshd.log()));
}

#[test]
fn a_kept_session_serves_the_next_connection_without_a_login() {
    let Some((sshd, ep, dir)) = with_client("keeper_reuse", KeyKind::Ed25519) else {
        return;
    };
    pin(&ep, &sshd);
    let keeper = Keeper::start(dir.path(), Duration::from_secs(60));
    let first = kept(&keeper, &ep, &sshd);
    assert!(first.is_kept());
    let connection = connection_of(&first);
    // stdin, stdout, stderr and the status all travel.
    let output = first
        .run(&["sh", "-c", "cat; echo err >&2; exit 3"], Some(b"in"))
        .unwrap();
    assert_eq!(
        (output.status, &output.stdout[..], &output.stderr[..]),
        (3, &b"in"[..], &b"err\n"[..])
    );
    drop(first);
    let second = kept(&keeper, &ep, &sshd);
    assert_eq!(
        connection_of(&second),
        connection,
        "the second connection logged in again"
    );
    // Two at once: the second gets a login of its own.
    let mut third = kept(&keeper, &ep, &sshd);
    assert_ne!(connection_of(&third), connection);
    // The command's limit holds on a kept session too.
    third.set_command_timeout(Some(Duration::from_secs(1)));
    let started = Instant::now();
    match third.run(&["sleep", "5"], None) {
        Err(e) => assert!(e.to_string().contains("timed out after 1 s"), "{e}"),
        Ok(output) => panic!("no timeout: {output:?}"),
    }
    assert!(started.elapsed() < Duration::from_secs(4));
}

#[test]
fn the_keeper_never_pins_and_checks_the_pin_each_time() {
    let Some((sshd, ep, dir)) = with_client("keeper_pins", KeyKind::Ed25519) else {
        return;
    };
    let keeper = Keeper::start(dir.path(), Duration::from_secs(60));
    // Not pinned: `up`'s first contact is not the keeper's to make...
    let first = Session::connect_kept(&keeper.socket, &ep, &FIRST_CONTACT, DEADLINE, &|| {})
        .unwrap_or_else(|e| panic!("{e}\nsshd log:\n{}", sshd.log()));
    assert!(!first.is_kept(), "the keeper made up's first contact");
    assert!(first.new_pin().is_some());
    drop(first);
    // ...and the pin made, the keeper serves `up` as everyone else.
    let second =
        Session::connect_kept(&keeper.socket, &ep, &FIRST_CONTACT, DEADLINE, &|| {}).unwrap();
    assert!(second.is_kept());
    drop(second);

    // Another key pinned for the host now (the node was re-created): the
    // held session is not handed out, and the keeper's own login refuses
    // the key as a direct login would.
    let text = std::fs::read_to_string(&ep.known_hosts).unwrap();
    let other = public_line(&keygen(
        &dir.path().join("other_host_key"),
        KeyKind::Ed25519,
    ));
    let replaced: Vec<String> = text
        .lines()
        .map(|line| match line.split_whitespace().next() {
            Some(pattern) if !pattern.starts_with('#') => {
                format!("{pattern} {other}")
            }
            _ => line.to_string(),
        })
        .collect();
    std::fs::write(&ep.known_hosts, replaced.join("\n") + "\n").unwrap();
    let refused = Session::connect_kept(
        &keeper.socket,
        &ep,
        &HostKeyPolicy::RequireKnown,
        DEADLINE,
        &|| {},
    );
    match refused {
        Err(e @ SshError::HostKeyChanged { .. }) => assert!(e.is_host_key_refusal()),
        Err(e) => panic!("wrong error: {e}"),
        Ok(_) => panic!("a session to a host whose pin changed was handed out"),
    }
}

#[test]
fn a_session_the_keeper_lost_is_replaced_by_a_direct_one() {
    let Some((sshd, ep, dir)) = with_client("keeper_lost", KeyKind::Ed25519) else {
        return;
    };
    pin(&ep, &sshd);
    let keeper = Keeper::start(dir.path(), Duration::from_secs(60));
    let session = kept(&keeper, &ep, &sshd);
    // The session's sshd process ends once this command has returned.
    let ended = session
        .run_shell("p=$PPID; (sleep 0.3; kill -KILL $p) </dev/null >/dev/null 2>&1 &")
        .unwrap();
    assert!(ended.success());
    drop(session);
    thread::sleep(Duration::from_millis(800));
    let session = kept(&keeper, &ep, &sshd);
    assert!(
        session.is_kept(),
        "the keeper should hand out what it holds"
    );
    let output = session.run(&["echo", "still here"], None).unwrap();
    assert_eq!(output.stdout, b"still here\n");
    assert!(!session.is_kept(), "the lost session was not replaced");

    // A session that breaks during a command fails that command.
    let session = kept(&keeper, &ep, &sshd);
    let broken = session.run_shell("kill -KILL $PPID; sleep 5");
    match broken {
        Err(e) => assert!(e.to_string().contains("running `sh -c"), "{e}"),
        Ok(output) => panic!("a broken session gave {output:?}"),
    }
}

#[test]
fn the_keeper_ends_when_asked_when_its_socket_goes_and_when_idle() {
    let Some((sshd, ep, dir)) = with_client("keeper_ends", KeyKind::Ed25519) else {
        return;
    };
    pin(&ep, &sshd);
    let mut keeper = Keeper::start(dir.path(), Duration::from_secs(60));
    drop(kept(&keeper, &ep, &sshd));
    assert!(
        keeper::stop(&keeper.socket),
        "the keeper did not answer stop"
    );
    assert!(keeper.ended_within(Duration::from_secs(5)));
    assert!(
        !keeper.socket.exists(),
        "the stopped keeper left its socket"
    );
    assert!(!keeper::is_listening(&keeper.socket));

    let mut keeper = Keeper::start(dir.path(), Duration::from_secs(60));
    std::fs::remove_file(&keeper.socket).unwrap();
    assert!(
        keeper.ended_within(Duration::from_secs(5)),
        "the keeper outlived its socket"
    );

    let mut keeper = Keeper::start(dir.path(), Duration::from_secs(1));
    drop(kept(&keeper, &ep, &sshd));
    assert!(
        keeper.ended_within(Duration::from_secs(6)),
        "the idle keeper did not end"
    );
    // A second keeper on a live socket leaves it to the first.
    let first = Keeper::start(dir.path(), Duration::from_secs(60));
    let second = keeper::serve(&first.socket, Duration::from_secs(60));
    assert!(second.is_ok());
    assert!(keeper::is_listening(&first.socket));
}

/// A keeper serves only its own user, and labctl uses only its own user's
/// keeper: root neither uses nor stops the keeper of uid 65534 (a socket
/// another user's process listens on could answer anything).
#[test]
fn a_keeper_and_its_clients_are_one_user() {
    use std::io::{Read, Write};
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::process::CommandExt;

    let Some((sshd, ep, dir)) = with_client("keeper_users", KeyKind::Ed25519) else {
        return;
    };
    pin(&ep, &sshd);
    const UID: u32 = 65534;
    let home = dir.path().join("home");
    let labs = home.join(".local/state/labctl/labs/other");
    std::fs::create_dir_all(&labs).unwrap();
    for folder in labs.ancestors().take_while(|p| p.starts_with(&home)) {
        std::os::unix::fs::chown(folder, Some(UID), Some(UID)).unwrap();
        std::fs::set_permissions(folder, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let theirs = std::process::Command::new(env!("CARGO_BIN_EXE_labctl"))
        .args(["keep-sessions", "--name", "other"])
        .env_clear()
        .env("HOME", &home)
        .uid(UID)
        .gid(UID)
        .spawn()
        .expect("a keeper as uid 65534");
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut theirs = Kill(theirs);
    let socket = labs.join("ssh-keeper.sock");
    let started = Instant::now();
    while !socket.exists() {
        assert!(
            started.elapsed() < DEADLINE,
            "the other user's keeper did not listen"
        );
        thread::sleep(Duration::from_millis(10));
    }

    assert!(
        !keeper::is_listening(&socket),
        "root took uid 65534's keeper for its own"
    );
    let session =
        Session::connect_kept(&socket, &ep, &HostKeyPolicy::RequireKnown, DEADLINE, &|| {})
            .unwrap();
    assert!(
        !session.is_kept(),
        "root's session went through another user's keeper"
    );
    drop(session);

    // Root asking it to stop gets no answer, and it keeps running. The
    // keeper may close the connection before the request is all written.
    let mut stream = std::os::unix::net::UnixStream::connect(&socket).unwrap();
    let _ = stream.write_all(&6u32.to_le_bytes());
    let _ = stream.write_all(b"\"Stop\"");
    stream.set_read_timeout(Some(DEADLINE)).unwrap();
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    assert!(answer.is_empty(), "the keeper answered root: {answer:?}");
    thread::sleep(Duration::from_millis(1500));
    assert!(
        theirs.0.try_wait().unwrap().is_none(),
        "root stopped uid 65534's keeper"
    );
    assert!(socket.exists());
}
