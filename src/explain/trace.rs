//! `--trace`: one real packet. Every node the walk watches starts its
//! agent's captures (echo requests leaving the node, VXLAN on the
//! underlay, and on the source node echo requests leaving the source pod)
//! and says when their sockets are open (`--ready-file`); only then does
//! the source send one echo request (`labctl-agent ping --count 1`, from
//! the pod's namespace). The captures' reports become [`Observed`].

use std::net::Ipv4Addr;

use labctl_nodeplan::probe::PingReport;
use labctl_nodeplan::report::{CaptureReport, IcmpCaptureReport};
use labctl_nodeplan::NodePlan;

use super::seen::Observed;
use crate::nodes::AGENT_PATH;
use crate::ssh::Session;
use crate::verify::probe::tagged_report;

/// How long each capture runs at most.
const CAPTURE_SECONDS: &str = "3";

/// Starts the agent (`$1`, plan on stdin) capturing for `$2` seconds, in
/// a new folder under /tmp: echo requests to `$3` leaving the node, VXLAN
/// on the underlay when `$4` is 1, echo requests to `$3` leaving pod
/// namespace `$5` when given. Returns once every capture's socket is open,
/// printing `@dir FOLDER`.
const ARM_SCRIPT: &str = r#"agent=$1; secs=$2; to=$3; vx=$4; ns=$5
dir=$(mktemp -d /tmp/labctl-explain.XXXXXX) || exit 1
cat > "$dir/plan.json"
start() { name=$1; shift
  ( "$agent" --plan "$dir/plan.json" "$@" --seconds "$secs" --ready-file "$dir/$name.ready" > "$dir/$name.json" 2> "$dir/$name.err"
    echo $? > "$dir/$name.rc" ) < /dev/null > /dev/null 2>&1 &
}
names=node
start node capture --icmp-to "$to"
if [ "$vx" = 1 ]; then names="$names vxlan"; start vxlan capture; fi
if [ -n "$ns" ]; then names="$names pod"; start pod --netns "$ns" capture --icmp-to "$to"; fi
i=0
for n in $names; do
  while [ ! -e "$dir/$n.ready" ] && [ ! -e "$dir/$n.rc" ] && [ $i -lt 500 ]; do sleep 0.01; i=$((i + 1)); done
done
printf '@dir %s\n' "$dir""#;

/// In folder `$2` (from [`ARM_SCRIPT`]): when `$4` is given, the agent
/// (`$1`) pings it once from namespace `$3` (the node's own when empty):
/// `@agentping STATUS REPORT`; then waits for each capture and prints
/// `@NAME STATUS REPORT`, and removes the folder.
const COLLECT_SCRIPT: &str = r#"agent=$1; dir=$2; ns=$3; target=$4
oneline() { while IFS= read -r l || [ -n "$l" ]; do printf '%s ' "$l"; done < "$1"; }
case "$dir" in /tmp/labctl-explain.*) ;; *) echo "not an explain folder: $dir" >&2; exit 2 ;; esac
trap 'rm -rf "$dir"' EXIT
if [ -n "$target" ]; then
  "$agent" ${ns:+--netns "$ns"} ping --count 1 --timeout-ms 1000 "$target" > "$dir/ping" 2>&1
  printf '@agentping %s ' "$?"; oneline "$dir/ping"; echo
fi
for n in node vxlan pod; do
  [ -e "$dir/$n.json" ] || continue
  i=0
  while [ ! -e "$dir/$n.rc" ] && [ $i -lt 1000 ]; do sleep 0.01; i=$((i + 1)); done
  rc=no-status; [ -e "$dir/$n.rc" ] && read -r rc < "$dir/$n.rc"
  printf '@%s %s ' "$n" "$rc"; oneline "$dir/$n.json"; oneline "$dir/$n.err"; echo
done"#;

