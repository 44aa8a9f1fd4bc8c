//! Host key rules of labctl's SSH client against a real OpenSSH server on
//! 127.0.0.1 (see `support::sshd`): only `up`'s first contact
//! (`HostKeyPolicy::PinNew`) pins, everything else requires the pin; a
//! changed key is refused by both; the lab file's `ssh.hostKey` and the
//! user's known_hosts (plain and hashed, as `ssh-keygen -H` writes it) vouch
//! for a first contact. Fingerprints are compared with `ssh-keygen -l`'s.

mod support;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use labctl::ssh::{Endpoint, HostKeyPolicy, PinSource, Session, SshError};
use labctl_lab::HostKey;
use support::assert_mentions;
use support::sshd::{fingerprint_of, keygen, public_line, with_client, KeyKind, Sshd};

const DEADLINE: Duration = Duration::from_secs(10);

fn first_contact(expected: Option<HostKey>, user_known_hosts: Option<PathBuf>) -> HostKeyPolicy {
    HostKeyPolicy::PinNew {
        expected,
        user_known_hosts,
    }
}

/// A server, a client key it accepts, and an endpoint with an empty lab
/// known_hosts.
fn start(test: &str) -> Option<(Sshd, Endpoint, tempfile::TempDir)> {
    with_client(test, KeyKind::Ed25519)
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_default()
}

#[test]
fn only_first_contact_pins_and_a_changed_key_is_refused_by_all() {
    let Some((sshd, endpoint, dir)) = start("pin") else {
        return;
    };
    let seen = fingerprint_of(&sshd.host_key);
    let port = sshd.port;

    // Not `up`: an unknown key is refused and nothing is written.
    let error = Session::connect(&endpoint, &HostKeyPolicy::RequireKnown, DEADLINE)
        .err()
        .expect("an unknown key was accepted");
    assert!(
        matches!(error, SshError::HostKeyUnknown { .. }),
        "{error:?}"
    );
    assert_mentions(
        &error.to_string(),
        &["node-pin", &seen, "labctl up", "investigate"],
    );
    assert!(!endpoint.known_hosts.exists(), "pinned by a check");
    let error = Session::check_host_key(&endpoint, &HostKeyPolicy::RequireKnown, DEADLINE)
        .expect_err("an unknown key passed the check");
    assert!(error.is_host_key_refusal(), "{error:?}");

    // `up`'s first contact pins, and says so with ssh-keygen's fingerprint.
    let session = Session::connect(&endpoint, &first_contact(None, None), DEADLINE).unwrap();
    let pin = session.new_pin().expect("a pin").clone();
    assert_eq!(pin.fingerprint, seen);
    assert_eq!(pin.trusted_by, PinSource::FirstUse);
    assert!(pin.to_string().contains(&seen), "{pin}");
    drop(session);
    let pinned = read(&endpoint.known_hosts);
    assert_eq!(
        pinned,
        format!(
            "[127.0.0.1]:{port} {} labctl-node=node-pin\n",
            public_line(&sshd.host_key)
        )
    );
    let mode = fs::metadata(&endpoint.known_hosts)
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600);
    // Now everything accepts it, and nothing pins again.
    let session = Session::connect(&endpoint, &HostKeyPolicy::RequireKnown, DEADLINE).unwrap();
    assert!(session.new_pin().is_none());
    drop(session);
    let session = Session::connect(&endpoint, &first_contact(None, None), DEADLINE).unwrap();
    assert!(session.new_pin().is_none());
    drop(session);
    Session::check_host_key(&endpoint, &HostKeyPolicy::RequireKnown, DEADLINE).unwrap();

    // Same host:port, another server with another key.
    drop(sshd);
    let impostor = Sshd::builder().port(port).authorize(&endpoint.key).start();
    let new_key = fingerprint_of(&impostor.host_key);
    let error = Session::connect(&endpoint, &HostKeyPolicy::RequireKnown, DEADLINE)
        .err()
        .expect("a changed key was accepted");
    assert!(
        matches!(
            error,
            SshError::HostKeyChanged {
                during_up: false,
                ..
            }
        ),
        "{error:?}"
    );
    assert_mentions(
        &error.to_string(),
        &[
            "node-pin",
            &format!("127.0.0.1:{port}"),
            &new_key,
            "`labctl up`",
            "investigate",
        ],
    );
    // `up` for a machine it did not create refuses too.
    let error = Session::connect(&endpoint, &first_contact(None, None), DEADLINE)
        .err()
        .expect("up accepted a changed key");
    assert!(
        matches!(
            error,
            SshError::HostKeyChanged {
                during_up: true,
                ..
            }
        ),
        "{error:?}"
    );
    let known_hosts = endpoint.known_hosts.display().to_string();
    assert_mentions(
        &error.to_string(),
        &[
            &new_key,
            "did not create",
            &format!("ssh-keygen -R '[127.0.0.1]:{port}' -f {known_hosts}"),
        ],
    );
    assert_eq!(
        read(&endpoint.known_hosts),
        pinned,
        "a refusal changed the pins"
    );
    drop((impostor, dir));
}

