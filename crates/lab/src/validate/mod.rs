//! Semantic validation: fills every default and checks the decoded lab,
//! collecting every problem (each with its field path and position) before
//! answering, so a learner fixes the whole file in one pass.

pub(crate) mod network;
mod nodes;
mod verify;

use crate::diag::{Diagnostic, LabError, Severity};
use crate::model::{
    Kubernetes, Lab, LibvirtDriver, Provider, ProviderType, VagrantProvider, Verify,
};
use crate::positions::PositionIndex;
use crate::raw::RawLab;

pub const API_VERSION: &str = "labctl/v1alpha1";
pub const KIND: &str = "Lab";
pub const DEFAULT_BOX: &str = "bento/ubuntu-24.04";
pub const DEFAULT_KUBERNETES_VERSION: &str = "1.37";
pub const DEFAULT_VERIFY_IMAGE: &str = "busybox:1.28";
/// Lab names prefix namespace, link and VM names, which the kernel limits.
pub const MAX_LAB_NAME: usize = 20;
/// Node names are DNS labels (they become hostnames).
pub const MAX_NODE_NAME: usize = 63;
/// What [`is_lab_name`] asks for, as advice to whoever typed a bad name.
pub const LAB_NAME_RULE: &str =
    "use at most 20 lowercase letters, digits and '-', starting and ending with a letter or digit";

/// The rule for a lab name, wherever it comes from (the lab file's `name`,
/// a name on labctl's command line, a folder in the state directory): a
/// lowercase DNS label of at most [`MAX_LAB_NAME`] characters, so it can
/// never be `..`, hold a `/` or anything a shell would read.
pub fn is_lab_name(name: &str) -> bool {
    is_dns_label(name, MAX_LAB_NAME)
}

/// The rule for a node name: a lowercase DNS label.
pub fn is_node_name(name: &str) -> bool {
    is_dns_label(name, MAX_NODE_NAME)
}

/// Collects diagnostics, each placed at its field's position.
pub(crate) struct Checker<'a> {
    file: &'a str,
    index: &'a PositionIndex,
    diagnostics: Vec<Diagnostic>,
}

impl Checker<'_> {
    fn push(&mut self, severity: Severity, path: &str, message: String, hint: Option<String>) {
        let pos = self.index.locate(path);
        self.diagnostics.push(Diagnostic {
            severity,
            file: self.file.to_string(),
            path: path.to_string(),
            line: pos.map(|p| p.line),
            column: pos.map(|p| p.column),
            message,
            hint,
        });
    }

    pub(crate) fn error(&mut self, path: &str, message: impl Into<String>, hint: impl Into<Hint>) {
        self.push(Severity::Error, path, message.into(), hint.into().0);
    }

    pub(crate) fn warning(
        &mut self,
        path: &str,
        message: impl Into<String>,
        hint: impl Into<Hint>,
    ) {
        self.push(Severity::Warning, path, message.into(), hint.into().0);
    }

    /// True when the file spells out `path` (as opposed to a default).
    pub(crate) fn given(&self, path: &str) -> bool {
        self.index.contains(path)
    }
}

/// An optional hint: `()` for none, or any string.
pub(crate) struct Hint(Option<String>);

impl From<()> for Hint {
    fn from(_: ()) -> Hint {
        Hint(None)
    }
}

impl From<String> for Hint {
    fn from(s: String) -> Hint {
        Hint(Some(s))
    }
}

impl From<&str> for Hint {
    fn from(s: &str) -> Hint {
        Hint(Some(s.to_string()))
    }
}

/// Defaults and checks `raw`; errors (with any warnings) or the complete lab.
pub(crate) fn validate(raw: RawLab, file: &str, index: &PositionIndex) -> Result<Lab, LabError> {
    let mut check = Checker {
        file,
        index,
        diagnostics: Vec::new(),
    };

    match raw.api_version.as_deref() {
        Some(API_VERSION) => {}
        None => check.error(
            "apiVersion",
            "missing",
            format!("start the file with `apiVersion: {API_VERSION}`"),
        ),
        Some(other) => check.error(
            "apiVersion",
            format!("`{other}` is not a supported apiVersion"),
            format!("use `apiVersion: {API_VERSION}`"),
        ),
    }
    match raw.kind.as_deref() {
        Some(KIND) => {}
        None => check.error("kind", "missing", format!("add `kind: {KIND}`")),
        Some(other) => check.error(
            "kind",
            format!("`{other}` is not a kind this file can hold"),
            format!("use `kind: {KIND}`"),
        ),
    }
    let name = raw.name.unwrap_or_default();
    if name.is_empty() {
        check.error(
            "name",
            "missing: every lab needs a name",
            "add `name: ...`, a lowercase DNS label of at most 20 characters",
        );
    } else if !is_lab_name(&name) {
        check.error(
            "name",
            format!("`{name}` is not a valid lab name"),
            LAB_NAME_RULE,
        );
    }

    let provider = provider(&mut check, raw.provider.unwrap_or_default());
    let kubernetes = kubernetes(
        &mut check,
        raw.kubernetes.unwrap_or_default(),
        provider.kind,
    );
    let node_count = raw.nodes.as_ref().map_or(0, Vec::len);
    let network = network::network(&mut check, raw.network.unwrap_or_default(), node_count);
    let nodes = nodes::nodes(&mut check, raw.nodes, &provider, &network);

    let raw_verify = raw.verify.unwrap_or_default();
    let image = raw_verify
        .image
        .unwrap_or_else(|| DEFAULT_VERIFY_IMAGE.to_string());
    if image.trim().is_empty() {
        check.error(
            "verify.image",
            "empty",
            format!("name the image that verify runs, e.g. {DEFAULT_VERIFY_IMAGE}"),
        );
    }
    let egress_target = verify::egress_target(
        &mut check,
        raw_verify.egress_target,
        provider.kind,
        &network,
        &nodes,
    );

    let mut diagnostics = check.diagnostics;
    // Top to bottom, as the learner reads the file; missing positions first.
    diagnostics.sort_by_key(|d| (d.line, d.column));
    let (errors, warnings): (Vec<_>, Vec<_>) = diagnostics.iter().partition(|d| d.is_error());
    if !errors.is_empty() {
        return Err(LabError { diagnostics });
    }
    Ok(Lab {
        name,
        provider,
        network: network.into_network(),
        kubernetes,
        nodes,
        verify: Verify {
            image,
            egress_target,
        },
        warnings: warnings.into_iter().cloned().collect(),
    })
}

