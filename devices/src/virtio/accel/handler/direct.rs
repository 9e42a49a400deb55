//! Encrypt, decrypt and LZ4 compress requests served in place: the source is read from and the output
//! written to guest memory by the job itself, without the two host copies of the copy path.

use vm_memory::{ByteValued, GuestMemory};

use super::AccelHandler;
use crate::virtio::accel::QueueKind;
use crate::virtio::accel::backend::GuestBuffers;
use crate::virtio::accel::backend::JobOp;
use crate::virtio::accel::chain::SplitChain;
use crate::virtio::accel::protocol::{
    COMP_LZ4, CryptoKey, DataHdr, OP_COMPRESS, OP_DECRYPT, OP_ENCRYPT, REQ_F_STATELESS,
};

/// AES-GCM and LZ4 sources of at least this many bytes, in one descriptor, are read from and
/// the output written to guest memory in place instead of through host copies: below it the
/// copies cost less than setting that up.
pub(super) const DIRECT_MIN_BYTES: usize = 2048;

impl<M: GuestMemory + Send + Sync + 'static> AccelHandler<M> {
    /// For an encrypt, decrypt (or LZ4 compress) request whose source fills the uncopied rest of its
    /// last readable descriptor and whose whole output fits the first writable descriptor:
    /// where the source starts and the output area's length. Only a shortcut: the request is
    /// still fully validated by `build_op`.
    fn direct_candidate(
        &self,
        kind: QueueKind,
        sc: &SplitChain,
        out_capacity: usize,
    ) -> Option<(usize, usize)> {
        let hdr = DataHdr::from_slice(sc.readable.get(..size_of::<DataHdr>())?)?;
        let src_len = hdr.src_len.to_native() as usize;
        let aad_start = match hdr.flags.to_native() & REQ_F_STATELESS {
            0 => size_of::<DataHdr>(),
            _ => size_of::<DataHdr>() + size_of::<CryptoKey>(),
        };
        let src_start = aad_start.checked_add(hdr.aad_len.to_native() as usize)?;
        let out_len = match (kind, hdr.opcode.to_native()) {
            (QueueKind::Crypto, OP_ENCRYPT) => {
                src_len.checked_add(hdr.tag_len.to_native() as usize)?
            }
            (QueueKind::Crypto, OP_DECRYPT) => {
                src_len.checked_sub(hdr.tag_len.to_native() as usize)?
            }
            // Room for LZ4's worst case: compressing into the guest cannot fail midway.
            (QueueKind::Compression, OP_COMPRESS)
                if hdr.algo.to_native() == COMP_LZ4 && hdr.level.to_native() == 0 =>
            {
                lz4_flex::block::get_maximum_output_size(src_len)
            }
            _ => return None,
        };
        let (_, first_out) = sc.writable.first_segment()?;
        let (_, uncopied) = sc.uncopied(src_start)?;
        (src_len >= DIRECT_MIN_BYTES
            && uncopied == src_len
            && out_len <= out_capacity
            && out_len <= first_out)
            .then_some((src_start, out_len))
    }

    /// Copies what an in-place job needs (header, key, AAD) and returns its guest
    /// buffers; `None` if the request does not qualify (the caller then copies the rest).
    pub(super) fn in_place(
        &self,
        kind: QueueKind,
        sc: &mut SplitChain,
        out_capacity: usize,
    ) -> Option<GuestBuffers> {
        let (src_start, out_len) = self.direct_candidate(kind, sc, out_capacity)?;
        sc.fill(&*self.mem, src_start).ok()?;
        let src = sc.uncopied(src_start)?;
        let (out, _) = sc.writable.first_segment()?;
        self.in_place_mem.buffers(self.epoch, src, (out, out_len))
    }

    /// Turns a validated `Encrypt`, `Decrypt` (or LZ4 `Compress`) into its in-place form when `io` is
    /// set; true if it did.
    pub(super) fn make_direct(&mut self, op: &mut JobOp, io: &mut Option<GuestBuffers>) -> bool {
        let Some(io) = io.take() else {
            return false;
        };
        *op = match &*op {
            JobOp::Encrypt { key, iv, tag_len } => JobOp::EncryptDirect {
                key: key.clone(),
                iv: *iv,
                tag_len: *tag_len,
                io,
            },
            JobOp::Decrypt { key, iv, tag_len } => JobOp::DecryptDirect {
                key: key.clone(),
                iv: *iv,
                tag_len: *tag_len,
                io,
            },
            JobOp::Compress {
                algo: COMP_LZ4,
                level: 0,
            } => JobOp::CompressDirect {
                algo: COMP_LZ4,
                level: 0,
                io,
            },
            _ => return false,
        };
        self.counts.in_place += 1;
        true
    }
}
