//! labctl's SSH client against a real OpenSSH server on 127.0.0.1 (see
//! `support::sshd`). Every test needs root to run sshd and says so when
//! skipped.

mod support;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use labctl::ssh::{system_ssh_args, Endpoint, HostKeyPolicy, Session, SshError};
use sha2::{Digest, Sha256};
use support::assert_mentions;
use support::sshd::{free_port, keygen, with_client, KeyKind, Sshd};

const DEADLINE: Duration = Duration::from_secs(10);
/// `up`'s first contact: these tests pin the server's key (host key rules
/// are tested in tests/ssh_host_keys.rs).
const FIRST_CONTACT: HostKeyPolicy = HostKeyPolicy::PinNew {
    expected: None,
    user_known_hosts: None,
};

/// A running sshd, a client key it accepts and an endpoint for it.
struct Fixture {
    sshd: Sshd,
    endpoint: Endpoint,
    dir: tempfile::TempDir,
}

impl Fixture {
    fn start(test: &str, kind: KeyKind) -> Option<Fixture> {
        let (sshd, endpoint, dir) = with_client(test, kind)?;
        Some(Fixture {
            sshd,
            endpoint,
            dir,
        })
    }

    fn connect(&self) -> Session {
        Session::connect(&self.endpoint, &FIRST_CONTACT, DEADLINE)
            .unwrap_or_else(|e| panic!("{e}\nsshd log:\n{}", self.sshd.log()))
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

/// Runs `test` against a fresh sshd, or says why it is skipped.
fn with_fixture(name: &str, kind: KeyKind, test: impl FnOnce(Fixture)) {
    if let Some(fixture) = Fixture::start(name, kind) {
        test(fixture);
    }
}

#[test]
fn run_reports_status_stdout_and_stderr() {
    with_fixture("status", KeyKind::Ed25519, |fx| {
        let session = fx.connect();
        assert_eq!(session.endpoint(), &fx.endpoint);

        let ok = session.run(&["true"], None).unwrap();
        assert_eq!(ok.status, 0);
        let failed = session
            .run(&["sh", "-c", "echo out; echo err >&2; exit 7"], None)
            .unwrap();
        assert_eq!(failed.status, 7);
        assert_eq!(failed.stdout, b"out\n");
        assert_eq!(failed.stderr, b"err\n");

        // Killed by a signal: reported like a shell does (128 + SIGTERM).
        let killed = session.run_shell("kill -TERM $$").unwrap();
        assert_eq!(killed.status, 143);

        let shell = session.run_shell("echo $((6 * 7))").unwrap();
        assert_eq!(shell.stdout, b"42\n");
    });
}

#[test]
fn run_ok_failure_names_node_command_status_and_stderr() {
    with_fixture("runok", KeyKind::Ed25519, |fx| {
        let session = fx.connect();
        let error = session
            .run_ok(&["sh", "-c", "echo 'no such thing' >&2; exit 3"], None)
            .unwrap_err();
        assert!(
            matches!(error, SshError::Command { status: 3, .. }),
            "{error:?}"
        );
        assert_mentions(
            &error.to_string(),
            &["node-runok", "sh -c", "exit status 3", "no such thing"],
        );
        assert_eq!(
            session.run_ok(&["echo", "fine"], None).unwrap().stdout,
            b"fine\n"
        );
    });
}

#[test]
fn nasty_arguments_arrive_byte_exact() {
    with_fixture("quoting", KeyKind::Ed25519, |fx| {
        let session = fx.connect();
        let marker = fx.path("pwned");
        let injection = format!("$(touch {})", marker.display());
        let nasty = [
            "two words",
            "it's",
            "\"double\"",
            &injection,
            "`id`",
            "; echo injected",
            "a && b | c > d",
            "line1\nline2\n",
            "",
            "  leading and trailing  ",
            "*",
            "~",
            "A=b",
            "back\\slash",
            "tab\there",
            "ümlaut ✓",
            "-n",
        ];
        let mut argv = vec!["printf", "%s\\0"];
        argv.extend(nasty.iter().copied());
        let output = session.run_ok(&argv, None).unwrap();
        let received: Vec<&[u8]> = output.stdout.split(|b| *b == 0).collect();
        let expected: Vec<&[u8]> = nasty
            .iter()
            .map(|s| s.as_bytes())
            .chain([&b""[..]])
            .collect();
        assert_eq!(received, expected);
        assert!(!marker.exists(), "the $(...) argument was executed");
    });
}

#[test]
fn large_stdout_and_stderr_do_not_deadlock() {
    with_fixture("large", KeyKind::Ed25519, |fx| {
        let (done, result) = mpsc::channel();
        let endpoint = fx.endpoint.clone();
        thread::spawn(move || {
            let session = Session::connect(&endpoint, &FIRST_CONTACT, DEADLINE).unwrap();
            // stderr first: a reader that drains stdout first would hang here.
            let script = "head -c 6000000 /dev/zero | tr '\\0' e >&2; \
                          head -c 5000000 /dev/zero | tr '\\0' o; \
                          head -c 1000000 /dev/zero | tr '\\0' E >&2";
            done.send(session.run_ok(&["sh", "-c", script], None))
                .unwrap();
        });
        let output = result
            .recv_timeout(Duration::from_secs(120))
            .expect("large output deadlocked")
            .unwrap();
        assert_eq!(output.stdout.len(), 5_000_000);
        assert!(output.stdout.iter().all(|b| *b == b'o'));
        assert_eq!(output.stderr.len(), 7_000_000);
        assert!(output.stderr[..6_000_000].iter().all(|b| *b == b'e'));
        assert!(output.stderr[6_000_000..].iter().all(|b| *b == b'E'));
    });
}

#[test]
fn stdin_is_passed_through() {
    with_fixture("stdin", KeyKind::Ed25519, |fx| {
        let session = fx.connect();
        let small = session.run_ok(&["cat"], Some(b"hello\0world")).unwrap();
        assert_eq!(small.stdout, b"hello\0world");
        // Larger than any window: stdin is written while stdout is read.
        let big: Vec<u8> = (0..4_000_000u32).map(|i| (i % 251) as u8).collect();
        let echoed = session.run_ok(&["cat"], Some(&big)).unwrap();
        assert!(echoed.stdout == big, "4 MB through cat came back different");
        // A command that ignores its stdin still finishes.
        let ignored = session.run(&["true"], Some(&big)).unwrap();
        assert_eq!(ignored.status, 0);
    });
}

#[test]
fn upload_is_atomic_and_sets_the_mode() {
    with_fixture("upload", KeyKind::Ed25519, |fx| {
        let session = fx.connect();
        let folder = fx.path("remote");
        fs::create_dir(&folder).unwrap();
        let target = folder.join("agent bin");
        let target_str = target.to_str().unwrap();

        session.upload(b"first version", target_str, 0o640).unwrap();
        assert_eq!(fs::read(&target).unwrap(), b"first version");
        let mode = fs::metadata(&target).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode, 0o640);

        // Replaced by rename: a reader holding the old file keeps the old bytes.
        let old = fs::File::open(&target).unwrap();
        session
            .upload(b"second version", target_str, 0o755)
            .unwrap();
        assert_eq!(fs::read(&target).unwrap(), b"second version");
        let mode = fs::metadata(&target).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode, 0o755);
        let mut old_bytes = String::new();
        std::io::Read::read_to_string(&mut &old, &mut old_bytes).unwrap();
        assert_eq!(old_bytes, "first version");

        let names: Vec<_> = fs::read_dir(&folder)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["agent bin"], "temporary files left behind");

        let missing = fx.path("no/such/folder/file");
        let error = session
            .upload(b"x", missing.to_str().unwrap(), 0o644)
            .unwrap_err();
        assert!(error.to_string().contains("node-upload"), "{error}");
    });
}

