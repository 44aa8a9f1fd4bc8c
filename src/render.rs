//! Rendered artifacts: the Vagrantfile, the kubeadm configs and each node's
//! plan files, from the templates in `templates/` (compiled in).
//!
//! Templates run with autoescape OFF (they are Ruby and YAML, not HTML) and
//! strict undefined (a misspelt variable is an error, not an empty string).
//! Strings go through the `q` (YAML/JSON double-quoted) or `rb` (Ruby
//! double-quoted) filter, so no lab value can break the syntax.
//!
//! Bootstrap secrets are inputs: without them the files carry clearly named
//! placeholders, and a file holding a real token is written 0600.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, Context};
use labctl_lab::{Lab, LibvirtDriver, Node, ProviderType, Role, VagrantProvider};
use labctl_nodeplan::NodePlan;
use minijinja::{AutoEscape, Environment, UndefinedBehavior};
use serde::Serialize;

use crate::exit::ExitError;

/// Stands in for the bootstrap token until the control plane is initialised.
pub const TOKEN_PLACEHOLDER: &str = "__BOOTSTRAP_TOKEN__";
/// Stands in for `sha256:<hex>` of the cluster CA's public key.
pub const CA_HASH_PLACEHOLDER: &str = "__CA_CERT_HASH__";
/// containerd's CRI socket (the runtime the node preparation installs).
pub const CRI_SOCKET: &str = "unix:///run/containerd/containerd.sock";
/// Seconds Vagrant waits for a VM to boot: nested virtualization and WSL2
/// are slow.
pub const BOOT_TIMEOUT_SECS: u32 = 900;

/// The cluster secrets kubeadm files carry, when known.
#[derive(Clone, Debug, Default)]
pub struct JoinSecrets {
    /// Bootstrap token, `[a-z0-9]{6}.[a-z0-9]{16}`.
    pub token: Option<String>,
    /// Discovery CA hash, `sha256:<64 hex>`.
    pub ca_cert_hash: Option<String>,
}

impl JoinSecrets {
    /// Checks the formats kubeadm will insist on, without echoing the values.
    pub fn validate(&self) -> anyhow::Result<()> {
        if let Some(token) = &self.token {
            if !is_bootstrap_token(token) {
                return Err(ExitError::usage(anyhow!(
                    "the bootstrap token is malformed: it must be 6 and 16 lowercase letters or digits joined by a dot"
                )));
            }
        }
        if let Some(hash) = &self.ca_cert_hash {
            let hex = hash.strip_prefix("sha256:").unwrap_or("");
            if hex.len() != 64 || !hex.bytes().all(|c| c.is_ascii_hexdigit()) {
                return Err(ExitError::usage(anyhow!(
                    "the CA certificate hash is malformed: it must be sha256: followed by 64 hex digits"
                )));
            }
        }
        Ok(())
    }
}

fn is_bootstrap_token(token: &str) -> bool {
    let ok = |s: &str, n: usize| {
        s.len() == n
            && s.bytes()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
    };
    matches!(token.split_once('.'), Some((id, secret)) if ok(id, 6) && ok(secret, 16))
}

/// One rendered file, its path relative to the output folder.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Artifact {
    pub path: PathBuf,
    pub contents: String,
    /// Holds a real secret: written 0600 instead of 0644.
    pub secret: bool,
}

impl Artifact {
    /// Permission bits for the written file.
    pub fn mode(&self) -> u32 {
        if self.secret {
            0o600
        } else {
            0o644
        }
    }
}

/// Every artifact a lab's provider uses: the `Vagrantfile` (vagrant labs),
/// `kubeadm-init.yaml` and `kubeadm-join-<worker>.yaml` per worker
/// (vagrant and ssh labs with Kubernetes), and per node
/// `nodes/<node>/plan.json` plus each file of its plan (`subnet.env`,
/// `10-flannel.conflist`) under its base name. `plans` come from
/// `labctl_lab::plan` (or `plan_with_subnets`), in node order.
pub fn render_all(
    lab: &Lab,
    plans: &[NodePlan],
    secrets: &JoinSecrets,
) -> anyhow::Result<Vec<Artifact>> {
    secrets.validate()?;
    let mut out = Vec::new();
    // Only what the lab's provider uses: netns labs run neither Vagrant nor
    // kubeadm, ssh labs bring their own machines, network-only labs skip
    // kubeadm.
    if lab.provider.kind == ProviderType::Vagrant {
        out.push(Artifact {
            path: "Vagrantfile".into(),
            contents: vagrantfile(lab)?,
            secret: false,
        });
    }
    if lab.kubernetes.enabled && lab.provider.kind != ProviderType::Netns {
        out.push(Artifact {
            path: "kubeadm-init.yaml".into(),
            contents: kubeadm_init(lab, secrets)?,
            secret: secrets.token.is_some(),
        });
        for node in lab.nodes.iter().filter(|n| n.role == Role::Worker) {
            out.push(Artifact {
                path: format!("kubeadm-join-{}.yaml", node.name).into(),
                contents: kubeadm_join(lab, node, secrets)?,
                secret: secrets.token.is_some(),
            });
        }
    }
    for plan in plans {
        let dir = Path::new("nodes").join(&plan.node);
        out.push(Artifact {
            path: dir.join("plan.json"),
            contents: plan.to_json(),
            secret: false,
        });
        for file in &plan.files {
            let name = Path::new(&file.path).file_name().ok_or_else(|| {
                anyhow!(
                    "node {}: plan file path {:?} has no file name",
                    plan.node,
                    file.path
                )
            })?;
            out.push(Artifact {
                path: dir.join(name),
                contents: file.contents.clone(),
                secret: false,
            });
        }
    }
    Ok(out)
}

