//! `labctl validate [LAB]`: checks a lab file and shows what the lab will be.
//!
//! Text: a table of nodes (role, IP, subnet, VTEP MAC, flannel.1 and cni0
//! addresses), the service IPs and any warnings. `--output json`: the whole
//! lab, every node's plan, the service IPs and the warnings.

use std::path::PathBuf;
use std::process::ExitCode;

use labctl_lab::{Backend, Diagnostic, Lab, ProviderType, Role};
use labctl_nodeplan::NodePlan;
use serde::Serialize;

use crate::labfile;
use crate::output::{paint, table, GlobalOpts, OutputFormat, Style};

/// `labctl validate [LAB]`.
#[derive(Clone, Debug, clap::Args)]
pub struct ValidateArgs {
    /// The lab file (default: ./lab.yaml).
    pub lab: Option<PathBuf>,
}

/// What `--output json` prints.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ValidateReport<'a> {
    pub file: String,
    pub lab: &'a Lab,
    pub plans: &'a [NodePlan],
    pub api_service_ip: String,
    pub dns_service_ip: String,
    pub warnings: &'a [Diagnostic],
}

pub fn validate(args: &ValidateArgs, global: &GlobalOpts) -> anyhow::Result<ExitCode> {
    let loaded = labfile::load(args.lab.as_deref())?;
    let lab = &loaded.lab;
    let plans = labctl_lab::plan(lab);
    let report = ValidateReport {
        file: loaded.path.display().to_string(),
        lab,
        plans: &plans,
        api_service_ip: lab.api_service_ip().to_string(),
        dns_service_ip: lab.dns_service_ip().to_string(),
        warnings: &lab.warnings,
    };
    match global.output {
        OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&report)?),
        OutputFormat::Text => print!("{}", text_report(&report, global)),
    }
    Ok(ExitCode::SUCCESS)
}

/// The human-readable report.
pub fn text_report(report: &ValidateReport, global: &GlobalOpts) -> String {
    let lab = report.lab;
    let net = &lab.network;
    let mut out = String::new();
    let title = format!(
        "{}: lab {} is valid ({} provider, {} nodes)",
        report.file,
        lab.name,
        provider_name(lab.provider.kind),
        lab.nodes.len()
    );
    out.push_str(&paint(&title, Style::Bold, global.color));
    out.push('\n');
    let backend = match net.backend {
        Backend::Vxlan { vni, port } => format!("backend vxlan (VNI {vni}, UDP {port})"),
        Backend::HostGw => "backend host-gw (routes via the peers' node IPs, no tunnel)".into(),
    };
    out.push_str(&format!(
        "underlay {} (MTU {}), pod network {} (/{} per node), {backend}, ipMasq {}\n\n",
        net.underlay,
        net.underlay_mtu,
        net.pod_network,
        net.subnet_len,
        if net.ip_masq { "on" } else { "off" },
    ));
    let rows: Vec<Vec<String>> = lab
        .nodes
        .iter()
        .zip(report.plans)
        .map(|(node, plan)| {
            vec![
                node.name.clone(),
                match node.role {
                    Role::ControlPlane => "control-plane".into(),
                    Role::Worker => "worker".into(),
                },
                node.ip.to_string(),
                plan.subnet.to_string(),
                plan.vxlan
                    .as_ref()
                    .map_or("-".into(), |v| v.mac.to_string()),
                plan.vxlan
                    .as_ref()
                    .map_or("-".into(), |v| v.address.to_string()),
                plan.bridge.address.to_string(),
            ]
        })
        .collect();
    out.push_str(&table(
        &[
            "NODE",
            "ROLE",
            "IP",
            "SUBNET",
            "VTEP MAC",
            "FLANNEL.1",
            "CNI0",
        ],
        &rows,
    ));
    out.push_str(&format!(
        "\nservices: kubernetes API {}, cluster DNS {} (service network {}, domain {})\n",
        report.api_service_ip, report.dns_service_ip, net.service_network, net.dns_domain
    ));
    if !report.warnings.is_empty() {
        out.push_str(&format!(
            "\n{}\n",
            paint("warnings:", Style::Yellow, global.color)
        ));
        for warning in report.warnings {
            out.push_str(&format!("  {warning}\n"));
        }
    }
    out
}

fn provider_name(kind: ProviderType) -> &'static str {
    match kind {
        ProviderType::Netns => "netns",
        ProviderType::Vagrant => "vagrant",
        ProviderType::Ssh => "ssh",
    }
}
