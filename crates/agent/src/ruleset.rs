//! Knowing, without running `iptables-save`, that the flannel chains cannot
//! have changed since the agent last saw them exactly as planned.
//!
//! With the nf_tables backend every change to the ruleset of a network
//! namespace, by any tool, is a transaction that increments the
//! namespace's ruleset generation (readable in microseconds with
//! `NFT_MSG_GETGEN`). After the agent has seen (or made) the chains right,
//! it stores a stamp in its state directory: boot id, the namespace's
//! cookie (unique per boot, never reused), the generation, the resolved
//! `iptables-save` binary and a digest of the plan's iptables section. When
//! all of these are still the same, nothing can have touched the rules and
//! the listing (an `iptables-save` process, the largest part of a no-op
//! `apply` or `check`) is skipped. Any difference, or anything that cannot
//! be read (legacy backend, kernel without `SO_NETNS_COOKIE`), means the
//! chains are listed and compared as usual.
//!
//! A stamp is written only with the generation read BEFORE the listing that
//! found the chains right (a change during the listing then misses the
//! stamp next time), or after the agent's own `iptables-restore` when the
//! generation moved by exactly its own commits (one per table section, as
//! `iptables-nft-restore` does), so a stamp never covers a change nobody
//! compared.

use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use labctl_nodeplan::NodePlan;
use nix::sys::socket::{
    recv, send, socket, AddressFamily, MsgFlags, SockFlag, SockProtocol, SockType,
};
use sha2::{Digest, Sha256};

use crate::dump::attrs;

/// The stamp file in the state directory.
const STAMP: &str = "iptables-verified";
/// `(NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_GETGEN`.
const NFT_GETGEN: u16 = (10 << 8) | 16;
/// `(NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_NEWGEN`.
const NFT_NEWGEN: u16 = (10 << 8) | 15;
const NFTA_GEN_ID: u16 = 1;
const SO_NETNS_COOKIE: i32 = 71;
/// The nf_tables flavour of the iptables tools (all of them are links to it).
const NFT_MULTI: &str = "xtables-nft-multi";

/// The ruleset's identity at one moment.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Generation {
    /// Boot id and namespace cookie.
    netns: String,
    gen: u32,
}

/// Reads the boot id, the network namespace cookie and the nf_tables
/// ruleset generation of the calling thread's namespace.
fn generation() -> Option<Generation> {
    let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").ok()?;
    let fd = socket(
        AddressFamily::Netlink,
        SockType::Raw,
        SockFlag::SOCK_CLOEXEC,
        SockProtocol::NetlinkNetFilter,
    )
    .ok()?;
    let mut cookie: u64 = 0;
    let mut len = std::mem::size_of::<u64>() as nix::libc::socklen_t;
    // SAFETY: a valid socket, a pointer to a live u64 and its size.
    let got = unsafe {
        nix::libc::getsockopt(
            fd.as_raw_fd(),
            nix::libc::SOL_SOCKET,
            SO_NETNS_COOKIE,
            (&mut cookie as *mut u64).cast(),
            &mut len,
        )
    };
    if got != 0 || cookie == 0 {
        return None;
    }
    // nlmsghdr (16 bytes) + struct nfgenmsg (family, version, res_id).
    let mut request = Vec::with_capacity(20);
    request.extend_from_slice(&20u32.to_ne_bytes());
    request.extend_from_slice(&NFT_GETGEN.to_ne_bytes());
    request.extend_from_slice(&1u16.to_ne_bytes()); // NLM_F_REQUEST
    request.extend_from_slice(&1u32.to_ne_bytes());
    request.extend_from_slice(&0u32.to_ne_bytes());
    request.extend_from_slice(&[0, 0, 0, 0]);
    send(fd.as_raw_fd(), &request, MsgFlags::empty()).ok()?;
    let mut buf = [0u8; 512];
    let n = recv(fd.as_raw_fd(), &mut buf, MsgFlags::empty()).ok()?;
    let reply = buf.get(..n)?;
    let mlen = u32::from_ne_bytes(reply.get(..4)?.try_into().ok()?) as usize;
    let kind = u16::from_ne_bytes(reply.get(4..6)?.try_into().ok()?);
    if kind != NFT_NEWGEN || mlen > n || mlen < 20 {
        return None;
    }
    let gen = attrs(&reply[20..mlen]).find_map(|(k, v)| {
        (k == NFTA_GEN_ID)
            .then(|| {
                v.get(..4)
                    .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
            })
            .flatten()
    })?;
    Some(Generation {
        netns: format!("{} {cookie}", boot.trim()),
        gen,
    })
}

