//! Counters for one virtio-net device: traffic, and one counter per drop or failure path so a
//! misbehaving guest or backend shows up in numbers instead of logs.

use std::sync::atomic::{AtomicU64, Ordering};

/// Shared between the device (which the VMM can query) and its running handler.
#[derive(Debug, Default)]
pub struct NetMetrics {
    /// Frames written to the TAP.
    pub tx_frames: AtomicU64,
    /// Bytes written to the TAP (frames only, without the vnet header).
    pub tx_bytes: AtomicU64,
    /// TX chains dropped because they were unreadable or shorter than the vnet header.
    pub tx_malformed_chains: AtomicU64,
    /// TX chains dropped because they exceed [`super::MAX_BUFFER_LEN`].
    pub tx_oversized_frames: AtomicU64,
    /// TX frames the TAP refused (bad GSO header, interface down, ...).
    pub tx_tap_errors: AtomicU64,
    /// Frames delivered to the guest.
    pub rx_frames: AtomicU64,
    /// Bytes delivered to the guest (frames only, without the vnet header).
    pub rx_bytes: AtomicU64,
    /// Of `rx_frames`, those read from the TAP straight into guest buffers (no copy here).
    pub rx_direct_frames: AtomicU64,
    /// Times RX paused because the guest had no (or too few) receive buffers.
    pub rx_no_buffers: AtomicU64,
    /// RX chains returned empty because they had no writable space or pointed outside memory.
    pub rx_malformed_chains: AtomicU64,
    /// Frames dropped because they did not fit: longer than [`super::MAX_BUFFER_LEN`], or larger
    /// than the guest's single buffer without VIRTIO_NET_F_MRG_RXBUF.
    pub rx_oversized_frames: AtomicU64,
    /// Frames dropped because the TAP returned less than a vnet header and an Ethernet header.
    pub rx_runt_frames: AtomicU64,
    /// TAP read failures other than "no data".
    pub rx_tap_errors: AtomicU64,
    /// Ring errors (bad avail index, used ring outside memory): the queue stops.
    pub queue_errors: AtomicU64,
    /// Interrupts that could not be delivered.
    pub interrupt_errors: AtomicU64,
}

impl NetMetrics {
    /// Adds one to `counter`.
    pub(crate) fn inc(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Adds `n` to `counter`.
    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// Reads `counter`.
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}
