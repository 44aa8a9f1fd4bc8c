//! The kernel's decisions the walk re-enacts, done on the live values the
//! agent reported: which route of the node's table a destination matches
//! (longest prefix), and which rule of an iptables chain a packet meets
//! first (`-s`/`-d` with `!`, as flannel's rules use them). Pure.

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

/// The destination of an `ip route`-style line (`default` is 0.0.0.0/0).
fn route_destination(line: &str) -> Option<Ipv4Net> {
    let first = line.split_whitespace().next()?;
    if first == "default" {
        return Some(Ipv4Net::default());
    }
    first
        .parse::<Ipv4Net>()
        .ok()
        .or_else(|| first.parse::<Ipv4Addr>().ok().map(Ipv4Net::from))
}

/// The route of `routes` that `dst` matches: the longest prefix wins.
pub fn route_lookup(routes: &[String], dst: Ipv4Addr) -> Option<&String> {
    routes
        .iter()
        .filter_map(|r| Some((route_destination(r)?, r)))
        .filter(|(net, _)| net.contains(&dst))
        .max_by_key(|(net, _)| net.prefix_len())
        .map(|(_, r)| r)
}

/// The word after `key` in an `ip`-style line (`dev`, `via`, `lladdr`, `dst`).
pub fn field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let mut words = line.split_whitespace();
    while let Some(w) = words.next() {
        if w == key {
            return words.next();
        }
    }
    None
}

/// One address match of a rule (`-s NET`, `! -d NET`).
fn address_matches(words: &[&str], flag: &str, ip: Ipv4Addr) -> Option<bool> {
    let i = words.iter().position(|w| *w == flag)?;
    let net: Ipv4Net = words.get(i + 1).and_then(|n| {
        n.parse()
            .ok()
            .or_else(|| n.parse::<Ipv4Addr>().ok().map(Ipv4Net::from))
    })?;
    let negated = i > 0 && words[i - 1] == "!";
    Some(net.contains(&ip) != negated)
}

/// Whether a packet `src` → `dst` without a firewall mark meets `rule`
/// (`-A CHAIN ...` in `iptables -S` form). A rule matching on anything
/// else than addresses (a mark, a protocol) does not match it.
pub fn rule_matches(rule: &str, src: Ipv4Addr, dst: Ipv4Addr) -> bool {
    let words: Vec<&str> = rule.split_whitespace().collect();
    if words.contains(&"--mark") || words.contains(&"-p") {
        return false;
    }
    address_matches(&words, "-s", src).unwrap_or(true)
        && address_matches(&words, "-d", dst).unwrap_or(true)
}

/// The first rule of `chain` in `lines` (`iptables -S` output) a packet
/// `src` → `dst` meets: its position in the chain (from 1) and the rule.
pub fn first_rule<'a>(
    lines: &'a [String],
    chain: &str,
    src: Ipv4Addr,
    dst: Ipv4Addr,
) -> Option<(usize, &'a String)> {
    let prefix = format!("-A {chain} ");
    lines
        .iter()
        .filter(|l| l.starts_with(&prefix))
        .enumerate()
        .find(|(_, r)| rule_matches(r, src, dst))
        .map(|(i, r)| (i + 1, r))
}

/// The target of a rule (`-j TARGET`).
pub fn target(rule: &str) -> &str {
    field(rule, "-j").unwrap_or("")
}

/// The DNAT rule of `rules` for `udp` traffic to `service` port 53, and the
/// endpoint it rewrites to (`--to-destination IP:PORT`).
pub fn dnat_rule(rules: &[String], service: Ipv4Addr) -> Option<(&String, Ipv4Addr)> {
    let to = format!("-d {service}/32");
    rules
        .iter()
        .filter(|r| r.contains(&to) && r.contains("-p udp") && target(r) == "DNAT")
        .find_map(|r| {
            let endpoint = field(r, "--to-destination")?
                .split(':')
                .next()?
                .parse()
                .ok()?;
            Some((r, endpoint))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    #[test]
    fn the_longest_prefix_wins() {
        let routes: Vec<String> = [
            "default via 192.168.56.1 dev eth1",
            "10.244.0.0/16 dev flannel.1",
            "10.244.1.0/24 via 10.244.1.0 dev flannel.1 onlink",
            "10.244.0.0/24 dev cni0",
        ]
        .map(String::from)
        .to_vec();
        assert_eq!(route_lookup(&routes, ip("10.244.1.2")), Some(&routes[2]));
        assert_eq!(route_lookup(&routes, ip("10.244.0.7")), Some(&routes[3]));
        assert_eq!(route_lookup(&routes, ip("10.244.9.7")), Some(&routes[1]));
        assert_eq!(route_lookup(&routes, ip("198.18.0.1")), Some(&routes[0]));
        assert_eq!(route_lookup(&routes[1..], ip("198.18.0.1")), None);
        assert_eq!(field(&routes[2], "via"), Some("10.244.1.0"));
    }

    #[test]
    fn the_dns_services_dnat_rule_names_its_endpoint() {
        let rules: Vec<String> = [
            "-A LABCTL-SERVICES -s 10.244.0.3/32 -d 10.96.0.10/32 -p udp -m udp --dport 53 -j MARK --set-xmark 0x4000/0x4000",
            "-A LABCTL-SERVICES -d 10.96.0.10/32 -p udp -m comment --comment \"kube-system/kube-dns:dns cluster IP\" -m udp --dport 53 -j DNAT --to-destination 10.244.0.3:53",
        ]
        .map(String::from)
        .to_vec();
        let (rule, endpoint) = dnat_rule(&rules, ip("10.96.0.10")).unwrap();
        assert_eq!(rule, &rules[1]);
        assert_eq!(endpoint, ip("10.244.0.3"));
        assert_eq!(dnat_rule(&rules, ip("10.96.0.1")), None);
    }
}
