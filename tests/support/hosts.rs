//! "Existing hosts" for the ssh and vagrant provider tests, built on this
//! machine: each host is a network namespace on a test bridge with its own
//! sshd, started with the netns provider's launcher in a mount namespace of
//! its own (its own /run/flannel, /etc/cni/net.d, /run/labctl-agent,
//! /etc/hostname and /etc/hosts, so nothing a test does to a host reaches
//! this machine's files) and its own UTS namespace. labctl reaches them
//! over real SSH, as root with a generated client key.
//!
//! Everything is removed when the [`Hosts`] is dropped, even after a
//! failed assertion.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use labctl::provider::netns::{hostdirs, launch};

use super::sshd::{keygen, public_key_path, KeyKind};

/// True when a lab on these hosts leaves this machine's kernel as it is:
/// ssh and vagrant plans ask the agent for bridge netfilter (their nodes
/// are machines of their own), but these hosts share this machine's
/// kernel, so with br_netfilter missing the agent would load it here and
/// send every bridge's traffic on this machine through iptables until
/// destroy. Prints why the test is skipped otherwise.
pub fn bridge_netfilter_present_or_skip(test: &str) -> bool {
    if Path::new("/proc/sys/net/bridge").is_dir() {
        return true;
    }
    super::skip(
        test,
        "br_netfilter is not loaded on this machine, and the agent of an ssh or vagrant lab \
         on these test hosts (which share this kernel) would load it",
    )
}

/// One host: its namespace, address and private folder.
pub struct Host {
    pub name: String,
    pub netns: String,
    pub ip: Ipv4Addr,
    pub folder: PathBuf,
    host_veth: String,
    sshd_pid: Option<u32>,
}

impl Host {
    /// The host's own folder bound over `target` (e.g. "/run/flannel").
    pub fn bound(&self, target: &str) -> PathBuf {
        self.folder
            .join(target.trim_start_matches('/').replace('/', "_"))
    }

    /// Runs `args` in the host's mount namespace (its sshd's), e.g. to
    /// remount one of its folders.
    pub fn in_mounts(&self, args: &[&str]) -> std::process::Output {
        let pid = self.sshd_pid.expect("the host's sshd runs").to_string();
        Command::new("nsenter")
            .args(["-t", &pid, "-m", "--"])
            .args(args)
            .output()
            .expect("nsenter runs")
    }

    /// The mounts at or under `folder` in the host's mount namespace, each
    /// as `MOUNT-POINT FSTYPE SOURCE`, in mount order.
    pub fn mounts_under(&self, folder: &str) -> Vec<String> {
        let pid = self.sshd_pid.expect("the host's sshd runs");
        let text = std::fs::read_to_string(format!("/proc/{pid}/mountinfo")).unwrap_or_default();
        text.lines()
            .filter_map(|l| {
                let fields: Vec<&str> = l.split(' ').collect();
                let point = *fields.get(4)?;
                let dash = fields.iter().position(|f| *f == "-")?;
                let under = point == folder || point.starts_with(&format!("{folder}/"));
                let fstype = fields.get(dash + 1)?;
                let source = fields.get(dash + 2)?;
                under.then(|| format!("{point} {fstype} {source}"))
            })
            .collect()
    }
}

/// A set of hosts on one bridge, removed on drop.
pub struct Hosts {
    /// Prefix of every namespace here: name the lab the same, and its pod
    /// namespaces (`<lab>-<node>-<pod>`) are cleaned up too.
    pub tag: String,
    /// The hosts' /24: `prefix`.0/24.
    pub prefix: [u8; 3],
    pub hosts: Vec<Host>,
    pub bridge: String,
    pub client_key: PathBuf,
    pub dir: tempfile::TempDir,
}

/// The mount namespace every host's is copied from, made on first use.
static TEMPLATE: std::sync::LazyLock<launch::LazyTemplate> = std::sync::LazyLock::new(|| {
    launch::LazyTemplate::hiding(vec![PathBuf::from(launch::NETNS_DIR)])
});