/// What must not have changed, besides the generation, for the stamp to
/// hold: the namespace, the tools, and what the plan wants.
fn context(netns: &str, save: &Path, plan: &NodePlan) -> Option<String> {
    let tool = nft_tool(save)?;
    let wanted = serde_json::to_vec(&plan.iptables).ok()?;
    let digest: String = Sha256::digest(&wanted)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    Some(format!("{netns} {} {digest}", tool.display()))
}

/// The executable `save` resolves to, when it is the nf_tables flavour
/// (whose changes move the ruleset generation); `None` for legacy.
fn nft_tool(save: &Path) -> Option<PathBuf> {
    let tool = std::fs::canonicalize(save).ok()?;
    (tool.file_name()? == NFT_MULTI).then_some(tool)
}

/// The stamp check for one run of `apply` or `check`.
pub struct Verifier {
    path: PathBuf,
    /// Context and generation read before any listing; None when stamps
    /// cannot be used on this node.
    before: Option<(String, u32)>,
}

impl Verifier {
    /// Reads the generation (before the caller lists anything).
    pub fn new(save: &Path, plan: &NodePlan) -> Verifier {
        let before = generation().and_then(|g| Some((context(&g.netns, save, plan)?, g.gen)));
        Verifier {
            path: Path::new(&plan.state_dir).join(STAMP),
            before,
        }
    }

    fn line(context: &str, gen: u32) -> String {
        format!("{context} gen {gen}\n")
    }

    /// True when the stored stamp says the chains are exactly as planned.
    pub fn unchanged(&self) -> bool {
        let Some((context, gen)) = &self.before else {
            return false;
        };
        std::fs::read_to_string(&self.path).is_ok_and(|s| s == Self::line(context, *gen))
    }

    /// Records that the listing taken after `new` found the chains right.
    pub fn record_listed(&self) {
        if let Some((context, gen)) = &self.before {
            self.write(&Self::line(context, *gen));
        }
    }

    /// Records the state after the agent's own restore of `sections` table
    /// sections, if the generation moved by exactly that many commits (so
    /// nobody else changed the rules in between); otherwise forgets any
    /// stamp, and the next run lists.
    pub fn record_restored(&self, sections: usize) {
        let after = generation();
        if let (Some((context, gen)), Some(after)) = (&self.before, after) {
            let only_ours = after.gen == gen.wrapping_add(sections as u32);
            if only_ours && context.starts_with(&format!("{} ", after.netns)) {
                self.write(&Self::line(context, after.gen));
                return;
            }
        }
        self.forget();
    }

    /// Removes the stamp (best effort).
    pub fn forget(&self) {
        let _ = std::fs::remove_file(&self.path);
    }

    /// Writes the stamp through a temporary file and a rename; no fsync:
    /// a stamp lost in a crash only costs one listing. One that cannot be
    /// written is removed, so no stale stamp is left to believe.
    fn write(&self, line: &str) {
        let tmp = self
            .path
            .with_extension(format!("tmp{}", std::process::id()));
        if std::fs::write(&tmp, line).is_err() || std::fs::rename(&tmp, &self.path).is_err() {
            let _ = std::fs::remove_file(&tmp);
            self.forget();
        }
    }
}
