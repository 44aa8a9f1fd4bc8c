//! The host programs each kind of lab runs, and the packages that provide
//! them (apt, dnf), for doctor's findings and `up --install-deps`.

/// A host tool and the packages that provide it (apt, dnf).
pub struct Tool {
    pub program: &'static str,
    pub apt: &'static str,
    pub dnf: &'static str,
}

const fn tool(program: &'static str, apt: &'static str, dnf: &'static str) -> Tool {
    Tool { program, apt, dnf }
}

/// What the netns provider runs on the host (the nodes share its files).
pub const NETNS_TOOLS: &[Tool] = &[
    tool("ip", "iproute2", "iproute"),
    tool("iptables", "iptables", "iptables-nft"),
    tool("iptables-restore", "iptables", "iptables-nft"),
    tool("/usr/sbin/sshd", "openssh-server", "openssh-server"),
    tool("ssh-keygen", "openssh-client", "openssh-clients"),
    tool("ssh", "openssh-client", "openssh-clients"),
    tool("busybox", "busybox-static", "busybox"),
    tool("dnsmasq", "dnsmasq-base", "dnsmasq"),
];

/// What vagrant and ssh labs run on the host: the lab key and the sessions
/// (Vagrant itself has its own finding).
pub const SSH_TOOLS: &[Tool] = &[
    tool("ssh-keygen", "openssh-client", "openssh-clients"),
    tool("ssh", "openssh-client", "openssh-clients"),
];
