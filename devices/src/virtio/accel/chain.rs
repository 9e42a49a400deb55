//! Splits a descriptor chain into its device-readable and device-writable areas and moves
//! bytes between them and host buffers — only through vm-memory's bounds-checked `Bytes`.
//!
//! The chain's guest addresses are recorded (not borrowed) so that a request can complete
//! later, after a worker thread has produced its output.

use virtio_queue::DescriptorChain;
use vm_memory::{Address, Bytes, GuestAddress, GuestMemory};

use super::{MAX_CHAIN_SEGMENTS, MAX_READABLE_BYTES};

/// Why a descriptor chain cannot carry a request.
#[derive(Debug, thiserror::Error)]
pub enum ChainError {
    /// virtio 1.2 §2.7.4.2: the driver MUST place device-writable descriptors after
    /// device-readable ones.
    #[error("device-readable descriptor after a device-writable one")]
    ReadableAfterWritable,
    /// More descriptors than [`MAX_CHAIN_SEGMENTS`].
    #[error("descriptor chain has more than {MAX_CHAIN_SEGMENTS} segments")]
    TooManySegments,
    /// The readable part is larger than any valid request of this device.
    #[error("device-readable area exceeds {0} bytes")]
    ReadableTooLong(usize),
    /// A descriptor points outside guest memory.
    #[error("descriptor at {0:#x} is outside guest memory")]
    OutOfMemory(u64),
    /// A write past the end of the writable area.
    #[error("write beyond the device-writable area")]
    WriteOutOfArea,
    /// Reading or writing guest memory failed.
    #[error("guest memory access failed: {0}")]
    Memory(#[source] vm_memory::GuestMemoryError),
}

/// A contiguous guest-physical range.
#[derive(Clone, Copy, Debug)]
struct Segment {
    addr: GuestAddress,
    len: usize,
}

/// The device-writable part of a chain, written when the request completes.
#[derive(Debug, Default)]
pub struct WritableArea {
    segs: Vec<Segment>,
    len: usize,
}

impl WritableArea {
    /// Total writable bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when the chain has no writable bytes.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Writes `data` at byte `offset` of the area; fails if it does not fit or memory
    /// vanished (a hot-unplug or a hostile remap cannot make the device write elsewhere).
    pub fn write_at<M: GuestMemory + ?Sized>(
        &self,
        mem: &M,
        mut offset: usize,
        mut data: &[u8],
    ) -> Result<(), ChainError> {
        if offset
            .checked_add(data.len())
            .is_none_or(|end| end > self.len)
        {
            return Err(ChainError::WriteOutOfArea);
        }
        for seg in &self.segs {
            if data.is_empty() {
                break;
            }
            if offset >= seg.len {
                offset -= seg.len;
                continue;
            }
            let n = (seg.len - offset).min(data.len());
            let addr = seg
                .addr
                .checked_add(offset as u64)
                .ok_or(ChainError::OutOfMemory(seg.addr.0))?;
            mem.write_slice(&data[..n], addr)
                .map_err(ChainError::Memory)?;
            data = &data[n..];
            offset = 0;
        }
        Ok(())
    }
}

/// A chain taken apart: its head index, readable bytes and writable area.
#[derive(Debug)]
pub struct SplitChain {
    /// Head descriptor index, for `add_used`.
    pub head: u16,
    /// The device-readable bytes, copied out of guest memory.
    pub readable: Vec<u8>,
    /// Where the response goes.
    pub writable: WritableArea,
}

/// Walks `chain`, checks direction order, counts and bounds (the readable part is at most
/// `max_readable`, itself capped at [`MAX_READABLE_BYTES`]), and copies the readable part
/// into `buf` (reused to avoid an allocation per request; `slack` extra bytes of capacity are
/// reserved so an appended AEAD tag never reallocates).
pub fn split_chain<M, T>(
    chain: DescriptorChain<T>,
    mem: &M,
    mut buf: Vec<u8>,
    slack: usize,
    max_readable: usize,
) -> Result<SplitChain, (u16, ChainError, Vec<u8>)>
where
    M: GuestMemory + ?Sized,
    T: std::ops::Deref,
    T::Target: GuestMemory,
{
    let head = chain.head_index();
    let max_readable = max_readable.min(MAX_READABLE_BYTES);
    let mut readable: Vec<Segment> = Vec::new();
    let mut writable = WritableArea::default();
    let mut rlen = 0usize;
    for (n, desc) in chain.enumerate() {
        if n >= MAX_CHAIN_SEGMENTS {
            return Err((head, ChainError::TooManySegments, buf));
        }
        let addr = desc.addr();
        let len = desc.len() as usize;
        // Every segment must lie in guest memory before we touch it or promise to write it.
        let access = if desc.is_write_only() {
            vm_memory::Permissions::Write
        } else {
            vm_memory::Permissions::Read
        };
        if !mem.check_range(addr, len, access) {
            return Err((head, ChainError::OutOfMemory(addr.0), buf));
        }
        if desc.is_write_only() {
            // The whole area is recorded (the trailer sits at its very end); how much of it
            // the device fills is capped by the caller. Segment count bounds the sum.
            writable.segs.push(Segment { addr, len });
            writable.len += len;
        } else {
            if !writable.segs.is_empty() {
                return Err((head, ChainError::ReadableAfterWritable, buf));
            }
            rlen = rlen.saturating_add(len);
            if rlen > max_readable {
                return Err((head, ChainError::ReadableTooLong(max_readable), buf));
            }
            readable.push(Segment { addr, len });
        }
    }
    if buf.capacity() < rlen + slack {
        buf.reserve(rlen + slack - buf.len());
    }
    // Only the bytes never initialised before are zero-filled; the rest is overwritten below.
    if buf.len() < rlen {
        buf.resize(rlen, 0);
    } else {
        buf.truncate(rlen);
    }
    let mut off = 0;
    for seg in &readable {
        if let Err(e) = mem.read_slice(&mut buf[off..off + seg.len], seg.addr) {
            return Err((head, ChainError::Memory(e), buf));
        }
        off += seg.len;
    }
    Ok(SplitChain {
        head,
        readable: buf,
        writable,
    })
}