/// Folders each host gets for itself.
const PRIVATE_DIRS: &[&str] = &["/run/flannel", "/etc/cni/net.d", "/run/labctl-agent"];
/// Files each host gets a copy of.
const PRIVATE_FILES: &[&str] = &["/etc/hostname", "/etc/hosts"];

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("ip runs");
    assert!(
        out.status.success(),
        "ip {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Hosts {
    /// `names.len()` hosts `<tag>-<name>` on `prefix`.0/24 (host .1 on the
    /// bridge, hosts .10, .11, ...). `tag` keeps names unique per test.
    pub fn start(tag: &str, prefix: [u8; 3], names: &[&str]) -> Hosts {
        hostdirs::ensure().expect("host folders for the hosts' mounts");
        std::fs::create_dir_all("/run/sshd").expect("/run/sshd");
        let dir = tempfile::tempdir().expect("temporary folder");
        let client_key = keygen(&dir.path().join("client_key"), KeyKind::Ed25519);
        let bridge = format!("lhb{tag}");
        let mut hosts = Hosts {
            tag: tag.to_string(),
            prefix,
            hosts: Vec::new(),
            bridge: bridge.clone(),
            client_key,
            dir,
        };
        let [a, b, c] = prefix;
        ip(&["link", "add", &bridge, "type", "bridge"]);
        ip(&["addr", "add", &format!("{a}.{b}.{c}.1/24"), "dev", &bridge]);
        ip(&["link", "set", &bridge, "up"]);
        for (i, name) in names.iter().enumerate() {
            let host = Host {
                name: name.to_string(),
                netns: format!("{tag}-{name}"),
                ip: Ipv4Addr::new(a, b, c, 10 + i as u8),
                folder: hosts.dir.path().join(name),
                host_veth: format!("lhv{tag}{i}"),
                sshd_pid: None,
            };
            ip(&["netns", "add", &host.netns]);
            hosts.hosts.push(host);
            let host = hosts.hosts.last_mut().expect("just pushed");
            ip(&[
                "link",
                "add",
                &host.host_veth,
                "type",
                "veth",
                "peer",
                "name",
                "eth1",
                "netns",
                &host.netns,
            ]);
            ip(&["link", "set", &host.host_veth, "master", &bridge, "up"]);
            let addr = format!("{}/24", host.ip);
            for args in [
                vec!["addr", "add", &addr, "dev", "eth1"],
                vec!["link", "set", "eth1", "up"],
                vec!["link", "set", "lo", "up"],
            ] {
                let mut full = vec!["-n", host.netns.as_str()];
                full.extend(args);
                ip(&full);
            }
            // Real machines have their nat and filter tables in place
            // already (with iptables-nft, listing does not create them, but
            // adding a chain does): so snapshots compare what labctl did,
            // not the tables' first use.
            for table in ["filter", "nat"] {
                for op in ["-N", "-X"] {
                    ip(&[
                        "netns",
                        "exec",
                        &host.netns,
                        "iptables",
                        "-w",
                        "-t",
                        table,
                        op,
                        "LABCTL-TEST",
                    ]);
                }
            }
            let pid = start_sshd(host, &public_key_path(&hosts.client_key));
            host.sshd_pid = Some(pid);
        }
        hosts
    }

    /// The host's SSH host key (private; its public half at `.pub`).
    pub fn host_key(&self, name: &str) -> PathBuf {
        self.by_name(name).folder.join("ssh_host_key")
    }

    /// Restarts host `name`'s sshd with the host key at `key` (and
    /// `key.pub`): the same address, another machine as far as SSH can
    /// tell. Its private folders are kept.
    pub fn replace_host_key(&mut self, name: &str, key: &Path) {
        let authorized = public_key_path(&self.client_key);
        let host = self
            .hosts
            .iter_mut()
            .find(|h| h.name == name)
            .expect("a host of that name");
        if let Some(pid) = host.sshd_pid.take() {
            // SAFETY: kill(2) and waitpid(2) on the sshd this test started.
            unsafe {
                libc::kill(pid as i32, libc::SIGKILL);
                libc::waitpid(pid as i32, &mut 0, 0);
            }
        }
        // Another machine: nothing of the old one's sessions lives on.
        let pids = std::process::Command::new("ip")
            .args(["netns", "pids", &host.netns])
            .output()
            .expect("ip netns pids");
        for pid in String::from_utf8_lossy(&pids.stdout).split_whitespace() {
            if let Ok(pid) = pid.parse::<i32>() {
                // SAFETY: kill(2) on a process in the test's own namespace.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        }
        let target = host.folder.join("ssh_host_key");
        std::fs::copy(key, &target).expect("copy the host key");
        std::fs::copy(public_key_path(key), public_key_path(&target)).expect("copy its .pub");
        let _ = std::fs::remove_file(host.folder.join("sshd.log"));
        host.sshd_pid = Some(start_sshd(host, &authorized));
    }

    /// The host called `name`.
    pub fn by_name(&self, name: &str) -> &Host {
        self.hosts
            .iter()
            .find(|h| h.name == name)
            .expect("a host of that name")
    }
}

/// Writes the host's sshd config and private files, starts sshd placed in
/// the host, and waits until it listens. Returns its pid.
fn start_sshd(host: &Host, authorized: &Path) -> u32 {
    std::fs::create_dir_all(&host.folder).unwrap();
    let mut binds = Vec::new();
    for target in PRIVATE_DIRS {
        let src = host.bound(target);
        std::fs::create_dir_all(&src).unwrap();
        binds.push((src, PathBuf::from(target)));
    }
    for target in PRIVATE_FILES {
        let src = host.bound(target);
        let contents = if *target == "/etc/hostname" {
            format!("{}\n", host.name)
        } else {
            format!("127.0.0.1 localhost\n127.0.1.1 {}\n", host.name)
        };
        std::fs::write(&src, contents).unwrap();
        binds.push((src, PathBuf::from(target)));
    }
    // Kept across restarts (see `Hosts::replace_host_key`).
    let host_key = host.folder.join("ssh_host_key");
    if !host_key.is_file() {
        keygen(&host_key, KeyKind::Ed25519);
    }
    let config = host.folder.join("sshd_config");
    std::fs::write(
        &config,
        format!(
            "ListenAddress {ip}:22\nHostKey {key}\nAuthorizedKeysFile {auth}\n\
             PermitRootLogin prohibit-password\nPubkeyAuthentication yes\n\
             PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\n\
             StrictModes no\nUseDNS no\nPidFile none\nLogLevel INFO\nMaxStartups 100\n\
             MaxSessions 100\n",
            ip = host.ip,
            key = host_key.display(),
            auth = authorized.display(),
        ),
    )
    .unwrap();
    let log = host.folder.join("sshd.log");
    let argv: Vec<String> = ["/usr/sbin/sshd", "-D", "-e", "-f"]
        .iter()
        .map(|s| s.to_string())
        .chain([config.display().to_string()])
        .collect();
    // These hosts share this machine's /run/netns (a clone of it is their
    // /run/netns): pods their agents register show here, as on a machine
    // of its own they would show there.
    let template = TEMPLATE.get().expect("a mount namespace for the hosts");
    let placement = launch::Placement {
        netns: host.netns.clone(),
        node: Some(launch::NodeMounts {
            template,
            netns_dir: PathBuf::from(launch::NETNS_DIR),
            binds,
        }),
        hostname: Some(host.name.clone()),
    };
    let pid = launch::spawn(&argv, &placement, &log).expect("sshd starts in the host");
    let started = Instant::now();
    loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if text.contains("Server listening on") {
            return pid;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "sshd of host {} did not start:\n{text}",
            host.name
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

impl Drop for Hosts {
    fn drop(&mut self) {
        for host in &self.hosts {
            if let Some(pid) = host.sshd_pid {
                // SAFETY: kill(2) on the sshd this test started.
                unsafe { libc::kill(pid as i32, libc::SIGKILL) };
                let mut status = 0;
                // SAFETY: reaping our own child.
                unsafe { libc::waitpid(pid as i32, &mut status, 0) };
            }
            let _ = Command::new("ip")
                .args(["link", "del", &host.host_veth])
                .output();
        }
        // The hosts, and pod namespaces a failed destroy left behind.
        let list = Command::new("ip")
            .args(["netns", "list"])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        let prefix = format!("{}-", self.tag);
        for ns in list
            .lines()
            .filter_map(|l| l.split_whitespace().next())
            .filter(|n| n.starts_with(&prefix))
        {
            // Anything still running there (a dnsmasq a failed test left).
            let pids = Command::new("ip")
                .args(["netns", "pids", ns])
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                .unwrap_or_default();
            for pid in pids
                .split_whitespace()
                .filter_map(|p| p.parse::<i32>().ok())
            {
                // SAFETY: processes inside the test's own namespaces.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
            let _ = Command::new("ip").args(["netns", "del", ns]).output();
            let _ = std::fs::remove_dir_all(format!("/etc/netns/{ns}"));
        }
        let _ = Command::new("ip")
            .args(["link", "del", &self.bridge])
            .output();
        let _ = hostdirs::release_if_last();
    }
}