fn provider(check: &mut Checker, raw: crate::raw::RawProvider) -> Provider {
    let kind = raw.kind.unwrap_or(ProviderType::Netns);
    if kind != ProviderType::Vagrant {
        for field in ["box", "vagrantProvider"] {
            let path = format!("provider.{field}");
            if check.given(&path) {
                check.warning(
                    &path,
                    format!("only the vagrant provider uses {field}; it is ignored here"),
                    "remove it, or set `provider.type: vagrant`",
                );
            }
        }
    }
    let box_name = raw.box_name.unwrap_or_else(|| DEFAULT_BOX.to_string());
    if box_name.trim().is_empty() {
        check.error(
            "provider.box",
            "empty",
            format!("name a Vagrant box, e.g. {DEFAULT_BOX}"),
        );
    }
    let vagrant_provider = raw.vagrant_provider.unwrap_or(VagrantProvider::Virtualbox);
    let libvirt = kind == ProviderType::Vagrant && vagrant_provider == VagrantProvider::Libvirt;
    if !libvirt && check.given("provider.libvirtDriver") {
        check.warning(
            "provider.libvirtDriver",
            "only vagrant labs with `vagrantProvider: libvirt` use libvirtDriver; it is ignored here",
            "remove it, or set `provider.type: vagrant` and `vagrantProvider: libvirt`",
        );
    }
    let isolated = raw.isolated.unwrap_or(false);
    // A lab asking for isolation must not silently get NAT networks.
    if !libvirt && isolated {
        check.error(
            "provider.isolated",
            "isolated networks exist only for vagrant labs with `vagrantProvider: libvirt`",
            "remove it, or set `provider.type: vagrant` and `vagrantProvider: libvirt`",
        );
    }
    Provider {
        kind,
        box_name,
        vagrant_provider,
        libvirt_driver: raw.libvirt_driver.unwrap_or(LibvirtDriver::Kvm),
        isolated,
    }
}

fn kubernetes(
    check: &mut Checker,
    raw: crate::raw::RawKubernetes,
    provider: ProviderType,
) -> Kubernetes {
    let netns = provider == ProviderType::Netns;
    if netns && raw.enabled == Some(true) {
        check.error(
            "kubernetes.enabled",
            "netns labs never install Kubernetes",
            "remove it (or set it to false), or use `provider.type: vagrant` or `ssh` for a kubeadm cluster",
        );
    }
    let enabled = raw.enabled.unwrap_or(!netns) && !netns;
    let version = raw
        .version
        .unwrap_or_else(|| DEFAULT_KUBERNETES_VERSION.to_string());
    if !is_minor_version(&version) {
        check.error(
            "kubernetes.version",
            format!("`{version}` is not a Kubernetes minor version of the form 1.N"),
            format!("write the minor version only, quoted, e.g. \"{DEFAULT_KUBERNETES_VERSION}\""),
        );
    }
    Kubernetes { enabled, version }
}

/// `1.N`, N without leading zeros.
fn is_minor_version(v: &str) -> bool {
    match v.strip_prefix("1.") {
        Some(minor) => {
            !minor.is_empty()
                && minor.bytes().all(|b| b.is_ascii_digit())
                && (minor == "0" || !minor.starts_with('0'))
        }
        None => false,
    }
}

/// An RFC 1123 label: lowercase letters, digits and '-', starting and ending
/// with a letter or digit, 1 to `max` characters.
pub(crate) fn is_dns_label(s: &str, max: usize) -> bool {
    let ok_char = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-';
    !s.is_empty()
        && s.len() <= max
        && s.bytes().all(ok_char)
        && !s.starts_with('-')
        && !s.ends_with('-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_labels() {
        assert!(is_dns_label("worker-1", 63));
        assert!(is_dns_label("1node", 63));
        assert!(!is_dns_label("Worker", 63));
        assert!(!is_dns_label("-a", 63));
        assert!(!is_dns_label("a-", 63));
        assert!(!is_dns_label("a_b", 63));
        assert!(!is_dns_label("", 63));
        assert!(!is_dns_label(&"a".repeat(21), 20));
    }

    #[test]
    fn minor_versions() {
        assert!(is_minor_version("1.37"));
        assert!(is_minor_version("1.0"));
        assert!(!is_minor_version("1.37.1"));
        assert!(!is_minor_version("v1.37"));
        assert!(!is_minor_version("1.037"));
        assert!(!is_minor_version("2.1"));
        assert!(!is_minor_version("1."));
    }
}