#[test]
fn ensure_file_uploads_once_then_skips() {
    with_fixture("ensure", KeyKind::Ed25519, |fx| {
        let session = fx.connect();
        let data: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 256) as u8).collect();
        let sha: String = Sha256::digest(&data)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let target = fx.path("labctl-agent");
        let target_str = target.to_str().unwrap();

        assert!(session.ensure_file(&data, &sha, target_str, 0o755).unwrap());
        assert_eq!(fs::read(&target).unwrap(), data);
        assert!(!session.ensure_file(&data, &sha, target_str, 0o755).unwrap());

        // Drift is repaired: a changed mode, then changed content.
        fs::set_permissions(&target, fs::Permissions::from_mode(0o600)).unwrap();
        assert!(session.ensure_file(&data, &sha, target_str, 0o755).unwrap());
        assert_eq!(
            fs::metadata(&target).unwrap().permissions().mode() & 0o777,
            0o755
        );
        fs::write(&target, b"tampered").unwrap();
        assert!(session.ensure_file(&data, &sha, target_str, 0o755).unwrap());
        assert_eq!(fs::read(&target).unwrap(), data);

        let wrong = "0".repeat(64);
        let error = session
            .ensure_file(&data, &wrong, target_str, 0o755)
            .unwrap_err();
        assert!(error.to_string().contains("SHA-256"), "{error}");
    });
}

#[test]
fn system_ssh_accepts_the_pinned_known_hosts() {
    with_fixture("system", KeyKind::Ed25519, |fx| {
        drop(fx.connect());
        let output = Command::new("ssh")
            .args(system_ssh_args(&fx.endpoint))
            .args(["-o", "ConnectTimeout=10", "echo", "from-system-ssh"])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "system ssh failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        assert_eq!(output.stdout, b"from-system-ssh\n");
    });
}