/// The multi-machine Vagrantfile (LF endings).
pub fn vagrantfile(lab: &Lab) -> anyhow::Result<String> {
    #[derive(Serialize)]
    struct VNode<'a> {
        name: &'a str,
        role: &'static str,
        ip: String,
        cpus: u32,
        memory: u32,
        primary: bool,
    }
    #[derive(Serialize)]
    struct VProvider {
        name: &'static str,
        /// A box other than the default one for this provider.
        r#box: Option<&'static str>,
    }
    let nodes: Vec<VNode> = lab
        .nodes
        .iter()
        .map(|n| VNode {
            name: &n.name,
            role: role_name(n.role),
            ip: n.ip.to_string(),
            cpus: n.cpus,
            memory: n.memory,
            primary: n.role == Role::ControlPlane,
        })
        .collect();
    // Vagrant's default provider is the first usable one declared: the lab's
    // provider goes first.
    let chosen = lab.provider.vagrant_provider;
    let mut order = vec![
        VagrantProvider::Virtualbox,
        VagrantProvider::Libvirt,
        VagrantProvider::VmwareDesktop,
        VagrantProvider::Hyperv,
    ];
    order.retain(|p| *p != chosen);
    order.insert(0, chosen);
    let providers: Vec<VProvider> = order
        .into_iter()
        .map(|p| VProvider {
            name: vagrant_provider_name(p),
            r#box: box_override(&lab.provider.box_name, p, chosen),
        })
        .collect();
    // Validation allows `isolated` only for libvirt labs.
    let isolated = lab.provider.isolated && chosen == VagrantProvider::Libvirt;
    render_template(
        "Vagrantfile.j2",
        &serde_json::json!({
            "lab_name": lab.name,
            "box": lab.provider.box_name,
            "boot_timeout": BOOT_TIMEOUT_SECS,
            "nodes": nodes,
            "providers": providers,
            "libvirt_driver": libvirt_driver_name(lab.provider.libvirt_driver),
            "isolated": isolated,
            "lab_network_name": format!("labctl-{}", lab.name),
            "management_network_name": format!("labctl-{}-mgmt", lab.name),
            "management_network_address": if isolated {
                management_network(lab)?.to_string()
            } else {
                String::new()
            },
        }),
    )
}

/// libvirt's domain type for the lab's driver.
fn libvirt_driver_name(driver: LibvirtDriver) -> &'static str {
    match driver {
        LibvirtDriver::Kvm => "kvm",
        LibvirtDriver::Qemu => "qemu",
    }
}

/// An isolated lab's own libvirt management network: a /24 picked from
/// the lab name (so two labs seldom collide, and never with
/// vagrant-libvirt's default 192.168.121.0/24) among 192.168.200-249.0,
/// then 172.31.200-249.0, skipping any that overlaps the lab's networks.
pub fn management_network(lab: &Lab) -> anyhow::Result<ipnet::Ipv4Net> {
    let hash = lab
        .name
        .bytes()
        .fold(0u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b)));
    let taken = [
        lab.network.underlay,
        lab.network.pod_network,
        lab.network.service_network,
    ];
    for (a, b) in [(192, 168), (172, 31)] {
        for i in 0..50 {
            let third = 200 + (hash % 50 + i) % 50;
            let net = ipnet::Ipv4Net::new(std::net::Ipv4Addr::new(a, b, third as u8, 0), 24)?;
            let overlaps = taken
                .iter()
                .any(|t| t.contains(&net.network()) || net.contains(&t.network()));
            if !overlaps {
                return Ok(net);
            }
        }
    }
    Err(ExitError::usage(anyhow!(
        "lab {}: no free /24 for the isolated management network in 192.168.200-249.0 \
         or 172.31.200-249.0 (the lab's networks cover them)",
        lab.name
    )))
}

/// bento boxes have no libvirt build: under libvirt, use the community
/// Ubuntu 24.04 cloud image box, which has one. Only for providers other
/// than the lab's own (whose box the lab file chose on purpose).
fn box_override(
    box_name: &str,
    provider: VagrantProvider,
    chosen: VagrantProvider,
) -> Option<&'static str> {
    (provider == VagrantProvider::Libvirt && provider != chosen && box_name.starts_with("bento/"))
        .then_some("cloud-image/ubuntu-24.04")
}

/// `kubeadm-init.yaml`: Init + Cluster + Kubelet + KubeProxy configuration.
pub fn kubeadm_init(lab: &Lab, secrets: &JoinSecrets) -> anyhow::Result<String> {
    kubeadm_init_release(lab, secrets, &kubernetes_version(&lab.kubernetes.version))
}

