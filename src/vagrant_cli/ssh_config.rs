//! Parsing `vagrant ssh-config`: one `Host NAME` block per machine, in
//! OpenSSH client-config syntax.
//!
//! Only what labctl needs is kept: `HostName`, `User`, `Port` and every
//! `IdentityFile` (Vagrant double-quotes a path holding spaces, and lists
//! several keys when `config.ssh.private_key_path` is a list or the box
//! still uses the insecure keys). Other keywords (`UserKnownHostsFile`,
//! `LogLevel`, `IdentitiesOnly`, ...) are ignored. Never assume port 2222:
//! VirtualBox forwards 2222, 2200, 2201, ... in the order machines boot, and
//! libvirt gives the VM's management IP with port 22.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::ssh::Endpoint;

/// How to reach one Vagrant machine, as `vagrant ssh-config` printed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshConfigEntry {
    /// The `Host` name: the machine's name in the Vagrantfile.
    pub host: String,
    pub host_name: String,
    pub user: String,
    pub port: u16,
    /// Private keys in the order Vagrant listed them (try them in order).
    pub identity_files: Vec<PathBuf>,
}

impl SshConfigEntry {
    /// The SSH endpoint for this machine with one (staged) private key and
    /// the lab's known_hosts file.
    pub fn endpoint(&self, key: &Path, known_hosts: &Path) -> Endpoint {
        Endpoint {
            node: self.host.clone(),
            host: self.host_name.clone(),
            port: self.port,
            user: self.user.clone(),
            key: key.to_path_buf(),
            known_hosts: known_hosts.to_path_buf(),
        }
    }
}

/// A line of `vagrant ssh-config` output labctl cannot use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`vagrant ssh-config` output, line {line}: {problem}")]
pub struct SshConfigError {
    /// 1-based; 0 when the problem is the output as a whole.
    pub line: usize,
    pub problem: String,
}

/// Fields of the block being read, with the line of its `Host`.
struct Block {
    host: String,
    line: usize,
    host_name: Option<String>,
    user: Option<String>,
    port: Option<u16>,
    identity_files: Vec<PathBuf>,
}

/// Parses the whole output into entries keyed by machine name.
pub fn parse(text: &str) -> Result<BTreeMap<String, SshConfigEntry>, SshConfigError> {
    let mut entries = BTreeMap::new();
    let mut current: Option<Block> = None;
    for (index, raw) in text.lines().enumerate() {
        let line = index + 1;
        let err = |problem: String| SshConfigError { line, problem };
        let trimmed = raw.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let (keyword, value) = split_keyword(trimmed);
        let value = unquote(value).map_err(err)?;
        match keyword.to_ascii_lowercase().as_str() {
            "host" => {
                if value.is_empty() || value.contains(char::is_whitespace) {
                    return Err(err(format!("`Host` needs one machine name, got {value:?}")));
                }
                if let Some(done) = current.take() {
                    finish(done, &mut entries)?;
                }
                current = Some(Block {
                    host: value,
                    line,
                    host_name: None,
                    user: None,
                    port: None,
                    identity_files: Vec::new(),
                });
            }
            other => {
                let Some(block) = current.as_mut() else {
                    return Err(err(format!("`{keyword}` appears before any `Host` line")));
                };
                if value.is_empty() {
                    return Err(err(format!("`{keyword}` has no value")));
                }
                match other {
                    "hostname" => block.host_name = Some(value),
                    "user" => block.user = Some(value),
                    "port" => {
                        let port = value.parse::<u16>().ok().filter(|p| *p != 0);
                        block.port = Some(port.ok_or_else(|| {
                            err(format!("`Port {value}` is not a TCP port number"))
                        })?);
                    }
                    "identityfile" => block.identity_files.push(PathBuf::from(value)),
                    _ => {}
                }
            }
        }
    }
    match current {
        Some(done) => finish(done, &mut entries)?,
        None => {
            return Err(SshConfigError {
                line: 0,
                problem: "it has no `Host` block (is any machine running?)".into(),
            })
        }
    }
    Ok(entries)
}

fn finish(
    block: Block,
    entries: &mut BTreeMap<String, SshConfigEntry>,
) -> Result<(), SshConfigError> {
    let (host, line) = (block.host.clone(), block.line);
    let missing = |what: &str| SshConfigError {
        line,
        problem: format!("the block of machine {host} has no `{what}`"),
    };
    let entry = SshConfigEntry {
        host_name: block.host_name.clone().ok_or_else(|| missing("HostName"))?,
        user: block.user.clone().ok_or_else(|| missing("User"))?,
        port: block.port.ok_or_else(|| missing("Port"))?,
        identity_files: block.identity_files,
        host: block.host,
    };
    if entry.identity_files.is_empty() {
        return Err(missing("IdentityFile"));
    }
    if entries.contains_key(&entry.host) {
        return Err(SshConfigError {
            line: block.line,
            problem: format!("machine {} appears twice", entry.host),
        });
    }
    entries.insert(entry.host.clone(), entry);
    Ok(())
}

/// `Keyword value`, `Keyword=value` or `Keyword = value`.
fn split_keyword(line: &str) -> (&str, &str) {
    let end = line
        .find(|c: char| c.is_whitespace() || c == '=')
        .unwrap_or(line.len());
    let (keyword, rest) = line.split_at(end);
    let rest = rest.trim_start();
    let rest = rest.strip_prefix('=').unwrap_or(rest);
    (keyword, rest.trim())
}

/// A value as OpenSSH reads it: `"..."` around the whole value is removed
/// (Vagrant quotes paths with spaces). An unbalanced quote is an error.
fn unquote(value: &str) -> Result<String, String> {
    match value.strip_prefix('"') {
        None if value.contains('"') => Err(format!("unexpected `\"` in {value:?}")),
        None => Ok(value.to_string()),
        Some(rest) => match rest.strip_suffix('"') {
            Some(inner) if !inner.contains('"') => Ok(inner.to_string()),
            _ => Err(format!("unbalanced quotes in {value:?}")),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keyword_forms() {
        assert_eq!(split_keyword("Port 2222"), ("Port", "2222"));
        assert_eq!(split_keyword("Port=2222"), ("Port", "2222"));
        assert_eq!(split_keyword("Port  =  2222"), ("Port", "2222"));
        assert_eq!(split_keyword("LogLevel"), ("LogLevel", ""));
    }

    #[test]
    fn quotes() {
        assert_eq!(unquote("\"/a b/key\"").unwrap(), "/a b/key");
        assert_eq!(unquote("/plain").unwrap(), "/plain");
        assert!(unquote("\"/a b/key").is_err());
        assert!(unquote("/a\"b").is_err());
    }

    #[test]
    fn errors_name_the_line() {
        let err = parse("Host m\n  HostName 1.2.3.4\n  User v\n  Port x\n").unwrap_err();
        assert_eq!(err.line, 4);
        assert!(err.to_string().contains("line 4"), "{err}");
        let err = parse("  HostName 1.2.3.4\n").unwrap_err();
        assert_eq!(err.line, 1);
        let err = parse("Host m\n  HostName 1.2.3.4\n  Port 22\n  IdentityFile /k\n").unwrap_err();
        assert_eq!(err.line, 1);
        assert!(err.problem.contains("no `User`"), "{err}");
        assert_eq!(parse("\n\n").unwrap_err().line, 0);
    }
}
