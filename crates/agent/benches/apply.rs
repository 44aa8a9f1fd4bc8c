//! Benchmark: a plan with 1,000 peers applied to a fresh node namespace.
//! Measures the agent's cold apply (whole process: netlink, iptables,
//! files), its no-op re-apply, and the baseline of `ip -batch` plus
//! `bridge -batch` creating the same kernel objects (vxlan, bridge, 1,000
//! neighbours, FDB entries and routes) in another fresh namespace.
//! The agent enters the namespace itself (`--netns`, like `ip -n` does for
//! the baseline), so neither side pays for `ip netns exec`'s mount
//! namespace setup. Timed is the process from spawn to exit (the plan is
//! serialised before, the report parsed after). Before each cold apply and
//! each baseline the bench pauses briefly so the kernel's asynchronous
//! clean-up of the namespaces deleted just before does not land in one
//! side's figure; the no-op re-applies follow the cold apply directly, as
//! they did before the pause was introduced.
//! Run as root: `cargo bench -p labctl-agent --bench apply`
//! (`LABCTL_BENCH_ROUNDS=N` for more rounds; `LABCTL_BENCH_AGENT=PATH` to
//! time another build of the agent, e.g. the static one labctl ships).

#[path = "../tests/common/mod.rs"]
mod common;

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use common::*;

const PEERS: u32 = 1000;
/// Rounds (fresh namespaces each); `LABCTL_BENCH_ROUNDS` overrides.
const ROUNDS: usize = 5;
/// No-op re-applies per round (iptables stamp valid, the steady state).
const NOOPS: usize = 5;
/// No-op re-applies per round with the iptables stamp removed first, so
/// the agent lists the rules with `iptables-save` (what a no-op costs after
/// anything else changed the ruleset, or on a legacy-iptables node).
const LISTED: usize = 3;
/// Pause before each cold apply and baseline (see the module doc).
const SETTLE: Duration = Duration::from_millis(300);

fn nodes() -> Vec<NodeSpec> {
    (0..=PEERS)
        .map(|i| NodeSpec {
            name: format!("n{i}"),
            number: i,
            ip: format!("192.168.{}.{}", 56 + (i + 10) / 250, (i + 10) % 250 + 1)
                .parse()
                .unwrap(),
        })
        .collect()
}

/// CPU time (user + system) of all waited-for children so far.
fn children_cpu() -> Duration {
    // SAFETY: getrusage fills the zeroed struct it is given.
    let usage = unsafe {
        let mut u: nix::libc::rusage = std::mem::zeroed();
        nix::libc::getrusage(nix::libc::RUSAGE_CHILDREN, &mut u);
        u
    };
    let tv = |t: nix::libc::timeval| {
        Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64)
    };
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

/// Wall and CPU time of `f`, whose children must all be waited for.
fn time(f: impl FnOnce()) -> (Duration, Duration) {
    std::thread::sleep(SETTLE);
    let cpu = children_cpu();
    let t = Instant::now();
    f();
    (t.elapsed(), children_cpu() - cpu)
}

/// Median, minimum and maximum in milliseconds.
fn stats(mut v: Vec<Duration>) -> (f64, f64, f64) {
    v.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let n = v.len();
    let median = if n % 2 == 1 {
        ms(v[n / 2])
    } else {
        (ms(v[n / 2 - 1]) + ms(v[n / 2])) / 2.0
    };
    (median, ms(v[0]), ms(v[n - 1]))
}

