//! labctl-agent: converges one Linux node to flannel's VXLAN data plane.
//!
//! labctl uploads this static binary to each node and runs it as root with
//! the node's plan (JSON, `--plan FILE` or stdin). It prints a JSON report
//! on stdout and human-readable errors on stderr. Exit codes: 0 ok, 1 drift
//! found (check), 2 bad plan or usage, 3 environment (not root, no
//! iptables, underlay IP not on any interface), 4 an operation failed.

mod bridge_nf;
mod build_id;
mod capture;
mod capture_icmp;
mod captures;
mod converge_cmd;
mod decode;
mod dump;
mod error;
mod files;
mod hostgw;
mod inspect;
mod iptables;
mod jobs;
mod links;
mod lookup;
mod netlink;
mod netns;
mod netns_links;
mod nlops;
mod node;
mod observe;
mod peers;
mod ping;
mod plan;
mod pod;
mod pod_exec;
mod report;
mod ruleset;
mod services;
mod sysctl;
mod timing;
mod transfer;
mod underlay;

use error::{AgentError, Result, EXIT_DRIFT, EXIT_FAILED, EXIT_OK};
use links::Mode;

const USAGE: &str = "usage: labctl-agent [--plan FILE] [--netns NAME] COMMAND
commands:
  apply              converge this node to the plan
  check              compare only; exit 1 when anything differs
  converge --want SHA256 [POD...]
                     labctl up's part on this node: apply, pod add for
                     each POD, the nat table (labctl's framing), if this
                     executable's SHA-256 is SHA256
  teardown           remove everything the agent owns on this node
  show               print the node's live flannel state
  pod add NAME       create pod NAME (namespace <lab>-<node>-NAME)
  pod del NAME       remove pod NAME
  route get ADDR...  the routing table entry each address matches
                     (ip route get fibmatch)
  capture [--seconds S] [--count N] [--ready-file PATH]
                     count VXLAN packets of the plan's VNI on the underlay
  capture --icmp-to ADDR [--seconds S] [--count N] [--ready-file PATH]
                     count ICMP echo requests to ADDR leaving this node,
                     by source address and interface (after POSTROUTING)
  captures start REQUEST
                     start every capture of a verify round (REQUEST: the
                     JSON of labctl_nodeplan's CapturesRequest), detached;
                     returns once their sockets are open, with their folder
  captures collect DIR [--seconds S] [--kernel-log]
                     wait at most S s (and one more) for them to end, print
                     what each saw (and the kernel log's tail), remove DIR
  ping [--count N] [--interval-ms MS] [--timeout-ms MS] [--payload BYTES]
       [--dont-fragment] [--until-answered] TARGET...
                     ICMP echo to every TARGET at once from this namespace
                     (a pod's with --netns); needs no plan; with
                     --until-answered a round skips targets that answered
  jobs REQUEST       run every argv of REQUEST (the JSON of labctl_nodeplan's
                     JobsRequest) at once, without a shell; print each
                     one's exit status and output (no plan, no root)
  --netns POD pod-exec [--seconds S] -- PROGRAM [ARG...]
                     run PROGRAM in pod POD as `ip netns exec POD` does
                     (with POD's /sys and /etc/netns/POD files), killed
                     after S s (default 15) with exit status 124
  inspect [--check] [POD...]
                     verify's node check: version, the pods' links, and
                     with --check the check (plan on stdin) and iptables -S
  links NS...        the links of each network namespace NS (name, MTU, up,
                     IPv4 addresses), entering only its network namespace
  underlay           set up the underlay device of each network namespace
                     of the request on stdin (JSON of labctl_nodeplan's
                     UnderlayRequest): lo up, MTU, MAC, address, route
  transfer listen ADDRESS PORT [--seconds S]
                     accept one TCP connection on ADDRESS:PORT and read it
                     to the end; report bytes and rate (no plan)
  transfer send ADDRESS PORT [--seconds S]
                     connect to ADDRESS:PORT and write for S seconds
                     (default 1); report bytes and rate (no plan)
options:
  --plan FILE        read the plan from FILE (default: stdin)
  --netns NAME       run inside network namespace NAME (/run/netns/NAME)
  --ready-file PATH  capture: create PATH once the capture socket is open
  --kernel-log       captures collect: add the kernel log's tail
  --verbose          apply: list unchanged objects by name too (default:
                     counted per kind in unchangedByKind)
  --version          print the version and the SHA-256 of this executable
  --help             print this text";

/// The parsed command line.
#[derive(Debug, Default)]
struct Args {
    plan: Option<String>,
    netns: Option<String>,
    seconds: Option<f64>,
    count: Option<u64>,
    icmp_to: Option<std::net::Ipv4Addr>,
    interval_ms: Option<u64>,
    timeout_ms: Option<u64>,
    payload: Option<usize>,
    dont_fragment: bool,
    until_answered: bool,
    check: bool,
    kernel_log: bool,
    ready_file: Option<String>,
    want: Option<String>,
    words: Vec<String>,
    /// Everything after `--` (pod-exec's program and its arguments).
    after_dashes: Vec<String>,
    verbose: bool,
    version: bool,
    help: bool,
}

fn parse_args(raw: impl Iterator<Item = String>) -> Result<Args> {
    let mut a = Args::default();
    let mut raw = raw.peekable();
    let usage = |m: String| AgentError::Input(format!("{m}\n{USAGE}"));
    let number = |name: &str, v: String| -> Result<u64> {
        v.parse()
            .map_err(|_| usage(format!("{name} {v:?} is not a whole number")))
    };
    while let Some(arg) = raw.next() {
        let mut value = |name: &str| {
            raw.next()
                .ok_or_else(|| usage(format!("{name} needs a value")))
        };
        match arg.as_str() {
            "--plan" => a.plan = Some(value("--plan")?),
            "--netns" => a.netns = Some(value("--netns")?),
            "--seconds" => {
                let v = value("--seconds")?;
                a.seconds = Some(
                    v.parse()
                        .map_err(|_| usage(format!("--seconds {v:?} is not a number")))?,
                );
            }
            "--count" => {
                let v = value("--count")?;
                a.count = Some(
                    v.parse()
                        .map_err(|_| usage(format!("--count {v:?} is not a number")))?,
                );
            }
            "--icmp-to" => {
                let v = value("--icmp-to")?;
                a.icmp_to = Some(
                    v.parse()
                        .map_err(|_| usage(format!("--icmp-to {v:?} is not an IPv4 address")))?,
                );
            }
            "--interval-ms" => {
                a.interval_ms = Some(number("--interval-ms", value("--interval-ms")?)?)
            }
            "--timeout-ms" => a.timeout_ms = Some(number("--timeout-ms", value("--timeout-ms")?)?),
            "--payload" => {
                let v: u64 = number("--payload", value("--payload")?)?;
                if v > 65_000 {
                    return Err(usage(format!("--payload {v} is over 65000 bytes")));
                }
                a.payload = Some(v as usize);
            }
            "--dont-fragment" => a.dont_fragment = true,
            "--until-answered" => a.until_answered = true,
            "--check" => a.check = true,
            "--kernel-log" => a.kernel_log = true,
            "--ready-file" => a.ready_file = Some(value("--ready-file")?),
            "--want" => a.want = Some(value("--want")?),
            "--verbose" | "-v" => a.verbose = true,
            "--version" | "-V" => a.version = true,
            "--help" | "-h" => a.help = true,
            "--" => {
                a.after_dashes = raw.collect();
                break;
            }
            s if s.starts_with('-') => return Err(usage(format!("unknown option {s}"))),
            _ => a.words.push(arg),
        }
    }
    Ok(a)
}

/// `labctl-agent VERSION sha256:HEX`, the hash of /proc/self/exe (its
/// stamp's, while the file is the one stamped).
pub(crate) fn version_line() -> String {
    let version = env!("CARGO_PKG_VERSION");
    let hash = build_id::sha256().unwrap_or_else(|| "unknown".into());
    format!("labctl-agent {version} sha256:{hash}")
}

pub(crate) fn require_root() -> Result<()> {
    if nix::unistd::geteuid().is_root() {
        Ok(())
    } else {
        Err(AgentError::Environment(
            "labctl-agent must run as root (it changes links, routes and iptables)".into(),
        ))
    }
}

fn run(args: Args) -> Result<i32> {
    if args.help {
        println!("{USAGE}");
        return Ok(EXIT_OK);
    }
    if args.version {
        println!("{}", version_line());
        return Ok(EXIT_OK);
    }
    let words: Vec<&str> = args.words.iter().map(String::as_str).collect();
    if words.first() == Some(&"ping") {
        return run_ping(&args, &words[1..]);
    }
    match words.as_slice() {
        ["captures", "start", request] => return captures::start(request, args.netns.as_deref()),
        ["captures", "run", dir] => return captures::run(dir),
        ["captures", "collect", dir] => {
            return captures::collect(dir, args.seconds.unwrap_or(5.0), args.kernel_log)
        }
        ["captures", ..] => {
            return Err(AgentError::Input(format!(
                "captures needs start REQUEST or collect DIR\n{USAGE}"
            )))
        }
        _ => {}
    }
    if words.as_slice() == ["pod-exec"] {
        let Some(pod) = args.netns.as_deref() else {
            return Err(AgentError::Input(format!(
                "pod-exec needs --netns POD\n{USAGE}"
            )));
        };
        return pod_exec::run(pod, args.seconds, &args.after_dashes);
    }
    if let ["jobs", request] = words.as_slice() {
        report::print(&jobs::run(&jobs::parse_request(request)?));
        return Ok(EXIT_OK);
    }
    if words.as_slice() == ["underlay"] {
        return run_underlay();
    }
    if let ["inspect", pods @ ..] = words.as_slice() {
        let (r, status) = inspect::run(args.check, pods, args.plan.as_deref())?;
        report::print(&r);
        return Ok(status);
    }
    if let ["links", names @ ..] = words.as_slice() {
        if names.is_empty() {
            return Err(AgentError::Input(format!(
                "links needs at least one network namespace NAME\n{USAGE}"
            )));
        }
        netns_links::validate(names)?;
        require_root()?;
        report::print(&netns_links::run(names));
        return Ok(EXIT_OK);
    }
    if words.first() == Some(&"transfer") {
        return run_transfer(&args, &words[1..]);
    }
    if let ["converge", pods @ ..] = words.as_slice() {
        let Some(want) = args.want.as_deref() else {
            return Err(AgentError::Input(format!(
                "converge needs --want SHA256\n{USAGE}"
            )));
        };
        return converge_cmd::run(want, pods, args.verbose);
    }
    let known = matches!(
        words.as_slice(),
        ["apply"]
            | ["check"]
            | ["teardown"]
            | ["show"]
            | ["pod", "add", _]
            | ["pod", "del", _]
            | ["capture"]
            | ["route", "get", _, ..]
    );
    if !known {
        return Err(AgentError::Input(format!(
            "unknown command {:?}\n{USAGE}",
            words.join(" ")
        )));
    }
    let plan = plan::load(args.plan.as_deref())?;
    timing::lap("plan loaded");
    require_root()?;
    if let Some(ns) = &args.netns {
        netns::enter(ns)?;
    }
    match words.as_slice() {
        ["apply"] => {
            let out = node::converge(&plan, Mode::Apply, args.verbose)?;
            let failed = !out.errors.is_empty();
            report::print(&report::apply_report(&plan.node, out));
            timing::lap("report printed");
            Ok(if failed { EXIT_FAILED } else { EXIT_OK })
        }
        ["check"] => {
            let out = node::converge(&plan, Mode::Check, false)?;
            let r = report::check_report(&plan.node, &out);
            report::print(&r);
            Ok(if r.in_sync { EXIT_OK } else { EXIT_DRIFT })
        }
        ["teardown"] => {
            let r = node::teardown(&plan);
            for e in &r.errors {
                eprintln!("labctl-agent: teardown on node {}: {e}", plan.node);
            }
            let failed = !r.errors.is_empty();
            report::print(&r);
            Ok(if failed { EXIT_FAILED } else { EXIT_OK })
        }
        ["show"] => {
            report::print(&node::show(&plan)?);
            Ok(EXIT_OK)
        }
        ["pod", "add", name] => {
            report::print(&pod::add(&plan, name)?.report());
            Ok(EXIT_OK)
        }
        ["pod", "del", name] => {
            let removed = pod::del(&plan, name)?;
            report::print(&pod::del_report(&plan, name, removed));
            Ok(EXIT_OK)
        }
        ["capture"] => {
            let seconds = args.seconds.unwrap_or(5.0);
            match args.icmp_to {
                Some(to) => report::print(&capture_icmp::run(
                    &plan.node,
                    to,
                    seconds,
                    args.count,
                    args.ready_file.as_deref(),
                )?),
                None => report::print(&capture::run(
                    &plan,
                    seconds,
                    args.count,
                    args.ready_file.as_deref(),
                )?),
            }
            Ok(EXIT_OK)
        }
        ["route", "get", targets @ ..] => {
            let targets = addresses(targets, "route get: address")?;
            report::print(&lookup::run(&plan, &targets)?);
            Ok(EXIT_OK)
        }
        _ => Err(AgentError::Input(USAGE.into())),
    }
}

/// The IPv4 addresses of `words`; the first that is none is named as
/// `what` (exit 2).
fn addresses(words: &[&str], what: &str) -> Result<Vec<std::net::Ipv4Addr>> {
    words
        .iter()
        .map(|t| {
            t.parse().map_err(|_| {
                AgentError::Input(format!("{what} {t:?} is not an IPv4 address\n{USAGE}"))
            })
        })
        .collect()
}

/// `ping TARGET...`: needs no plan, only root and the namespace.
fn run_ping(args: &Args, targets: &[&str]) -> Result<i32> {
    let targets = addresses(targets, "ping target")?;
    let defaults = ping::PingOptions::default();
    let ms = |v: Option<u64>, d: std::time::Duration| v.map_or(d, std::time::Duration::from_millis);
    let opts = ping::PingOptions {
        count: args
            .count
            .map_or(defaults.count, |c| c.clamp(1, 100) as u32),
        payload: args.payload.unwrap_or(defaults.payload),
        interval: ms(args.interval_ms, defaults.interval),
        wait: ms(args.timeout_ms, defaults.wait),
        dont_fragment: args.dont_fragment,
        until_answered: args.until_answered,
    };
    require_root()?;
    if let Some(ns) = &args.netns {
        netns::enter(ns)?;
    }
    report::print(&ping::run(args.netns.as_deref(), &targets, &opts)?);
    Ok(EXIT_OK)
}

/// `underlay`: the request on stdin; exit 4 when a namespace failed.
fn run_underlay() -> Result<i32> {
    let request = underlay::parse_request(&plan::read_stdin("the underlay request")?)?;
    require_root()?;
    let r = underlay::run(&request);
    let failed = r.namespaces.iter().any(|n| n.error.is_some());
    report::print(&r);
    Ok(if failed { EXIT_FAILED } else { EXIT_OK })
}

/// `transfer listen|send ADDRESS PORT`: needs no plan, only the namespace.
fn run_transfer(args: &Args, words: &[&str]) -> Result<i32> {
    let [role, address, port] = words else {
        return Err(AgentError::Input(format!(
            "transfer needs listen|send ADDRESS PORT\n{USAGE}"
        )));
    };
    let address: std::net::Ipv4Addr = address.parse().map_err(|_| {
        AgentError::Input(format!(
            "transfer address {address:?} is not an IPv4 address"
        ))
    })?;
    let port: u16 = port
        .parse()
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| AgentError::Input(format!("transfer port {port:?} is not 1-65535")))?;
    let seconds = args.seconds.unwrap_or(1.0);
    if !(0.01..=60.0).contains(&seconds) {
        return Err(AgentError::Input(format!(
            "--seconds {seconds} is outside 0.01-60"
        )));
    }
    if let Some(ns) = &args.netns {
        require_root()?;
        netns::enter(ns)?;
    }
    let node = args.netns.clone().unwrap_or_else(|| "node".into());
    let r = match *role {
        "listen" => transfer::listen(&node, address, port, seconds)?,
        "send" => transfer::send(&node, address, port, seconds)?,
        other => {
            return Err(AgentError::Input(format!(
                "transfer {other:?}: use listen or send\n{USAGE}"
            )))
        }
    };
    report::print(&r);
    Ok(EXIT_OK)
}

fn main() {
    timing::start();
    timing::lap("main");
    let code = match parse_args(std::env::args().skip(1)).and_then(run) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("labctl-agent: {e}");
            e.exit_code()
        }
    };
    std::process::exit(code);
}
