//! `labctl graph` on a real netns lab: the plan's picture before `up`,
//! the live picture with every node, pod and tunnel under its stable id,
//! a deleted FDB entry and a VXLAN device set down drawn broken with the
//! agent's difference, the SVG rendered by headless Chromium (a screenshot
//! of the expected size, not blank, with red in it), and the plan's picture
//! again once the lab is destroyed. Bad output paths are refused with exit
//! 2 before anything is read. The lab test needs root.

mod support;

use std::path::Path;
use std::process::Command;

use support::netns::{can_run, labctl, show, TestLab};

/// The opening tag of the element with id `id` (panics when missing or
/// not unique).
fn element<'a>(svg: &'a str, id: &str) -> &'a str {
    let key = format!("id=\"{id}\"");
    assert_eq!(svg.matches(&key).count(), 1, "{id} once in:\n{svg}");
    let at = svg.find(&key).unwrap();
    let start = svg[..at].rfind('<').unwrap();
    let end = at + svg[at..].find('>').unwrap();
    &svg[start..=end]
}

fn is_broken(svg: &str, id: &str) -> bool {
    element(svg, id).contains("broken")
}

/// The text from the element with id `id` to the end of its tooltip.
fn tooltip<'a>(svg: &'a str, id: &str) -> &'a str {
    let at = svg.find(&format!("id=\"{id}\"")).unwrap();
    let end = at + svg[at..].find("</title>").unwrap();
    &svg[at..end]
}

/// `labctl graph ARGS -o FILE`; the file's text.
fn graph(args: &[&str], file: &Path) -> String {
    let mut argv = vec!["graph"];
    argv.extend_from_slice(args);
    argv.extend_from_slice(&["-o", file.to_str().unwrap()]);
    let out = labctl(&argv);
    assert!(out.status.success(), "labctl {argv:?}: {}", show(&out));
    std::fs::read_to_string(file).unwrap()
}

/// The SVG's `width` and `height`.
fn size(svg: &str) -> (u32, u32) {
    let tag = &svg[svg.find("<svg").unwrap()..];
    let num = |name: &str| -> u32 {
        let key = format!(" {name}=\"");
        let s = &tag[tag.find(&key).unwrap() + key.len()..];
        s[..s.find('"').unwrap()].parse().unwrap()
    };
    (num("width"), num("height"))
}

/// Screenshots `svg` in headless Chromium at its own size; the PNG's
/// width, height, non-white and red pixel counts. None when Chromium is
/// missing (the test is then skipped through the skip helper).
fn screenshot(svg: &Path, w: u32, h: u32) -> Option<(u32, u32, usize, usize)> {
    let chromium = ["chromium", "chromium-browser"].into_iter().find(|c| {
        Command::new("sh")
            .args(["-c", &format!("command -v {c}")])
            .output()
            .is_ok_and(|o| o.status.success())
    })?;
    let profile = tempfile::tempdir().unwrap();
    let png = profile.path().join("shot.png");
    let out = Command::new("timeout")
        .arg("120")
        .arg(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
        ])
        .arg(format!(
            "--user-data-dir={}",
            profile.path().join("profile").display()
        ))
        .arg(format!("--screenshot={}", png.display()))
        .arg(format!("--window-size={w},{h}"))
        .arg(format!("file://{}", svg.display()))
        .output()
        .unwrap();
    assert!(
        png.is_file(),
        "chromium wrote no screenshot: {}",
        show(&out)
    );
    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(&png).unwrap()));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).unwrap();
    let step = info.color_type.samples();
    assert!(step >= 3, "colour PNG: {:?}", info.color_type);
    let pixels = buf[..info.buffer_size()].chunks(step);
    let (mut ink, mut red) = (0, 0);
    for p in pixels {
        if p[0] < 240 || p[1] < 240 || p[2] < 240 {
            ink += 1;
        }
        if p[0] > 150 && p[1] < 90 && p[2] < 90 {
            red += 1;
        }
    }
    Some((info.width, info.height, ink, red))
}

