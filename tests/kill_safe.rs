//! Kill-safety of a 10-node netns lab: `labctl up` is SIGKILLed three
//! times and `labctl destroy` twice, each at a different phase (as the
//! nodes' sshds start, right after a named step's `✓` line, as the DNS
//! server starts, once destroy has stopped the lab's processes and is
//! deleting its links);
//! then `up` completes, `verify` passes, `destroy` succeeds, and the host
//! is exactly as before (see `support::snapshot`), with no process left in
//! any of the lab's namespaces. Needs root.

mod support;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use ipnet::Ipv4Net;
use labctl::provider::netns::names;
use support::netns::{can_run, lab_name, labctl, serial, show, TestLab};
use support::snapshot::{assert_same_host, lab_netns_inodes, processes_in, Scope, Snapshot};

const NODES: [&str; 10] = [
    "master", "w1", "w2", "w3", "w4", "w5", "w6", "w7", "w8", "w9",
];

/// The longest one labctl run may take before the test gives up on it.
const RUN_DEADLINE: Duration = Duration::from_secs(120);

/// When to SIGKILL a running labctl.
#[derive(Debug, Clone, Copy)]
enum KillAt {
    /// Right after the `nth` (from 1) `✓ STEP` line: the next step has
    /// just begun.
    AfterStep(&'static str, usize),
    /// As soon as this many processes of this program run for the lab
    /// (started, maybe not yet recorded in its state).
    Running(&'static str, usize),
    /// As soon as no process of this program runs for the lab any more:
    /// destroy has stopped them all, and deletes the lab's links next,
    /// then its namespaces (each in one request, milliseconds apart: no
    /// moment between them to aim at).
    Stopped(&'static str),
}

/// Processes of `program` (their name in /proc, which sshd keeps while
/// it rewrites its command line) naming the lab's state folder in their
/// command line: the lab's sshds and dnsmasq.
fn lab_processes(lab: &str, program: &str) -> usize {
    let folder = format!("/labs/{lab}/");
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| {
            std::fs::read_to_string(e.path().join("comm")).is_ok_and(|c| c.trim() == program)
        })
        .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
        .filter(|c| String::from_utf8_lossy(c).contains(&folder))
        .count()
}

fn lab_namespaces(lab: &str) -> usize {
    std::fs::read_dir("/run/netns")
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with(&format!("{lab}-"))
        })
        .count()
}

/// Runs labctl with `args` and SIGKILLs it at `at`. Fails when it ended
/// (or stalled) before that moment.
fn run_and_kill(lab: &str, args: &[&str], at: KillAt) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_labctl"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("labctl starts");
    let stderr = child.stderr.take().expect("piped stderr");
    let (tx, rx) = mpsc::channel();
    // Not joined: a process labctl started may hold the pipe open.
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let started = Instant::now();
    let mut lines = Vec::new();
    let mut seen = 0;
    loop {
        let mut fire = false;
        // Woken by each line at once: a step's line is acted on before
        // the next step is far along.
        match rx.recv_timeout(Duration::from_millis(2)) {
            Ok(line) => {
                if let KillAt::AfterStep(step, nth) = at {
                    if line.starts_with(&format!("✓ {step} ")) {
                        seen += 1;
                        fire = seen == nth;
                    }
                }
                lines.push(line);
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                std::thread::sleep(Duration::from_millis(2));
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
        }
        match at {
            KillAt::Stopped(program) => fire |= lab_processes(lab, program) == 0,
            KillAt::Running(program, n) => fire |= lab_processes(lab, program) >= n,
            KillAt::AfterStep(..) => {}
        }
        if fire {
            child.kill().expect("SIGKILL labctl");
            let status = child.wait().expect("labctl reaped");
            assert_eq!(
                status.signal(),
                Some(libc::SIGKILL),
                "labctl {args:?} ended by itself before the kill at {at:?} ({status:?}):\n{}",
                lines.join("\n")
            );
            eprintln!(
                "labctl {} killed at {at:?} after {:.1}s ({} lab namespaces; last line: {:?})",
                args[0],
                started.elapsed().as_secs_f64(),
                lab_namespaces(lab),
                lines.last()
            );
            return;
        }
        if let Some(status) = child.try_wait().expect("labctl status") {
            std::thread::sleep(Duration::from_millis(50));
            lines.extend(rx.try_iter());
            panic!(
                "labctl {args:?} ended ({status:?}) before the kill at {at:?}:\n{}",
                lines.join("\n")
            );
        }
        if started.elapsed() > RUN_DEADLINE {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "labctl {args:?} never reached {at:?}:\n{}",
                lines.join("\n")
            );
        }
    }
}

