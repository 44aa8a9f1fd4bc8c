//! How a command runs inside a pod: the one thing verify does differently
//! from one provider to the next. Network-only labs (netns, and ssh and
//! vagrant labs without Kubernetes) enter the pod's network namespace on
//! its node (the agent's `pod-exec`, as `ip netns exec` does, and its
//! `--netns` for pings);
//! kubeadm labs run `kubectl exec` on the control plane. Every probe
//! builds its [`Job`]s here and reads them with [`PodExec::read_ping`];
//! everything else about a check is the same for every provider.

use std::net::Ipv4Addr;

use labctl_nodeplan::probe::{PingReport, PingResult};
use labctl_nodeplan::report::REPORT_VERSION;

use super::agent_ping::{self, Ping};
use super::fanout::{Job, JobOutput};
use super::output::parse_tagged;
pub(crate) use super::pairs::ProbePod;
use super::scripts::POD_PING_SCRIPT;
use crate::kubeadm::steps::ADMIN_CONF;
use crate::verify::evidence::PodView;
use crate::verify::kube::manifest::NAMESPACE;
use crate::verify::model::LabView;
use crate::verify::parse;
use crate::verify::target::AGENT_PATH;

/// How commands reach the inside of a pod.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PodExec {
    /// The pod is a network namespace on its node.
    Netns,
    /// The pod is a Kubernetes pod: `kubectl exec` on the control plane,
    /// the node at this index of the lab view.
    Kubectl { control_plane: usize },
}

/// A ping's report, or why there is none.
pub(crate) type Pinged = Result<PingReport, String>;

/// How a ping job's output is read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PingReader {
    /// The agent's typed report.
    Agent,
    /// busybox ping's `@@ TARGET OUTPUT` lines ([`POD_PING_SCRIPT`]).
    Busybox { count: u32 },
}

impl PodExec {
    /// The pods of `pods` with an address and no problem.
    pub(crate) fn usable(self, view: &LabView, pods: &[PodView]) -> Vec<ProbePod> {
        pods.iter()
            .filter(|p| p.problem.is_none())
            .filter_map(|p| {
                let handle = match self {
                    PodExec::Netns => p.namespace.clone()?,
                    PodExec::Kubectl { .. } => p.name.clone(),
                };
                Some(ProbePod {
                    at: view.nodes.iter().position(|n| n.name == p.node)?,
                    node: p.node.clone(),
                    name: p.name.clone(),
                    handle,
                    ip: p.ip?,
                    eth0_mtu: p.eth0_mtu,
                })
            })
            .collect()
    }

    /// The job that runs the constant in-pod script `inner` with `args` in
    /// `pod` (its shell is the pod's: busybox's in a Kubernetes pod).
    pub(crate) fn in_pod(self, pod: &ProbePod, inner: &str, args: &[String]) -> Job {
        // Bounded: a pod whose resolv.conf points nowhere must not hold
        // verify for busybox's retries.
        let (at, mut argv): (usize, Vec<String>) = match self {
            // The agent enters the pod as `ip netns exec` does and bounds
            // the command itself (`ip netns exec POD timeout 15` was two
            // dynamically linked programs more per pod and round). The
            // bound starts inside the pod, after its mount namespace is
            // made.
            PodExec::Netns => (
                pod.at,
                [
                    AGENT_PATH,
                    "--netns",
                    pod.handle.as_str(),
                    "--seconds",
                    "15",
                    "pod-exec",
                    "--",
                ]
                .map(String::from)
                .to_vec(),
            ),
            PodExec::Kubectl { control_plane } => {
                let mut argv: Vec<String> = [
                    "timeout",
                    "40",
                    "kubectl",
                    "--kubeconfig",
                    ADMIN_CONF,
                    "-n",
                    NAMESPACE,
                    "exec",
                ]
                .map(String::from)
                .to_vec();
                argv.extend([pod.handle.clone(), "--".into()]);
                (control_plane, argv)
            }
        };
        argv.extend(["sh", "-c", inner, "sh"].map(String::from));
        argv.extend(args.iter().cloned());
        Job { at, argv }
    }

