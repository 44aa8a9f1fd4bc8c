//! Running commands and putting files on a node (the command pump itself
//! is [`super::pump`]). Files travel as a command's stdin (`cat` into a
//! temporary file, then `mv -f`), so a node needs no SFTP subsystem and
//! replacement is atomic.

use sha2::{Digest, Sha256};

use super::{command_line, Output, Session, SshError};

/// Writes stdin to a temporary file next to the target ($3), sets its mode
/// ($2) and renames it over the target ($1); the temporary file goes away
/// on failure. umask 077 keeps it private until chmod.
const UPLOAD_SCRIPT: &str = r#"umask 077
trap 'rm -f "$3"' EXIT
cat > "$3" && chmod "$2" "$3" && mv -f "$3" "$1" || exit 1
trap - EXIT"#;

/// Prints `SHA256 MODE` of regular file $1, nothing when it is missing.
const FINGERPRINT_SCRIPT: &str = r#"[ -f "$1" ] || exit 0
sum=$(sha256sum < "$1") && printf '%s %s\n' "${sum%% *}" "$(stat -c %a "$1")""#;

impl Session {
    /// Runs `argv` (each element quoted, never interpreted by the remote
    /// shell) with `stdin`, returning its exit status and output whatever the
    /// status. Errors only when the command could not be run at all.
    pub fn run(&self, argv: &[&str], stdin: Option<&[u8]>) -> Result<Output, SshError> {
        let empty = argv.is_empty();
        let with_sudo: Vec<&str>;
        let argv = if self.sudo && !empty {
            with_sudo = ["sudo", "-n", "--"].iter().chain(argv).copied().collect();
            &with_sudo[..]
        } else {
            argv
        };
        let command = command_line(argv);
        if empty || argv.iter().any(|a| a.contains('\0')) {
            return Err(SshError::InvalidCommand {
                node: self.endpoint.node.clone(),
                command,
                problem: "a command needs a program name and no argument may contain a NUL byte"
                    .into(),
            });
        }
        self.exchange(&command, stdin).map_err(|error| match error {
            Ok(cause) => self.transport_error(format!("running `{command}`"), cause),
            Err(login) => login,
        })
    }

    /// Like [`Session::run`], but a non-zero exit status is an
    /// [`SshError::Command`] naming node, command, status and stderr.
    pub fn run_ok(&self, argv: &[&str], stdin: Option<&[u8]>) -> Result<Output, SshError> {
        let output = self.run(argv, stdin)?;
        self.check(&command_line(argv), output)
    }

    /// Runs a script with `sh -c`. Only for trusted constant scripts written
    /// in labctl's source: never format lab-file values into `script`; pass
    /// them as arguments with [`Session::run`] (`sh -c SCRIPT sh ARG...`).
    pub fn run_shell(&self, script: &str) -> Result<Output, SshError> {
        self.run(&["sh", "-c", script], None)
    }

    /// Puts `data` at `remote_path` with permission bits `mode` (e.g. 0o755),
    /// atomically: written to a temporary file in the same folder, then
    /// renamed over the target, so readers see the old or the new file,
    /// never a partial one. The folder must exist.
    pub fn upload(&self, data: &[u8], remote_path: &str, mode: i32) -> Result<(), SshError> {
        let problem = |problem: String| SshError::Upload {
            node: self.endpoint.node.clone(),
            path: remote_path.to_string(),
            problem,
        };
        if !(0..=0o7777).contains(&mode) {
            return Err(problem(format!("mode {mode:o} is not a permission mode")));
        }
        let (folder, name) = match remote_path.rsplit_once('/') {
            Some((folder, name)) => (folder, name),
            None => (".", remote_path),
        };
        if name.is_empty() || name == "." || name == ".." {
            return Err(problem("the path does not name a file".into()));
        }
        let temporary = format!("{folder}/.{name}.labctl-upload");
        let mode = format!("{mode:o}");
        let argv = [
            "sh",
            "-c",
            UPLOAD_SCRIPT,
            "sh",
            remote_path,
            &mode,
            &temporary,
        ];
        let output = self.run(&argv, Some(data))?;
        self.check(&format!("upload to {remote_path}"), output)?;
        Ok(())
    }

    /// Makes sure `remote_path` holds `data` (whose SHA-256 is `sha256_hex`)
    /// with `mode`. Returns false when it already did (nothing sent), true
    /// when it uploaded (verifying the SHA-256 on the node afterwards) or
    /// only had to fix the mode.
    pub fn ensure_file(
        &self,
        data: &[u8],
        sha256_hex: &str,
        remote_path: &str,
        mode: i32,
    ) -> Result<bool, SshError> {
        let problem = |problem: String| SshError::Upload {
            node: self.endpoint.node.clone(),
            path: remote_path.to_string(),
            problem,
        };
        let expected = sha256_hex.to_ascii_lowercase();
        let actual = hex(&Sha256::digest(data));
        if actual != expected {
            return Err(problem(format!(
                "the data to send has SHA-256 {actual}, not the expected {expected}"
            )));
        }
        let mode_octal = format!("{mode:o}");
        match self.fingerprint(remote_path)? {
            Some((sha, present_mode)) if sha == expected => {
                if present_mode == mode_octal {
                    return Ok(false);
                }
                self.run_ok(&["chmod", &mode_octal, remote_path], None)?;
                return Ok(true);
            }
            _ => {}
        }
        self.upload(data, remote_path, mode)?;
        match self.fingerprint(remote_path)? {
            Some((sha, _)) if sha == expected => Ok(true),
            Some((sha, _)) => Err(problem(format!(
                "after upload its SHA-256 is {sha}, not the expected {expected}"
            ))),
            None => Err(problem("it is missing right after upload".into())),
        }
    }

    /// `(sha256, octal mode)` of a remote regular file, None when missing.
    fn fingerprint(&self, remote_path: &str) -> Result<Option<(String, String)>, SshError> {
        let argv = ["sh", "-c", FINGERPRINT_SCRIPT, "sh", remote_path];
        let output = self.run(&argv, None)?;
        let output = self.check(&format!("sha256sum {remote_path}"), output)?;
        let text = output.stdout_text();
        let mut fields = text.split_whitespace();
        Ok(match (fields.next(), fields.next()) {
            (Some(sha), Some(mode)) => Some((sha.to_ascii_lowercase(), mode.to_string())),
            _ => None,
        })
    }

    fn check(&self, command: &str, output: Output) -> Result<Output, SshError> {
        if output.success() {
            return Ok(output);
        }
        Err(SshError::Command {
            node: self.endpoint.node.clone(),
            command: command.to_string(),
            status: output.status,
            stderr: output.stderr_text(),
        })
    }

    fn transport_error(&self, action: String, cause: String) -> SshError {
        SshError::Transport {
            node: self.endpoint.node.clone(),
            action,
            cause,
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
