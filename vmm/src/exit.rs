//! Why the VM stops, recorded once by whoever notices first (a vCPU, a device, a signal).

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use vmm_sys_util::eventfd::{EFD_NONBLOCK, EventFd};

/// Why the VM stopped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ExitReason {
    /// The guest powered off (ACPI S5).
    Poweroff,
    /// The guest rebooted (ACPI reset register, keyboard controller reset); Linux reboots
    /// this way after a panic too.
    Reset,
    /// A vCPU triple-faulted (KVM_EXIT_SHUTDOWN): the guest hit an exception it could not
    /// deliver and had no say. Reported apart from a reboot because a guest that reboots
    /// itself prints why first, and a triple fault is silent.
    TripleFault,
    /// The VMM received SIGTERM or SIGINT.
    Signal(i32),
    /// The startup probe stopped the VM right before its first KVM_RUN.
    StartupProbe,
    /// A vCPU hit an error it cannot continue from.
    Failed(String),
}

impl std::fmt::Display for ExitReason {
    /// A few words on why the VM stopped, for messages and stats.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ExitReason::Poweroff => f.write_str("poweroff"),
            ExitReason::Reset => f.write_str("reboot or panic"),
            ExitReason::TripleFault => f.write_str("triple fault"),
            ExitReason::Signal(s) => write!(f, "signal {s}"),
            ExitReason::StartupProbe => f.write_str("startup probe"),
            ExitReason::Failed(m) => write!(f, "failure: {m}"),
        }
    }
}

/// Shared stop request: the first reason wins, an eventfd wakes the main thread.
pub struct ExitSignal {
    reason: Mutex<Option<ExitReason>>,
    requested: AtomicBool,
    evt: EventFd,
}

impl ExitSignal {
    /// Creates the signal; fails only if no eventfd can be created.
    pub fn new() -> std::io::Result<Self> {
        Ok(ExitSignal {
            reason: Mutex::new(None),
            requested: AtomicBool::new(false),
            evt: EventFd::new(EFD_NONBLOCK)?,
        })
    }

    /// Requests a stop; later reasons are ignored.
    pub fn request(&self, reason: ExitReason) {
        let mut slot = self.reason.lock().unwrap_or_else(|e| e.into_inner());
        if slot.is_none() {
            *slot = Some(reason);
        }
        self.requested.store(true, Ordering::SeqCst);
        // A full eventfd counter still wakes the waiter, so the error is harmless.
        let _ = self.evt.write(1);
    }

    /// Whether a stop was requested.
    pub fn is_requested(&self) -> bool {
        self.requested.load(Ordering::SeqCst)
    }

    /// The reason, once requested.
    pub fn reason(&self) -> Option<ExitReason> {
        self.reason
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Readable once a stop is requested.
    pub fn eventfd(&self) -> &EventFd {
        &self.evt
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_read_as_the_messages_and_the_test_harness_expect() {
        assert_eq!(ExitReason::Reset.to_string(), "reboot or panic");
        assert_eq!(ExitReason::TripleFault.to_string(), "triple fault");
        assert_eq!(ExitReason::Signal(15).to_string(), "signal 15");
        assert_eq!(ExitReason::Failed("x".into()).to_string(), "failure: x");
    }
}
