//! Transmit path: frames from the guest's TX chains to the TAP (virtio 1.2 §5.1.6.2).
//!
//! Each chain is one frame: the 12-byte virtio_net_hdr_v1 followed by the Ethernet frame.
//! It goes to the TAP in a single writev straight from guest memory, header included, so
//! checksum and GSO requests reach the host stack unchanged and nothing is copied here.

use std::io::Read;

use log::warn;
use virtio_queue::{DescriptorChain, Queue, QueueOwnedT, QueueT};
use vm_memory::volatile_memory::PtrGuard;
use vm_memory::{GuestMemory, Permissions};

use super::handler::NetHandler;
use super::metrics::NetMetrics;
use super::tap::Tap;
use super::{BUDGET_FRAMES, MAX_BUFFER_LEN, MIN_FRAME_LEN, TX_QUEUE, VNET_HDR_LEN};

/// What happened to one TX chain.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum TxOutcome {
    /// Written to the TAP.
    Sent,
    /// Unreadable, or shorter than a vnet header plus an Ethernet header.
    Malformed,
    /// Longer than [`MAX_BUFFER_LEN`].
    Oversized,
    /// The TAP refused the frame.
    TapError,
}

/// Longest TX chain (in guest memory segments) written straight from guest memory; Linux uses
/// at most MAX_SKB_FRAGS + 2 = 19 descriptors. Longer chains are gathered into a buffer.
pub(super) const MAX_ZERO_COPY_SEGMENTS: usize = 32;

/// Pops and transmits one chain; `None` when the ring is empty.
pub(super) fn transmit_one<Mem: GuestMemory>(
    mem: &Mem,
    queue: &mut Queue,
    tap: &Tap,
    buf: &mut [u8],
) -> Result<Option<(TxOutcome, usize)>, virtio_queue::Error> {
    let Some(chain) = queue.iter(mem)?.next() else {
        return Ok(None);
    };
    let head = chain.head_index();
    let (outcome, len) = send_chain(mem, chain, tap, buf);
    // virtio 1.2 §5.1.6.2: TX buffers are device-readable only, so the used length is 0.
    queue.add_used(mem, head, 0)?;
    Ok(Some((outcome, len)))
}

/// Sends one chain (vnet header + frame) to the TAP: as an iovec over guest memory when it
/// has few segments (no copy; the kernel reads the guest's bytes once, like any user buffer),
/// else gathered into `buf` first. Returns the outcome and the frame length sent.
fn send_chain<Mem: GuestMemory>(
    mem: &Mem,
    chain: DescriptorChain<&Mem>,
    tap: &Tap,
    buf: &mut [u8],
) -> (TxOutcome, usize) {
    let mut guards: Vec<PtrGuard> = Vec::with_capacity(8);
    let mut total = 0usize;
    let mut zero_copy = true;
    for desc in chain.clone().readable() {
        let len = desc.len() as usize;
        total = match total.checked_add(len) {
            Some(t) if t <= MAX_BUFFER_LEN && t <= buf.len() => t,
            _ => return (TxOutcome::Oversized, 0),
        };
        if !zero_copy {
            continue;
        }
        // vm-memory checks that [addr, addr + len) lies in guest RAM (one slice per region).
        let Ok(slices) = mem.get_slices(desc.addr(), len, Permissions::Read) else {
            return (TxOutcome::Malformed, 0);
        };
        for slice in slices {
            let Ok(slice) = slice else {
                return (TxOutcome::Malformed, 0);
            };
            if guards.len() == MAX_ZERO_COPY_SEGMENTS {
                zero_copy = false;
                guards.clear();
                break;
            }
            guards.push(slice.ptr_guard());
        }
    }
    if total < VNET_HDR_LEN + MIN_FRAME_LEN {
        return (TxOutcome::Malformed, 0);
    }
    let written = if zero_copy {
        let iov: Vec<libc::iovec> = guards
            .iter()
            .map(|g| libc::iovec {
                iov_base: g.as_ptr() as *mut libc::c_void,
                iov_len: g.len(),
            })
            .collect();
        tap.writev(&iov)
    } else {
        let gathered = chain
            .reader(mem)
            .is_ok_and(|mut reader| reader.read_exact(&mut buf[..total]).is_ok());
        if !gathered {
            return (TxOutcome::Malformed, 0);
        }
        tap.write(&buf[..total])
    };
    // `guards` (the guest memory the iovecs point into) lives until here.
    drop(guards);
    match written {
        Ok(_) => (TxOutcome::Sent, total - VNET_HDR_LEN),
        Err(e) => {
            warn!("virtio-net: TAP {} refused a frame: {e}", tap.name());
            (TxOutcome::TapError, 0)
        }
    }
}

impl<M: GuestMemory + Clone> NetHandler<M> {
    /// Drains the TX ring with the canonical loop (virtio 1.2 §2.7.13.3: disable notifications,
    /// process, re-enable, re-check), at most [`BUDGET_FRAMES`] chains per call. While frames
    /// keep coming the handler polls the ring again through its own kick eventfd (after the
    /// other events) and leaves notifications off, so a streaming guest does not exit per frame.
    pub(super) fn process_tx(&mut self) {
        if self.tx.broken {
            return;
        }
        let mem = self.mem.clone();
        let mut used = 0usize;
        if let Err(e) = self.tx.queue.disable_notification(&mem) {
            self.queue_error(TX_QUEUE, e);
            return;
        }
        loop {
            if used >= BUDGET_FRAMES {
                // The guest keeps queueing: finish later, after the other devices had a turn.
                self.tx.rearm();
                break;
            }
            match transmit_one(&mem, &mut self.tx.queue, &self.tap, &mut self.tx_buf) {
                Ok(Some((outcome, len))) => {
                    used += 1;
                    let m = &self.metrics;
                    match outcome {
                        TxOutcome::Sent => {
                            NetMetrics::inc(&m.tx_frames);
                            NetMetrics::add(&m.tx_bytes, len as u64);
                        }
                        TxOutcome::Malformed => NetMetrics::inc(&m.tx_malformed_chains),
                        TxOutcome::Oversized => NetMetrics::inc(&m.tx_oversized_frames),
                        TxOutcome::TapError => NetMetrics::inc(&m.tx_tap_errors),
                    }
                }
                Ok(None) if used > 0 => {
                    // The ring was busy: poll it once more after the other events instead of
                    // asking the driver to kick (a VM exit) for its next frame. Only a pass that
                    // finds nothing re-enables notifications, below.
                    self.tx.rearm();
                    break;
                }
                Ok(None) => match self.tx.queue.enable_notification(&mem) {
                    Ok(true) => {
                        if let Err(e) = self.tx.queue.disable_notification(&mem) {
                            self.queue_error(TX_QUEUE, e);
                            break;
                        }
                    }
                    Ok(false) => break,
                    Err(e) => {
                        self.queue_error(TX_QUEUE, e);
                        break;
                    }
                },
                Err(e) => {
                    self.queue_error(TX_QUEUE, e);
                    break;
                }
            }
        }
        if used > 0 {
            match self.tx.queue.needs_notification(&mem) {
                Ok(true) => self.signal(TX_QUEUE),
                Ok(false) => {}
                Err(e) => self.queue_error(TX_QUEUE, e),
            }
        }
    }
}
