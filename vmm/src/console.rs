//! The guest console on stdout, with the `ACCELVM_EXIT=<n>` marker of `--guest-cmd` picked
//! out of the stream: the marker line is consumed and its status recorded, every other byte
//! goes to the output unchanged and immediately (an interactive prompt has no newline).

use std::io::{self, Write};
use std::sync::{Arc, Mutex};

/// The line the guest init prints after the command (guest init protocol).
pub const EXIT_MARKER: &[u8] = b"ACCELVM_EXIT=";
/// Longest status digits accepted; a longer line is not a marker.
const MAX_STATUS_DIGITS: usize = 10;

/// Status reported by the guest through the marker line.
pub type GuestStatus = Arc<Mutex<Option<i32>>>;

/// Serial output sink: forwards to `out`, filters the exit marker when `status` is set.
pub struct ConsoleOutput<W: Write> {
    out: W,
    status: Option<GuestStatus>,
    /// Bytes held back because they may be the start of a marker line.
    held: Vec<u8>,
    at_line_start: bool,
}

impl<W: Write> ConsoleOutput<W> {
    /// With `status`, marker lines are consumed and their value stored there.
    pub fn new(out: W, status: Option<GuestStatus>) -> Self {
        ConsoleOutput {
            out,
            status,
            held: Vec::new(),
            at_line_start: true,
        }
    }

    fn emit(&mut self, bytes: &[u8]) {
        // The guest must not stall on a closed stdout (e.g. `| head`): drop output instead.
        let _ = self.out.write_all(bytes);
    }

    fn release_held(&mut self) {
        let held = std::mem::take(&mut self.held);
        self.emit(&held);
        self.at_line_start = held.last() == Some(&b'\n');
    }

    fn push(&mut self, b: u8) {
        if self.status.is_none() {
            self.emit(&[b]);
            return;
        }
        if self.held.is_empty() && !self.at_line_start {
            self.emit(&[b]);
            self.at_line_start = b == b'\n';
            return;
        }
        self.held.push(b);
        let n = self.held.len();
        if n <= EXIT_MARKER.len() {
            if self.held[..] != EXIT_MARKER[..n] {
                self.release_held();
            }
            return;
        }
        let digits = &self.held[EXIT_MARKER.len()..];
        match b {
            b'\n' => {
                let text = std::str::from_utf8(digits).unwrap_or("");
                let text = text.trim_end_matches(['\r', '\n']);
                match text.parse::<i32>() {
                    Ok(status) => {
                        if let Some(slot) = &self.status {
                            *slot.lock().unwrap_or_else(|e| e.into_inner()) = Some(status);
                        }
                        self.held.clear();
                        self.at_line_start = true;
                    }
                    Err(_) => self.release_held(),
                }
            }
            b'0'..=b'9' | b'-' | b'\r' if digits.len() <= MAX_STATUS_DIGITS + 1 => {}
            _ => self.release_held(),
        }
    }
}

impl<W: Write> Drop for ConsoleOutput<W> {
    fn drop(&mut self) {
        // Output that looked like the start of a marker when the VM stopped is still output.
        self.release_held();
        let _ = self.out.flush();
    }
}

impl<W: Write> Write for ConsoleOutput<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        for &b in buf {
            self.push(b);
        }
        let _ = self.out.flush();
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        let _ = self.out.flush();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(input: &[u8]) -> (Vec<u8>, Option<i32>) {
        let status: GuestStatus = Arc::default();
        let mut c = ConsoleOutput::new(Vec::new(), Some(status.clone()));
        // Byte by byte, as the UART delivers it.
        for b in input {
            c.write_all(&[*b]).unwrap();
        }
        let s = *status.lock().unwrap();
        (std::mem::take(&mut c.out), s)
    }

    #[test]
    fn marker_line_is_consumed_and_parsed() {
        let (out, s) = run(b"hello\r\nACCELVM_EXIT=3\r\nbye\r\n");
        assert_eq!(out, b"hello\r\nbye\r\n");
        assert_eq!(s, Some(3));
        let (out, s) = run(b"ACCELVM_EXIT=0\n");
        assert!(out.is_empty());
        assert_eq!(s, Some(0));
    }

    #[test]
    fn lookalikes_pass_through_unchanged() {
        for input in [
            &b"ACCELVM_EXITED\r\n"[..],
            b"ACCELVM_EXIT=abc\r\n",
            b"ACCELVM_EXIT=\r\n",
            b"x ACCELVM_EXIT=1\r\n",
            b"ACCEL",
            b"ACCELVM_EXIT=99999999999999999\r\n",
        ] {
            let (out, s) = run(input);
            if input == b"ACCEL" {
                // Held until it is known not to be a marker; nothing is invented.
                assert!(out.is_empty());
            } else {
                assert_eq!(out, input, "{}", String::from_utf8_lossy(input));
            }
            assert_eq!(s, None);
        }
    }

    #[test]
    fn without_guest_cmd_nothing_is_filtered() {
        let mut c = ConsoleOutput::new(Vec::new(), None);
        c.write_all(b"ACCELVM_EXIT=1\r\n").unwrap();
        assert_eq!(c.out, b"ACCELVM_EXIT=1\r\n");
    }

    #[test]
    fn held_bytes_are_released_when_the_console_goes_away() {
        let mut out = Vec::new();
        {
            let mut c = ConsoleOutput::new(&mut out, Some(GuestStatus::default()));
            c.write_all(b"ACCELVM_EX").unwrap();
        }
        assert_eq!(out, b"ACCELVM_EX");
    }
}