    /// What the command of [`PodExec::in_pod`] is called in errors.
    pub(crate) fn in_pod_name(self, pod: &ProbePod) -> String {
        match self {
            PodExec::Netns => format!("labctl-agent --netns {} pod-exec -- sh -c …", pod.handle),
            PodExec::Kubectl { .. } => {
                format!("kubectl -n {NAMESPACE} exec {} -- sh -c …", pod.handle)
            }
        }
    }

    /// The job that pings `targets` from `pod`, and how to read it. The
    /// agent pings from inside a namespace pod. A Kubernetes pod pings with
    /// its busybox, which cannot set don't-fragment: DF pings start on the
    /// pod's node instead, across the VXLAN device, by its agent.
    pub(crate) fn ping(self, pod: &ProbePod, ping: &Ping, targets: &[String]) -> (Job, PingReader) {
        match self {
            PodExec::Netns => (
                Job {
                    at: pod.at,
                    argv: ping.argv(Some(&pod.handle), targets),
                },
                PingReader::Agent,
            ),
            PodExec::Kubectl { .. } if ping.dont_fragment => (
                Job {
                    at: pod.at,
                    argv: ping.argv(None, targets),
                },
                PingReader::Agent,
            ),
            PodExec::Kubectl { .. } => {
                let mut args = vec![ping.count.to_string()];
                args.extend(targets.iter().cloned());
                (
                    self.in_pod(pod, POD_PING_SCRIPT, &args),
                    PingReader::Busybox { count: ping.count },
                )
            }
        }
    }

    /// The report of a ping job from `pod` ([`PodExec::ping`]).
    pub(crate) fn read_ping(
        self,
        pod: &ProbePod,
        reader: PingReader,
        out: Result<JobOutput, String>,
    ) -> Result<PingReport, String> {
        let out = out?;
        match reader {
            PingReader::Agent => agent_ping::read_report(
                &pod.node,
                out.status.unwrap_or(-1),
                &out.stdout,
                &out.stderr,
            ),
            PingReader::Busybox { count } => {
                let cp = match self {
                    PodExec::Kubectl { .. } => "the control plane",
                    PodExec::Netns => pod.node.as_str(),
                };
                let text = out.success(cp, &self.in_pod_name(pod))?;
                Ok(busybox_report(&pod.node, count, &text))
            }
        }
    }

    /// How long the agents capture at most while pods ping across: the
    /// pings of a healthy lab end the captures early, so only a broken
    /// pair waits it out; it covers the next round's start on a loaded
    /// host. `kubectl exec` takes a moment to start in every pod.
    pub(crate) fn capture_seconds(self) -> u32 {
        match self {
            PodExec::Netns => 3,
            PodExec::Kubectl { .. } => 8,
        }
    }

    /// How the pings were sent, for the summaries of the checks that
    /// capture them.
    pub(crate) fn ping_method(self) -> &'static str {
        match self {
            PodExec::Netns => "pings by the agents from the pods",
            PodExec::Kubectl { .. } => "pings by kubectl exec",
        }
    }

    /// What the `mtu` summary adds about where its pings started.
    pub(crate) fn mtu_note(self) -> Option<&'static str> {
        match self {
            PodExec::Netns => None,
            PodExec::Kubectl { .. } => Some(
                "DF pings sent from the nodes across flannel.1 to pods by their agents (busybox 1.28 in the pods cannot set don't-fragment), pods' eth0 MTU read by kubectl exec",
            ),
        }
    }
}

