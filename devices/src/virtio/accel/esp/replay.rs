//! The inbound anti-replay window of RFC 4303 §3.4.3 (and Appendix A2's bitmap idea): a ring
//! bitmap of `size` bits whose rightmost edge is the highest verified sequence number.
//!
//! The caller checks a sequence number *before* the ICV (cheap rejection of duplicates and old
//! packets) and updates the window only *after* the ICV verified, so forged packets cannot move it.

/// Why the window refused a sequence number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplayVerdict {
    /// Sequence number 0 is never sent (RFC 4303 §3.3.3: the first packet has 1).
    Zero,
    /// Already received.
    Duplicate,
    /// Left of the window.
    TooOld,
}

/// Anti-replay window over 64-bit sequence numbers (32-bit ones without ESN).
#[derive(Debug, Clone)]
pub struct ReplayWindow {
    /// Window size in packets (RFC 4303: at least 32, 64 recommended).
    size: u32,
    /// Highest sequence number verified so far (0: none yet).
    top: u64,
    /// Ring bitmap: bit `seq % (bits.len() * 64)` is set when `seq` was received. It holds at
    /// least `size` bits so every sequence number inside the window has its own bit.
    bits: Vec<u64>,
}

impl ReplayWindow {
    /// A window of `size` packets (the caller validates the range).
    pub fn new(size: u32) -> Self {
        let words = size.div_ceil(64).max(1) as usize;
        Self {
            size,
            top: 0,
            bits: vec![0; words],
        }
    }

    /// The highest sequence number verified so far.
    pub fn top(&self) -> u64 {
        self.top
    }

    fn ring_bits(&self) -> u64 {
        self.bits.len() as u64 * 64
    }

    fn slot(&self, seq: u64) -> (usize, u64) {
        let bit = seq % self.ring_bits();
        ((bit / 64) as usize, 1u64 << (bit % 64))
    }

    /// Whether `seq` may be accepted; does not change the window.
    pub fn check(&self, seq: u64) -> Result<(), ReplayVerdict> {
        if seq == 0 {
            return Err(ReplayVerdict::Zero);
        }
        if seq > self.top {
            return Ok(());
        }
        if self.top - seq >= u64::from(self.size) {
            return Err(ReplayVerdict::TooOld);
        }
        let (word, mask) = self.slot(seq);
        if self.bits[word] & mask != 0 {
            Err(ReplayVerdict::Duplicate)
        } else {
            Ok(())
        }
    }

    /// Records `seq` as received. Call only after `check(seq)` passed and the ICV verified.
    pub fn update(&mut self, seq: u64) {
        if seq > self.top {
            let advance = seq - self.top;
            if advance >= self.ring_bits() {
                self.bits.fill(0);
            } else {
                // Clear the bits of the sequence numbers the right edge passes over: their slots
                // still hold marks from one ring turn ago.
                for s in self.top + 1..=seq {
                    let (word, mask) = self.slot(s);
                    self.bits[word] &= !mask;
                }
            }
            self.top = seq;
        }
        let (word, mask) = self.slot(seq);
        self.bits[word] |= mask;
    }
}

