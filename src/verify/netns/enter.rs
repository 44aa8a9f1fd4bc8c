//! Running code inside a named network namespace: a fresh thread joins
//! `/run/netns/NAME` with setns(2) (network namespaces are per thread, so
//! the rest of labctl is untouched) and runs the closure there. This is how
//! verify pings, captures and reads MTUs in many pods at once without
//! starting one process per probe.

use std::ffi::CString;
use std::fs::File;
use std::os::fd::AsRawFd;

use anyhow::{anyhow, Context, Result};

/// Joins the network namespace `name` on the calling thread. Call it only
/// on a thread made for the purpose: the thread stays in that namespace.
pub fn join(name: &str) -> Result<()> {
    let path = format!("/run/netns/{name}");
    let file = File::open(&path)
        .with_context(|| format!("network namespace {name} does not exist ({path})"))?;
    // SAFETY: setns on a valid namespace fd affects only this thread's
    // network namespace (CLONE_NEWNET is allowed in multi-threaded processes).
    let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
    if rc != 0 {
        return Err(anyhow!(
            "cannot enter network namespace {name}: {} (verify needs root)",
            std::io::Error::last_os_error()
        ));
    }
    Ok(())
}

/// Runs `f` on a new thread inside network namespace `name`, in the scope
/// `scope`; join the handle for the result.
pub fn spawn_in<'scope, 'env, T, F>(
    scope: &'scope std::thread::Scope<'scope, 'env>,
    name: &str,
    f: F,
) -> std::thread::ScopedJoinHandle<'scope, Result<T>>
where
    T: Send + 'scope,
    F: FnOnce() -> Result<T> + Send + 'scope,
{
    let name = name.to_string();
    scope.spawn(move || {
        join(&name)?;
        f()
    })
}

/// Runs `f` inside namespace `name` and waits for it.
pub fn run_in<T: Send, F: FnOnce() -> Result<T> + Send>(name: &str, f: F) -> Result<T> {
    std::thread::scope(|s| {
        spawn_in(s, name, f)
            .join()
            .unwrap_or_else(|_| Err(anyhow!("a probe thread in namespace {name} panicked")))
    })
}

/// The index of interface `ifname` in the current thread's namespace.
pub fn if_index(ifname: &str) -> Option<u32> {
    let c = CString::new(ifname).ok()?;
    // SAFETY: c is a valid NUL-terminated string.
    let index = unsafe { libc::if_nametoindex(c.as_ptr()) };
    (index != 0).then_some(index)
}

/// The MTU of interface `ifname` in the current thread's namespace.
pub fn if_mtu(ifname: &str) -> Result<u32> {
    // SAFETY: plain socket(2); the fd is closed by OwnedFd below.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(anyhow!("socket: {}", std::io::Error::last_os_error()));
    }
    // SAFETY: fd was just returned by socket(2) and is owned here.
    let owned = unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) };
    // SAFETY: ifreq is plain old data; zeroed is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    let bytes = ifname.as_bytes();
    if bytes.len() >= req.ifr_name.len() {
        return Err(anyhow!("interface name {ifname} is too long"));
    }
    for (dst, src) in req.ifr_name.iter_mut().zip(bytes) {
        *dst = *src as libc::c_char;
    }
    // SAFETY: SIOCGIFMTU reads ifr_name and writes ifr_ifru.ifru_mtu.
    let rc = unsafe { libc::ioctl(owned.as_raw_fd(), libc::SIOCGIFMTU, &mut req) };
    if rc != 0 {
        return Err(anyhow!(
            "no interface {ifname}: {}",
            std::io::Error::last_os_error()
        ));
    }
    // SAFETY: the ioctl filled the mtu member of the union.
    let mtu = unsafe { req.ifr_ifru.ifru_mtu };
    Ok(u32::try_from(mtu).unwrap_or(0))
}

/// Every IPv4 address in the current thread's namespace: (interface,
/// address, prefix length).
pub fn ipv4_addresses() -> Result<Vec<(String, std::net::Ipv4Addr, u8)>> {
    let mut out = Vec::new();
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills head with a list freed by freeifaddrs below.
    if unsafe { libc::getifaddrs(&mut head) } != 0 {
        return Err(anyhow!("getifaddrs: {}", std::io::Error::last_os_error()));
    }
    let mut cur = head;
    while !cur.is_null() {
        // SAFETY: cur walks the list getifaddrs returned.
        let ifa = unsafe { &*cur };
        // SAFETY: ifa_name is a valid C string for every entry.
        let name = unsafe { std::ffi::CStr::from_ptr(ifa.ifa_name) }.to_string_lossy();
        if !ifa.ifa_addr.is_null() {
            // SAFETY: ifa_addr is non-null; its family says how to read it.
            let family = unsafe { (*ifa.ifa_addr).sa_family };
            if i32::from(family) == libc::AF_INET {
                // SAFETY: AF_INET entries hold sockaddr_in (address and mask).
                let addr = unsafe { *(ifa.ifa_addr as *const libc::sockaddr_in) };
                let prefix = if ifa.ifa_netmask.is_null() {
                    32
                } else {
                    // SAFETY: as above, for the netmask.
                    let mask = unsafe { *(ifa.ifa_netmask as *const libc::sockaddr_in) };
                    u32::from_be(mask.sin_addr.s_addr).count_ones() as u8
                };
                out.push((
                    name.to_string(),
                    std::net::Ipv4Addr::from(u32::from_be(addr.sin_addr.s_addr)),
                    prefix,
                ));
            }
        }
        cur = ifa.ifa_next;
    }
    // SAFETY: head came from getifaddrs.
    unsafe { libc::freeifaddrs(head) };
    Ok(out)
}