/// Runs the agent with `--netns NS` and the plan JSON on stdin; returns
/// the wall and CPU time from spawn to exit and the parsed report.
fn timed_agent(ns: &str, plan_json: &str) -> ((Duration, Duration), serde_json::Value) {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let cpu = children_cpu();
    let t = Instant::now();
    let agent = std::env::var("LABCTL_BENCH_AGENT").unwrap_or_else(|_| AGENT.into());
    let mut child = Command::new(agent)
        .args(["--netns", ns, "apply"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn agent");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(plan_json.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let elapsed = (t.elapsed(), children_cpu() - cpu);
    assert!(
        out.status.success(),
        "agent apply failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (
        elapsed,
        serde_json::from_slice(&out.stdout).expect("JSON report"),
    )
}

fn node_ns_wide(name: &str, ip: std::net::Ipv4Addr) -> Netns {
    let ns = Netns::new(name);
    nsh(
        name,
        &format!("ip link add eth1 type veth peer name eth1p && ip addr add {ip}/16 dev eth1 && ip link set eth1 up && ip link set eth1p up"),
    );
    ns
}

fn main() {
    if !root_or_skip("bench apply") {
        return;
    }
    let all = nodes();
    let p = prefix("bench");
    let dir = TempDir::new(&p);
    let plan = plan(&p, &all[0], &all, &dir.path());
    let plan_json = plan.to_json();
    let rounds = std::env::var("LABCTL_BENCH_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(ROUNDS);
    let (mut cold, mut noop, mut listed, mut batch) = (vec![], vec![], vec![], vec![]);
    let stamp = std::path::Path::new(&plan.state_dir).join("iptables-verified");
    for round in 0..rounds {
        let ns = node_ns_wide(&format!("{p}a{round}"), all[0].ip);
        std::thread::sleep(SETTLE);
        let (t, report) = timed_agent(&ns.name, &plan_json);
        assert_eq!(report["created"], 3 * PEERS + 9, "{report:#}");
        cold.push(t);
        for i in 0..NOOPS + LISTED {
            if i >= NOOPS {
                let _ = std::fs::remove_file(&stamp);
            }
            let (t, report) = timed_agent(&ns.name, &plan_json);
            for key in ["created", "updated", "removed", "failed"] {
                // (`failed` may be absent: older agents, timed for comparison)
                let n = report[key].as_u64().unwrap_or(0);
                assert_eq!(n, 0, "no-op apply changed something: {report:#}");
            }
            if i < NOOPS { &mut noop } else { &mut listed }.push(t);
        }
        assert_eq!(agent(&ns.name, &plan, &["teardown"]).code, 0);

        let base = node_ns_wide(&format!("{p}b{round}"), all[0].ip);
        let mut ip_cmds = String::new();
        let mut fdb_cmds = String::new();
        writeln!(
            ip_cmds,
            "link add flannel.1 address {} mtu 1450 type vxlan id 1 local {} dev eth1 dstport 8472 nolearning ttl 0",
            plan.vxlan.as_ref().unwrap().mac, plan.underlay_ip
        )
        .unwrap();
        writeln!(
            ip_cmds,
            "addr add {} dev flannel.1\nlink set flannel.1 up",
            plan.vxlan.as_ref().unwrap().address
        )
        .unwrap();
        writeln!(
            ip_cmds,
            "link add cni0 mtu 1450 type bridge\naddr add {} dev cni0\nlink set cni0 up",
            plan.bridge.address
        )
        .unwrap();
        for peer in &plan.peers {
            let gw = peer.subnet.network();
            writeln!(
                ip_cmds,
                "neigh replace {gw} lladdr {} dev flannel.1 nud permanent",
                peer.vtep_mac
            )
            .unwrap();
            writeln!(
                fdb_cmds,
                "fdb replace {} dev flannel.1 dst {} self permanent",
                peer.vtep_mac, peer.underlay_ip
            )
            .unwrap();
        }
        for peer in &plan.peers {
            writeln!(
                ip_cmds,
                "route replace {} via {} dev flannel.1 onlink",
                peer.subnet,
                peer.subnet.network()
            )
            .unwrap();
        }
        let ip_file = format!("{}/ip.batch", dir.path());
        let fdb_file = format!("{}/fdb.batch", dir.path());
        std::fs::create_dir_all(dir.path()).unwrap();
        std::fs::write(&ip_file, ip_cmds).unwrap();
        std::fs::write(&fdb_file, fdb_cmds).unwrap();
        batch.push(time(|| {
            sh(&format!(
                "ip -n {0} -batch {ip_file} && bridge -n {0} -batch {fdb_file}",
                base.name
            ));
        }));
        assert_eq!(
            nsh(&base.name, "ip route | grep -c onlink").trim(),
            PEERS.to_string()
        );
    }
    let wall = |v: &[(Duration, Duration)]| stats(v.iter().map(|t| t.0).collect());
    let cpu = |v: &[(Duration, Duration)]| stats(v.iter().map(|t| t.1).collect());
    println!(
        "labctl-agent apply, {PEERS} peers, {rounds} rounds (each: cold, {NOOPS} no-op, \
         {LISTED} no-op with the rules listed); median [min..max] in ms"
    );
    println!("| measurement                                | wall time             | CPU time |");
    println!("|--------------------------------------------|-----------------------|----------|");
    let row = |what: &str, v: &[(Duration, Duration)]| {
        let (m, lo, hi) = wall(v);
        println!(
            "| {what:<42} | {m:6.1} [{lo:5.1}..{hi:5.1}] | {:8.1} |",
            cpu(v).0
        );
    };
    row("agent cold apply (fresh namespace)", &cold);
    row("agent no-op re-apply", &noop);
    row("agent no-op re-apply, rules listed", &listed);
    row("ip -batch + bridge -batch, same objects", &batch);
    let (c, n, l, b) = (
        wall(&cold).0,
        wall(&noop).0,
        wall(&listed).0,
        wall(&batch).0,
    );
    println!(
        "no-op / cold = {:.1}% (rules listed: {:.1}%), cold / ip-batch = {:.2}",
        100.0 * n / c,
        100.0 * l / c,
        c / b
    );
}