impl ReplayWindow {
    /// RFC 4303 Appendix A2.2: the high 32 bits of an ESN sequence number are not sent; infer
    /// them from the window position. `None` when the number would lie before sequence 0.
    pub fn infer_esn(&self, seq_lo: u32) -> Option<u64> {
        let tl = self.top as u32;
        let th = self.top >> 32;
        let w = self.size;
        let hi = if tl >= w - 1 {
            // Window within one subspace: below its bottom means the next subspace.
            if seq_lo >= tl - (w - 1) { th } else { th + 1 }
        } else if seq_lo >= tl.wrapping_sub(w - 1) {
            // Window spans two subspaces: high numbers belong to the previous one.
            th.checked_sub(1)?
        } else {
            th
        };
        Some((hi << 32) | u64::from(seq_lo))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// check + update, as the decapsulation path does for a packet whose ICV verifies.
    fn accept(w: &mut ReplayWindow, seq: u64) -> Result<(), ReplayVerdict> {
        w.check(seq)?;
        w.update(seq);
        Ok(())
    }

    #[test]
    fn in_order() {
        let mut w = ReplayWindow::new(64);
        for s in 1..=1000 {
            assert_eq!(accept(&mut w, s), Ok(()), "seq {s}");
        }
        assert_eq!(w.top(), 1000);
        assert_eq!(accept(&mut w, 1000), Err(ReplayVerdict::Duplicate));
        // 1000 - 63 = 937 is the left edge of a 64-packet window: already received.
        assert_eq!(accept(&mut w, 937), Err(ReplayVerdict::Duplicate));
        assert_eq!(accept(&mut w, 938), Err(ReplayVerdict::Duplicate));
        assert_eq!(accept(&mut w, 936), Err(ReplayVerdict::TooOld));
        assert_eq!(accept(&mut w, 1), Err(ReplayVerdict::TooOld));
    }

    #[test]
    fn zero_is_refused() {
        let w = ReplayWindow::new(64);
        assert_eq!(w.check(0), Err(ReplayVerdict::Zero));
    }

    #[test]
    fn out_of_order_within_window() {
        let mut w = ReplayWindow::new(64);
        assert_eq!(accept(&mut w, 100), Ok(()));
        // Everything from 37 (= 100 - 63) to 99 is inside the window and new.
        for s in (37..100).rev() {
            assert_eq!(accept(&mut w, s), Ok(()), "seq {s}");
        }
        assert_eq!(accept(&mut w, 36), Err(ReplayVerdict::TooOld));
        for s in 37..=100 {
            assert_eq!(w.check(s), Err(ReplayVerdict::Duplicate), "seq {s}");
        }
        assert_eq!(w.check(101), Ok(()));
    }

    #[test]
    fn duplicates_and_gaps() {
        let mut w = ReplayWindow::new(64);
        for s in [1, 3, 5, 2, 10, 4] {
            assert_eq!(accept(&mut w, s), Ok(()), "seq {s}");
        }
        for s in [1, 2, 3, 4, 5, 10] {
            assert_eq!(w.check(s), Err(ReplayVerdict::Duplicate), "seq {s}");
        }
        for s in [6, 7, 8, 9, 11] {
            assert_eq!(w.check(s), Ok(()), "seq {s}");
        }
    }

    #[test]
    fn check_alone_does_not_move_the_window() {
        let mut w = ReplayWindow::new(64);
        accept(&mut w, 5).unwrap();
        assert_eq!(w.check(10_000), Ok(()));
        // A packet whose ICV then fails is never recorded: the window still sits at 5.
        assert_eq!(w.top(), 5);
        assert_eq!(w.check(6), Ok(()));
        assert_eq!(w.check(5), Err(ReplayVerdict::Duplicate));
    }

    #[test]
    fn large_jumps_clear_stale_bits() {
        let mut w = ReplayWindow::new(64);
        for s in 1..=64 {
            accept(&mut w, s).unwrap();
        }
        // Jump by exactly the ring size: slots of 1..=64 are reused by 65..=128.
        accept(&mut w, 128).unwrap();
        for s in 65..128 {
            assert_eq!(w.check(s), Ok(()), "seq {s} must not inherit a stale bit");
        }
        assert_eq!(w.check(64), Err(ReplayVerdict::TooOld));
        // Jump far beyond the ring.
        accept(&mut w, 1_000_000).unwrap();
        assert_eq!(w.check(999_999), Ok(()));
        assert_eq!(w.check(999_937), Ok(()));
        assert_eq!(w.check(999_936), Err(ReplayVerdict::TooOld));
        // Small jumps that partly overlap the old window.
        accept(&mut w, 999_990).unwrap();
        accept(&mut w, 1_000_030).unwrap();
        assert_eq!(w.check(999_990), Err(ReplayVerdict::Duplicate));
        assert_eq!(w.check(1_000_000), Err(ReplayVerdict::Duplicate));
        assert_eq!(w.check(1_000_029), Ok(()));
        assert_eq!(w.check(999_966), Err(ReplayVerdict::TooOld));
        assert_eq!(w.check(999_967), Ok(()));
    }

    #[test]
    fn window_sizes_that_are_not_multiples_of_64() {
        let mut w = ReplayWindow::new(100);
        accept(&mut w, 500).unwrap();
        assert_eq!(w.check(401), Ok(()));
        assert_eq!(w.check(400), Err(ReplayVerdict::TooOld));
        accept(&mut w, 401).unwrap();
        // The ring has 128 slots: 401 and 529 share one; moving to 529 must clear it.
        accept(&mut w, 529).unwrap();
        assert_eq!(w.check(430), Ok(()));
        assert_eq!(w.check(429), Err(ReplayVerdict::TooOld));
        assert_eq!(w.check(500), Err(ReplayVerdict::Duplicate));
    }

    #[test]
    fn large_window_1024() {
        let mut w = ReplayWindow::new(1024);
        accept(&mut w, 5000).unwrap();
        for s in (3977..5000).step_by(7) {
            assert_eq!(accept(&mut w, s), Ok(()), "seq {s}");
        }
        assert_eq!(w.check(3976), Err(ReplayVerdict::TooOld));
        assert_eq!(w.check(3977), Err(ReplayVerdict::Duplicate));
        assert_eq!(w.check(3978), Ok(()));
    }

    #[test]
    fn seq_u32_max_edge() {
        const M: u64 = u32::MAX as u64;
        let mut w = ReplayWindow::new(64);
        accept(&mut w, M - 1).unwrap();
        accept(&mut w, M).unwrap();
        assert_eq!(w.top(), M);
        assert_eq!(w.check(M), Err(ReplayVerdict::Duplicate));
        assert_eq!(w.check(M - 1), Err(ReplayVerdict::Duplicate));
        assert_eq!(w.check(M - 2), Ok(()));
        assert_eq!(w.check(M - 63), Ok(()));
        assert_eq!(w.check(M - 64), Err(ReplayVerdict::TooOld));
        // No ESN: nothing lies beyond 2^32-1, and sequence numbers never wrap to "new".
        assert_eq!(w.check(1), Err(ReplayVerdict::TooOld));
        assert_eq!(w.check(0), Err(ReplayVerdict::Zero));
        // A first packet far out, straight to the edge.
        let mut w = ReplayWindow::new(64);
        accept(&mut w, M).unwrap();
        assert_eq!(w.check(M - 63), Ok(()));
    }

    #[test]
    fn esn_high_bits_inferred_per_rfc4303_a2() {
        const B: u64 = 1 << 32;
        let mut w = ReplayWindow::new(64);
        // Fresh window (top 0): low numbers are subspace 0, high ones "before 0" (refused).
        assert_eq!(w.infer_esn(1), Some(1));
        assert_eq!(w.infer_esn(u32::MAX), None);
        // Window inside subspace 0, near its end.
        accept(&mut w, B - 10).unwrap();
        assert_eq!(w.infer_esn(u32::MAX - 5), Some(B - 6));
        assert_eq!(w.infer_esn(u32::MAX - 9 - 63), Some(B - 10 - 63));
        // Below the window bottom: the sender wrapped into subspace 1.
        assert_eq!(w.infer_esn(0), Some(B));
        assert_eq!(w.infer_esn(5), Some(B + 5));
        accept(&mut w, B + 5).unwrap();
        // Now the window spans both subspaces: big low halves are late packets of subspace 0.
        assert_eq!(w.infer_esn(u32::MAX), Some(B - 1));
        assert_eq!(w.check(B - 1), Ok(()));
        assert_eq!(w.infer_esn(u32::MAX - 57), Some(B - 58));
        assert_eq!(w.check(B - 58), Ok(()));
        assert_eq!(w.check(B - 59), Err(ReplayVerdict::TooOld));
        assert_eq!(w.infer_esn(6), Some(B + 6));
        assert_eq!(w.check(B + 5), Err(ReplayVerdict::Duplicate));
        assert_eq!(w.check(B - 10), Err(ReplayVerdict::Duplicate));
        // Far into subspace 1: everything is subspace 1 or 2 again.
        accept(&mut w, B + 1000).unwrap();
        assert_eq!(w.infer_esn(999), Some(B + 999));
        assert_eq!(w.infer_esn(10), Some(2 * B + 10));
    }
}
