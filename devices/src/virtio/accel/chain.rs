//! Splits a descriptor chain into its device-readable and device-writable areas and moves
//! bytes between them and host buffers — only through vm-memory's bounds-checked `Bytes`.
//!
//! The chain's guest addresses are recorded (not borrowed) so that a request can complete
//! later, after a worker thread has produced its output.

use std::sync::{Arc, RwLock};

use virtio_queue::DescriptorChain;
use vm_memory::bitmap::BitmapSlice;
use vm_memory::{
    Address, Bytes, GuestAddress, GuestMemory, GuestMemoryBackend, Permissions, VolatileSlice,
};

use super::backend::{GuestAccess, GuestBuffers, GuestIoError};

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

/// Reads `buf.len()` bytes at `addr`. One region lookup when the range lies in one region of
/// plain guest memory (the usual case, and a per-request cost: vm-memory's generic `Bytes`
/// path walks a slice iterator); otherwise vm-memory's general, equally bounds-checked path.
fn read_guest<M: GuestMemory + ?Sized>(
    mem: &M,
    addr: GuestAddress,
    buf: &mut [u8],
) -> Result<(), vm_memory::GuestMemoryError> {
    if let Some(s) = mem
        .physical_memory()
        .and_then(|pm| GuestMemoryBackend::get_slice(pm, addr, buf.len()).ok())
    {
        s.copy_to(buf);
        return Ok(());
    }
    mem.read_slice(buf, addr)
}

/// Writes `data` at `addr` (see [`read_guest`]); the slice marks the pages dirty.
fn write_guest<M: GuestMemory + ?Sized>(
    mem: &M,
    addr: GuestAddress,
    data: &[u8],
) -> Result<(), vm_memory::GuestMemoryError> {
    if let Some(s) = mem
        .physical_memory()
        .and_then(|pm| GuestMemoryBackend::get_slice(pm, addr, data.len()).ok())
    {
        s.copy_from(data);
        return Ok(());
    }
    mem.write_slice(data, addr)
}

/// A contiguous guest-physical range.
#[derive(Clone, Copy, Debug)]
struct Segment {
    addr: GuestAddress,
    len: usize,
}

/// Segments of one chain: the first two inline (almost every request has one or two per
/// direction), the rest on the heap, so a request costs no allocation for its bookkeeping.
#[derive(Debug, Default)]
struct Segments {
    inline: [Option<Segment>; 2],
    more: Vec<Segment>,
}

impl Segments {
    fn push(&mut self, seg: Segment) {
        match self.inline.iter_mut().find(|s| s.is_none()) {
            Some(slot) => *slot = Some(seg),
            None => self.more.push(seg),
        }
    }

    fn iter(&self) -> impl Iterator<Item = &Segment> {
        self.inline.iter().flatten().chain(&self.more)
    }

    fn first(&self) -> Option<&Segment> {
        self.inline[0].as_ref()
    }

    fn last_mut(&mut self) -> Option<&mut Segment> {
        match self.more.last_mut() {
            Some(s) => Some(s),
            None => self.inline.iter_mut().rev().flatten().next(),
        }
    }

    fn is_empty(&self) -> bool {
        self.inline[0].is_none()
    }
}

/// The device-writable part of a chain, written when the request completes.
#[derive(Debug, Default)]
pub struct WritableArea {
    segs: Segments,
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

