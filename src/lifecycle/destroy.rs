//! `labctl destroy [LAB | --name NAME]`: remove everything a lab created,
//! from its state folder alone (the lab file may be gone, the lab half
//! built). Keeps going past errors and reports them all; a lab that does not
//! exist is "nothing to do" (exit 0), so running it twice is fine. What a
//! killed `up` or `destroy` left of a lab without its state.json is removed.
//!
//! `--forget` is for ssh labs whose hosts are gone for good: their destroy
//! cannot reach the nodes, so it fails and keeps the state folder. Forget
//! removes only that folder and says what may be left on the nodes. Other
//! providers refuse it: what their labs made is on this host (namespaces,
//! VMs and the Vagrantfile in the lab folder), and their destroy can always
//! reach it.

use std::process::ExitCode;

use anyhow::anyhow;

use super::DestroyArgs;
use crate::exit::ExitError;
use crate::lab_select;
use crate::output::GlobalOpts;
use crate::provider;
use crate::state::{LabDir, LabState};
use crate::ui::interrupt;
use crate::ui::progress::Progress;

pub fn destroy(args: &DestroyArgs, global: &GlobalOpts) -> anyhow::Result<ExitCode> {
    interrupt::install();
    let name = lab_select::lab_name(args.lab.as_deref(), args.name.as_deref())?;
    let dir = LabDir::new(&name)?;
    if dir.has_leftovers() {
        let _lock = dir.lock("destroy")?;
        // Its sessions would hold processes on the nodes being removed.
        crate::nodes::keeper::stop(&dir);
        if !dir.exists() {
            return remove_leftovers(&name, &dir, global);
        }
    }
    if !dir.exists() {
        crate::lab_owner::refuse_if_elsewhere(&name, "destroy", ExitError::environment)?;
        release_shared_host_folders()?;
        if !global.quiet {
            println!("Lab {name} does not exist on this host: nothing to do.");
        }
        return Ok(ExitCode::SUCCESS);
    }
    let _lock = dir.lock("destroy")?;
    crate::nodes::keeper::stop(&dir);
    let state = dir.load()?;
    if args.forget {
        return forget(&name, &dir, &state, global);
    }
    let provider = provider::for_kind(&state.provider)?;
    let progress = Progress::new(global.quiet);
    let errors = provider.destroy(&dir, &state, &progress);
    drop(progress);
    if errors.is_empty() {
        if !global.quiet {
            println!("Lab {name} destroyed.");
        }
        return Ok(ExitCode::SUCCESS);
    }
    let all: Vec<String> = errors.iter().map(|e| format!("{e:#}")).collect();
    let hint = if state.provider == "ssh" {
        format!("\nIf its hosts are gone for good, `labctl destroy --name {name} --forget` removes only labctl's record of the lab.")
    } else {
        String::new()
    };
    // A refused host key: the environment, not a failed step (exit 3).
    let wrap = if errors.iter().any(crate::ssh::is_host_key_refusal) {
        ExitError::environment
    } else {
        ExitError::failed
    };
    Err(wrap(anyhow!(
        "lab {name} was not fully removed ({} problems; its state folder {} stays, run destroy again once fixed):\n  {}{hint}",
        errors.len(),
        dir.path.display(),
        all.join("\n  ")
    )))
}

/// A lab folder without state.json (an `up` killed before it first saved
/// its state, or a removal of the folder killed half-way) records nothing
/// created outside it: removing it finishes the job. The caller holds the
/// lab's lock.
fn remove_leftovers(name: &str, dir: &LabDir, global: &GlobalOpts) -> anyhow::Result<ExitCode> {
    dir.remove().map_err(|e| {
        ExitError::environment(anyhow!(
            "cannot remove what an interrupted run left of lab {name}: {e:#}"
        ))
    })?;
    release_shared_host_folders()?;
    if !global.quiet {
        println!(
            "Lab {name} does not exist on this host; removed what an interrupted run left in {}.",
            dir.path.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// The last netns lab's destroy removes the host folders netns labs share,
/// right after the lab's folder: one killed in between left them, and no
/// lab remains to remove them later. Does nothing while a lab remains, or
/// when no netns lab ever made such folders here.
fn release_shared_host_folders() -> anyhow::Result<()> {
    crate::provider::netns::hostdirs::release_if_last()
        .map_err(|e| ExitError::environment(e.context("removing host folders netns labs created")))
}

/// Removes the state folder of an ssh lab without reaching its nodes.
fn forget(
    name: &str,
    dir: &LabDir,
    state: &LabState,
    global: &GlobalOpts,
) -> anyhow::Result<ExitCode> {
    if state.provider != "ssh" {
        return Err(ExitError::usage(anyhow!(
            "--forget is only for ssh labs: lab {name} ({} provider) made its nodes on this host, and `labctl destroy --name {name}` removes them",
            state.provider
        )));
    }
    dir.remove().map_err(|e| {
        ExitError::environment(anyhow!(
            "cannot remove the state folder {} of lab {name}: {e:#}",
            dir.path.display()
        ))
    })?;
    if !global.quiet {
        let nodes: Vec<String> = state
            .nodes
            .iter()
            .map(|(node, s)| format!("{node} ({})", s.ssh_host))
            .collect();
        let left = if state.kubernetes {
            "the Kubernetes cluster"
        } else {
            "flannel's data plane, pods and DNS (gone at the next reboot)"
        };
        println!(
            "Lab {name} forgotten: its state folder is removed; nothing was done on its nodes {}. What labctl made there stays: {left}.",
            nodes.join(", ")
        );
    }
    Ok(ExitCode::SUCCESS)
}