/// busybox ping's `@@ TARGET OUTPUT` lines as the agent's report: the
/// statistics of each target, or the output's last line as its error.
pub(crate) fn busybox_report(node: &str, count: u32, text: &str) -> PingReport {
    let targets = parse_tagged(text, 1)
        .into_iter()
        .filter_map(|(key, output)| {
            let target: Ipv4Addr = key[0].parse().ok()?;
            let summary = parse::parse_ping_summary(&output);
            let last = output.lines().last().unwrap_or("").trim();
            Some(PingResult {
                target,
                sent: summary.as_ref().map_or(0, |s| s.transmitted),
                received: summary.as_ref().map_or(0, |s| s.received),
                rtt_avg_ms: summary.as_ref().and_then(|s| s.rtt_avg_ms),
                error: summary.is_none().then(|| {
                    if last.is_empty() {
                        "no output".to_string()
                    } else {
                        last.to_string()
                    }
                }),
            })
        })
        .collect();
    PingReport {
        report_version: REPORT_VERSION,
        command: "ping".into(),
        node: node.to_string(),
        namespace: None,
        count,
        payload: 56,
        dont_fragment: false,
        targets,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod() -> ProbePod {
        ProbePod {
            at: 2,
            node: "worker2".into(),
            name: "busybox".into(),
            handle: "lab-worker2-busybox".into(),
            ip: Ipv4Addr::new(10, 244, 2, 2),
            eth0_mtu: None,
        }
    }

    #[test]
    fn a_pod_command_runs_on_its_node_or_through_kubectl() {
        let args = vec!["x y".to_string()];
        let job = PodExec::Netns.in_pod(&pod(), "echo \"$1\"", &args);
        assert_eq!(job.at, 2);
        assert_eq!(
            job.argv,
            [
                AGENT_PATH,
                "--netns",
                "lab-worker2-busybox",
                "--seconds",
                "15",
                "pod-exec",
                "--",
                "sh",
                "-c",
                "echo \"$1\"",
                "sh",
                "x y"
            ]
        );
        let k = PodExec::Kubectl { control_plane: 0 };
        let job = k.in_pod(&pod(), "echo \"$1\"", &args);
        assert_eq!(job.at, 0);
        assert_eq!(
            job.argv[2..10],
            [
                "kubectl",
                "--kubeconfig",
                ADMIN_CONF,
                "-n",
                NAMESPACE,
                "exec",
                "lab-worker2-busybox",
                "--"
            ]
        );
    }

    #[test]
    fn kubernetes_pods_ping_with_busybox_but_df_pings_start_on_the_node() {
        let k = PodExec::Kubectl { control_plane: 0 };
        let targets = vec!["10.244.1.2".to_string()];
        let (job, reader) = k.ping(&pod(), &agent_ping::MESH, &targets);
        assert_eq!((job.at, reader), (0, PingReader::Busybox { count: 2 }));
        let df = Ping {
            dont_fragment: true,
            payload: Some(1422),
            ..agent_ping::MESH
        };
        let (job, reader) = k.ping(&pod(), &df, &targets);
        assert_eq!((job.at, reader), (2, PingReader::Agent));
        assert!(!job.argv.contains(&"--netns".to_string()), "{:?}", job.argv);
        let (job, _) = PodExec::Netns.ping(&pod(), &df, &targets);
        assert!(job.argv.contains(&"--netns".to_string()), "{:?}", job.argv);
    }

    #[test]
    fn busybox_output_reads_as_a_ping_report() {
        let text = "@@ 10.244.1.2 PING 10.244.1.2 (10.244.1.2): 56 data bytes||--- 10.244.1.2 ping statistics ---|2 packets transmitted, 2 packets received, 0% packet loss|round-trip min/avg/max = 0.1/0.2/0.3 ms\n\
                    @@ 10.244.3.2 ping: sendto: Network unreachable\n";
        let r = busybox_report("worker2", 2, text);
        let ok = r.result(Ipv4Addr::new(10, 244, 1, 2)).unwrap();
        assert_eq!((ok.sent, ok.received, ok.rtt_avg_ms), (2, 2, Some(0.2)));
        let bad = r.result(Ipv4Addr::new(10, 244, 3, 2)).unwrap();
        assert_eq!(bad.received, 0);
        assert_eq!(
            bad.error.as_deref(),
            Some("ping: sendto: Network unreachable")
        );
        let failed = PodExec::Kubectl { control_plane: 0 }.read_ping(
            &pod(),
            PingReader::Busybox { count: 2 },
            Ok(JobOutput {
                status: Some(1),
                stdout: String::new(),
                stderr: "error: pod not found\n".into(),
            }),
        );
        let e = failed.unwrap_err();
        assert!(
            e.contains("kubectl -n labctl-verify exec lab-worker2-busybox")
                && e.contains("error: pod not found"),
            "{e}"
        );
    }
}
