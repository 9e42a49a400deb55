//! Raw mode for an interactive stdin: keys go to the guest one by one, unechoed, and
//! Ctrl-C reaches the guest shell instead of killing the VMM. Restored on drop.

use std::mem::MaybeUninit;

/// The saved terminal state of fd 0; dropping it restores that state.
pub struct RawTerminal {
    saved: libc::termios,
}

impl RawTerminal {
    /// Switches stdin to raw mode if it is a terminal; `None` otherwise.
    pub fn enable() -> Option<Self> {
        // SAFETY: isatty only inspects the descriptor number.
        if unsafe { libc::isatty(libc::STDIN_FILENO) } != 1 {
            return None;
        }
        let mut saved = MaybeUninit::<libc::termios>::uninit();
        // SAFETY: tcgetattr writes a full termios into the valid pointer on success.
        if unsafe { libc::tcgetattr(libc::STDIN_FILENO, saved.as_mut_ptr()) } != 0 {
            return None;
        }
        // SAFETY: tcgetattr returned 0, so `saved` is initialized.
        let saved = unsafe { saved.assume_init() };
        let mut raw = saved;
        // Keep output processing (OPOST) so host-side messages still get CR/LF right.
        raw.c_lflag &= !(libc::ICANON | libc::ECHO | libc::ISIG | libc::IEXTEN);
        raw.c_iflag &= !(libc::IXON | libc::ICRNL);
        raw.c_cc[libc::VMIN] = 1;
        raw.c_cc[libc::VTIME] = 0;
        // SAFETY: `raw` is a valid termios derived from the current one.
        if unsafe { libc::tcsetattr(libc::STDIN_FILENO, libc::TCSANOW, &raw) } != 0 {
            return None;
        }
        Some(RawTerminal { saved })
    }
}

impl Drop for RawTerminal {
    fn drop(&mut self) {
        // SAFETY: restores the termios read from this same descriptor.
        unsafe { libc::tcsetattr(libc::STDIN_FILENO, libc::TCSANOW, &self.saved) };
    }
}
