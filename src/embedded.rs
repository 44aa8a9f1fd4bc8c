//! The static node agent (`labctl-agent`, x86_64 musl) embedded in labctl.
//!
//! build.rs builds it (or takes `LABCTL_AGENT_BIN`) and hands over its path
//! and SHA-256; providers upload these bytes to every node and compare the
//! hash to decide whether a node already has this exact agent.

/// The agent binary, as uploaded to nodes.
static AGENT: &[u8] = include_bytes!(env!("LABCTL_AGENT_PATH"));

/// The agent's version: it is built from this same workspace, so it shares
/// labctl's version.
pub const AGENT_VERSION: &str = env!("CARGO_PKG_VERSION");

/// The embedded agent binary.
pub fn agent_bytes() -> &'static [u8] {
    AGENT
}

/// Lowercase hex SHA-256 of [`agent_bytes`], computed at build time.
pub fn agent_sha256() -> &'static str {
    env!("LABCTL_AGENT_SHA256")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// ELF program header type of the dynamic loader request.
    const PT_INTERP: u32 = 3;

    fn u16_at(b: &[u8], off: usize) -> usize {
        u16::from_le_bytes([b[off], b[off + 1]]) as usize
    }
    fn u32_at(b: &[u8], off: usize) -> u32 {
        u32::from_le_bytes(b[off..off + 4].try_into().unwrap())
    }
    fn u64_at(b: &[u8], off: usize) -> usize {
        u64::from_le_bytes(b[off..off + 8].try_into().unwrap()) as usize
    }

    #[test]
    fn agent_is_a_static_x86_64_elf() {
        let elf = agent_bytes();
        assert!(elf.len() > 64, "agent is only {} bytes", elf.len());
        assert_eq!(&elf[..4], b"\x7fELF", "agent is not an ELF file");
        assert_eq!(elf[4], 2, "agent is not a 64-bit ELF");
        assert_eq!(elf[5], 1, "agent is not little-endian");
        assert_eq!(u16_at(elf, 18), 62, "agent is not x86_64 (e_machine)");
        let (phoff, phentsize, phnum) = (u64_at(elf, 32), u16_at(elf, 54), u16_at(elf, 56));
        assert!(phnum > 0, "agent has no program headers");
        for i in 0..phnum {
            let p_type = u32_at(elf, phoff + i * phentsize);
            assert_ne!(
                p_type, PT_INTERP,
                "agent asks for a dynamic loader (PT_INTERP): not static"
            );
        }
    }

    #[test]
    fn agent_sha256_matches_its_bytes() {
        use sha2::{Digest, Sha256};
        let actual: String = Sha256::digest(agent_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(agent_sha256(), actual);
    }
}