    /// The first segment (guest address and length), where the output starts.
    pub fn first_segment(&self) -> Option<(GuestAddress, usize)> {
        self.segs.first().map(|s| (s.addr, s.len))
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
        for seg in self.segs.iter() {
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
            write_guest(mem, addr, &data[..n]).map_err(ChainError::Memory)?;
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
    /// The device-readable bytes copied out of guest memory so far: all of them, unless
    /// `tail` says the end of the last readable descriptor was left in place.
    pub readable: Vec<u8>,
    /// Where the response goes.
    pub writable: WritableArea,
    /// The readable bytes not copied yet: the rest of the last readable descriptor, which
    /// starts right after `readable`.
    tail: Option<Segment>,
}

impl SplitChain {
    /// Length of the whole readable part (copied or not).
    pub fn readable_len(&self) -> usize {
        self.readable.len() + self.tail.map_or(0, |t| t.len)
    }

    /// The guest range of readable bytes `start..self.readable_len()`, if they were not
    /// copied and lie in one descriptor.
    pub fn uncopied(&self, start: usize) -> Option<(GuestAddress, usize)> {
        let tail = self.tail?;
        let skip = start.checked_sub(self.readable.len())?;
        let len = tail.len.checked_sub(skip)?;
        Some((tail.addr.checked_add(skip as u64)?, len))
    }

    /// Copies readable bytes until `readable` holds the first `upto` of them (or all).
    pub fn fill<M: GuestMemory + ?Sized>(
        &mut self,
        mem: &M,
        upto: usize,
    ) -> Result<(), ChainError> {
        let Some(tail) = self.tail else {
            return Ok(());
        };
        let have = self.readable.len();
        let n = upto.saturating_sub(have).min(tail.len);
        if n == 0 {
            return Ok(());
        }
        self.readable.resize(have + n, 0);
        if let Err(e) = read_guest(mem, tail.addr, &mut self.readable[have..]) {
            // Keep `readable` and `tail` adjacent, so a retry reads the same bytes again.
            self.readable.truncate(have);
            return Err(ChainError::Memory(e));
        }
        self.tail = (n < tail.len).then(|| Segment {
            addr: tail.addr.unchecked_add(n as u64),
            len: tail.len - n,
        });
        Ok(())
    }

    /// Copies every readable byte not copied yet.
    pub fn fill_all<M: GuestMemory + ?Sized>(&mut self, mem: &M) -> Result<(), ChainError> {
        self.fill(mem, usize::MAX)
    }
}

/// A split chain, or why it cannot carry a request (with its head and the buffer handed in).
pub type SplitResult = Result<SplitChain, (u16, ChainError, Vec<u8>)>;

/// Walks `chain`, checks direction order, counts and bounds (the readable part is at most
/// `max_readable`, itself capped at [`MAX_READABLE_BYTES`]), and copies the readable part
/// into `buf` (reused to avoid an allocation per request; `slack` extra bytes of capacity are
/// reserved so an appended AEAD tag never reallocates). When the last readable descriptor
/// holds at least `defer` bytes, only what it holds of the readable part's first `peek` bytes is
/// copied: the caller looks at the request header and either uses the rest in place or
/// [`SplitChain::fill_all`]s it.
#[allow(clippy::too_many_arguments)]
pub fn split_chain<M, T>(
    chain: DescriptorChain<T>,
    mem: &M,
    mut buf: Vec<u8>,
    slack: usize,
    max_readable: usize,
    defer: usize,
    peek: usize,
) -> SplitResult
where
    M: GuestMemory + ?Sized,
    T: std::ops::Deref,
    T::Target: GuestMemory,
{
    let head = chain.head_index();
    let max_readable = max_readable.min(MAX_READABLE_BYTES);
    let mut readable = Segments::default();
    let mut writable = WritableArea::default();
    let mut rlen = 0usize;
    for (n, desc) in chain.enumerate() {
        if n >= MAX_CHAIN_SEGMENTS {
            return Err((head, ChainError::TooManySegments, buf));
        }
        let addr = desc.addr();
        let len = desc.len() as usize;
        // The writable area must lie in guest memory before we promise to write it. Readable
        // segments are checked by the reads below (copied) or when the job maps them (left
        // in place): each is read through vm-memory or not at all.
        if desc.is_write_only() {
            let fits = mem.physical_memory().map_or_else(
                || mem.check_range(addr, len, Permissions::Write),
                |pm| {
                    pm.get_slice(addr, len).is_ok()
                        || GuestMemoryBackend::check_range(pm, addr, len)
                },
            );
            if !fits {
                return Err((head, ChainError::OutOfMemory(addr.0), buf));
            }
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
    let mut tail = None;
    if let Some(last) = readable.last_mut().filter(|s| s.len >= defer.max(1)) {
        // `peek` counts from the start of the readable part: a header in descriptors of its
        // own (as a driver whose source lives elsewhere sends it) leaves the whole last
        // descriptor uncopied, the source in place.
        let before = rlen - last.len;
        let keep = peek.saturating_sub(before).min(last.len);
        tail = Some(Segment {
            addr: last.addr.unchecked_add(keep as u64),
            len: last.len - keep,
        });
        last.len = keep;
    }
    let copy = rlen - tail.map_or(0, |t| t.len);
    // A deferred tail may still be copied later (fill_all): reserve for all of it.
    if buf.capacity() < rlen + slack {
        buf.reserve(rlen + slack - buf.len());
    }
    // Only the bytes never initialised before are zero-filled; the rest is overwritten below.
    if buf.len() < copy {
        buf.resize(copy, 0);
    } else {
        buf.truncate(copy);
    }
    let mut off = 0;
    for seg in readable.iter().filter(|s| s.len > 0) {
        if let Err(e) = read_guest(mem, seg.addr, &mut buf[off..off + seg.len]) {
            return Err((head, ChainError::Memory(e), buf));
        }
        off += seg.len;
    }
    Ok(SplitChain {
        head,
        readable: buf,
        writable,
        tail,
    })
}

/// Lets a job that runs after the handler's pass (on a worker thread) write guest memory only
/// while the activation it came from is current: `reset()` takes the write lock and bumps the
/// epoch, so it waits for a write in progress and no write of the old epoch follows it.
pub type WriteGate = Arc<RwLock<u64>>;

/// What in-place jobs of one activation share: the guest memory and the reset gate. One
/// `Arc` of it per job (not one per field): reference counting is a per-request cost.
pub struct InPlaceMemory<M> {
    mem: Arc<M>,
    gate: WriteGate,
}

impl<M> InPlaceMemory<M> {
    /// Guest memory `mem`, guarded by `gate`.
    pub fn new(mem: Arc<M>, gate: WriteGate) -> Arc<Self> {
        Arc::new(InPlaceMemory { mem, gate })
    }
}

impl<M> std::fmt::Debug for InPlaceMemory<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InPlaceMemory").finish_non_exhaustive()
    }
}

impl<M: GuestMemory + Send + Sync + 'static> InPlaceMemory<M> {
    /// A job's in-place source `src` and output `out` (address, length) for activation
    /// `epoch`; `None` unless each lies in one region of guest memory (checked again when the
    /// job runs).
    pub fn buffers(
        self: &Arc<Self>,
        epoch: u64,
        src: (GuestAddress, usize),
        out: (GuestAddress, usize),
    ) -> Option<GuestBuffers> {
        let (src, out) = (Segment::from(src), Segment::from(out));
        (self.mapped(src, Permissions::Read) && self.mapped(out, Permissions::Write)).then(|| {
            GuestBuffers::new(
                self.clone(),
                epoch,
                (src.addr.0, src.len),
                (out.addr.0, out.len),
            )
        })
    }

    /// True if the segment is one contiguous host mapping.
    fn mapped(&self, seg: Segment, access: Permissions) -> bool {
        match self.mem.physical_memory() {
            Some(pm) => pm.get_slice(seg.addr, seg.len).is_ok(),
            None => self.slice(seg, access).is_some(),
        }
    }

    /// The segment as one bounds-checked volatile slice, or `None` if it spans regions.
    fn slice(
        &self,
        seg: Segment,
        access: Permissions,
    ) -> Option<VolatileSlice<'_, vm_memory::bitmap::BS<'_, M::Bitmap>>> {
        let mut it = self.mem.get_slices(seg.addr, seg.len, access).ok()?;
        let s = it.next()?.ok()?;
        (s.len() == seg.len && it.next().is_none()).then_some(s)
    }
}

impl From<(GuestAddress, usize)> for Segment {
    fn from((addr, len): (GuestAddress, usize)) -> Self {
        Segment { addr, len }
    }
}

impl<M: GuestMemory + Send + Sync + 'static> GuestAccess for InPlaceMemory<M> {
    fn with(
        &self,
        epoch: u64,
        src: (u64, usize),
        out: (u64, usize),
        f: &mut dyn FnMut(&[u8], &mut [u8]),
    ) -> Result<(), GuestIoError> {
        let gate = self.gate.read().unwrap_or_else(|e| e.into_inner());
        if *gate != epoch {
            return Err(GuestIoError::Stale);
        }
        let src = Segment::from((GuestAddress(src.0), src.1));
        let out = Segment::from((GuestAddress(out.0), out.1));
        // Plain guest memory: one region lookup per slice; behind an IOMMU: the general path.
        if let Some(pm) = self.mem.physical_memory() {
            return match (
                pm.get_slice(src.addr, src.len),
                pm.get_slice(out.addr, out.len),
            ) {
                (Ok(src), Ok(out)) => {
                    run_in_place(&src, &out, f);
                    Ok(())
                }
                _ => Err(GuestIoError::Unmapped),
            };
        }
        let src = self
            .slice(src, Permissions::Read)
            .ok_or(GuestIoError::Unmapped)?;
        let out = self
            .slice(out, Permissions::Write)
            .ok_or(GuestIoError::Unmapped)?;
        run_in_place(&src, &out, f);
        Ok(())
    }
}

