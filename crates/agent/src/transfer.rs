//! `transfer listen|send`: a TCP bulk transfer of the agent's own, for
//! verify's throughput check where a node has no iperf3. The listener
//! accepts one connection and reads until the sender closes; the sender
//! connects (retrying while the listener starts) and writes for the given
//! seconds. Each end reports its bytes, time and rate; the listener's is
//! what arrived.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use labctl_nodeplan::report::{AgentReport, TransferReport, REPORT_VERSION};

use crate::error::{AgentError, Result};

/// Write and read size: large enough that syscalls do not dominate.
const CHUNK: usize = 256 * 1024;
/// How long the sender keeps trying to connect, and the listener waits
/// for a connection beyond the transfer's own seconds.
const CONNECT_GRACE: Duration = Duration::from_secs(5);

fn report(node: &str, role: &str, peer: SocketAddr, bytes: u64, took: Duration) -> TransferReport {
    let seconds = took.as_secs_f64().max(1e-6);
    TransferReport {
        report_version: REPORT_VERSION,
        command: TransferReport::COMMAND.into(),
        node: node.to_string(),
        role: role.into(),
        peer: peer.to_string(),
        bytes,
        seconds,
        bits_per_second: bytes as f64 * 8.0 / seconds,
    }
}

fn failed(what: String, e: std::io::Error) -> AgentError {
    AgentError::Failed(format!("{what}: {e}"))
}

/// Accepts one connection on `address:port` and reads it to the end.
pub fn listen(node: &str, address: Ipv4Addr, port: u16, seconds: f64) -> Result<TransferReport> {
    let listener = TcpListener::bind((address, port))
        .map_err(|e| failed(format!("cannot listen on {address}:{port}"), e))?;
    listener
        .set_nonblocking(true)
        .map_err(|e| failed("setting the listener non-blocking".into(), e))?;
    let until = Instant::now() + CONNECT_GRACE + Duration::from_secs_f64(seconds);
    let (mut stream, peer) = loop {
        match listener.accept() {
            Ok(pair) => break pair,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock && Instant::now() < until => {
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(e) => {
                return Err(failed(
                    format!("no sender connected to {address}:{port}"),
                    e,
                ))
            }
        }
    };
    stream
        .set_nonblocking(false)
        .and_then(|()| stream.set_read_timeout(Some(CONNECT_GRACE)))
        .map_err(|e| failed("configuring the connection".into(), e))?;
    let mut buffer = vec![0u8; CHUNK];
    let mut bytes = 0u64;
    let mut first: Option<Instant> = None;
    loop {
        let n = stream
            .read(&mut buffer)
            .map_err(|e| failed(format!("reading from {peer}"), e))?;
        if n == 0 {
            break;
        }
        first.get_or_insert_with(Instant::now);
        bytes += n as u64;
    }
    let took = first.map_or(Duration::ZERO, |f| f.elapsed());
    Ok(report(node, "listen", peer, bytes, took))
}

/// Connects to `to:port` and writes zeros for `seconds`.
pub fn send(node: &str, to: Ipv4Addr, port: u16, seconds: f64) -> Result<TransferReport> {
    let peer = SocketAddr::from((to, port));
    let until = Instant::now() + CONNECT_GRACE;
    let mut stream = loop {
        match TcpStream::connect_timeout(&peer, CONNECT_GRACE) {
            Ok(s) => break s,
            Err(e) if Instant::now() < until => {
                let _ = e;
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => return Err(failed(format!("cannot connect to {peer}"), e)),
        }
    };
    let buffer = vec![0u8; CHUNK];
    let started = Instant::now();
    let length = Duration::from_secs_f64(seconds);
    let mut bytes = 0u64;
    while started.elapsed() < length {
        stream
            .write_all(&buffer)
            .map_err(|e| failed(format!("writing to {peer}"), e))?;
        bytes += CHUNK as u64;
    }
    stream
        .shutdown(std::net::Shutdown::Write)
        .map_err(|e| failed(format!("closing the connection to {peer}"), e))?;
    Ok(report(node, "send", peer, bytes, started.elapsed()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_transfer_counts_every_byte() {
        let port = 40_000 + (std::process::id() % 20_000) as u16;
        let listener = std::thread::spawn(move || listen("lo", Ipv4Addr::LOCALHOST, port, 0.2));
        let sent = send("lo", Ipv4Addr::LOCALHOST, port, 0.2).expect("send");
        let got = listener.join().expect("listener thread").expect("listen");
        assert_eq!(sent.bytes, got.bytes);
        assert!(got.bytes > 0 && got.bits_per_second > 0.0);
        assert_eq!((sent.role.as_str(), got.role.as_str()), ("send", "listen"));
    }
}
