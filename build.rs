//! Builds the static node agent and embeds it in labctl.
//!
//! Artifact dependencies are nightly-only, so this script runs a nested
//! `cargo build -p labctl-agent --profile agent --target
//! x86_64-unknown-linux-musl` into a SEPARATE target dir (`target/helper`;
//! sharing the outer one deadlocks on its lock), linked by the toolchain's
//! own `rust-lld` (no musl-gcc needed). The binary's path and SHA-256 reach
//! `src/embedded.rs` through `cargo:rustc-env`.
//!
//! Where the musl target is not installed (a fresh rustup has only the host
//! target), the agent is built for x86_64-unknown-linux-gnu with
//! `+crt-static` instead: also a fully static executable (glibc's static
//! libc.a comes with gcc's libc6-dev), a little larger, and it keeps the
//! README's quick start down to one cargo command. A warning says so.
//!
//! Packagers can skip the nested build: `LABCTL_AGENT_BIN=/path/to/agent`.

use std::env;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{exit, Command};

use sha2::{Digest, Sha256};

const AGENT_TARGET: &str = "x86_64-unknown-linux-musl";
/// Fallback when AGENT_TARGET is not installed: static glibc.
const FALLBACK_TARGET: &str = "x86_64-unknown-linux-gnu";
const AGENT_PROFILE: &str = "agent";
const AGENT_BIN: &str = "labctl-agent";

/// Environment the outer cargo sets for build scripts (or that a user set
/// for the outer build) and that would change or break the nested build:
/// wrong flags, wrong target dir, a jobserver that is not ours, clippy
/// wrapping every crate.
const REMOVED_ENV: &[&str] = &[
    "RUSTFLAGS",
    "RUSTC_WORKSPACE_WRAPPER",
    "CLIPPY_ARGS",
    "MAKEFLAGS",
    "MFLAGS",
    "TARGET",
    "HOST",
    "OUT_DIR",
    "PROFILE",
    "OPT_LEVEL",
    "DEBUG",
    "NUM_JOBS",
    "RUSTC_LINKER",
    "RUSTDOC",
];

/// `CARGO_*` variables the nested build keeps: where cargo lives and how it
/// reaches registries. Every other `CARGO_*` (CARGO_TARGET_DIR,
/// CARGO_BUILD_TARGET, CARGO_ENCODED_RUSTFLAGS, CARGO_MAKEFLAGS, CARGO_PKG_*,
/// CARGO_CFG_*, CARGO_MANIFEST_DIR, ...) belongs to the outer build.
const KEPT_CARGO_PREFIXES: &[&str] = &[
    "CARGO_HOME",
    "CARGO_NET_",
    "CARGO_HTTP_",
    "CARGO_REGISTRIES_",
    "CARGO_REGISTRY_",
    "CARGO_TERM_",
];

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=LABCTL_AGENT_BIN");

    let root =
        PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let agent = match env::var_os("LABCTL_AGENT_BIN") {
        Some(path) if !path.is_empty() => PathBuf::from(path),
        _ => build_agent(&root),
    };

    let bytes = match fs::read(&agent) {
        Ok(bytes) => bytes,
        Err(e) => fail(&format!(
            "cannot read the agent binary {} (LABCTL_AGENT_BIN or the nested build's output): {e}",
            agent.display()
        )),
    };
    let sha = Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<String>();
    println!("cargo:rerun-if-changed={}", agent.display());
    println!("cargo:rustc-env=LABCTL_AGENT_PATH={}", agent.display());
    println!("cargo:rustc-env=LABCTL_AGENT_SHA256={sha}");
}

/// Runs the nested cargo build and returns the agent binary's path.
fn build_agent(root: &Path) -> PathBuf {
    for watched in [
        "crates/agent",
        "crates/nodeplan",
        "Cargo.toml",
        "Cargo.lock",
    ] {
        println!("cargo:rerun-if-changed={}", root.join(watched).display());
    }

    // The helper dir sits beside the outer build's output: in the user's
    // CARGO_TARGET_DIR when they set one, else <workspace>/target.
    let target_dir = match env::var_os("CARGO_TARGET_DIR") {
        Some(dir) if !dir.is_empty() => root.join(dir).join("helper"),
        _ => root.join("target").join("helper"),
    };
    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let target = if target_installed(AGENT_TARGET) {
        AGENT_TARGET
    } else {
        println!(
            "cargo:warning=the Rust target {AGENT_TARGET} is not installed: building the agent as a \
             static glibc binary ({FALLBACK_TARGET}, +crt-static) instead; \
             `rustup target add {AGENT_TARGET}` gives the smaller musl build"
        );
        FALLBACK_TARGET
    };

    let mut command = Command::new(&cargo);
    command
        .current_dir(root)
        .args(["build", "-p", "labctl-agent", "--profile", AGENT_PROFILE])
        .args(["--target", target])
        .arg("--target-dir")
        .arg(&target_dir);
    for (key, _) in env::vars_os() {
        let Some(key) = key.to_str() else { continue };
        let leaked_cargo = key.starts_with("CARGO_")
            && !KEPT_CARGO_PREFIXES.iter().any(|kept| key.starts_with(kept));
        if leaked_cargo || REMOVED_ENV.contains(&key) {
            command.env_remove(key);
        }
    }
    command.env("CARGO_TARGET_X86_64_UNKNOWN_LINUX_MUSL_LINKER", "rust-lld");
    command.env(
        "CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_RUSTFLAGS",
        "-C target-feature=+crt-static",
    );

    let output = match command.output() {
        Ok(output) => output,
        Err(e) => fail(&format!(
            "cannot run {} to build the agent: {e}",
            Path::new(&cargo).display()
        )),
    };
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        eprintln!("{stderr}");
        let hint = if stderr.contains("target may not be installed")
            || stderr.contains("can't find crate for `core`")
            || stderr.contains("can't find crate for `std`")
        {
            format!(
                "the Rust target {AGENT_TARGET} is missing: run `rustup target add {AGENT_TARGET}`"
            )
        } else {
            format!(
                "see cargo's output above; the agent needs the {AGENT_TARGET} target \
                 (`rustup target add {AGENT_TARGET}`), or set LABCTL_AGENT_BIN to a prebuilt agent"
            )
        };
        fail(&format!(
            "building the static node agent (cargo build -p labctl-agent --target {target}) failed ({}): {hint}",
            output.status
        ));
    }
    target_dir.join(target).join(AGENT_PROFILE).join(AGENT_BIN)
}

/// True when the toolchain has the standard library for `target` (what
/// `rustup target add` installs).
fn target_installed(target: &str) -> bool {
    let rustc = env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let Ok(output) = Command::new(rustc)
        .args(["--print", "target-libdir", "--target", target])
        .output()
    else {
        return false;
    };
    let libdir = PathBuf::from(String::from_utf8_lossy(&output.stdout).trim());
    output.status.success()
        && fs::read_dir(&libdir).is_ok_and(|entries| {
            entries
                .flatten()
                .any(|e| e.file_name().to_string_lossy().starts_with("libstd-"))
        })
}

fn fail(message: &str) -> ! {
    eprintln!("error: {message}");
    println!("cargo:warning={message}");
    exit(1)
}
