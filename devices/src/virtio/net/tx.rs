//! Transmit path: frames from the guest's TX chains to the TAP (virtio 1.2 §5.1.6.2).
//!
//! Each chain is one frame: the 12-byte virtio_net_hdr_v1 followed by the Ethernet frame.
//! It is gathered into one buffer and written to the TAP in a single write, header included,
//! so checksum and GSO requests reach the host stack unchanged.

use std::io::Read;

use log::warn;
use virtio_queue::{Queue, QueueOwnedT, QueueT};
use vm_memory::{GuestAddressSpace, GuestMemory};

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
    let (outcome, len) = match chain.reader(mem) {
        // A descriptor outside guest memory, or lengths that overflow.
        Err(_) => (TxOutcome::Malformed, 0),
        Ok(mut reader) => {
            let len = reader.available_bytes();
            if len > MAX_BUFFER_LEN || len > buf.len() {
                (TxOutcome::Oversized, 0)
            } else if len < VNET_HDR_LEN + MIN_FRAME_LEN
                || reader.read_exact(&mut buf[..len]).is_err()
            {
                (TxOutcome::Malformed, 0)
            } else {
                match tap.write(&buf[..len]) {
                    Ok(_) => (TxOutcome::Sent, len - VNET_HDR_LEN),
                    Err(e) => {
                        warn!("virtio-net: TAP {} refused a frame: {e}", tap.name());
                        (TxOutcome::TapError, 0)
                    }
                }
            }
        }
    };
    // virtio 1.2 §5.1.6.2: TX buffers are device-readable only, so the used length is 0.
    queue.add_used(mem, head, 0)?;
    Ok(Some((outcome, len)))
}

impl<M: GuestAddressSpace> NetHandler<M> {
    /// Drains the TX ring with the canonical loop (virtio 1.2 §2.7.13.3: disable notifications,
    /// process, re-enable, re-check), at most [`BUDGET_FRAMES`] chains per call.
    pub(super) fn process_tx(&mut self) {
        if self.tx.broken {
            return;
        }
        let mem = self.mem.memory();
        let mut used = 0usize;
        if let Err(e) = self.tx.queue.disable_notification(&*mem) {
            self.queue_error(TX_QUEUE, e);
            return;
        }
        loop {
            if used >= BUDGET_FRAMES {
                // The guest keeps queueing: finish later, after the other devices had a turn.
                self.tx.rearm();
                break;
            }
            match transmit_one(&*mem, &mut self.tx.queue, &self.tap, &mut self.tx_buf) {
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
                Ok(None) => match self.tx.queue.enable_notification(&*mem) {
                    Ok(true) => {
                        if let Err(e) = self.tx.queue.disable_notification(&*mem) {
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
            match self.tx.queue.needs_notification(&*mem) {
                Ok(true) => self.signal(TX_QUEUE),
                Ok(false) => {}
                Err(e) => self.queue_error(TX_QUEUE, e),
            }
        }
    }
}
