//! The checks that run from the pods and need no capture: `pod-mesh`,
//! `mtu` and `dns`, each one round of [`super::fanout::run_jobs`] with
//! its pod commands built by [`super::pod_exec::PodExec`].

use super::agent_ping::{self, cell, mtu_probe, MESH};
use super::fanout::{run_jobs, Job, JobOutput};
use super::output::{dns_probe, link_mtus};
use super::pairs::{mtu_pairs, ring_pairs};
use super::pod_exec::{PingReader, Pinged, ProbePod};
use super::scripts::{NODE_MTU_SCRIPT, POD_DNS_SCRIPT, POD_MTU_SCRIPT};
use super::Probes;
use crate::verify::evidence::{DnsProbe, LinkMtu, MeshCoverage, MtuProbe, PingMatrix, PodView};

/// Runs ping jobs and `other` jobs in one round; each ping's report in
/// order, and the other jobs' outputs.
fn pings(
    p: &mut Probes,
    jobs: Vec<(&ProbePod, (Job, PingReader))>,
    other: Vec<Job>,
) -> (Vec<Pinged>, Vec<Result<JobOutput, String>>) {
    let (pods, jobs): (Vec<&ProbePod>, Vec<(Job, PingReader)>) = jobs.into_iter().unzip();
    let (mut jobs, readers): (Vec<Job>, Vec<PingReader>) = jobs.into_iter().unzip();
    let pinged = jobs.len();
    jobs.extend(other);
    let mut outs = run_jobs(&mut p.sessions, &p.target.view, &jobs);
    let rest = outs.split_off(pinged);
    let reports = pods
        .into_iter()
        .zip(readers)
        .zip(outs)
        .map(|((pod, reader), out)| p.exec.read_ping(pod, reader, out))
        .collect();
    (reports, rest)
}

/// `pod-mesh`: every pod pings the pods `coverage` gives it (on other
/// nodes), all pods at once.
pub(super) fn mesh(p: &mut Probes, coverage: MeshCoverage) -> PingMatrix {
    let ok = p.ok.clone();
    let targets: Vec<Vec<&ProbePod>> = (0..ok.len())
        .map(|from| {
            coverage
                .targets(from, ok.len())
                .into_iter()
                .map(|to| &ok[to])
                .filter(|to| to.at != ok[from].at)
                .collect()
        })
        .collect();
    let jobs = ok
        .iter()
        .zip(&targets)
        .map(|(pod, to)| {
            let ips: Vec<String> = to.iter().map(|o| o.ip.to_string()).collect();
            (pod, p.exec.ping(pod, &MESH, &ips))
        })
        .collect();
    let (reports, _) = pings(p, jobs, Vec::new());
    let mut matrix = PingMatrix {
        nodes: ok.iter().map(|pod| pod.node.clone()).collect(),
        cells: Vec::new(),
        coverage,
    };
    for ((from, report), to) in ok.iter().zip(&reports).zip(&targets) {
        for to in to {
            matrix.cells.push(cell(&from.node, &to.node, to.ip, report));
        }
    }
    matrix
}

/// `mtu`: the node MTUs, every pod's eth0 MTU, and don't-fragment pings of
/// pod MTU − 28 and one byte more both ways round the ring of the usable
/// pods, all in one round.
pub(super) fn mtu(p: &mut Probes) -> (Vec<MtuProbe>, Vec<LinkMtu>) {
    let ok = p.ok.clone();
    let view = &p.target.view;
    let fits = view.pod_mtu.saturating_sub(28);
    let pairs = mtu_pairs(ok.len());
    let mut jobs: Vec<Job> = (0..view.nodes.len())
        .map(|at| Job {
            at,
            argv: [
                "sh",
                "-c",
                NODE_MTU_SCRIPT,
                "sh",
                view.vxlan_device.as_str(),
            ]
            .map(String::from)
            .to_vec(),
        })
        .collect();
    jobs.extend(ok.iter().map(|pod| p.exec.in_pod(pod, POD_MTU_SCRIPT, &[])));
    let nodes = view.nodes.len();
    let targets_of = |a: usize| -> Vec<String> {
        pairs
            .iter()
            .filter(|(x, _)| *x == a)
            .map(|(_, b)| ok[*b].ip.to_string())
            .collect()
    };
    let ping_jobs = ok
        .iter()
        .enumerate()
        .flat_map(|(a, pod)| {
            [fits, fits + 1].map(|size| {
                let ping = agent_ping::dont_fragment(size);
                (pod, p.exec.ping(pod, &ping, &targets_of(a)))
            })
        })
        .collect();
    let (reports, outs) = pings(p, ping_jobs, jobs);
    let view = &p.target.view;
    let mut links = Vec::new();
    for (node, out) in view.nodes.iter().zip(&outs) {
        if let Ok(o) = out {
            links.extend(link_mtus(&node.name, "", &o.stdout));
        }
    }
    for (pod, out) in ok.iter().zip(&outs[nodes..]) {
        if let Ok(o) = out {
            links.extend(link_mtus(&pod.node, &pod.name, &o.stdout));
        }
    }
    let probes = ring_pairs(&pairs, &ok)
        .into_iter()
        .zip(&pairs)
        .map(|((from, to, _, target), (a, _))| {
            let (fit, over) = (&reports[2 * a], &reports[2 * a + 1]);
            mtu_probe((&from, &to, target), fits, fit, over)
        })
        .collect();
    (probes, links)
}

/// `dns`: `busybox nslookup kubernetes.default` through each pod's own
/// resolv.conf, in every usable pod and in `also` (the DNS pod asking
/// through the service that leads back to itself: hairpin).
pub(super) fn dns(p: &mut Probes, also: Option<&PodView>) -> Vec<DnsProbe> {
    let mut pods = p.ok.clone();
    pods.extend(p.exec.usable(
        &p.target.view,
        also.into_iter().cloned().collect::<Vec<_>>().as_slice(),
    ));
    let jobs: Vec<Job> = pods
        .iter()
        .map(|pod| p.exec.in_pod(pod, POD_DNS_SCRIPT, &[]))
        .collect();
    let outs = run_jobs(&mut p.sessions, &p.target.view, &jobs);
    pods.iter()
        .zip(outs)
        .map(|(pod, out)| {
            // nslookup exits 1 on NXDOMAIN: its output is the evidence.
            let text = match out {
                Ok(JobOutput { stdout, stderr, .. }) => stdout + &stderr,
                Err(e) => e,
            };
            dns_probe(&pod.node, &pod.name, &text, &p.target.view)
        })
        .collect()
}
