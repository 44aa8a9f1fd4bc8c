//! Host keys end to end, through the labctl binary, on an ssh lab of three
//! "existing hosts" (network namespaces with their own real sshd, see
//! tests/support/hosts.rs): `up` pins — after the lab file's `ssh.hostKey`
//! or the user's `~/.ssh/known_hosts` (HOME pointed at a temporary folder,
//! hashed entries) vouched for the key, or on first use — and every other
//! command refuses an unknown or changed key with exit 3 naming the node
//! and the fingerprint it saw; `up` refuses a changed key on a machine it
//! did not create; removing a node and `destroy` leave no pin. netns nodes
//! are pinned from the host key labctl generated for the lab, never on first use.
//! Needs root.

mod support;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use support::netns::{can_run, lab_name, serial, show, TestLab};
use support::ssh_lab::{lab_file, three_hosts_or_skip, LabGuard};
use support::sshd::{fingerprint_of, keygen, public_line, KeyKind};

/// labctl with HOME at `home` (so `~/.ssh/known_hosts` is the test's).
fn labctl(home: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_labctl"))
        .args(args)
        .env("HOME", home)
        .stdin(Stdio::null())
        .output()
        .expect("labctl runs")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Asserts exit 3 and that stderr names every one of `needles`.
fn assert_refused(what: &str, out: &Output, needles: &[&str]) {
    assert_eq!(out.status.code(), Some(3), "{what}: {}", show(out));
    let text = stderr(out);
    for needle in needles {
        assert!(
            text.contains(needle),
            "{what}: {needle:?} missing: {}",
            show(out)
        );
    }
}

/// The lab file with `hostKey` on master's ssh block.
fn with_host_key(text: &str, master_ip: &str, host_key: &str) -> String {
    text.lines()
        .map(|line| {
            if line.contains(&format!("host: {master_ip},")) {
                line.replace("}", &format!(", hostKey: '{host_key}'}}"))
            } else {
                line.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}

/// The lab's known_hosts (labctl's pins).
fn lab_known_hosts(lab: &str) -> PathBuf {
    labctl::state::LabDir::new(lab).unwrap().known_hosts()
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_default()
}

#[test]
fn up_pins_everything_else_refuses_and_nothing_is_left() {
    let test = "up_pins_everything_else_refuses_and_nothing_is_left";
    let Some((_serial, mut hosts)) = three_hosts_or_skip(test, "thk", [192, 168, 93]) else {
        return;
    };
    let lab = hosts.tag.clone();
    let ip = |name: &str| hosts.by_name(name).ip.to_string();
    let (master_ip, worker1_ip, worker2_ip) = (ip("master"), ip("worker1"), ip("worker2"));
    let fp = |name: &str| fingerprint_of(&hosts.host_key(name));
    let (master_fp, worker1_fp, worker2_fp) = (fp("master"), fp("worker1"), fp("worker2"));
    let work = tempfile::tempdir().unwrap();
    let home = work.path().join("home");
    let user_known_hosts = home.join(".ssh/known_hosts");
    fs::create_dir_all(user_known_hosts.parent().unwrap()).unwrap();
    let stranger = keygen(&work.path().join("stranger_key"), KeyKind::Ed25519);
    let stranger_fp = fingerprint_of(&stranger);
    let file = work.path().join("lab.yaml");
    let file_str = file.to_str().unwrap();
    let base = lab_file(&hosts, "10.93.0.0/16");
    let _guard = LabGuard(lab.clone());
    let known_hosts = lab_known_hosts(&lab);

    // 1. The lab file expects another key for master, the user's
    // known_hosts another key for worker1: both refused (exit 3), neither
    // pinned; worker2, vouched for by nobody, is pinned on first use.
    fs::write(&file, with_host_key(&base, &master_ip, &stranger_fp)).unwrap();
    fs::write(
        &user_known_hosts,
        format!("{worker1_ip} {}\n", public_line(&stranger)),
    )
    .unwrap();
    let out = labctl(&home, &["up", file_str]);
    assert_refused(
        "up, wrong keys vouched for",
        &out,
        &[
            "master",
            &master_fp,
            &stranger_fp,
            "ssh.hostKey",
            "worker1",
            &worker1_fp,
        ],
    );
    assert!(
        stderr(&out).contains(&user_known_hosts.display().to_string()),
        "{}",
        show(&out)
    );
    assert!(
        stderr(&out).contains(&format!("worker2: host key {worker2_fp}")),
        "worker2's fingerprint printed: {}",
        show(&out)
    );
    let pins = read(&known_hosts);
    assert!(
        !pins.contains(&format!("{master_ip} ")) && !pins.contains(&format!("{worker1_ip} ")),
        "{pins}"
    );
    assert!(pins.contains(&format!("{worker2_ip} ")), "{pins}");

    // 2. The right keys: master's as its fingerprint in the lab file,
    // worker1's in the user's known_hosts, hashed by `ssh-keygen -H`.
    fs::write(&file, with_host_key(&base, &master_ip, &master_fp)).unwrap();
    fs::write(
        &user_known_hosts,
        format!("{worker1_ip} {}\n", public_line(&hosts.host_key("worker1"))),
    )
    .unwrap();
    let hashed = Command::new("ssh-keygen")
        .arg("-H")
        .arg("-f")
        .arg(&user_known_hosts)
        .output()
        .unwrap();
    assert!(hashed.status.success(), "{hashed:?}");
    let user_file = read(&user_known_hosts);
    assert!(
        user_file.starts_with("|1|") && !user_file.contains(&worker1_ip),
        "{user_file}"
    );
    let out = labctl(&home, &["up", file_str]);
    assert!(out.status.success(), "up: {}", show(&out));
    let text = stderr(&out);
    assert!(
        text.contains(&format!("master: host key {master_fp}")) && text.contains("ssh.hostKey"),
        "{text}"
    );
    assert!(
        text.contains(&format!("worker1: host key {worker1_fp}")),
        "{text}"
    );
    assert!(
        !text.contains("worker2: host key"),
        "worker2 pinned twice: {text}"
    );
    let mut pins: Vec<String> = read(&known_hosts).lines().map(str::to_string).collect();
    pins.sort();
    let mut wanted: Vec<String> = ["master", "worker1", "worker2"]
        .iter()
        .map(|n| {
            format!(
                "{} {} labctl-node={n}",
                ip(n),
                public_line(&hosts.host_key(n))
            )
        })
        .collect();
    wanted.sort();
    assert_eq!(pins, wanted);
    let pinned = read(&known_hosts);

    // 3. worker2's pin lost: an unknown key to every command but `up`.
    let others: String = pinned
        .lines()
        .filter(|l| !l.contains("labctl-node=worker2"))
        .map(|l| format!("{l}\n"))
        .collect();
    fs::write(&known_hosts, &others).unwrap();
    let refusals = [
        ("exec", vec!["exec", "--lab", &lab, "worker2", "--", "true"]),
        (
            "exec --all",
            vec!["exec", "--lab", &lab, "--all", "--", "true"],
        ),
        ("status", vec!["status", "--name", &lab]),
        ("verify", vec!["verify", file_str, "--check", "nodes"]),
        ("ssh", vec!["ssh", "--lab", &lab, "worker2"]),
    ];
    for (what, args) in &refusals {
        let out = labctl(&home, args);
        assert_refused(
            what,
            &out,
            &["worker2", &worker2_fp, "not pinned", "labctl up"],
        );
        assert_eq!(read(&known_hosts), others, "{what} pinned a key");
    }
    let out = labctl(&home, &["up", file_str]);
    assert!(out.status.success(), "up: {}", show(&out));
    assert!(
        stderr(&out).contains(&format!("worker2: host key {worker2_fp}")),
        "{}",
        show(&out)
    );
    assert!(read(&known_hosts).contains(&format!(
        "{worker2_ip} {}",
        public_line(&hosts.host_key("worker2"))
    )));
    let pinned = read(&known_hosts);

    // 4. worker2 replaced by another machine (another host key): refused by
    // everything, `up` included (it did not create that machine).
    let original = work.path().join("worker2_key");
    fs::copy(hosts.host_key("worker2"), &original).unwrap();
    fs::copy(
        format!("{}.pub", hosts.host_key("worker2").display()),
        format!("{}.pub", original.display()),
    )
    .unwrap();
    hosts.replace_host_key("worker2", &stranger);
    for (what, args) in &refusals {
        let out = labctl(&home, args);
        assert_refused(what, &out, &["worker2", &stranger_fp, "investigate"]);
    }
    let out = labctl(&home, &["verify", file_str]);
    assert_refused("verify, all checks", &out, &["worker2", &stranger_fp]);
    let out = labctl(&home, &["up", file_str]);
    assert_refused(
        "up",
        &out,
        &["worker2", &stranger_fp, "did not create", "ssh-keygen -R"],
    );
    // destroy removes the lab from the other nodes, refuses worker2 and
    // keeps the lab's record (and pins) for another try.
    let out = labctl(&home, &["destroy", "--name", &lab]);
    assert_refused("destroy", &out, &["worker2", &stranger_fp, "stays"]);
    assert_eq!(read(&known_hosts), pinned, "a changed key was pinned");
    hosts.replace_host_key("worker2", &original);

    // 5. worker2 leaves the lab: its pin goes with it.
    let without: String = with_host_key(&base, &master_ip, &master_fp)
        .split("  - name: worker2")
        .next()
        .unwrap()
        .to_string();
    fs::write(&file, &without).unwrap();
    let out = labctl(&home, &["up", file_str]);
    assert!(out.status.success(), "up without worker2: {}", show(&out));
    let pins = read(&known_hosts);
    assert!(
        !pins.contains("worker2") && !pins.contains(&format!("{worker2_ip} ")),
        "{pins}"
    );
    assert_eq!(pins.lines().count(), 2, "{pins}");

    // 6. destroy: no pin left anywhere; the user's file as the user wrote it.
    let out = labctl(&home, &["destroy", file_str]);
    assert!(out.status.success(), "destroy: {}", show(&out));
    assert!(
        !known_hosts.exists(),
        "{} left behind",
        known_hosts.display()
    );
    assert!(!known_hosts.parent().unwrap().exists());
    assert_eq!(read(&user_known_hosts), user_file);
}

#[test]
fn netns_nodes_are_pinned_from_the_labs_host_key_and_unpinned_when_removed() {
    let test = "netns_nodes_are_pinned_from_the_labs_host_key_and_unpinned_when_removed";
    if !can_run(test) {
        return;
    }
    let _serial = serial();
    let nodes = ["master", "worker1"];
    let lab = TestLab::new(&lab_name("hk"), "192.168.94.0/24", "10.94.0.0/16", &nodes)
        .with_service_network("10.194.0.0/16");
    let dir = labctl::state::LabDir::new(&lab.name).unwrap();
    let known_hosts = dir.known_hosts();
    // One line per node: its address and the public half of the host key
    // labctl generated for the lab's sshds.
    let wanted = |nodes: &[&str]| -> Vec<String> {
        nodes
            .iter()
            .enumerate()
            .map(|(i, n)| {
                let key = dir.path.join("ssh_host_ecdsa_key");
                format!(
                    "192.168.94.{} {} labctl-node={n}",
                    10 + i,
                    public_line(&key)
                )
            })
            .collect()
    };
    let pins = || -> Vec<String> { read(&known_hosts).lines().map(str::to_string).collect() };

    let out = lab.up();
    assert!(out.status.success(), "up: {}", show(&out));
    // Every connection of `up` requires a pinned key on netns labs: the
    // pins were there before the first contact, and none came from it.
    assert!(!stderr(&out).contains(") pinned ("), "{}", show(&out));
    assert_eq!(pins(), wanted(&nodes));

    // Pins lost: nothing trusts the nodes until `up` pins the lab's key
    // again (from the key files, not from what the nodes present).
    fs::remove_file(&known_hosts).unwrap();
    let out = lab.exec("master", &["true"]);
    assert_refused("exec without pins", &out, &["master", "not pinned"]);
    assert!(!known_hosts.exists(), "exec pinned a key");
    let out = lab.up();
    assert!(out.status.success(), "up: {}", show(&out));
    assert!(!stderr(&out).contains(") pinned ("), "{}", show(&out));
    assert_eq!(pins(), wanted(&nodes));
    let out = lab.exec("worker1", &["true"]);
    assert!(out.status.success(), "exec: {}", show(&out));

    // worker1 leaves the lab, and its pin with it; destroy leaves none.
    lab.write("192.168.94.0/24", "10.94.0.0/16", &["master"]);
    let lab = lab.with_service_network("10.194.0.0/16");
    let out = lab.up();
    assert!(out.status.success(), "up without worker1: {}", show(&out));
    assert_eq!(pins(), wanted(&["master"]));
    let out = support::netns::labctl(&["destroy", lab.path()]);
    assert!(out.status.success(), "destroy: {}", show(&out));
    assert!(
        !known_hosts.exists(),
        "{} left behind",
        known_hosts.display()
    );
}
