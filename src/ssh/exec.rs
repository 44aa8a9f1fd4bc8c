//! Running commands and putting files on a node.
//!
//! A command's stdin, stdout and stderr are pumped together in libssh2's
//! non-blocking mode: reading all of stdout before stderr would deadlock as
//! soon as the unread stream filled the channel window. Files travel as a
//! command's stdin (`cat` into a temporary file, then `mv -f`), so a node
//! needs no SFTP subsystem and replacement is atomic.

use std::io::{self, Read, Write};
use std::os::unix::io::AsRawFd;
use std::time::{Duration, Instant};

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
        self.exchange(&command, stdin)
            .map_err(|cause| self.transport_error(format!("running `{command}`"), cause))
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

    /// Runs one command on a new channel, pumping stdin, stdout and stderr.
    fn exchange(&self, command: &str, stdin: Option<&[u8]>) -> Result<Output, String> {
        let deadline = self.command_timeout.map(|t| Instant::now() + t);
        let _non_blocking = NonBlocking::enter(&self.ssh);
        let mut channel = self.retry(deadline, || self.ssh.channel_session())?;
        self.retry(deadline, || channel.exec(command))?;

        let mut input = stdin.unwrap_or_default();
        let mut input_closed = false;
        let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
        let mut buffer = vec![0u8; 64 * 1024];
        loop {
            let mut progressed = false;
            // Whether libssh2 waits to send (socket full) rather than to receive.
            let mut outbound = false;
            if !input.is_empty() {
                match channel.write(input) {
                    Ok(n) => {
                        input = &input[n..];
                        progressed |= n > 0;
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        outbound |= self.blocked_outbound();
                    }
                    // The command stopped reading (it exited): the rest of
                    // stdin has nowhere to go; its status tells the story.
                    Err(_) => input = &[],
                }
            }
            if input.is_empty() && !input_closed {
                match channel.send_eof() {
                    Err(e) if would_block(&e) => outbound |= self.blocked_outbound(),
                    _ => input_closed = true,
                }
            }
            progressed |= drain(&mut channel.stream(0), &mut stdout, &mut buffer)?;
            outbound |= self.blocked_outbound();
            progressed |= drain(&mut channel.stderr(), &mut stderr, &mut buffer)?;
            outbound |= self.blocked_outbound();
            // eof() is only true once nothing of either stream is buffered.
            if channel.eof() {
                break;
            }
            if !progressed {
                self.wait_for_socket(deadline, outbound)?;
            }
        }
        self.retry(deadline, || channel.close())?;
        self.retry(deadline, || channel.wait_close())?;
        let status = match channel.exit_signal().ok().and_then(|s| s.exit_signal) {
            Some(signal) => 128 + signal_number(&signal),
            None => channel.exit_status().map_err(|e| e.to_string())?,
        };
        Ok(Output {
            status,
            stdout,
            stderr,
        })
    }

    /// Calls a libssh2 operation until it stops asking to be called again.
    fn retry<T>(
        &self,
        deadline: Option<Instant>,
        mut operation: impl FnMut() -> Result<T, ssh2::Error>,
    ) -> Result<T, String> {
        loop {
            match operation() {
                Err(e) if would_block(&e) => {
                    self.wait_for_socket(deadline, self.blocked_outbound())?;
                }
                other => return other.map_err(|e| e.to_string()),
            }
        }
    }

    fn blocked_outbound(&self) -> bool {
        matches!(
            self.ssh.block_directions(),
            ssh2::BlockDirections::Outbound | ssh2::BlockDirections::Both
        )
    }

    /// Sleeps until the socket has data (or room, when `outbound`), at most
    /// a second, sending keepalives meanwhile; fails once the command
    /// deadline has passed.
    fn wait_for_socket(&self, deadline: Option<Instant>, outbound: bool) -> Result<(), String> {
        let now = Instant::now();
        if let (Some(deadline), Some(limit)) = (deadline, self.command_timeout) {
            if now >= deadline {
                return Err(format!("the command timed out after {} s", limit.as_secs()));
            }
        }
        // Sends a keepalive when one is due; the result only says when the
        // next one is, and the one-second wake-up below comes sooner.
        let _ = self.ssh.keepalive_send();
        let mut wait = Duration::from_secs(1);
        if let Some(deadline) = deadline {
            wait = wait.min(deadline.saturating_duration_since(now));
        }
        let events = if outbound {
            libc::POLLIN | libc::POLLOUT
        } else {
            libc::POLLIN
        };
        let mut poll_fd = libc::pollfd {
            fd: self.ssh.as_raw_fd(),
            events,
            revents: 0,
        };
        let timeout_ms = i32::try_from(wait.as_millis().max(1)).unwrap_or(i32::MAX);
        // SAFETY: one valid pollfd, owned by this frame, for the call's duration.
        let ready = unsafe { libc::poll(&mut poll_fd, 1, timeout_ms) };
        if ready < 0 {
            let error = io::Error::last_os_error();
            if error.kind() != io::ErrorKind::Interrupted {
                return Err(format!("waiting on the connection: {error}"));
            }
        }
        Ok(())
    }
}

/// Blocking mode for everything but the command pump; restored on drop,
/// also when the pump fails.
struct NonBlocking<'a>(&'a ssh2::Session);

impl<'a> NonBlocking<'a> {
    fn enter(ssh: &'a ssh2::Session) -> Self {
        ssh.set_blocking(false);
        NonBlocking(ssh)
    }
}

impl Drop for NonBlocking<'_> {
    fn drop(&mut self) {
        self.0.set_blocking(true);
    }
}

/// Reads what is available from one stream; true when anything came.
fn drain(stream: &mut ssh2::Stream, sink: &mut Vec<u8>, buffer: &mut [u8]) -> Result<bool, String> {
    let mut got = false;
    loop {
        match stream.read(buffer) {
            Ok(0) => return Ok(got),
            Ok(n) => {
                sink.extend_from_slice(&buffer[..n]);
                got = true;
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(got),
            Err(e) => return Err(format!("reading the command's output: {e}")),
        }
    }
}

/// libssh2's "call again later" (LIBSSH2_ERROR_EAGAIN) in non-blocking mode.
fn would_block(error: &ssh2::Error) -> bool {
    const LIBSSH2_ERROR_EAGAIN: i32 = -37;
    matches!(error.code(), ssh2::ErrorCode::Session(LIBSSH2_ERROR_EAGAIN))
}

/// Signal numbers for the names SSH reports (Linux numbering).
fn signal_number(name: &str) -> i32 {
    const SIGNALS: [&str; 15] = [
        "HUP", "INT", "QUIT", "ILL", "TRAP", "ABRT", "BUS", "FPE", "KILL", "USR1", "SEGV", "USR2",
        "PIPE", "ALRM", "TERM",
    ];
    SIGNALS
        .iter()
        .position(|s| *s == name)
        .map_or(0, |i| i as i32 + 1)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