#[test]
fn graph_draws_plan_live_and_broken_lab_and_chromium_renders_it() {
    if !can_run("graph_draws_plan_live_and_broken_lab_and_chromium_renders_it") {
        return;
    }
    let _serial = support::netns::serial();
    let lab = TestLab::new(
        &format!("gr{}", std::process::id() % 100000),
        "192.168.93.0/24",
        "10.193.0.0/16",
        &["master", "worker1", "worker2"],
    )
    .with_service_network("10.197.0.0/16");
    let pics = tempfile::tempdir().unwrap();

    // Down: the plan's picture, pods without addresses yet.
    let plan = graph(&[lab.path()], &pics.path().join("plan.svg"));
    assert!(plan.contains("from the plan"), "{plan}");
    for id in [
        "node-worker1",
        "vtep-master",
        "pod-master-coredns",
        "tunnel-worker1-worker2",
    ] {
        assert!(!is_broken(&plan, id), "{id}");
    }

    let out = lab.up();
    assert!(out.status.success(), "labctl up failed: {}", show(&out));
    let live = graph(&[lab.path()], &pics.path().join("live.svg"));
    assert!(live.contains("live state"), "{live}");
    for node in ["master", "worker1", "worker2"] {
        for id in [
            format!("node-{node}"),
            format!("vtep-{node}"),
            format!("bridge-{node}"),
            format!("pod-{node}-busybox"),
        ] {
            assert!(!is_broken(&live, &id), "{id} in a whole lab:\n{live}");
        }
    }
    element(&live, "pod-master-coredns");
    element(&live, "dns-service");
    for t in ["master-worker1", "master-worker2", "worker1-worker2"] {
        assert!(!is_broken(&live, &format!("tunnel-{t}")), "{t}");
    }
    assert!(live.contains("192.168.93.11"), "worker1's lab IP");
    assert!(live.contains("0e:fa:0a:c1:01:00"), "worker1's VTEP MAC");
    assert!(live.contains("10.193.1.1/24"), "worker1's cni0");

    // Break two things: worker1 forgets master's VTEP (FDB), worker2's
    // flannel.1 goes down.
    let out = lab.exec(
        "worker1",
        &[
            "bridge",
            "fdb",
            "del",
            "0e:fa:0a:c1:00:00",
            "dev",
            "flannel.1",
            "dst",
            "192.168.93.10",
        ],
    );
    assert!(out.status.success(), "{}", show(&out));
    let out = lab.exec("worker2", &["ip", "link", "set", "flannel.1", "down"]);
    assert!(out.status.success(), "{}", show(&out));
    let broken_path = pics.path().join("broken.svg");
    let broken = graph(&[lab.path()], &broken_path);
    assert!(is_broken(&broken, "tunnel-master-worker1"));
    assert!(
        tooltip(&broken, "tunnel-master-worker1").contains("worker1: fdb 0e:fa:0a:c1:00:00"),
        "{broken}"
    );
    assert!(is_broken(&broken, "vtep-worker2"));
    assert!(
        tooltip(&broken, "tunnel-worker1-worker2").contains("worker2: vxlan flannel.1"),
        "{broken}"
    );
    assert!(is_broken(&broken, "tunnel-master-worker2"));
    assert!(!is_broken(&broken, "node-master"), "master is whole");
    assert!(
        !is_broken(&broken, "vtep-worker1"),
        "worker1's VTEP is whole"
    );

    // The other formats carry the same finding.
    let mermaid = graph(
        &[lab.path(), "--format", "mermaid"],
        &pics.path().join("lab.mmd"),
    );
    assert!(mermaid.contains("class vtep_worker2 broken"), "{mermaid}");
    let dot = graph(&[lab.path()], &pics.path().join("lab.dot"));
    assert!(dot.contains("id=\"tunnel-master-worker1\""), "{dot}");

    let (w, h) = size(&broken);
    match screenshot(&broken_path, w, h) {
        Some((pw, ph, ink, red)) => {
            assert_eq!((pw, ph), (w, h), "screenshot size");
            let all = (pw * ph) as usize;
            assert!(ink * 100 > all, "not blank: {ink} of {all} pixels drawn");
            assert!(
                ink * 2 < all,
                "not a solid fill: {ink} of {all} pixels drawn"
            );
            assert!(red > 50, "broken parts are drawn red: {red} red pixels");
        }
        None => {
            support::skip(
                "graph chromium screenshot",
                "chromium is not installed (see .ci/run)",
            );
        }
    }

    // A normal user is sent to sudo: the lab is root's.
    let home = tempfile::tempdir().unwrap();
    std::fs::set_permissions(
        home.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o777),
    )
    .unwrap();
    let lab_copy = home.path().join("lab.yaml");
    std::fs::copy(lab.path(), &lab_copy).unwrap();
    std::fs::set_permissions(
        &lab_copy,
        std::os::unix::fs::PermissionsExt::from_mode(0o644),
    )
    .unwrap();
    let out = Command::new("setpriv")
        .args(["--reuid", "65534", "--regid", "65534", "--clear-groups"])
        .arg(env!("CARGO_BIN_EXE_labctl"))
        .args(["graph", lab_copy.to_str().unwrap()])
        .env_clear()
        .env("HOME", home.path())
        .env("PATH", "/usr/bin:/bin")
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(3),
        "as a normal user: {}",
        show(&out)
    );
    support::assert_mentions(&show(&out), &["run `sudo labctl graph`"]);

    // A node that cannot be reached is drawn so, its tunnels unchecked.
    let out = Command::new("ip")
        .args([
            "-n",
            &format!("{}-worker2", lab.name),
            "link",
            "set",
            "eth1",
            "down",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", show(&out));
    let cut = graph(&[lab.path()], &pics.path().join("cut.svg"));
    assert!(is_broken(&cut, "node-worker2"), "{cut}");
    assert!(tooltip(&cut, "node-worker2").contains("worker2"), "{cut}");
    assert!(tooltip(&cut, "tunnel-master-worker2").contains("worker2: not checked: unreachable"));

    let out = labctl(&["destroy", lab.path()]);
    assert!(out.status.success(), "destroy: {}", show(&out));
    let after = graph(&[lab.path()], &pics.path().join("after.svg"));
    assert!(after.contains("from the plan"), "{after}");
}

#[test]
fn bad_output_paths_are_refused_before_anything_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no/such/folder/lab.svg");
    let out = labctl(&["graph", "no-such-lab.yaml", "-o", missing.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("does not exist"),
        "{}",
        show(&out)
    );
    let out = labctl(&[
        "graph",
        "no-such-lab.yaml",
        "-o",
        dir.path().to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("is a folder"),
        "{}",
        show(&out)
    );
}

/// A netns lab file with `nodes` nodes (the first the control plane).
fn lab_file(dir: &Path, name: &str, nodes: usize) -> std::path::PathBuf {
    let file = dir.join(format!("{name}.yaml"));
    let mut text = format!("apiVersion: labctl/v1alpha1\nkind: Lab\nname: {name}\nnetwork:\n  underlay: 192.168.93.0/24\nnodes:\n  - {{name: cp, role: control-plane}}\n");
    for i in 1..nodes {
        text.push_str(&format!("  - {{name: w{i}}}\n"));
    }
    std::fs::write(&file, text).unwrap();
    file
}

#[test]
fn graphviz_lays_out_the_dot_output_at_3_and_20_nodes() {
    if Command::new("dot").arg("-V").output().is_err() {
        support::skip(
            "graphviz_lays_out_the_dot_output_at_3_and_20_nodes",
            "graphviz (dot) is not installed (see .ci/run)",
        );
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    for nodes in [3, 20] {
        let name = format!("gd{}n{nodes}", std::process::id() % 100000);
        let text = graph(
            &[
                lab_file(dir.path(), &name, nodes).to_str().unwrap(),
                "--format",
                "dot",
            ],
            &dir.path().join("lab.dot"),
        );
        let out = Command::new("dot")
            .args(["-Tsvg", dir.path().join("lab.dot").to_str().unwrap()])
            .output()
            .unwrap();
        assert!(
            out.status.success() && out.stderr.is_empty(),
            "dot on {nodes} nodes: {}\n{text}",
            show(&out)
        );
        // Graphviz writes `-` in ids as `&#45;`.
        let svg = String::from_utf8_lossy(&out.stdout).replace("&#45;", "-");
        let last = format!("w{}", nodes - 1);
        for id in [
            format!("tunnel-cp-{last}"),
            format!("vtep-{last}"),
            format!("pod-{last}-busybox"),
        ] {
            assert!(
                svg.contains(&format!("<g id=\"{id}\"")),
                "{id} in graphviz's SVG"
            );
        }
    }
}

#[test]
fn a_lab_file_alone_gives_the_plan_in_every_format() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("lab.yaml");
    let name = format!("gp{}", std::process::id() % 100000);
    std::fs::write(
        &file,
        format!("apiVersion: labctl/v1alpha1\nkind: Lab\nname: {name}\nnetwork:\n  underlay: 192.168.93.0/24\nnodes:\n  - {{name: cp, role: control-plane}}\n  - {{name: w1}}\n"),
    )
    .unwrap();
    let svg = graph(&[file.to_str().unwrap()], &dir.path().join("p.svg"));
    assert!(
        svg.contains(&format!("Lab {name} — from the plan")),
        "{svg}"
    );
    element(&svg, "tunnel-cp-w1");
    element(&svg, "pod-cp-coredns");
    let out = labctl(&["graph", file.to_str().unwrap(), "--format", "dot"]);
    assert!(out.status.success(), "{}", show(&out));
    assert!(String::from_utf8_lossy(&out.stdout).starts_with(&format!("graph \"{name}\"")));
}