/// One node's part of a trace.
pub struct Capture<'a> {
    pub session: &'a Session,
    pub plan: &'a NodePlan,
    pub vxlan: bool,
    /// The source pod's namespace, on the source node.
    pub pod: Option<String>,
    /// Whether this node sends the echo request.
    pub sends: bool,
}

/// Arms every capture, sends one echo request to `to` from the source,
/// and reads what every capture saw.
pub fn run(captures: &[Capture], to: Ipv4Addr, from_ns: Option<&str>) -> Observed {
    let mut obs = Observed::default();
    let to_text = to.to_string();
    let mut armed: Vec<(&Capture, Result<String, String>)> = Vec::new();
    for c in captures {
        let argv = [
            "sh",
            "-c",
            ARM_SCRIPT,
            "sh",
            AGENT_PATH,
            CAPTURE_SECONDS,
            &to_text,
            if c.vxlan { "1" } else { "0" },
            c.pod.as_deref().unwrap_or(""),
        ];
        let out = c.session.run(&argv, Some(c.plan.to_json().as_bytes()));
        let dir = match out {
            Ok(o) => o
                .stdout_text()
                .lines()
                .find_map(|l| l.strip_prefix("@dir ").map(str::to_string))
                .ok_or_else(|| {
                    format!(
                        "{}: the captures did not start: {}",
                        c.plan.node,
                        o.stderr_text().trim()
                    )
                }),
            Err(e) => Err(format!("{}: {e}", c.plan.node)),
        };
        armed.push((c, dir));
    }
    // The sender first: the others' captures end by themselves meanwhile.
    armed.sort_by_key(|(c, _)| !c.sends);
    for (c, dir) in armed {
        let node = c.plan.node.clone();
        let text = dir.and_then(|dir| {
            let target = if c.sends { to_text.as_str() } else { "" };
            let argv = [
                "sh",
                "-c",
                COLLECT_SCRIPT,
                "sh",
                AGENT_PATH,
                &dir,
                from_ns.unwrap_or(""),
                target,
            ];
            c.session
                .run(&argv, None)
                .map(|o| o.stdout_text())
                .map_err(|e| format!("{node}: {e}"))
        });
        read(&node, text, c, &mut obs);
    }
    obs
}

/// Reads one node's collected lines into `obs`.
fn read(node: &str, text: Result<String, String>, c: &Capture, obs: &mut Observed) {
    let text = match text {
        Ok(t) => t,
        Err(e) => {
            obs.node_left.insert(node.to_string(), Err(e.clone()));
            if c.vxlan {
                obs.vxlan.insert(node.to_string(), Err(e.clone()));
            }
            if c.pod.is_some() {
                obs.pod_left = Some(Err(e.clone()));
            }
            if c.sends {
                obs.answered = Some(Err(e));
            }
            return;
        }
    };
    for line in text.lines() {
        let Some((tag, rest)) = line.split_once(' ') else {
            continue;
        };
        match tag {
            "@agentping" => {
                let r = tagged_report::<PingReport>(node, rest);
                obs.answered = Some(r.map(|r| r.targets.iter().any(|t| t.received > 0)));
            }
            "@node" => {
                let r = tagged_report::<IcmpCaptureReport>(node, rest).map(|r| r.departures);
                obs.node_left.insert(node.to_string(), r);
            }
            "@pod" => {
                let r = tagged_report::<IcmpCaptureReport>(node, rest).map(|r| r.departures);
                obs.pod_left = Some(r);
            }
            "@vxlan" => {
                let r = tagged_report::<CaptureReport>(node, rest).map(|r| r.flows);
                obs.vxlan.insert(node.to_string(), r);
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scripts_are_valid_sh() {
        for script in [ARM_SCRIPT, COLLECT_SCRIPT] {
            let sh = std::process::Command::new("sh")
                .args(["-n", "-c", script])
                .status();
            assert!(sh.unwrap().success(), "sh -n refuses:\n{script}");
        }
    }
}