/// `kubeadm-init.yaml` for the exact release the nodes installed
/// (`kubernetes_version`: `v1.N.P`).
pub fn kubeadm_init_release(
    lab: &Lab,
    secrets: &JoinSecrets,
    kubernetes_version: &str,
) -> anyhow::Result<String> {
    let cp = lab.control_plane();
    render_template(
        "kubeadm-init.yaml.j2",
        &serde_json::json!({
            "lab_name": lab.name,
            "cp": node_context(cp),
            "token": secrets.token.as_deref().unwrap_or(TOKEN_PLACEHOLDER),
            "cri_socket": CRI_SOCKET,
            "kubernetes_version": kubernetes_version,
            "pod_subnet": lab.network.pod_network.to_string(),
            "subnet_len": lab.network.subnet_len,
            "service_subnet": lab.network.service_network.to_string(),
            "dns_domain": lab.network.dns_domain,
            "cert_sans": [cp.ip.to_string(), cp.name.clone()],
        }),
    )
}

/// `kubeadm-join-<node>.yaml` for one worker.
pub fn kubeadm_join(lab: &Lab, node: &Node, secrets: &JoinSecrets) -> anyhow::Result<String> {
    render_template(
        "kubeadm-join.yaml.j2",
        &serde_json::json!({
            "lab_name": lab.name,
            "cp": node_context(lab.control_plane()),
            "node": node_context(node),
            "token": secrets.token.as_deref().unwrap_or(TOKEN_PLACEHOLDER),
            "ca_cert_hash": secrets.ca_cert_hash.as_deref().unwrap_or(CA_HASH_PLACEHOLDER),
            "cri_socket": CRI_SOCKET,
        }),
    )
}

/// The lab's `1.N` as the release kubeadm installs: `v1.N.0` (see the
/// comment in templates/kubeadm-init.yaml.j2).
pub fn kubernetes_version(minor: &str) -> String {
    format!("v{minor}.0")
}

fn node_context(node: &Node) -> serde_json::Value {
    serde_json::json!({ "name": node.name, "ip": node.ip.to_string() })
}

fn role_name(role: Role) -> &'static str {
    match role {
        Role::ControlPlane => "control-plane",
        Role::Worker => "worker",
    }
}

/// Vagrant's name for a provider.
pub fn vagrant_provider_name(provider: VagrantProvider) -> &'static str {
    match provider {
        VagrantProvider::Virtualbox => "virtualbox",
        VagrantProvider::Libvirt => "libvirt",
        VagrantProvider::VmwareDesktop => "vmware_desktop",
        VagrantProvider::Hyperv => "hyperv",
    }
}

fn environment() -> Result<Environment<'static>, minijinja::Error> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_auto_escape_callback(|_| AutoEscape::None);
    env.set_syntax(
        minijinja::syntax::SyntaxConfig::builder()
            .keep_trailing_newline(true)
            .trim_blocks(true)
            .lstrip_blocks(true)
            .build()?,
    );
    env.add_filter("q", yaml_quote);
    env.add_filter("rb", ruby_quote);
    env.add_template(
        "Vagrantfile.j2",
        include_str!("../templates/Vagrantfile.j2"),
    )?;
    env.add_template(
        "kubeadm-init.yaml.j2",
        include_str!("../templates/kubeadm-init.yaml.j2"),
    )?;
    env.add_template(
        "kubeadm-join.yaml.j2",
        include_str!("../templates/kubeadm-join.yaml.j2"),
    )?;
    Ok(env)
}

fn render_template(name: &str, ctx: &serde_json::Value) -> anyhow::Result<String> {
    let env = environment().context("labctl's built-in templates do not compile")?;
    let template = env
        .get_template(name)
        .with_context(|| format!("template {name} is missing"))?;
    let text = template
        .render(minijinja::value::Serde(ctx))
        .with_context(|| format!("rendering template {name} failed"))?;
    // Generated files use LF endings, even from a checkout with CRLF.
    Ok(text.replace("\r\n", "\n"))
}

/// A YAML (and JSON) double-quoted string.
fn yaml_quote(value: String) -> String {
    serde_json::Value::String(value).to_string()
}

/// A Ruby double-quoted string: `\`, `"` and `#` (interpolation) escaped.
fn ruby_quote(value: String) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        match c {
            '\\' | '"' | '#' => {
                out.push('\\');
                out.push(c);
            }
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Writes artifacts under `dir`, each atomically (temporary file in the same
/// folder, then rename), with [`Artifact::mode`] permissions.
pub fn write_all(dir: &Path, artifacts: &[Artifact]) -> anyhow::Result<()> {
    for artifact in artifacts {
        let path = dir.join(&artifact.path);
        write_atomic(&path, artifact.contents.as_bytes(), artifact.mode())
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}

/// Atomic write (creating the parent folders): readers see the old file or
/// the new one, never a part (`labctl_atomicfile`).
pub fn write_atomic(path: &Path, contents: &[u8], mode: u32) -> std::io::Result<()> {
    labctl_atomicfile::write_creating_dirs(path, contents, mode)
}