/// Runs `f` on `src` and `out` as plain byte slices (see [`InPlaceMemory`]'s `with`).
fn run_in_place<S: BitmapSlice, O: BitmapSlice>(
    src: &VolatileSlice<'_, S>,
    out: &VolatileSlice<'_, O>,
    f: &mut dyn FnMut(&[u8], &mut [u8]),
) {
    {
        let (sg, og) = (src.ptr_guard(), out.ptr_guard_mut());
        let (sp, op) = (sg.as_ptr(), og.as_ptr());
        // The guest may pass overlapping (or aliased) source and output: a shared and a
        // mutable reference to the same bytes must not exist, so the source is copied then.
        let overlap = (sp as usize) < (op as usize).wrapping_add(out.len())
            && (op as usize) < (sp as usize).wrapping_add(src.len());
        let mut copy = Vec::new();
        // SAFETY: `out` is a bounds-checked slice of one mapped guest region of `out.len()`
        // bytes that stays mapped while `self.mem` (an `Arc` of the memory the handler uses)
        // lives, i.e. for the whole call, and `reset()` waits on the gate we hold, so the
        // bytes still belong to this request's guest buffers. The source is distinct from it
        // (checked above) and the event loop does not touch a request's output area while
        // its job is in flight. What the host cannot exclude is the guest itself writing
        // these bytes meanwhile, from a vCPU or by naming them in another in-flight request
        // (guest memory is shared with the guest by nature; every VMM that hands guest
        // buffers to host code has this). That can only garble this guest's own results:
        // the bytes are plain `u8` with no invalid values, the code that runs on them (the
        // RustCrypto AES-GCM and safe-Rust lz4_flex) takes every length and bound from the
        // slice lengths, never from the data, and the device never reads the output back.
        let dst = unsafe { std::slice::from_raw_parts_mut(op, out.len()) };
        let input: &[u8] = if overlap {
            copy.resize(src.len(), 0);
            src.copy_to(&mut copy[..]);
            &copy
        } else {
            // SAFETY: as for `dst`: a bounds-checked guest range of `src.len()` bytes,
            // mapped for the call, not overlapping `dst`, only read here; concurrent guest
            // writes can only change the guest's own result.
            unsafe { std::slice::from_raw_parts(sp, src.len()) }
        };
        f(input, dst);
        // Dirty-page logging (live migration) sees the write, after it happened.
        out.bitmap().mark_dirty(0, out.len());
    }
}
