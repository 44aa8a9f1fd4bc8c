//! The command pump: one command on a new channel of an SSH session,
//! stdin, stdout and stderr moved together in libssh2's non-blocking mode
//! (reading all of stdout before stderr would deadlock as soon as the
//! unread stream filled the channel window). Used by a [`super::Session`]
//! connected directly and by the session keeper for the sessions it holds.

use std::io::{self, Read, Write};
use std::os::unix::io::AsRawFd;
use std::time::{Duration, Instant};

use super::Output;

/// One session's pump, with the limit each command gets (`None`: none).
pub(super) struct Pump<'a> {
    pub ssh: &'a ssh2::Session,
    pub timeout: Option<Duration>,
}

/// Why a command did not give its output.
#[derive(Debug)]
pub(super) enum PumpError {
    /// The channel or the exec request failed: nothing ran on the node.
    NotStarted(String),
    /// The command started; the session broke or timed out on the way.
    Broken(String),
}

impl PumpError {
    pub fn cause(self) -> String {
        match self {
            PumpError::NotStarted(cause) | PumpError::Broken(cause) => cause,
        }
    }
}

impl Pump<'_> {
    /// Runs one command on a new channel, pumping stdin, stdout and stderr.
    pub(super) fn exchange(
        &self,
        command: &str,
        stdin: Option<&[u8]>,
    ) -> Result<Output, PumpError> {
        let deadline = self.timeout.map(|t| Instant::now() + t);
        let _non_blocking = NonBlocking::enter(self.ssh);
        let not_started = PumpError::NotStarted;
        let mut channel = self
            .retry(deadline, || self.ssh.channel_session())
            .map_err(not_started)?;
        self.retry(deadline, || channel.exec(command))
            .map_err(not_started)?;
        self.pump(channel, stdin, deadline)
            .map_err(PumpError::Broken)
    }

    /// Feeds stdin and collects stdout and stderr until the command ends.
    fn pump(
        &self,
        mut channel: ssh2::Channel,
        stdin: Option<&[u8]>,
        deadline: Option<Instant>,
    ) -> Result<Output, String> {
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
        if let (Some(deadline), Some(limit)) = (deadline, self.timeout) {
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
