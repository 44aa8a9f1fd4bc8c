//! A hand-built flannel VXLAN lab made of network namespaces (the same
//! objects flannel-node.md lists, made with `ip`, `bridge` and
//! `iptables-restore`), so verify's probes can be exercised and faults
//! injected without the lifecycle code. Everything lives in namespaces
//! named with a unique prefix; `Drop` deletes them all, even on failure.
//! The underlay bridge sits in its own namespace: nothing touches the
//! host's root namespace.

#![allow(dead_code)]

use std::io::Write;
use std::net::Ipv4Addr;
use std::process::{Command, Stdio};

use labctl::verify::model::{LabView, NodeView, Outside, PodView};

pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Runs a command, feeding `stdin`; panics with its stderr on failure.
pub fn sh(argv: &[&str], stdin: Option<&str>) {
    let mut child = Command::new(argv[0])
        .args(&argv[1..])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {argv:?}: {e}"));
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
    }
    drop(child.stdin.take());
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{argv:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

pub struct HandLab {
    pub prefix: String,
    pub nodes: usize,
    pub view: LabView,
    pub pods: Vec<PodView>,
}

pub fn node_ns(prefix: &str, i: usize) -> String {
    format!("{prefix}-n{i}")
}

fn mac(i: usize) -> String {
    format!("0e:fa:0a:f4:{:02x}:{:02x}", i / 256, i % 256)
}

fn subnet_net(i: usize) -> String {
    format!("10.244.{i}.0")
}

pub fn underlay_ip(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(192, 168, 77, 10 + i as u8)
}

fn iptables_payload(i: usize) -> String {
    format!(
        "*nat\n:FLANNEL-POSTRTG - [0:0]\n\
-A POSTROUTING -m comment --comment \"flanneld masq\" -j FLANNEL-POSTRTG\n\
-A FLANNEL-POSTRTG -m mark --mark 0x4000/0x4000 -m comment --comment \"flanneld masq\" -j RETURN\n\
-A FLANNEL-POSTRTG -s 10.244.{i}.0/24 -d 10.244.0.0/16 -m comment --comment \"flanneld masq\" -j RETURN\n\
-A FLANNEL-POSTRTG -s 10.244.0.0/16 -d 10.244.{i}.0/24 -m comment --comment \"flanneld masq\" -j RETURN\n\
-A FLANNEL-POSTRTG ! -s 10.244.0.0/16 -d 10.244.{i}.0/24 -m comment --comment \"flanneld masq\" -j RETURN\n\
-A FLANNEL-POSTRTG -s 10.244.0.0/16 ! -d 224.0.0.0/4 -m comment --comment \"flanneld masq\" -j MASQUERADE --random-fully\n\
-A FLANNEL-POSTRTG ! -s 10.244.0.0/16 -d 10.244.0.0/16 -m comment --comment \"flanneld masq\" -j MASQUERADE --random-fully\n\
COMMIT\n*filter\n:FLANNEL-FWD - [0:0]\n\
-A FORWARD -m comment --comment \"flanneld forward\" -j FLANNEL-FWD\n\
-A FLANNEL-FWD -s 10.244.0.0/16 -m comment --comment \"flanneld forward\" -j ACCEPT\n\
-A FLANNEL-FWD -d 10.244.0.0/16 -m comment --comment \"flanneld forward\" -j ACCEPT\n\
COMMIT\n"
    )
}

impl HandLab {
    /// Builds an `n`-node lab: underlay 192.168.77.0/24 (bridge in
    /// `<prefix>-u`), node i at .10+i with 10.244.i.0/24, a pod per node,
    /// the outside world `<prefix>-ext` at 198.18.0.1.
    pub fn build(tag: &str, n: usize) -> HandLab {
        let prefix = format!("lvt{tag}{}", std::process::id() % 10000);
        let mut lab = HandLab {
            prefix: prefix.clone(),
            nodes: n,
            view: view(&prefix, n),
            pods: Vec::new(),
        };
        let u = format!("{prefix}-u");
        let ext = format!("{prefix}-ext");
        sh(&["ip", "netns", "add", &u], None);
        sh(&["ip", "netns", "add", &ext], None);
        for i in 0..n {
            sh(&["ip", "netns", "add", &node_ns(&prefix, i)], None);
            sh(
                &[
                    "ip",
                    "netns",
                    "add",
                    &format!("{}-busybox", node_ns(&prefix, i)),
                ],
                None,
            );
        }
        let mut ub = String::from("link add br0 type bridge\nlink set br0 up\nlink set lo up\n");
        for i in 0..n {
            ub += &format!(
                "link add v{i} type veth peer name eth1 netns {}\nlink set v{i} master br0 up\n",
                node_ns(&prefix, i)
            );
        }
        ub += &format!(
            "link add vx type veth peer name eth1 netns {ext}\nlink set vx master br0 up\n"
        );
        sh(&["ip", "-n", &u, "-batch", "-"], Some(&ub));
        sh(
            &["ip", "-n", &ext, "-batch", "-"],
            Some("link set lo up\naddr add 198.18.0.1/32 dev lo\naddr add 192.168.77.1/24 dev eth1\nlink set eth1 up\n"),
        );
        for i in 0..n {
            let ns = node_ns(&prefix, i);
            let pod = format!("{ns}-busybox");
            let ip = underlay_ip(i);
            let mut b = format!(
                "link set lo up\naddr add {ip}/24 dev eth1\nlink set eth1 up\n\
link add flannel.1 address {} type vxlan id 1 local {ip} dev eth1 dstport 8472 nolearning\n\
link set flannel.1 mtu 1450 up\naddr add 10.244.{i}.0/32 dev flannel.1\n\
link add cni0 type bridge\nlink set cni0 mtu 1450 up\naddr add 10.244.{i}.1/24 dev cni0\n\
link add vp type veth peer name eth0 netns {pod}\nlink set vp mtu 1450 master cni0 up\n\
route add default via 192.168.77.1\n",
                mac(i)
            );
            let mut fdb = String::new();
            for j in (0..n).filter(|j| *j != i) {
                b += &format!(
                    "neigh replace {} lladdr {} dev flannel.1 nud permanent\n",
                    subnet_net(j),
                    mac(j)
                );
                b += &format!(
                    "route add 10.244.{j}.0/24 via {} dev flannel.1 onlink\n",
                    subnet_net(j)
                );
                fdb += &format!(
                    "fdb append {} dev flannel.1 dst {} self permanent\n",
                    mac(j),
                    underlay_ip(j)
                );
            }
            sh(&["ip", "-n", &ns, "-batch", "-"], Some(&b));
            if !fdb.is_empty() {
                sh(&["bridge", "-n", &ns, "-batch", "-"], Some(&fdb));
            }
            sh(
                &[
                    "ip",
                    "netns",
                    "exec",
                    &ns,
                    "sysctl",
                    "-qw",
                    "net.ipv4.ip_forward=1",
                ],
                None,
            );
            sh(
                &[
                    "ip",
                    "netns",
                    "exec",
                    &ns,
                    "iptables-restore",
                    "-w",
                    "--noflush",
                ],
                Some(&iptables_payload(i)),
            );
            sh(
                &["ip", "-n", &pod, "-batch", "-"],
                Some(&format!(
                    "link set lo up\nlink set eth0 mtu 1450 up\naddr add 10.244.{i}.2/24 dev eth0\nroute add default via 10.244.{i}.1\n"
                )),
            );
            lab.pods.push(PodView {
                node: format!("node{i}"),
                name: "busybox".into(),
                ip: Some(Ipv4Addr::new(10, 244, i as u8, 2)),
                namespace: Some(pod),
                problem: None,
            });
        }
        lab
    }

    /// Runs a command inside node `i`'s namespace.
    pub fn on_node(&self, i: usize, argv: &[&str]) {
        let ns = node_ns(&self.prefix, i);
        let mut full = vec!["ip", "netns", "exec", ns.as_str()];
        full.extend_from_slice(argv);
        sh(&full, None);
    }
}

fn view(prefix: &str, n: usize) -> LabView {
    LabView {
        name: prefix.to_string(),
        provider: "netns".into(),
        vxlan_device: "flannel.1".into(),
        vni: 1,
        port: 8472,
        underlay_mtu: 1500,
        pod_mtu: 1450,
        network: "10.244.0.0/16".parse().unwrap(),
        dns_service_ip: Ipv4Addr::new(10, 96, 0, 10),
        api_service_ip: Ipv4Addr::new(10, 96, 0, 1),
        dns_domain: "cluster.local".into(),
        nodes: (0..n)
            .map(|i| NodeView {
                name: format!("node{i}"),
                underlay_ip: underlay_ip(i),
                subnet: format!("10.244.{i}.0/24").parse().unwrap(),
                vtep_mac: mac(i),
                control_plane: i == 0,
                namespace: Some(node_ns(prefix, i)),
            })
            .collect(),
        outside: Some(Outside {
            ip: Ipv4Addr::new(198, 18, 0, 1),
            namespace: Some(format!("{prefix}-ext")),
        }),
    }
}

/// Raises the kernel's shared ARP table limits; restores them on drop.
pub struct ArpTableSize {
    saved: Vec<(String, String)>,
}

impl ArpTableSize {
    pub fn raise(thresh3: u32) -> ArpTableSize {
        let mut saved = Vec::new();
        for (name, value) in [
            ("gc_thresh1", thresh3 / 8),
            ("gc_thresh2", thresh3 / 2),
            ("gc_thresh3", thresh3),
        ] {
            let path = format!("/proc/sys/net/ipv4/neigh/default/{name}");
            if let Ok(old) = std::fs::read_to_string(&path) {
                if std::fs::write(&path, value.to_string()).is_ok() {
                    saved.push((path, old.trim().to_string()));
                }
            }
        }
        ArpTableSize { saved }
    }
}

impl Drop for ArpTableSize {
    fn drop(&mut self) {
        for (path, old) in self.saved.iter().rev() {
            let _ = std::fs::write(path, old);
        }
    }
}

impl Drop for HandLab {
    fn drop(&mut self) {
        let mut names = vec![format!("{}-u", self.prefix), format!("{}-ext", self.prefix)];
        for i in 0..self.nodes {
            names.push(node_ns(&self.prefix, i));
            names.push(format!("{}-busybox", node_ns(&self.prefix, i)));
        }
        for n in names {
            let _ = Command::new("ip")
                .args(["netns", "del", &n])
                .stderr(Stdio::null())
                .status();
        }
    }
}
