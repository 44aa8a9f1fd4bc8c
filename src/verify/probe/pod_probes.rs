//! The checks that run from the pods and need no capture: `pod-mesh`,
//! `mtu` and `dns`, each one round of [`super::fanout::run_jobs`] with
//! its pod commands built by [`super::pod_exec::PodExec`].

use super::agent_ping::{self, cell, mtu_probe, MESH};
use super::fanout::{run_jobs, Job, JobOutput};
use super::output::{dns_probe, link_mtus};
use super::pairs::{mtu_pairs, ring_pairs};
use super::pod_exec::{PingReader, Pinged, PodExec, ProbePod};
use super::scripts::{NODE_MTU_SCRIPT, POD_DNS_SCRIPT, POD_MTU_SCRIPT};
use super::Probes;
use crate::verify::evidence::{DnsProbe, LinkMtu, MeshCoverage, MtuProbe, PingMatrix, PodView};

/// The reports of the ping jobs at the head of `outs` (one per pod and
/// reader, in order), taken off it; the other jobs' outputs stay.
fn read_pings<'a>(
    p: &Probes,
    pods: impl IntoIterator<Item = &'a ProbePod>,
    readers: Vec<PingReader>,
    outs: &mut Vec<Result<JobOutput, String>>,
) -> Vec<Pinged> {
    let rest = outs.split_off(readers.len().min(outs.len()));
    let pinged = std::mem::replace(outs, rest);
    pods.into_iter()
        .zip(readers)
        .zip(pinged)
        .map(|((pod, reader), out)| p.exec.read_ping(pod, reader, out))
        .collect()
}

/// A `pod-mesh` round: the pods that ping, each one's targets (indexes
/// in `pods`, on other nodes), and each one's ping job and its reader.
pub(super) struct MeshRound {
    pub pods: Vec<ProbePod>,
    targets: Vec<Vec<usize>>,
    pub jobs: Vec<Job>,
    readers: Vec<PingReader>,
    coverage: MeshCoverage,
}

/// The round in which every pod of `pods` pings the pods `coverage`
/// gives it (on other nodes), all pods at once.
pub(super) fn mesh_round(exec: PodExec, pods: Vec<ProbePod>, coverage: MeshCoverage) -> MeshRound {
    let targets: Vec<Vec<usize>> = (0..pods.len())
        .map(|from| {
            coverage
                .targets(from, pods.len())
                .into_iter()
                .filter(|to| pods[*to].at != pods[from].at)
                .collect()
        })
        .collect();
    let (jobs, readers) = pods
        .iter()
        .zip(&targets)
        .map(|(pod, to)| {
            let ips: Vec<String> = to.iter().map(|t| pods[*t].ip.to_string()).collect();
            exec.ping(pod, &MESH, &ips)
        })
        .unzip();
    MeshRound {
        pods,
        targets,
        jobs,
        readers,
        coverage,
    }
}

/// The ping matrix from a mesh round's job outputs (in its jobs' order).
pub(super) fn mesh_matrix(
    p: &Probes,
    round: MeshRound,
    mut outs: Vec<Result<JobOutput, String>>,
) -> PingMatrix {
    let MeshRound {
        pods,
        targets,
        readers,
        coverage,
        ..
    } = round;
    let reports = read_pings(p, &pods, readers, &mut outs);
    let mut matrix = PingMatrix {
        nodes: pods.iter().map(|pod| pod.node.clone()).collect(),
        cells: Vec::new(),
        coverage,
    };
    for ((from, report), to) in pods.iter().zip(&reports).zip(&targets) {
        for to in to.iter().map(|t| &pods[*t]) {
            matrix.cells.push(cell(&from.node, &to.node, to.ip, report));
        }
    }
    matrix
}

/// `pod-mesh`: every usable pod pings the pods `coverage` gives it (on
/// other nodes), all pods at once.
pub(super) fn mesh(p: &mut Probes, coverage: MeshCoverage) -> PingMatrix {
    let round = mesh_round(p.exec, p.ok.clone(), coverage);
    let outs = run_jobs(&mut p.sessions, &p.target.view, &round.jobs);
    mesh_matrix(p, round, outs)
}

/// `mtu`'s jobs and how to read them: the pings come first in the round.
struct MtuRound {
    pods: Vec<ProbePod>,
    readers: Vec<PingReader>,
    pairs: Vec<(usize, usize)>,
    fits: u32,
}

/// `mtu`: the node MTUs, every pod's eth0 MTU, and don't-fragment pings of
/// pod MTU − 28 and one byte more both ways round the ring of the usable
/// pods, all in one round.
pub(super) fn mtu(p: &mut Probes) -> (Vec<MtuProbe>, Vec<LinkMtu>) {
    let (jobs, round) = mtu_jobs(p);
    let outs = run_jobs(&mut p.sessions, &p.target.view, &jobs);
    mtu_read(p, round, outs)
}

