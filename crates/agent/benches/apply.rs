//! Benchmark: a plan with 1,000 peers applied to a fresh node namespace.
//! Measures the agent's cold apply (whole process: netlink, iptables,
//! files), its no-op re-apply, and the baseline of `ip -batch` plus
//! `bridge -batch` creating the same kernel objects (vxlan, bridge, 1,000
//! neighbours, FDB entries and routes) in another fresh namespace.
//! The agent enters the namespace itself (`--netns`, like `ip -n` does for
//! the baseline), so neither side pays for `ip netns exec`'s mount
//! namespace setup. Run as root: `cargo bench -p labctl-agent --bench apply`.

#[path = "../tests/common/mod.rs"]
mod common;

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use common::*;

const PEERS: u32 = 1000;
const ROUNDS: usize = 3;

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

fn time(f: impl FnOnce()) -> Duration {
    let t = Instant::now();
    f();
    t.elapsed()
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
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
    let (mut cold, mut noop, mut batch) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..ROUNDS {
        let ns = node_ns_wide(&format!("{p}a{round}"), all[0].ip);
        cold.push(time(|| {
            let r = agent_netns(&ns.name, &plan, &["apply"]);
            assert_eq!(r.code, 0, "{}", r.stderr);
        }));
        noop.push(time(|| {
            let r = agent_netns(&ns.name, &plan, &["apply"]);
            assert_eq!(r.code, 0, "{}", r.stderr);
            assert_eq!(r.json["created"], 0);
        }));
        assert_eq!(agent(&ns.name, &plan, &["teardown"]).code, 0);

        let base = node_ns_wide(&format!("{p}b{round}"), all[0].ip);
        let mut ip_cmds = String::new();
        let mut fdb_cmds = String::new();
        writeln!(
            ip_cmds,
            "link add flannel.1 address {} mtu 1450 type vxlan id 1 local {} dev eth1 dstport 8472 nolearning ttl 0",
            plan.vxlan.mac, plan.underlay_ip
        )
        .unwrap();
        writeln!(
            ip_cmds,
            "addr add {} dev flannel.1\nlink set flannel.1 up",
            plan.vxlan.address
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
    let (c, n, b) = (median(cold), median(noop), median(batch));
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!("labctl-agent apply, {PEERS} peers, median of {ROUNDS} rounds");
    println!("| measurement                               | time (ms) |");
    println!("|-------------------------------------------|-----------|");
    println!(
        "| agent cold apply (fresh namespace)        | {:9.1} |",
        ms(c)
    );
    println!(
        "| agent no-op re-apply                      | {:9.1} |",
        ms(n)
    );
    println!(
        "| ip -batch + bridge -batch, same objects   | {:9.1} |",
        ms(b)
    );
    println!(
        "no-op / cold = {:.1}%, cold / ip-batch = {:.2}",
        100.0 * ms(n) / ms(c),
        ms(c) / ms(b)
    );
}
