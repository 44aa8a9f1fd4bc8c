//! Shared helpers for the agent's integration tests: throwaway network
//! namespaces (deleted by Drop guards even when a test fails), a plan
//! builder that produces what labctl would send for a node, and runners for
//! the built agent binary inside a node namespace.
#![allow(dead_code)]

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};

use labctl_nodeplan::report::{self, AgentReport, ApplyReport, CheckReport, ObjectKind};
use labctl_nodeplan::{
    Backend, BridgePlan, ChainPlan, FilePlan, IptablesPlan, MacAddr, NodePlan, PeerPlan, VxlanPlan,
    PLAN_SCHEMA,
};
use serde_json::Value;

pub const AGENT: &str = env!("CARGO_BIN_EXE_labctl-agent");

/// True when running as root; otherwise prints why the test is skipped.
pub fn root_or_skip(test: &str) -> bool {
    if nix::unistd::geteuid().is_root() {
        return true;
    }
    skip(
        test,
        "needs root (creates network namespaces, links and iptables rules)",
    )
}

/// Says why a test cannot run here and returns false; fails under CI
/// (the workspace's one rule, in crates/testenv).
pub use labctl_testenv::skip;

/// Runs a shell command, panicking with its output when it fails.
pub fn sh(cmd: &str) -> String {
    let out = Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .output()
        .expect("run sh");
    assert!(
        out.status.success(),
        "command failed: {cmd}\nstdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs a shell command inside namespace `ns`.
pub fn nsh(ns: &str, cmd: &str) -> String {
    sh(&format!(
        "ip netns exec {ns} sh -c '{}'",
        cmd.replace('\'', "'\\''")
    ))
}

/// A network namespace deleted on drop, together with every pod namespace
/// whose name starts with `<name>-`.
pub struct Netns {
    pub name: String,
}

impl Netns {
    pub fn new(name: &str) -> Netns {
        let _ = Command::new("ip")
            .args(["netns", "del", name])
            .stderr(Stdio::null())
            .status();
        sh(&format!("ip netns add {name}"));
        sh(&format!("ip -n {name} link set lo up"));
        Netns {
            name: name.to_string(),
        }
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        remove_pods(&self.name);
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

/// A node namespace with a pod behind it (10.244.1.2, routed via the
/// node's veth0 10.244.1.1) and a far end on its eth1's network
/// 198.18.`net`.0/24 (node .1, far end .2); the node forwards.
pub struct NodeFarPod {
    pub node: Netns,
    pub far: Netns,
    pub pod: Netns,
}

impl NodeFarPod {
    pub fn new(prefix: &str, net: u8) -> NodeFarPod {
        let node = Netns::new(&format!("{prefix}n"));
        let far = Netns::new(&format!("{prefix}f"));
        let pod = Netns::new(&format!("{prefix}p"));
        let (n, f, q) = (&node.name, &far.name, &pod.name);
        sh(&format!(
            "ip link add eth1 netns {n} type veth peer name eth0 netns {f}"
        ));
        sh(&format!(
            "ip link add veth0 netns {n} type veth peer name eth0 netns {q}"
        ));
        nsh(n, &format!("ip addr add 198.18.{net}.1/24 dev eth1 && ip link set eth1 up && ip addr add 10.244.1.1/24 dev veth0 && ip link set veth0 up && sysctl -qw net.ipv4.ip_forward=1"));
        nsh(
            f,
            &format!("ip addr add 198.18.{net}.2/24 dev eth0 && ip link set eth0 up"),
        );
        nsh(q, "ip addr add 10.244.1.2/24 dev eth0 && ip link set eth0 up && ip route add default via 10.244.1.1");
        NodeFarPod { node, far, pod }
    }
}

/// Deletes pod namespaces `<lab>-*` (and their /etc/netns directories).
pub fn remove_pods(lab: &str) {
    if let Ok(entries) = std::fs::read_dir("/run/netns") {
        for e in entries.flatten() {
            let n = e.file_name().to_string_lossy().into_owned();
            if n.starts_with(&format!("{lab}-")) {
                let _ = Command::new("ip").args(["netns", "del", &n]).status();
                let _ = std::fs::remove_dir_all(format!("/etc/netns/{n}"));
            }
        }
    }
}

/// Deletes a lab's pod namespaces on drop, for tests whose node
/// namespaces are not named after the lab.
pub struct PodGuard(pub String);

impl Drop for PodGuard {
    fn drop(&mut self) {
        remove_pods(&self.0);
    }
}

/// A unique short prefix for one test's objects.
pub fn prefix(test: &str) -> String {
    format!("la{}{}", std::process::id() % 100_000, test)
}

/// A node namespace whose `eth1` holds `ip`/24 (a veth pair: this kernel
/// has no dummy driver). The pair's other end stays in the namespace.
pub fn node_ns(name: &str, ip: Ipv4Addr) -> Netns {
    let ns = Netns::new(name);
    nsh(
        name,
        &format!("ip link add eth1 type veth peer name eth1p && ip addr add {ip}/24 dev eth1 && ip link set eth1 up && ip link set eth1p up"),
    );
    ns
}

/// A deterministic locally administered MAC for node number `n`.
pub fn vtep_mac(n: u32) -> MacAddr {
    MacAddr([0x0e, 0xfa, 0x0a, 0xf4, (n >> 8) as u8, n as u8])
}

/// One node of a test lab: name, number (subnet 10.244.N.0/24) and
/// underlay IP.
#[derive(Clone, Debug)]
pub struct NodeSpec {
    pub name: String,
    pub number: u32,
    pub ip: Ipv4Addr,
}

/// Nodes n0..=n`last`, node i on 192.168.56.(10 + i) with subnet i.
pub fn nodes_up_to(last: u32) -> Vec<NodeSpec> {
    (0..=last)
        .map(|i| NodeSpec {
            name: format!("n{i}"),
            number: i,
            ip: format!("192.168.56.{}", 10 + i).parse().unwrap(),
        })
        .collect()
}

pub fn subnet(n: u32) -> ipnet::Ipv4Net {
    format!("10.{}.{}.0/24", 244 + (n >> 8), n & 255)
        .parse()
        .unwrap()
}

/// The plan labctl would compute for `me` in a lab of `all` nodes, with
/// files and state under `dir`.
pub fn plan(lab: &str, me: &NodeSpec, all: &[NodeSpec], dir: &str) -> NodePlan {
    let network: ipnet::Ipv4Net = "10.244.0.0/16".parse().unwrap();
    let sub = subnet(me.number);
    let masq = |r: &str| format!("-A FLANNEL-POSTRTG {r} -m comment --comment \"flanneld masq\"");
    let nat_rules = vec![
        "-A FLANNEL-POSTRTG -m mark --mark 0x4000/0x4000 -m comment --comment \"flanneld masq\" -j RETURN".to_string(),
        format!("{} -j RETURN", masq(&format!("-s {sub} -d {network}"))),
        format!("{} -j RETURN", masq(&format!("-s {network} -d {sub}"))),
        format!("{} -j RETURN", masq(&format!("! -s {network} -d {sub}"))),
        format!("{} -j MASQUERADE --random-fully", masq(&format!("-s {network} ! -d 224.0.0.0/4"))),
        format!("{} -j MASQUERADE --random-fully", masq(&format!("! -s {network} -d {network}"))),
    ];
    let fwd =
        |r: &str| format!("-A FLANNEL-FWD {r} -m comment --comment \"flanneld forward\" -j ACCEPT");
    NodePlan {
        schema: PLAN_SCHEMA,
        lab: lab.to_string(),
        node: me.name.clone(),
        underlay_ip: me.ip,
        underlay_mtu: 1500,
        network,
        subnet: sub,
        backend: Backend::Vxlan,
        vxlan: Some(VxlanPlan {
            name: "flannel.1".into(),
            vni: 1,
            port: 8472,
            mtu: 1450,
            mac: vtep_mac(me.number),
            address: format!("{}/32", sub.network()).parse().unwrap(),
        }),
        bridge: BridgePlan {
            name: "cni0".into(),
            address: format!("{}/24", Ipv4Addr::from(u32::from(sub.network()) + 1)).parse().unwrap(),
            mtu: 1450,
        },
        peers: all
            .iter()
            .filter(|n| n.name != me.name)
            .map(|n| PeerPlan { node: n.name.clone(), underlay_ip: n.ip, subnet: subnet(n.number), vtep_mac: vtep_mac(n.number) })
            .collect(),
        ip_masq: true,
        dns_service_ip: "10.96.0.10".parse().unwrap(),
        api_service_ip: "10.96.0.1".parse().unwrap(),
        dns_domain: "cluster.local".into(),
        iptables: IptablesPlan {
            nat: Some(ChainPlan {
                chain: "FLANNEL-POSTRTG".into(),
                parent: "POSTROUTING".into(),
                jump: "-A POSTROUTING -m comment --comment \"flanneld masq\" -j FLANNEL-POSTRTG".into(),
                rules: nat_rules,
            }),
            filter: ChainPlan {
                chain: "FLANNEL-FWD".into(),
                parent: "FORWARD".into(),
                jump: "-A FORWARD -m comment --comment \"flanneld forward\" -j FLANNEL-FWD".into(),
                rules: vec![fwd(&format!("-s {network}")), fwd(&format!("-d {network}"))],
            },
            services: None,
        },
        files: vec![FilePlan {
            path: format!("{dir}/run/flannel/subnet.env"),
            mode: 0o644,
            contents: format!(
                "FLANNEL_NETWORK={network}\nFLANNEL_SUBNET={}\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=true\n",
                format_args!("{}/24", Ipv4Addr::from(u32::from(sub.network()) + 1))
            ),
        }],
        state_dir: format!("{dir}/state"),
        // The test node is a namespace on this host: no module loading.
        bridge_netfilter: false,
    }
}

/// A scratch directory removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(name: &str) -> TempDir {
        let p = std::env::temp_dir().join(format!("labctl-agent-test-{name}"));
        let _ = std::fs::remove_dir_all(&p);
        TempDir(p)
    }
    pub fn path(&self) -> String {
        self.0.display().to_string()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The result of one agent run.
pub struct Run {
    pub code: i32,
    /// The report as JSON, for failure messages.
    pub json: Value,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// The report, decoded as labctl decodes it (version and command
    /// checked, unknown fields refused).
    pub fn report<T: AgentReport>(&self) -> T {
        report::decode(&self.node(), &self.stdout)
            .unwrap_or_else(|e| panic!("{e}\nstdout: {}\nstderr: {}", self.stdout, self.stderr))
    }

    fn node(&self) -> String {
        self.json["node"].as_str().unwrap_or("?").to_string()
    }

    /// An `apply` report.
    pub fn apply(&self) -> ApplyReport {
        self.report()
    }

    /// A `check` report.
    pub fn check(&self) -> CheckReport {
        self.report()
    }
}

fn finish(out: Output) -> Run {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    Run {
        code: out.status.code().unwrap_or(-1),
        json: serde_json::from_str(&stdout).unwrap_or(Value::String(stdout.clone())),
        stdout,
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Runs the agent with `args` and no stdin: exit code (-1 for a signal),
/// stdout, stderr.
pub fn agent_args(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(AGENT).args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Runs the agent under `ip netns exec NS` with the plan on stdin.
pub fn agent(ns: &str, plan: &NodePlan, args: &[&str]) -> Run {
    run_with_stdin(
        Command::new("ip")
            .args(["netns", "exec", ns, AGENT])
            .args(args),
        plan,
    )
}

/// Runs the agent with `--netns NS` (same mount namespace as the test,
/// which pod commands need).
pub fn agent_netns(ns: &str, plan: &NodePlan, args: &[&str]) -> Run {
    run_with_stdin(Command::new(AGENT).args(["--netns", ns]).args(args), plan)
}

fn run_with_stdin(cmd: &mut Command, plan: &NodePlan) -> Run {
    finish(spawn_with_stdin(cmd, plan).wait_with_output().unwrap())
}

/// Starts the agent with `--netns NS` and the plan on stdin without
/// waiting for it: a capture that runs while the test makes traffic.
pub fn spawn_agent_netns(ns: &str, plan: &NodePlan, args: &[&str]) -> Child {
    spawn_with_stdin(Command::new(AGENT).args(["--netns", ns]).args(args), plan)
}

/// Waits for a capture [`spawn_agent_netns`] started; its report.
pub fn capture_report<T: AgentReport>(capture: Child) -> T {
    let run = finish(capture.wait_with_output().unwrap());
    assert_eq!(run.code, 0, "capture failed: {}", run.stderr);
    run.report()
}

fn spawn_with_stdin(cmd: &mut Command, plan: &NodePlan) -> Child {
    use std::io::Write;
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn agent");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(plan.to_json().as_bytes())
        .unwrap();
    child
}

/// The kind and action of `object` in an apply report.
pub fn action(report: &ApplyReport, object: &str) -> (ObjectKind, report::Action) {
    report
        .objects
        .iter()
        .find(|o| o.object == object)
        .map(|o| (o.kind, o.action))
        .unwrap_or_else(|| panic!("object {object} not in report: {report:#?}"))
}

/// The objects of a check report's differences.
pub fn diff_objects(report: &CheckReport) -> Vec<String> {
    report
        .differences
        .iter()
        .map(|d| d.object.clone())
        .collect()
}

/// `ping` from iputils when installed, else busybox's.
pub fn ping() -> &'static str {
    if Command::new("ping").arg("-V").output().is_ok() {
        "ping"
    } else {
        "busybox ping"
    }
}
