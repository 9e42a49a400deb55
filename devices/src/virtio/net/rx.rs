//! Receive path: frames from the TAP into the guest's RX buffers (virtio 1.2 §5.1.6.3-4).
//!
//! A frame is read from the TAP once and kept until the guest has room for it. With
//! MRG_RXBUF one frame may span several chains and `num_buffers` says how many; if the ring
//! runs out part-way, the chains are put back (the avail index is rewound) and RX pauses.

use std::io::{ErrorKind, Write};
use std::sync::atomic::Ordering;

use log::error;
use virtio_queue::{Queue, QueueOwnedT, QueueT};
use vm_memory::GuestMemory;

use super::handler::NetHandler;
use super::metrics::NetMetrics;
use super::rx_direct::{self, Direct};
use super::{
    BUDGET_FRAMES, MAX_BUFFER_LEN, MIN_FRAME_LEN, RX_QUEUE, VNET_HDR_LEN,
    VNET_HDR_NUM_BUFFERS_OFFSET,
};

/// What happened to one frame offered to the guest.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Delivery {
    /// In the used ring.
    Delivered,
    /// The ring has too little buffer space right now; the frame is kept.
    NoBuffers,
    /// Without MRG_RXBUF the next buffer is too small for it: dropped (the buffer stays).
    TooBig,
    /// A malformed chain was met while collecting buffers: the frame is dropped and the
    /// chains collected so far are returned empty, so the ring stays in order.
    Malformed,
}

/// Offers `frame` (vnet header + Ethernet frame) to the guest. `used` is scratch space.
pub(super) fn deliver<Mem: GuestMemory>(
    mem: &Mem,
    queue: &mut Queue,
    frame: &mut [u8],
    mrg_rxbuf: bool,
    used: &mut Vec<(u16, u32)>,
    metrics: &NetMetrics,
) -> Result<Delivery, virtio_queue::Error> {
    used.clear();
    let total = frame.len();
    // Data goes in first; the header is written last, once num_buffers is known.
    let mut header_writer = None;
    let mut offset = VNET_HDR_LEN;
    while offset < total || header_writer.is_none() {
        let chain = match queue.iter(mem)?.next() {
            Some(chain) => chain,
            None => {
                // virtio 1.2 §2.7.13: buffers are used in order, so the chains taken so far
                // go back to the avail ring untouched and are offered again next time.
                for _ in 0..used.len() {
                    queue.go_to_previous_position();
                }
                return Ok(Delivery::NoBuffers);
            }
        };
        let head = chain.head_index();
        let first = used.is_empty();
        let writer = chain
            .writer(mem)
            .ok()
            .filter(|w| w.available_bytes() >= if first { VNET_HDR_LEN } else { 1 });
        let Some(mut writer) = writer else {
            // No writable space, a descriptor outside guest memory, or a first buffer
            // smaller than the header (virtio 1.2 §5.1.6.3.1 forbids each of them).
            NetMetrics::inc(&metrics.rx_malformed_chains);
            for &(h, _) in used.iter() {
                queue.add_used(mem, h, 0)?;
            }
            queue.add_used(mem, head, 0)?;
            if first {
                // Nothing collected yet: skip the bad chain and keep looking for buffers.
                used.clear();
                continue;
            }
            return Ok(Delivery::Malformed);
        };
        let mut written = 0;
        if first {
            if !mrg_rxbuf && writer.available_bytes() < total {
                // virtio 1.2 §5.1.6.3.1: without MRG_RXBUF the driver must post buffers big
                // enough for any frame it negotiated; this one is not. Keep the buffer.
                queue.go_to_previous_position();
                return Ok(Delivery::TooBig);
            }
            // split_at cannot fail: the writer has at least VNET_HDR_LEN bytes.
            let body = writer.split_at(VNET_HDR_LEN);
            let Ok(body) = body else {
                queue.go_to_previous_position();
                return Ok(Delivery::TooBig);
            };
            header_writer = Some(writer);
            writer = body;
            written = VNET_HDR_LEN;
        }
        let n = writer.available_bytes().min(total - offset);
        // Writes to guest memory are bounds-checked by the Writer; n <= its capacity.
        let copied = writer.write(&frame[offset..offset + n]).unwrap_or(0);
        offset += copied;
        written += copied;
        used.push((head, written as u32));
        if copied < n {
            // A region vanished under us (cannot happen with static guest memory): give up.
            return finish_malformed(mem, queue, used, metrics);
        }
    }
    // virtio 1.2 §5.1.6.4: num_buffers is the number of buffers the frame uses; without
    // MRG_RXBUF it is 1. The TAP leaves these two bytes alone.
    let num_buffers = used.len() as u16;
    frame[VNET_HDR_NUM_BUFFERS_OFFSET..VNET_HDR_LEN].copy_from_slice(&num_buffers.to_le_bytes());
    let wrote_header = header_writer
        .map(|mut w| w.write_all(&frame[..VNET_HDR_LEN]).is_ok())
        .unwrap_or(false);
    if !wrote_header {
        return finish_malformed(mem, queue, used, metrics);
    }
    for &(head, len) in used.iter() {
        queue.add_used(mem, head, len)?;
    }
    Ok(Delivery::Delivered)
}

fn finish_malformed<Mem: GuestMemory>(
    mem: &Mem,
    queue: &mut Queue,
    used: &[(u16, u32)],
    metrics: &NetMetrics,
) -> Result<Delivery, virtio_queue::Error> {
    NetMetrics::inc(&metrics.rx_malformed_chains);
    for &(h, _) in used {
        queue.add_used(mem, h, 0)?;
    }
    Ok(Delivery::Malformed)
}

