//! Encrypt requests served in place: the source is read from and the ciphertext written to
//! guest memory by the job itself, without the two host copies of the copy path.

use std::sync::atomic::Ordering;

use vm_memory::{ByteValued, GuestMemory};

use super::AccelHandler;
use crate::virtio::accel::QueueKind;
use crate::virtio::accel::backend::JobOp;
use crate::virtio::accel::chain::{DirectIo, SplitChain};
use crate::virtio::accel::protocol::{CryptoKey, DataHdr, OP_ENCRYPT, REQ_F_STATELESS};

/// Encrypt sources of at least this many bytes, in one descriptor, are read from and the
/// ciphertext written to guest memory in place instead of through host copies: below it the
/// copies cost less than setting that up.
pub(super) const DIRECT_MIN_BYTES: usize = 2048;

impl<M: GuestMemory + Send + Sync + 'static> AccelHandler<M> {
    /// For an encrypt request whose source fills the uncopied rest of its last readable
    /// descriptor and whose output (ciphertext and tag) fits the first writable descriptor:
    /// where the source starts and the output length. Only a shortcut: the request is still
    /// fully validated by `build_op`.
    fn direct_candidate(
        &self,
        kind: QueueKind,
        sc: &SplitChain,
        out_capacity: usize,
    ) -> Option<(usize, usize)> {
        if kind != QueueKind::Crypto {
            return None;
        }
        let hdr = DataHdr::from_slice(sc.readable.get(..size_of::<DataHdr>())?)?;
        if hdr.opcode.to_native() != OP_ENCRYPT {
            return None;
        }
        let key = if hdr.flags.to_native() & REQ_F_STATELESS != 0 {
            size_of::<CryptoKey>()
        } else {
            0
        };
        let src_start = size_of::<DataHdr>()
            .checked_add(key)?
            .checked_add(hdr.aad_len.to_native() as usize)?;
        let src_len = hdr.src_len.to_native() as usize;
        let out_len = src_len.checked_add(hdr.tag_len.to_native() as usize)?;
        let (_, first_out) = sc.writable.first_segment()?;
        let (_, uncopied) = sc.uncopied(src_start)?;
        (src_len >= DIRECT_MIN_BYTES
            && uncopied == src_len
            && out_len <= out_capacity
            && out_len <= first_out)
            .then_some((src_start, out_len))
    }

    /// Copies what an in-place encrypt needs (header, key, AAD) and returns its guest
    /// buffers; `None` if the request does not qualify (the caller then copies the rest).
    pub(super) fn in_place(
        &self,
        kind: QueueKind,
        sc: &mut SplitChain,
        out_capacity: usize,
    ) -> Option<DirectIo<M>> {
        let (src_start, out_len) = self.direct_candidate(kind, sc, out_capacity)?;
        sc.fill(&*self.mem, src_start).ok()?;
        let src = sc.uncopied(src_start)?;
        let (out, _) = sc.writable.first_segment()?;
        DirectIo::new(
            self.mem.clone(),
            self.gate.clone(),
            self.epoch,
            src,
            (out, out_len),
        )
    }

    /// Turns a validated `Encrypt` into `EncryptDirect` when `io` is set; true if it did.
    pub(super) fn make_direct(&self, op: &mut JobOp, io: &mut Option<DirectIo<M>>) -> bool {
        let (JobOp::Encrypt { key, iv, tag_len }, Some(io)) = (&*op, io.take()) else {
            return false;
        };
        *op = JobOp::EncryptDirect {
            key: key.clone(),
            iv: *iv,
            tag_len: *tag_len,
            io: Box::new(io),
        };
        self.metrics.in_place.fetch_add(1, Ordering::Relaxed);
        true
    }
}