/// Underlay, pod and service networks of this test process (no other
/// test uses 192.168.160-175, 10.20-35 or 10.40-55), so runs side by side
/// do not collide; this file's tests take turns (`serial`).
fn networks() -> (String, String, String) {
    let n = std::process::id() % 16;
    (
        format!("192.168.{}.0/24", 160 + n),
        format!("10.{}.0.0/16", 20 + n),
        format!("10.{}.0.0/16", 40 + n),
    )
}

#[test]
fn up_and_destroy_survive_sigkill_at_every_phase() {
    if !can_run("up_and_destroy_survive_sigkill_at_every_phase") {
        return;
    }
    let _serial = serial();
    let name = lab_name("ks");
    let (underlay, pods, services) = networks();
    let own_links: BTreeSet<String> = [names::bridge(&name), names::ext_veth(&name)]
        .into_iter()
        .chain(NODES.iter().map(|node| names::node_veth(&name, node)))
        .collect();
    let scope = Scope {
        lab: &name,
        link: &|l| own_links.contains(l),
        nets: [&underlay, &pods, &services]
            .iter()
            .map(|n| n.parse::<Ipv4Net>().expect("a network"))
            .collect(),
    };
    let before = Snapshot::scoped(&scope);
    // destroy expedites RCU grace periods while it removes links; a killed
    // one leaves that to the next run to undo.
    let rcu = || std::fs::read_to_string("/sys/kernel/rcu_expedited").ok();
    let rcu_before = rcu();
    // Destroys the lab when dropped, whatever happened.
    let lab = TestLab::new(&name, &underlay, &pods, &NODES).with_service_network(&services);
    let started = Instant::now();

    // up, killed while starting the nodes' sshds (one may run unrecorded),
    // while nodes apply their plans and add pods (one command each: the
    // first up's control plane alone, then every node with the service
    // chains), and as the last nodes converge, just before the DNS server
    // starts (starting it is up's last step: a kill as it starts would
    // race up's own end; `up_records_what_a_killed_up_left_unrecorded`
    // covers a DNS server started and not recorded).
    let up = ["up", lab.path()];
    for at in [
        KillAt::Running("sshd", NODES.len() / 2),
        KillAt::AfterStep("Converging data plane and pods", 3),
        KillAt::AfterStep("Converging data plane and pods", NODES.len() - 1),
    ] {
        run_and_kill(&name, &up, at);
    }

    // destroy, killed once it has stopped the lab's processes, then after
    // the lab's namespaces, links and processes are gone.
    let destroy = ["destroy", "--name", &name];
    for at in [
        KillAt::Stopped("sshd"),
        KillAt::AfterStep("Removing namespaces, links and processes", 1),
    ] {
        run_and_kill(&name, &destroy, at);
        // Either the lab is still recorded (destroy can finish it) or
        // its folder is gone: never a folder that lost its state.json.
        let folder = labctl::state::LabDir::new(&name).expect("a lab folder");
        assert!(
            folder.exists() || !folder.path.exists(),
            "destroy killed at {at:?} left {} without its state.json",
            folder.path.display()
        );
    }

    let out = lab.up();
    assert!(out.status.success(), "up after the kills: {}", show(&out));
    let out = labctl(&["verify", lab.path()]);
    assert!(
        out.status.success(),
        "verify after the kills: {}",
        show(&out)
    );
    let namespaces = lab_netns_inodes(&name);
    assert!(namespaces.len() > NODES.len(), "{namespaces:?}");
    let out = labctl(&["destroy", "--name", &name]);
    assert!(out.status.success(), "destroy: {}", show(&out));
    eprintln!(
        "kills, up, verify and destroy took {:.1}s",
        started.elapsed().as_secs_f64()
    );

    assert_same_host(
        &before,
        &Snapshot::scoped(&scope),
        "after the kills and destroy",
    );
    assert_eq!(rcu(), rcu_before, "/sys/kernel/rcu_expedited after destroy");
    let record = labctl::state::labs_root()
        .expect("labs root")
        .with_file_name("rcu-expedited.json");
    assert!(!record.exists(), "{} left", record.display());
    let left = processes_in(&namespaces);
    assert!(
        left.is_empty(),
        "processes left in the lab's namespaces: {left:#?}"
    );
    let named: Vec<String> = support::netns::host("ps", &["-eo", "pid,args"])
        .lines()
        .filter(|l| l.contains(&name))
        .filter(|l| ["labctl", "sshd", "dnsmasq"].iter().any(|p| l.contains(p)))
        .map(str::to_string)
        .collect();
    assert!(
        named.is_empty(),
        "labctl, sshd or dnsmasq of the lab left: {named:#?}"
    );
}

