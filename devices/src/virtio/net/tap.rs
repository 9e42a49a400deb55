//! A Linux TAP device opened through /dev/net/tun with a 12-byte vnet header.
//!
//! Opening attaches to an existing persistent TAP or creates a new, non-persistent one; a TAP we
//! created disappears when our descriptor closes, one that existed before is left alone.

use std::ffi::CStr;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;

use super::VNET_HDR_LEN;

/// Path of the TUN/TAP clone device.
const TUN_DEV: &str = "/dev/net/tun";
/// Interface names are at most IFNAMSIZ - 1 bytes (the kernel needs a NUL terminator).
pub const MAX_TAP_NAME_LEN: usize = libc::IFNAMSIZ - 1;

/// Why a TAP could not be opened or configured.
#[derive(Debug, thiserror::Error)]
pub enum TapError {
    /// The name is empty, too long, or has characters the kernel would treat specially.
    #[error(
        "invalid TAP name {0:?}: use 1 to {MAX_TAP_NAME_LEN} characters out of letters, digits, '-', '_' and '.'"
    )]
    InvalidName(String),
    /// /dev/net/tun could not be opened (missing tun module, no permission).
    #[error("cannot open {TUN_DEV}")]
    OpenTun(#[source] io::Error),
    /// TUNSETIFF failed: the name belongs to a non-TAP device, a TAP in use by another process,
    /// or the caller lacks CAP_NET_ADMIN.
    #[error("cannot attach to TAP {name:?} (is it another kind of interface, or in use?)")]
    SetIff {
        /// The interface name.
        name: String,
        /// The kernel's answer.
        #[source]
        source: io::Error,
    },
    /// TUNGETIFF failed.
    #[error("cannot read back the flags of TAP {0:?}")]
    GetIff(String, #[source] io::Error),
    /// TUNSETVNETHDRSZ failed.
    #[error("cannot set the vnet header size of TAP {0:?}")]
    VnetHdrSize(String, #[source] io::Error),
    /// TUNSETOFFLOAD failed (e.g. TSO without checksum offload).
    #[error("cannot set offloads {flags:#x} on TAP {name:?}")]
    SetOffload {
        /// The interface name.
        name: String,
        /// The TUN_F_* flags that were refused.
        flags: u32,
        /// The kernel's answer.
        #[source]
        source: io::Error,
    },
    /// Bringing the link up failed.
    #[error("cannot bring TAP {0:?} up")]
    LinkUp(String, #[source] io::Error),
}

/// `struct ifreq` with the flags member of its union, which is all TUNSETIFF/TUNGETIFF and
/// SIOC[GS]IFFLAGS use.
#[repr(C)]
#[derive(Clone, Copy)]
struct IfReqFlags {
    name: [libc::c_char; libc::IFNAMSIZ],
    flags: libc::c_short,
    // The kernel copies sizeof(struct ifreq) = 40 bytes; keep the rest of the union in place.
    _pad: [u8; 22],
}

const _: () = assert!(std::mem::size_of::<IfReqFlags>() == std::mem::size_of::<libc::ifreq>());

impl IfReqFlags {
    fn new(name: &str) -> Self {
        let mut req = IfReqFlags {
            name: [0; libc::IFNAMSIZ],
            flags: 0,
            _pad: [0; 22],
        };
        // Callers validated `name` (ASCII, <= IFNAMSIZ - 1 bytes), so a NUL always remains.
        for (dst, &src) in req.name.iter_mut().zip(name.as_bytes()) {
            *dst = src as libc::c_char;
        }
        req
    }

    fn name(&self) -> String {
        // SAFETY: `name` is IFNAMSIZ bytes and the kernel (or `new`) NUL-terminates it within them.
        let cstr = unsafe { CStr::from_ptr(self.name.as_ptr()) };
        cstr.to_string_lossy().into_owned()
    }
}

/// An open TAP queue. Reads and writes carry a [`VNET_HDR_LEN`]-byte virtio-net header.
#[derive(Debug)]
pub struct Tap {
    file: File,
    name: String,
    created: bool,
}

/// Checks that `name` can name a TAP: 1..=15 bytes of letters, digits, '-', '_' and '.'
/// (no '%', which the kernel would expand, and no '/' or spaces).
pub fn validate_name(name: &str) -> Result<(), TapError> {
    let ok = !name.is_empty()
        && name.len() <= MAX_TAP_NAME_LEN
        && name != "."
        && name != ".."
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(TapError::InvalidName(name.to_string()))
    }
}

impl Tap {
    /// Opens the TAP `name` non-blocking, creating it if it does not exist, sets a 12-byte vnet
    /// header, disables all receive offloads (enabled later from the guest's features) and
    /// brings the link up.
    pub fn open(name: &str) -> Result<Tap, TapError> {
        validate_name(name)?;
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
            .open(TUN_DEV)
            .map_err(TapError::OpenTun)?;
        let mut req = IfReqFlags::new(name);
        req.flags = (libc::IFF_TAP | libc::IFF_NO_PI | libc::IFF_VNET_HDR) as libc::c_short;
        // SAFETY: TUNSETIFF reads and writes one `struct ifreq`; `req` has its size and layout.
        let ret = unsafe { libc::ioctl(file.as_raw_fd(), libc::TUNSETIFF, &mut req) };
        if ret < 0 {
            return Err(TapError::SetIff {
                name: name.to_string(),
                source: io::Error::last_os_error(),
            });
        }
        // A non-persistent TAP only exists while a descriptor is attached, and attaching a
        // second (non-multiqueue) descriptor fails with EBUSY: so if it is not persistent now,
        // this call created it. Unlike checking for the name first, this has no race.
        let mut got = IfReqFlags::new(name);
        // SAFETY: TUNGETIFF writes one `struct ifreq` into `got`, which has its size and layout.
        let ret = unsafe { libc::ioctl(file.as_raw_fd(), libc::TUNGETIFF, &mut got) };
        if ret < 0 {
            return Err(TapError::GetIff(
                name.to_string(),
                io::Error::last_os_error(),
            ));
        }
        let created = got.flags as libc::c_int & libc::IFF_PERSIST == 0;
        let tap = Tap {
            file,
            name: got.name(),
            created,
        };
        let hdr_len = VNET_HDR_LEN as libc::c_int;
        // SAFETY: TUNSETVNETHDRSZ reads one int through the pointer; `hdr_len` outlives the call.
        let ret = unsafe { libc::ioctl(tap.fd(), libc::TUNSETVNETHDRSZ, &hdr_len) };
        if ret < 0 {
            return Err(TapError::VnetHdrSize(
                tap.name.clone(),
                io::Error::last_os_error(),
            ));
        }
        tap.set_offload(0)?;
        tap.link_up()?;
        Ok(tap)
    }

    /// The interface name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether this process created the TAP (it then disappears when the TAP is dropped).
    pub fn created(&self) -> bool {
        self.created
    }

    /// Tells the kernel which offloads the reader (the guest) accepts: TUN_F_CSUM, TUN_F_TSO4,
    /// TUN_F_TSO6, TUN_F_TSO_ECN. The host stack then hands the TAP partial-checksum and GSO
    /// frames instead of segmenting them itself.
    pub fn set_offload(&self, flags: u32) -> Result<(), TapError> {
        // SAFETY: TUNSETOFFLOAD takes its argument by value; no memory is passed.
        let ret = unsafe { libc::ioctl(self.fd(), libc::TUNSETOFFLOAD, flags as libc::c_ulong) };
        if ret < 0 {
            return Err(TapError::SetOffload {
                name: self.name.clone(),
                flags,
                source: io::Error::last_os_error(),
            });
        }
        Ok(())
    }

    fn link_up(&self) -> Result<(), TapError> {
        let err = |e| TapError::LinkUp(self.name.clone(), e);
        // SAFETY: plain socket creation; the result is checked and owned below.
        let sock = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
        if sock < 0 {
            return Err(err(io::Error::last_os_error()));
        }
        // SAFETY: `sock` is a fresh descriptor nobody else owns; File closes it on drop.
        let sock = unsafe { <File as std::os::fd::FromRawFd>::from_raw_fd(sock) };
        let mut req = IfReqFlags::new(&self.name);
        // SAFETY: SIOCGIFFLAGS reads and writes one `struct ifreq`; `req` has its size and layout.
        if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req) } < 0 {
            return Err(err(io::Error::last_os_error()));
        }
        req.flags |= libc::IFF_UP as libc::c_short;
        // SAFETY: as above, SIOCSIFFLAGS reads one `struct ifreq`.
        if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &req) } < 0 {
            return Err(err(io::Error::last_os_error()));
        }
        Ok(())
    }

    /// Reads one frame (vnet header first) into `buf`; `WouldBlock` when none is queued.
    pub fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        // SAFETY: the kernel writes at most `buf.len()` bytes into `buf`, which we borrow mutably.
        let n = unsafe { libc::read(self.fd(), buf.as_mut_ptr().cast(), buf.len()) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(n as usize)
    }

    /// Writes one frame (vnet header first).
    pub fn write(&self, buf: &[u8]) -> io::Result<usize> {
        // SAFETY: the kernel reads at most `buf.len()` bytes from `buf`, which we borrow.
        let n = unsafe { libc::write(self.fd(), buf.as_ptr().cast(), buf.len()) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(n as usize)
    }

    /// Reads one frame (vnet header first) scattered into `iov`; `WouldBlock` when none is
    /// queued.
    ///
    /// # Safety
    /// Every iovec must describe memory that is valid for writes of its length and stays
    /// mapped for the duration of the call.
    pub unsafe fn readv(&self, iov: &[libc::iovec]) -> io::Result<usize> {
        let count = libc::c_int::try_from(iov.len())
            .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
        // SAFETY: per this function's contract each iovec is writable memory of its length.
        let n = unsafe { libc::readv(self.fd(), iov.as_ptr(), count) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(n as usize)
    }

    /// Writes one frame (vnet header first) gathered from `iov`.
    ///
    /// The caller guarantees every iovec describes readable memory that stays mapped for the
    /// duration of the call (guest memory slices checked by vm-memory, held by their guards).
    pub fn writev(&self, iov: &[libc::iovec]) -> io::Result<usize> {
        let count = libc::c_int::try_from(iov.len())
            .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
        // SAFETY: per this method's contract each iovec is valid readable memory for its length
        // during the call; the kernel only reads through them.
        let n = unsafe { libc::writev(self.fd(), iov.as_ptr(), count) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(n as usize)
    }

    fn fd(&self) -> RawFd {
        self.file.as_raw_fd()
    }
}

impl AsRawFd for Tap {
    fn as_raw_fd(&self) -> RawFd {
        self.fd()
    }
}

impl Drop for Tap {
    fn drop(&mut self) {
        if self.created {
            // Closing the last descriptor of a non-persistent TAP removes it. Clear the flag in
            // case someone made our TAP persistent meanwhile: we created it, we remove it.
            // SAFETY: TUNSETPERSIST takes its argument by value; no memory is passed.
            unsafe { libc::ioctl(self.fd(), libc::TUNSETPERSIST, 0 as libc::c_ulong) };
        }
        // An existing (persistent) TAP is left as it was: closing our descriptor detaches only.
    }
}

#[cfg(test)]
mod unit_tests {
    use super::*;

    #[test]
    fn names_are_validated() {
        for bad in ["", "a-name-way-too-long", "tap%d", "a/b", "a b", ".", ".."] {
            assert!(
                matches!(Tap::open(bad), Err(TapError::InvalidName(n)) if n == bad),
                "{bad:?} accepted"
            );
        }
        assert!(validate_name("tap0").is_ok());
        assert!(validate_name("accelvm-tap.12").is_ok());
        assert!(validate_name("abcdefghijklmno").is_ok());
        assert!(validate_name("abcdefghijklmnop").is_err());
    }
}
