//! What a netns lab checks before it creates anything beyond doctor's
//! preflight ([`crate::doctor`]: root, host tools, kernel modules, the
//! host's routes): `--install-deps` installing missing tools first, and
//! networks that would clash with another lab (exit 2).

use anyhow::{anyhow, Context, Result};
use labctl_lab::Lab;

use crate::doctor::parse::overlaps;
use crate::doctor::{Tool, NETNS_TOOLS};
use crate::exit::ExitError;
use crate::hostcmd;
use crate::state::LabDir;

/// With `--install-deps`, installs the host tools this host lacks (as
/// root); doctor's preflight then names anything still missing.
pub fn install_missing_tools() -> Result<()> {
    let missing: Vec<&Tool> = NETNS_TOOLS
        .iter()
        .filter(|t| !hostcmd::have_program(t.program))
        .collect();
    if missing.is_empty() || !crate::process::is_root() {
        return Ok(());
    }
    install_packages(&missing)
}

fn install_packages(missing: &[&Tool]) -> Result<()> {
    let (manager, mut packages): (&str, Vec<&str>) =
        if hostcmd::have_program("apt-get") {
            ("apt-get", missing.iter().map(|t| t.apt).collect())
        } else if hostcmd::have_program("dnf") {
            ("dnf", missing.iter().map(|t| t.dnf).collect())
        } else {
            return Err(ExitError::environment(anyhow!(
            "--install-deps knows apt-get and dnf, and this host has neither; install {} by hand",
            missing.iter().map(|t| t.program).collect::<Vec<_>>().join(", ")
        )));
        };
    packages.sort();
    packages.dedup();
    eprintln!("Installing {} with {manager}", packages.join(" "));
    if manager == "apt-get" {
        hostcmd::run("apt-get", &["update", "-q"]).map_err(ExitError::environment)?;
    }
    let mut args = vec!["install", "-y", "-q"];
    args.extend(packages.iter());
    let out = std::process::Command::new(manager)
        .args(&args)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .output()
        .with_context(|| format!("cannot run {manager}"))?;
    if !out.status.success() {
        return Err(ExitError::environment(hostcmd::failure(
            &hostcmd::display(manager, &args),
            &out,
        )));
    }
    Ok(())
}

/// Exit 2 when the lab's underlay or pod network overlaps another lab's.
/// (Service networks only exist inside nodes, so labs may share one; the
/// host's routes are doctor's.)
pub fn check_other_labs(lab: &Lab) -> Result<()> {
    let mut problems = Vec::new();
    let ours = [
        ("underlay", lab.network.underlay),
        ("pod network", lab.network.pod_network),
    ];
    for other in crate::state::lab_names() {
        if other == lab.name {
            continue;
        }
        let Ok(other_dir) = LabDir::new(&other) else {
            continue;
        };
        let Ok(st) = other_dir.load() else { continue };
        for (what, net) in ours {
            for (their_what, theirs) in [("underlay", st.underlay), ("pod network", st.pod_network)]
            {
                if let Some(theirs) = theirs.filter(|t| overlaps(net, *t)) {
                    problems.push(format!(
                        "the {what} {net} overlaps lab {other}'s {their_what} {theirs}"
                    ));
                }
            }
        }
    }
    if problems.is_empty() {
        return Ok(());
    }
    Err(ExitError::usage(anyhow!(
        "lab {} cannot be created on this host: {}; choose other networks in the lab file",
        lab.name,
        problems.join("; ")
    )))
}