/// `dns`: `busybox nslookup kubernetes.default` through each pod's own
/// resolv.conf, in every usable pod and in `also` (the DNS pod asking
/// through the service that leads back to itself: hairpin).
pub(super) fn dns(p: &mut Probes, also: Option<&PodView>) -> Vec<DnsProbe> {
    let (jobs, pods) = dns_jobs(p, also);
    let outs = run_jobs(&mut p.sessions, &p.target.view, &jobs);
    dns_read(p, &pods, outs)
}

/// `mtu` and `dns` in one round: each node runs both checks' jobs side by
/// side in one command (a round of SSH commands fewer; neither check's
/// probes load the other's).
pub(super) fn mtu_and_dns(
    p: &mut Probes,
    also: Option<&PodView>,
) -> ((Vec<MtuProbe>, Vec<LinkMtu>), Vec<DnsProbe>) {
    let (mut jobs, round) = mtu_jobs(p);
    let (dns_jobs, pods) = dns_jobs(p, also);
    let mtu_len = jobs.len();
    jobs.extend(dns_jobs);
    let mut outs = run_jobs(&mut p.sessions, &p.target.view, &jobs);
    let dns_outs = outs.split_off(mtu_len);
    (mtu_read(p, round, outs), dns_read(p, &pods, dns_outs))
}

/// `mtu`'s jobs: the DF pings (two per pod), then each node's MTU script,
/// then each pod's.
fn mtu_jobs(p: &Probes) -> (Vec<Job>, MtuRound) {
    let ok = p.ok.clone();
    let view = &p.target.view;
    let fits = view.pod_mtu.saturating_sub(28);
    let pairs = mtu_pairs(ok.len());
    let targets_of = |a: usize| -> Vec<String> {
        pairs
            .iter()
            .filter(|(x, _)| *x == a)
            .map(|(_, b)| ok[*b].ip.to_string())
            .collect()
    };
    let (mut jobs, mut readers) = (Vec::new(), Vec::new());
    for (a, pod) in ok.iter().enumerate() {
        for size in [fits, fits + 1] {
            let (job, reader) = p
                .exec
                .ping(pod, &agent_ping::dont_fragment(size), &targets_of(a));
            jobs.push(job);
            readers.push(reader);
        }
    }
    jobs.extend((0..view.nodes.len()).map(|at| {
        Job {
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
        }
    }));
    // A pod whose eth0 MTU the node check read is not asked again (`ip
    // netns exec` copies every mount of the node for each pod).
    jobs.extend(
        ok.iter()
            .filter(|pod| pod.eth0_mtu.is_none())
            .map(|pod| p.exec.in_pod(pod, POD_MTU_SCRIPT, &[])),
    );
    let round = MtuRound {
        pods: ok,
        readers,
        pairs,
        fits,
    };
    (jobs, round)
}

/// `mtu`'s evidence from its jobs' outputs (in [`mtu_jobs`]' order).
fn mtu_read(
    p: &Probes,
    round: MtuRound,
    mut outs: Vec<Result<JobOutput, String>>,
) -> (Vec<MtuProbe>, Vec<LinkMtu>) {
    let MtuRound {
        pods: ok,
        readers,
        pairs,
        fits,
    } = round;
    let reports = read_pings(p, ok.iter().flat_map(|pod| [pod, pod]), readers, &mut outs);
    let view = &p.target.view;
    let nodes = view.nodes.len();
    let mut links = Vec::new();
    for (node, out) in view.nodes.iter().zip(&outs) {
        if let Ok(o) = out {
            links.extend(link_mtus(&node.name, "", &o.stdout));
        }
    }
    // In pod order: each pod's MTU as the node check read it, else as
    // its script printed it (the scripts ran for those pods, in order).
    let mut scripts = outs.iter().skip(nodes);
    for pod in &ok {
        match pod.eth0_mtu {
            Some(mtu) => links.push(LinkMtu {
                node: pod.node.clone(),
                device: format!("pod {} eth0", pod.name),
                mtu,
            }),
            None => {
                if let Some(Ok(o)) = scripts.next() {
                    links.extend(link_mtus(&pod.node, &pod.name, &o.stdout));
                }
            }
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

/// `dns`'s jobs, one per pod asking (the usable pods and `also`).
fn dns_jobs(p: &Probes, also: Option<&PodView>) -> (Vec<Job>, Vec<ProbePod>) {
    let mut pods = p.ok.clone();
    pods.extend(p.exec.usable(
        &p.target.view,
        also.into_iter().cloned().collect::<Vec<_>>().as_slice(),
    ));
    let jobs = pods
        .iter()
        .map(|pod| p.exec.in_pod(pod, POD_DNS_SCRIPT, &[]))
        .collect();
    (jobs, pods)
}

/// `dns`'s evidence from its jobs' outputs.
fn dns_read(p: &Probes, pods: &[ProbePod], outs: Vec<Result<JobOutput, String>>) -> Vec<DnsProbe> {
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
