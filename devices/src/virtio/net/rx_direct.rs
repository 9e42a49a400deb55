//! Receive straight into guest buffers: one `readv` from the TAP into the writable slices of
//! enough RX chains for the largest frame, so a frame is copied once (by the kernel) instead of
//! twice. Used when the ring holds at least [`MAX_BUFFER_LEN`] bytes of buffers; otherwise, and
//! for any chain this path does not like, the buffered path in `rx.rs` takes over (it has the
//! malformed-chain and pause handling).

use std::io::ErrorKind;

use virtio_queue::{Queue, QueueOwnedT, QueueT};
use vm_memory::bitmap::Bitmap;
use vm_memory::{Address, Bytes, GuestAddress, GuestMemory, Permissions};

use super::tap::Tap;
use super::{MAX_BUFFER_LEN, MIN_FRAME_LEN, VNET_HDR_LEN, VNET_HDR_NUM_BUFFERS_OFFSET};

/// Most guest memory segments one readv covers (Linux mergeable buffers are 1.5 to 4 KiB, so a
/// 64 KiB frame needs up to ~44); a ring of smaller buffers takes the buffered path.
pub(super) const MAX_DIRECT_SEGMENTS: usize = 128;

/// What one direct receive attempt did.
#[derive(Debug)]
pub(super) enum Direct {
    /// A frame of this many bytes (header included) is in the used ring.
    Delivered(usize),
    /// The TAP had no frame; the chains went back to the avail ring.
    Empty,
    /// The ring cannot take this path (too little room, too many segments, odd chains):
    /// nothing was read or consumed.
    Fallback,
    /// The frame read was shorter than a header + Ethernet header, or longer than
    /// [`MAX_BUFFER_LEN`]: dropped, chains put back.
    Runt,
    /// Longer than [`MAX_BUFFER_LEN`]: dropped, chains put back.
    Oversized,
    /// The TAP read failed (not "no data"); chains put back.
    TapError(std::io::Error),
}

struct Collected {
    head: u16,
    capacity: usize,
}

/// One attempt; see [`Direct`]. On every outcome but `Delivered` the ring is as it was.
pub(super) fn receive<Mem: GuestMemory>(
    mem: &Mem,
    queue: &mut Queue,
    tap: &Tap,
    mrg_rxbuf: bool,
) -> Result<Direct, virtio_queue::Error> {
    let mut chains: Vec<Collected> = Vec::new();
    let mut slices = Vec::new();
    let mut header_addr = None;
    let mut capacity = 0usize;
    let rewind = |queue: &mut Queue, n: usize| {
        for _ in 0..n {
            queue.go_to_previous_position();
        }
    };
    while capacity < MAX_BUFFER_LEN + 1 {
        if !mrg_rxbuf && !chains.is_empty() {
            break;
        }
        let Some(chain) = queue.iter(mem)?.next() else {
            break;
        };
        let head = chain.head_index();
        let mut chain_cap = 0usize;
        let mut ok = true;
        for desc in chain.writable() {
            let len = desc.len() as usize;
            if header_addr.is_none() {
                // The header must be contiguous so num_buffers can be patched in place.
                if len < VNET_HDR_LEN {
                    ok = false;
                    break;
                }
                header_addr = Some(desc.addr());
            }
            let Ok(iter) = mem.get_slices(desc.addr(), len, Permissions::Write) else {
                ok = false;
                break;
            };
            for slice in iter {
                match slice {
                    Ok(s) if slices.len() < MAX_DIRECT_SEGMENTS => slices.push(s),
                    _ => ok = false,
                }
            }
            if !ok {
                break;
            }
            chain_cap += len;
        }
        chains.push(Collected {
            head,
            capacity: chain_cap,
        });
        if !ok || chain_cap == 0 {
            rewind(queue, chains.len());
            return Ok(Direct::Fallback);
        }
        capacity += chain_cap;
    }
    // One byte of slack tells a frame that filled every buffer from a truncated one.
    if capacity < MAX_BUFFER_LEN + 1 {
        rewind(queue, chains.len());
        return Ok(Direct::Fallback);
    }
    let guards: Vec<_> = slices.iter().map(|s| s.ptr_guard_mut()).collect();
    let iov: Vec<libc::iovec> = guards
        .iter()
        .map(|g| libc::iovec {
            iov_base: g.as_ptr().cast(),
            iov_len: g.len(),
        })
        .collect();
    // SAFETY: each iovec is a slice of guest RAM that vm-memory checked for its full length
    // and that its guard keeps mapped; the kernel writes at most iov_len bytes to each.
    let n = match unsafe { tap.readv(&iov) } {
        Ok(n) => n,
        Err(e) => {
            rewind(queue, chains.len());
            return Ok(match e.kind() {
                ErrorKind::WouldBlock | ErrorKind::Interrupted => Direct::Empty,
                _ => Direct::TapError(e),
            });
        }
    };
    drop(guards);
    if n < VNET_HDR_LEN + MIN_FRAME_LEN {
        rewind(queue, chains.len());
        return Ok(Direct::Runt);
    }
    if n > MAX_BUFFER_LEN {
        rewind(queue, chains.len());
        return Ok(Direct::Oversized);
    }
    // Dirty tracking for what the kernel wrote (a no-op without a bitmap).
    let mut left = n;
    for s in &slices {
        let w = left.min(s.len());
        s.bitmap().mark_dirty(0, w);
        left -= w;
    }
    // Chains the frame used, in order; the rest go back to the avail ring.
    let mut used = Vec::new();
    let mut left = n;
    for c in &chains {
        if left == 0 {
            break;
        }
        let w = left.min(c.capacity);
        used.push((c.head, w as u32));
        left -= w;
    }
    rewind(queue, chains.len() - used.len());
    // virtio 1.2 §5.1.6.4: num_buffers (1 without MRG_RXBUF); the TAP left it alone.
    let num_buffers = (used.len() as u16).to_le_bytes();
    let header = header_addr.unwrap_or(GuestAddress(0));
    if mem
        .write_slice(
            &num_buffers,
            header.unchecked_add(VNET_HDR_NUM_BUFFERS_OFFSET as u64),
        )
        .is_err()
    {
        // Cannot happen: the header's slice was checked above. Keep the ring consistent.
        rewind(queue, used.len());
        return Ok(Direct::Fallback);
    }
    for &(head, len) in &used {
        queue.add_used(mem, head, len)?;
    }
    Ok(Direct::Delivered(n))
}
