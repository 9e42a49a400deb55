//! SIGTERM/SIGINT handling without async-signal hazards: the signals are blocked in every
//! VMM thread and read from a signalfd by the main thread; vCPU threads are kicked out of
//! KVM_RUN with a real-time signal whose handler does nothing.

use std::io;
use std::mem::MaybeUninit;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// The signals that stop the VM.
pub const STOP_SIGNALS: [libc::c_int; 2] = [libc::SIGTERM, libc::SIGINT];

fn stop_set() -> libc::sigset_t {
    let mut set = MaybeUninit::<libc::sigset_t>::uninit();
    // SAFETY: sigemptyset initializes the set; sigaddset gets valid signal numbers.
    unsafe {
        libc::sigemptyset(set.as_mut_ptr());
        for s in STOP_SIGNALS {
            libc::sigaddset(set.as_mut_ptr(), s);
        }
        set.assume_init()
    }
}

/// Blocks the stop signals in the calling thread (and threads it spawns) until dropped.
pub struct BlockedStopSignals {
    old: libc::sigset_t,
}

impl BlockedStopSignals {
    /// Blocks SIGTERM and SIGINT.
    pub fn new() -> io::Result<Self> {
        let set = stop_set();
        let mut old = MaybeUninit::<libc::sigset_t>::uninit();
        // SAFETY: both pointers are valid; pthread_sigmask fills `old` on success.
        let rc = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, old.as_mut_ptr()) };
        if rc != 0 {
            return Err(io::Error::from_raw_os_error(rc));
        }
        // SAFETY: initialized by the successful call above.
        let old = unsafe { old.assume_init() };
        Ok(BlockedStopSignals { old })
    }
}

impl Drop for BlockedStopSignals {
    fn drop(&mut self) {
        // SAFETY: restores the mask saved in `new`.
        unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &self.old, std::ptr::null_mut()) };
    }
}

/// A signalfd for the stop signals (they must be blocked).
pub struct StopSignalFd(OwnedFd);

impl StopSignalFd {
    /// Creates the fd.
    pub fn new() -> io::Result<Self> {
        let set = stop_set();
        // SAFETY: `set` is valid; the returned fd is checked and then owned.
        let fd = unsafe { libc::signalfd(-1, &set, libc::SFD_CLOEXEC | libc::SFD_NONBLOCK) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` is a fresh descriptor nobody else owns.
        Ok(StopSignalFd(unsafe { OwnedFd::from_raw_fd(fd) }))
    }

    /// The pending signal number, if any.
    pub fn read(&self) -> Option<i32> {
        let mut info = MaybeUninit::<libc::signalfd_siginfo>::uninit();
        let size = std::mem::size_of::<libc::signalfd_siginfo>();
        // SAFETY: reads at most `size` bytes into the buffer of that size.
        let n = unsafe { libc::read(self.0.as_raw_fd(), info.as_mut_ptr().cast(), size) };
        if n as usize != size {
            return None;
        }
        // SAFETY: the kernel wrote a whole signalfd_siginfo.
        Some(unsafe { info.assume_init() }.ssi_signo as i32)
    }
}

impl AsRawFd for StopSignalFd {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.0.as_raw_fd()
    }
}

/// The signal that interrupts KVM_RUN.
pub fn vcpu_kick_signal() -> libc::c_int {
    vmm_sys_util::signal::SIGRTMIN()
}

extern "C" fn noop_handler(_: libc::c_int, _: *mut libc::siginfo_t, _: *mut libc::c_void) {}

/// Installs the do-nothing handler for the kick signal (idempotent).
pub fn install_vcpu_kick_handler() -> io::Result<()> {
    vmm_sys_util::signal::register_signal_handler(vcpu_kick_signal(), noop_handler)
        .map_err(|e| io::Error::from_raw_os_error(e.errno()))
}

/// Waits until one of `fds` is readable; returns the readiness of each.
pub fn poll_readable(fds: &[libc::c_int]) -> io::Result<Vec<bool>> {
    let mut pfds: Vec<libc::pollfd> = fds
        .iter()
        .map(|&fd| libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    loop {
        // SAFETY: `pfds` is a valid array of `pfds.len()` pollfd structs.
        let rc = unsafe { libc::poll(pfds.as_mut_ptr(), pfds.len() as libc::nfds_t, -1) };
        if rc >= 0 {
            return Ok(pfds.iter().map(|p| p.revents & libc::POLLIN != 0).collect());
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
}