impl<M: GuestMemory + Clone> NetHandler<M> {
    /// Moves frames from the TAP to the guest until the TAP is empty, the guest is out of
    /// buffers (RX pauses) or the budget is spent (the handler re-arms itself).
    pub(super) fn process_rx(&mut self) {
        if self.rx.broken {
            self.unwatch_tap();
            return;
        }
        let mem = self.mem.clone();
        let mut delivered = 0u64;
        let mut budget = BUDGET_FRAMES;
        loop {
            if budget == 0 {
                // More may be waiting (a kept frame, or TAP data): come back after the others.
                self.rx.rearm();
                break;
            }
            budget -= 1;
            if self.rx_pending.is_none() && !self.tap_broken {
                match rx_direct::receive(&mem, &mut self.rx.queue, &self.tap, self.mrg_rxbuf) {
                    Ok(Direct::Delivered(len)) => {
                        delivered += 1;
                        NetMetrics::inc(&self.metrics.rx_frames);
                        NetMetrics::inc(&self.metrics.rx_direct_frames);
                        NetMetrics::add(&self.metrics.rx_bytes, (len - VNET_HDR_LEN) as u64);
                        continue;
                    }
                    Ok(Direct::Empty) => break,
                    Ok(Direct::Runt) => {
                        NetMetrics::inc(&self.metrics.rx_runt_frames);
                        continue;
                    }
                    Ok(Direct::Oversized) => {
                        NetMetrics::inc(&self.metrics.rx_oversized_frames);
                        continue;
                    }
                    Ok(Direct::TapError(e)) => {
                        self.tap_failed(e);
                        break;
                    }
                    // Not enough room or unusual chains: the buffered path below decides.
                    Ok(Direct::Fallback) => {}
                    Err(e) => {
                        self.queue_error(RX_QUEUE, e);
                        break;
                    }
                }
            }
            if self.rx_pending.is_none() && !self.read_tap() {
                break;
            }
            let Some(len) = self.rx_pending else { continue };
            let result = deliver(
                &mem,
                &mut self.rx.queue,
                &mut self.rx_buf[..len],
                self.mrg_rxbuf,
                &mut self.rx_used,
                &self.metrics,
            );
            match result {
                Ok(Delivery::Delivered) => {
                    self.rx_pending = None;
                    delivered += 1;
                    NetMetrics::inc(&self.metrics.rx_frames);
                    NetMetrics::add(&self.metrics.rx_bytes, (len - VNET_HDR_LEN) as u64);
                }
                Ok(Delivery::TooBig) => {
                    self.rx_pending = None;
                    NetMetrics::inc(&self.metrics.rx_oversized_frames);
                }
                Ok(Delivery::Malformed) => {
                    self.rx_pending = None;
                    delivered += 1; // chains went to the used ring
                }
                Ok(Delivery::NoBuffers) => match self.arm_rx_notification(&mem) {
                    Ok(true) => continue,
                    Ok(false) => {
                        if !self.rx_paused() {
                            NetMetrics::inc(&self.metrics.rx_no_buffers);
                        }
                        self.unwatch_tap();
                        break;
                    }
                    Err(e) => {
                        self.queue_error(RX_QUEUE, e);
                        break;
                    }
                },
                Err(e) => {
                    self.queue_error(RX_QUEUE, e);
                    break;
                }
            }
        }
        if delivered > 0 {
            match self.rx.queue.needs_notification(&mem) {
                Ok(true) => self.signal(RX_QUEUE),
                Ok(false) => {}
                Err(e) => self.queue_error(RX_QUEUE, e),
            }
        }
    }

    /// Reads one frame into `rx_buf`. Returns false when the TAP has nothing more to give.
    fn read_tap(&mut self) -> bool {
        if self.tap_broken {
            return false;
        }
        match self.tap.read(&mut self.rx_buf) {
            Ok(n) if n > MAX_BUFFER_LEN => NetMetrics::inc(&self.metrics.rx_oversized_frames),
            Ok(n) if n < VNET_HDR_LEN + MIN_FRAME_LEN => {
                NetMetrics::inc(&self.metrics.rx_runt_frames)
            }
            Ok(n) => self.rx_pending = Some(n),
            Err(e) if e.kind() == ErrorKind::WouldBlock => return false,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => {
                self.tap_failed(e);
                return false;
            }
        }
        true
    }

    /// A hard TAP read error (EBADFD/EIO: the interface went away): stop reading rather than
    /// spin on it.
    fn tap_failed(&mut self, e: std::io::Error) {
        NetMetrics::inc(&self.metrics.rx_tap_errors);
        error!(
            "virtio-net: reading TAP {} failed, RX stops: {e}",
            self.tap.name()
        );
        self.tap_broken = true;
        self.unwatch_tap();
    }

    /// Asks the driver to notify when it adds a buffer. Returns true if buffers were added
    /// meanwhile (try again now).
    fn arm_rx_notification<Mem: GuestMemory>(
        &mut self,
        mem: &Mem,
    ) -> Result<bool, virtio_queue::Error> {
        let queue = &mut self.rx.queue;
        // With EVENT_IDX, enable_notification publishes avail_event = next_avail. After a
        // rewind next_avail trails the avail index (chains too few for a merged frame), and a
        // driver adding more would never cross it. Publish the current avail index instead.
        let avail = queue.avail_idx(mem, Ordering::Acquire)?;
        let seen = queue.next_avail();
        queue.set_next_avail(avail.0);
        let more = queue.enable_notification(mem);
        queue.set_next_avail(seen);
        more
    }
}