#[test]
fn the_lab_files_host_key_is_checked_on_first_contact() {
    let Some((sshd, endpoint, dir)) = start("labfile") else {
        return;
    };
    let seen = fingerprint_of(&sshd.host_key);
    let other = keygen(&dir.path().join("other_host_key"), KeyKind::Ed25519);
    let wrong = fingerprint_of(&other);

    for expected in [
        HostKey::parse(&wrong).unwrap(),
        HostKey::parse(&public_line(&other)).unwrap(),
    ] {
        let error = Session::connect(&endpoint, &first_contact(Some(expected), None), DEADLINE)
            .err()
            .expect("a key other than ssh.hostKey was accepted");
        assert!(
            matches!(error, SshError::HostKeyMismatch { .. }),
            "{error:?}"
        );
        assert_mentions(
            &error.to_string(),
            &["node-labfile", &seen, &wrong, "ssh.hostKey"],
        );
        assert!(!endpoint.known_hosts.exists(), "a mismatch was pinned");
    }

    // The right key, either way it is written: pinned, said why.
    let by_fingerprint = HostKey::parse(&seen).unwrap();
    let session = Session::connect(
        &endpoint,
        &first_contact(Some(by_fingerprint), None),
        DEADLINE,
    )
    .unwrap();
    assert_eq!(session.new_pin().unwrap().trusted_by, PinSource::LabFile);
    drop(session);
    fs::remove_file(&endpoint.known_hosts).unwrap();
    let by_line = HostKey::parse(&public_line(&sshd.host_key)).unwrap();
    let session = Session::connect(
        &endpoint,
        &first_contact(Some(by_line.clone()), None),
        DEADLINE,
    )
    .unwrap();
    assert_eq!(session.new_pin().unwrap().trusted_by, PinSource::LabFile);
    drop(session);
    // Still checked once pinned: a lab file naming another key is refused.
    let error = Session::connect(
        &endpoint,
        &first_contact(Some(HostKey::parse(&wrong).unwrap()), None),
        DEADLINE,
    )
    .err()
    .expect("ssh.hostKey ignored once pinned");
    assert!(
        matches!(error, SshError::HostKeyMismatch { .. }),
        "{error:?}"
    );
    drop((sshd, dir));
}

#[test]
fn the_users_known_hosts_vouches_plain_and_hashed() {
    let Some((sshd, endpoint, dir)) = start("user") else {
        return;
    };
    let seen = fingerprint_of(&sshd.host_key);
    let name = format!("[127.0.0.1]:{}", sshd.port);
    let user_file = dir.path().join("home/.ssh/known_hosts");
    fs::create_dir_all(user_file.parent().unwrap()).unwrap();
    let other = keygen(&dir.path().join("other_host_key"), KeyKind::Ed25519);
    let policy = first_contact(None, Some(user_file.clone()));

    // The user trusts another key for this host: refused, nothing pinned.
    let wrong_line = format!("{name} {}\n", public_line(&other));
    fs::write(&user_file, &wrong_line).unwrap();
    let error = Session::connect(&endpoint, &policy, DEADLINE)
        .err()
        .expect("a key the user's known_hosts does not trust was pinned");
    assert!(
        matches!(error, SshError::HostKeyMismatch { .. }),
        "{error:?}"
    );
    assert_mentions(
        &error.to_string(),
        &[
            &seen,
            &fingerprint_of(&other),
            &user_file.display().to_string(),
        ],
    );
    assert!(!endpoint.known_hosts.exists());

    // The user trusts this key, in a hashed line as `ssh-keygen -H` makes it.
    fs::write(
        &user_file,
        format!("{name} {}\n", public_line(&sshd.host_key)),
    )
    .unwrap();
    let out = Command::new("ssh-keygen")
        .arg("-H")
        .arg("-f")
        .arg(&user_file)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let hashed = read(&user_file);
    assert!(
        hashed.starts_with("|1|") && !hashed.contains("127.0.0.1"),
        "{hashed}"
    );
    let session = Session::connect(&endpoint, &policy, DEADLINE).unwrap();
    assert_eq!(
        session.new_pin().unwrap().trusted_by,
        PinSource::UserKnownHosts(user_file.clone())
    );
    drop(session);
    assert_eq!(read(&user_file), hashed, "the user's file was changed");

    // A key the user revoked is refused even beside a line trusting it.
    fs::remove_file(&endpoint.known_hosts).unwrap();
    let line = public_line(&sshd.host_key);
    fs::write(
        &user_file,
        format!("{name} {line}\n@revoked {name} {line}\n"),
    )
    .unwrap();
    let error = Session::connect(&endpoint, &policy, DEADLINE)
        .err()
        .expect("a revoked key was pinned");
    assert!(
        matches!(error, SshError::HostKeyMismatch { .. }),
        "{error:?}"
    );
    assert_mentions(&error.to_string(), &[&seen, "@revoked"]);
    assert!(!endpoint.known_hosts.exists());

    // Plain form too, and a host the user's file does not name is pinned
    // on first use.
    fs::write(
        &user_file,
        format!("{name} {}\n", public_line(&sshd.host_key)),
    )
    .unwrap();
    let session = Session::connect(&endpoint, &policy, DEADLINE).unwrap();
    assert!(matches!(
        session.new_pin().unwrap().trusted_by,
        PinSource::UserKnownHosts(_)
    ));
    drop(session);
    fs::remove_file(&endpoint.known_hosts).unwrap();
    fs::write(&user_file, format!("127.0.0.2 {}\n", public_line(&other))).unwrap();
    let session = Session::connect(&endpoint, &policy, DEADLINE).unwrap();
    assert_eq!(session.new_pin().unwrap().trusted_by, PinSource::FirstUse);
    drop((session, sshd, dir));
}