#[test]
fn closed_port_is_retried_until_the_deadline() {
    let dir = tempfile::tempdir().unwrap();
    let endpoint = Endpoint {
        node: "sleepy".into(),
        host: "127.0.0.1".into(),
        port: free_port(),
        user: "root".into(),
        key: dir.path().join("unused_key"),
        known_hosts: dir.path().join("known_hosts"),
    };
    let started = Instant::now();
    let error = Session::connect(&endpoint, &FIRST_CONTACT, Duration::from_secs(2))
        .err()
        .expect("connected");
    let waited = started.elapsed();
    assert!(waited >= Duration::from_secs(2), "gave up after {waited:?}");
    assert!(
        waited < Duration::from_secs(4),
        "overran the deadline: {waited:?}"
    );
    let SshError::Unreachable { attempts, .. } = &error else {
        panic!("{error:?}")
    };
    assert!(*attempts > 2, "only {attempts} attempts");
    assert_mentions(
        &error.to_string(),
        &["sleepy", "kept trying for", "refused"],
    );
}

#[test]
fn rsa_client_key_works_and_a_wrong_key_is_refused() {
    with_fixture("rsa", KeyKind::Rsa, |fx| {
        assert_eq!(
            fx.connect().run_ok(&["echo", "rsa"], None).unwrap().stdout,
            b"rsa\n"
        );

        let stranger = keygen(&fx.path("stranger"), KeyKind::Ed25519);
        let endpoint = Endpoint {
            key: stranger.clone(),
            ..fx.endpoint.clone()
        };
        let error = Session::connect(&endpoint, &FIRST_CONTACT, DEADLINE)
            .err()
            .expect("stranger logged in");
        assert!(matches!(error, SshError::Auth { .. }), "{error:?}");
        assert!(error.to_string().contains("node-rsa"), "{error}");
        let private = fs::read_to_string(&stranger).unwrap();
        let secret_line = private.lines().nth(1).unwrap();
        assert!(
            !error.to_string().contains(secret_line),
            "the private key was printed"
        );
    });
}

#[test]
fn sessions_work_in_parallel_threads() {
    with_fixture("parallel", KeyKind::Ed25519, |fx| {
        let endpoints: Vec<Endpoint> = (0..4)
            .map(|i| Endpoint {
                node: format!("node{i}"),
                ..fx.endpoint.clone()
            })
            .collect();
        let outputs: Vec<Vec<u8>> = thread::scope(|scope| {
            let handles: Vec<_> = endpoints
                .iter()
                .map(|ep| {
                    scope.spawn(move || {
                        let session = Session::connect(ep, &FIRST_CONTACT, DEADLINE).unwrap();
                        session.run_ok(&["echo", &ep.node], None).unwrap().stdout
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert_eq!(outputs, [b"node0\n", b"node1\n", b"node2\n", b"node3\n"]);
        // All four pinned the same host:port once.
        let pinned = fs::read_to_string(&fx.endpoint.known_hosts).unwrap();
        assert_eq!(pinned.lines().count(), 1, "{pinned}");
    });
}

#[test]
fn command_timeout_stops_waiting() {
    with_fixture("timeout", KeyKind::Ed25519, |fx| {
        let mut session = fx.connect();
        session.set_command_timeout(Some(Duration::from_secs(1)));
        let started = Instant::now();
        let error = session.run(&["sleep", "5"], None).unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(4), "{error}");
        assert_mentions(
            &error.to_string(),
            &["node-timeout", "sleep 5", "timed out"],
        );
    });
}

/// A node too busy to answer the login (here: sshd's key lookup hangs) is
/// retried to the deadline and reported as such, never as a refused key.
#[test]
fn a_login_that_gets_no_answer_is_not_a_refused_key() {
    let test = "a_login_that_gets_no_answer_is_not_a_refused_key";
    if !support::sshd::root_or_skip(test) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let client = keygen(&dir.path().join("client"), KeyKind::Ed25519);
    // No authorized_keys entry: sshd goes on to the key command, which
    // hangs, so the login gets no answer at all within the deadline.
    // A duration unique to this run names the hanging command, so the
    // guard below ends exactly it (sshd's session process does not on its
    // own), and nothing of another run.
    let sleep = format!("/bin/sleep 7.{}", std::process::id() % 100_000);
    struct EndSleep(String);
    impl Drop for EndSleep {
        fn drop(&mut self) {
            let _ = Command::new("pkill")
                .args(["-f", &format!("^{}$", self.0)])
                .status();
        }
    }
    let _end_sleep = EndSleep(sleep.clone());
    let sshd = Sshd::builder()
        .config(&format!("AuthorizedKeysCommand {sleep}"))
        .config("AuthorizedKeysCommandUser root")
        .start();
    let endpoint = Endpoint {
        node: "busy".into(),
        host: "127.0.0.1".into(),
        port: sshd.port,
        user: "root".into(),
        key: client,
        known_hosts: dir.path().join("known_hosts"),
    };
    let started = Instant::now();
    let error = Session::connect(&endpoint, &FIRST_CONTACT, Duration::from_secs(3))
        .err()
        .expect("logged in past a hanging key lookup");
    let waited = started.elapsed();
    assert!(
        matches!(error, SshError::LoginIncomplete { .. }),
        "{error:?}\nsshd log:\n{}",
        sshd.log()
    );
    assert!(
        waited < Duration::from_secs(10),
        "overran the deadline: {waited:?}"
    );
    assert_mentions(
        &error.to_string(),
        &["busy", "did not complete", "did not refuse the key"],
    );
}
