//! The text `labctl init` writes: every field with its default and a comment
//! on what it means, per provider. Pure: no I/O.

use labctl_lab::ProviderType;

const HEADER: &str = "\
# A labctl lab file, written by `labctl init`: the nodes, the network they
# share and flannel's pod network on top. Check it with `labctl validate`,
# build it with `labctl up`, prove it works with `labctl verify`.
#
# Only apiVersion, kind, name and nodes are required; every other field
# below shows its default and may be deleted. Editors validate and complete
# this file with its JSON Schema: `labctl schema > lab.schema.json`, then make
# this the first line: # yaml-language-server: $schema=lab.schema.json
apiVersion: labctl/v1alpha1
kind: Lab
# Lowercase letters, digits and '-', at most 20 characters: it prefixes
# everything the lab creates (namespaces, links, VMs).
name: {name}
";

const NETNS_PROVIDER: &str = "
provider:
  # netns: each node is a network namespace on this host with its own
  # OpenSSH server (keys made per lab, kept in the lab's folder). Needs root
  # (`sudo labctl up`) and nothing else. Other providers: vagrant (VMs),
  # ssh (existing hosts); `labctl init --provider ...` writes those.
  type: netns
";

const VAGRANT_PROVIDER: &str = "
provider:
  # vagrant: one VM per node. labctl renders the Vagrantfile, runs
  # `vagrant up` and puts a key of its own (in the lab's folder) on every VM.
  type: vagrant
  box: bento/ubuntu-24.04
  # virtualbox | libvirt | vmware_desktop | hyperv. With libvirt also:
  # libvirtDriver: kvm (or qemu, software emulation without /dev/kvm) and
  # isolated: false (true: no NAT, no DHCP, no route off the host).
  vagrantProvider: virtualbox
";

const SSH_PROVIDER: &str = "
provider:
  # ssh: existing machines (cloud VMs, bare metal), Debian or Ubuntu, reached
  # over SSH with the key given per node below. labctl uses `sudo -n` when
  # the user is not root.
  type: ssh
";

/// The network block; `underlay` is the provider's lab network.
fn network_block(underlay: &str, note: &str) -> String {
    format!(
        "
network:
{note}  underlay: {underlay}
  # Pods get the underlay MTU minus 50 bytes (the VXLAN encapsulation).
  underlayMTU: 1500
  # flannel's Network (kubeadm's podSubnet): node i gets its i-th /subnetLen.
  podNetwork: 10.244.0.0/16
  subnetLen: 24
  # Service IPs: .1 is the API server (kubernetes.default), .10 cluster DNS.
  serviceNetwork: 10.96.0.0/12
  dnsDomain: cluster.local
  # flannel's VXLAN backend: the VNI and the UDP port of the tunnels. Or
  # {{type: host-gw}}: routes via the peers' node IPs, no tunnel (one L2 segment).
  backend: {{type: vxlan, vni: 1, port: 8472}}
  # Masquerade pod traffic that leaves the pod network (flannel's ipMasq).
  ipMasq: true
"
    )
}

const NETNS_NETWORK_NOTE: &str =
    "  # The network the nodes share: a bridge on this host holds its .1. Nothing
  # routes from it to your real networks.
";

const VAGRANT_NETWORK_NOTE: &str =
    "  # The host-only network the VMs share. VirtualBox allows host-only
  # addresses only inside 192.168.56.0/21 (192.168.56.0 - 192.168.63.255)
  # unless /etc/vbox/networks.conf lists other ranges: keep the underlay and
  # every node's ip inside it.
";

const SSH_NETWORK_NOTE: &str =
    "  # The network the hosts share: replace with yours. Each node's ip below is
  # its address on it (flannel's VTEP address), not necessarily ssh.host.
";

const KUBERNETES: &str = "
kubernetes:
  # true: a kubeadm cluster (init on the control plane, join on workers),
  # flannel's data plane on the podCIDRs it assigns. false: the data plane,
  # pods and cluster DNS built by labctl alone, no Kubernetes.
  enabled: true
  # The minor version, quoted (\"1.37\", not 1.37).
  version: \"1.37\"
";

const NODES_INTRO: &str = "
# Exactly one control plane; every other node is a worker (the default
# role). Names are DNS labels and become hostnames. ip defaults to the
# underlay's .10 plus the node's position.
nodes:
";

const VERIFY: &str = "
verify:
  # The image `labctl verify` runs its checks in (pods, DNS, egress).
  image: busybox:1.28
";

const VM_VERIFY_EGRESS: &str =
    "  # Optional, no default: an address outside the cluster that the egress
  # check pings (pods must leave masqueraded to their node's IP), e.g.
  # egressTarget: {prefix}.1
";

/// The commented lab file for `provider` with these nodes (the first is
/// the control plane).
pub fn lab_text(provider: ProviderType, name: &str, nodes: &[String]) -> String {
    let (provider_block, prefix, note) = match provider {
        ProviderType::Netns => (NETNS_PROVIDER, "192.168.56", NETNS_NETWORK_NOTE),
        ProviderType::Vagrant => (VAGRANT_PROVIDER, "192.168.56", VAGRANT_NETWORK_NOTE),
        ProviderType::Ssh => (SSH_PROVIDER, "10.0.10", SSH_NETWORK_NOTE),
    };
    let mut text = HEADER.replace("{name}", name);
    text.push_str(provider_block);
    text.push_str(&network_block(&format!("{prefix}.0/24"), note));
    match provider {
        ProviderType::Netns => text.push_str(
            "\n# netns labs never run Kubernetes: labctl builds flannel's data plane,\n\
             # the pods and cluster DNS itself.\n",
        ),
        ProviderType::Vagrant | ProviderType::Ssh => text.push_str(KUBERNETES),
    }
    text.push_str(NODES_INTRO);
    for (i, node) in nodes.iter().enumerate() {
        let ip = format!("{prefix}.{}", 10 + i);
        text.push_str(&node_block(provider, node, i == 0, &ip));
    }
    text.push_str(VERIFY);
    if provider != ProviderType::Netns {
        text.push_str(&VM_VERIFY_EGRESS.replace("{prefix}", prefix));
    }
    text
}

fn node_block(provider: ProviderType, name: &str, first: bool, ip: &str) -> String {
    let mut block = format!("  - name: {name}\n");
    if first {
        block.push_str("    role: control-plane\n");
    }
    block.push_str(&format!("    ip: {ip}\n"));
    match provider {
        ProviderType::Netns => {}
        ProviderType::Vagrant => {
            if first {
                block.push_str("    # The VM's size: kubeadm wants 2 CPUs and 1700 MiB or more.\n");
            }
            block.push_str("    cpus: 2\n    memory: 2048  # MiB\n");
        }
        ProviderType::Ssh => {
            if first {
                block.push_str(SSH_KEY_NOTE);
            }
            block.push_str(&format!(
                "    ssh: {{host: {ip}, port: 22, user: ubuntu, key: ~/.ssh/id_ed25519}}\n"
            ));
        }
    }
    block
}

const SSH_KEY_NOTE: &str =
    "    # How labctl reaches the host. key is the private key on this machine
    # (mode 0600); its public half (key.pub) goes into ~/.ssh/authorized_keys
    # of user on the host: `ssh-keygen -t ed25519`, then
    # `ssh-copy-id -i ~/.ssh/id_ed25519 ubuntu@HOST`. Optional pin of the
    # host's key: hostKey: SHA256:... (else pinned on first contact).
";