/// An `up` killed between starting a node's sshd (or the DNS server) and
/// recording it leaves it running unrecorded: the next `up` records that
/// process instead of starting a second one, which could not bind the
/// address and would leave the record pointing at a dead pid.
#[test]
fn up_records_what_a_killed_up_left_unrecorded() {
    if !can_run("up_records_what_a_killed_up_left_unrecorded") {
        return;
    }
    let _serial = serial();
    let name = lab_name("ku");
    let (underlay, pods, services) = networks();
    let lab =
        TestLab::new(&name, &underlay, &pods, &["master", "w1"]).with_service_network(&services);
    let out = lab.up();
    assert!(out.status.success(), "up: {}", show(&out));

    // What such a kill leaves: the processes run, state.json lacks them.
    let dir = labctl::state::LabDir::new(&name).expect("the lab's folder");
    let mut state = dir.load().expect("the lab's state");
    let ns = state.netns.as_mut().expect("a netns lab");
    let sshd = ns.nodes.get_mut("w1").and_then(|n| n.sshd.take());
    let dns = ns.dns.take();
    let (Some(sshd), Some(dns)) = (sshd, dns) else {
        panic!("up recorded no sshd for w1 or no DNS server: {state:#?}");
    };
    dir.save(&state).expect("state saved");

    let out = lab.up();
    assert!(
        out.status.success(),
        "up after the lost records: {}",
        show(&out)
    );
    let ns = dir
        .load()
        .expect("the lab's state")
        .netns
        .expect("a netns lab");
    assert_eq!(ns.nodes["w1"].sshd.as_ref(), Some(&sshd), "w1's sshd");
    assert_eq!(ns.dns.as_ref(), Some(&dns), "the DNS server");
    assert_eq!(lab_processes(&name, "sshd"), 2, "one sshd per node");
    assert_eq!(lab_processes(&name, "dnsmasq"), 1, "one DNS server");
    let out = labctl(&["destroy", "--name", &name]);
    assert!(out.status.success(), "destroy: {}", show(&out));
    assert_eq!(
        lab_processes(&name, "sshd") + lab_processes(&name, "dnsmasq"),
        0
    );
}

/// What a killed run can leave of a lab without its state.json: the folder
/// of an `up` killed before it first saved (or, before removals were
/// renamed away first, of a half-removed folder), and a folder renamed for
/// removal. `destroy --name` removes both; before, it said "nothing to do"
/// and left private keys behind.
#[test]
fn destroy_removes_what_a_killed_run_left() {
    let state_home = tempfile::tempdir().expect("a temporary folder");
    // SAFETY: geteuid cannot fail.
    let root = unsafe { libc::geteuid() } == 0;
    let name = format!("kl{}", std::process::id());
    let dir = labctl::paths::lab_dir_for(&name, root, Some(state_home.path()), None)
        .expect("a lab folder");
    let trash = dir.with_file_name(format!(".{name}.removing"));
    let _cleanup = RemoveOnDrop(vec![dir.clone(), trash.clone()]);
    for leftover in [&dir, &trash] {
        std::fs::create_dir_all(leftover.join("nodes/w1")).unwrap();
        std::fs::write(leftover.join("nodes/w1/ssh_host_ed25519_key"), "key").unwrap();
        std::fs::write(leftover.join("known_hosts"), "pins").unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_labctl"))
            .args(["destroy", "--name", &name])
            .env("XDG_STATE_HOME", state_home.path())
            .output()
            .expect("labctl runs");
        assert!(out.status.success(), "{}", show(&out));
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("removed what an interrupted run left"),
            "{}",
            show(&out)
        );
        assert!(
            !dir.exists() && !trash.exists(),
            "{} stays",
            leftover.display()
        );
    }
}

/// Removes the test's folders whatever happened.
struct RemoveOnDrop(Vec<std::path::PathBuf>);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        for path in &self.0 {
            let _ = std::fs::remove_dir_all(path);
        }
    }
}
