//! virtio-net (virtio 1.2 §5.1) backed by a Linux TAP device.
//!
//! [`Net`] is the transport-agnostic device (features, config space, activation); its
//! [`NetHandler`] moves frames between the guest's RX/TX queues and the TAP on the VMM's event
//! loop. The TAP is opened with a 12-byte vnet header so guest checksum/TSO metadata passes
//! through unchanged in both directions.

mod device;
mod handler;
mod metrics;
mod rx;
mod rx_direct;
mod tap;
mod tx;

#[cfg(test)]
mod tests;

pub use device::{MacAddr, MacAddrError, Net, NetError};
pub use handler::NetHandler;
pub use metrics::NetMetrics;
pub use tap::{MAX_TAP_NAME_LEN, Tap, TapError, validate_name as validate_tap_name};

use virtio_bindings::virtio_net;

/// Index of the receive queue (device → guest).
pub const RX_QUEUE: u16 = 0;
/// Index of the transmit queue (guest → device).
pub const TX_QUEUE: u16 = 1;
/// Queues the device has: one RX/TX pair (no VIRTIO_NET_F_MQ, no control queue).
pub const NUM_QUEUES: usize = 2;
/// Maximum size of each queue offered to the driver.
pub const QUEUE_MAX_SIZE: u16 = 256;

/// Size of `struct virtio_net_hdr_v1` (virtio 1.2 §5.1.6): with VERSION_1 every frame in both
/// directions starts with it, `num_buffers` included, and the TAP is told to use the same size.
pub const VNET_HDR_LEN: usize = 12;
/// Offset of `num_buffers` (le16) inside the header.
pub const VNET_HDR_NUM_BUFFERS_OFFSET: usize = 10;
/// Largest Ethernet frame carried in one chain or TAP read: a 64 KiB GSO super-packet plus an
/// Ethernet header and one VLAN tag. Every guest- or TAP-supplied length is clamped to it.
pub const MAX_FRAME_LEN: usize = 65536 + 14 + 4;
/// Largest header + frame buffer moved in one piece.
pub const MAX_BUFFER_LEN: usize = VNET_HDR_LEN + MAX_FRAME_LEN;
/// Smallest frame the device forwards: an Ethernet header.
pub const MIN_FRAME_LEN: usize = 14;

/// Frames moved per direction in one `handle` call before yielding to the event loop, so a
/// busy NIC never starves other devices; the handler re-arms itself when it stops early.
pub const BUDGET_FRAMES: usize = 64;

/// Feature bits (virtio 1.2 §5.1.3), as bit numbers.
pub mod features {
    use super::virtio_net;
    /// The device handles packets with a partial checksum (guest → host).
    pub const CSUM: u32 = virtio_net::VIRTIO_NET_F_CSUM;
    /// The driver handles packets with a partial checksum (host → guest).
    pub const GUEST_CSUM: u32 = virtio_net::VIRTIO_NET_F_GUEST_CSUM;
    /// The device has a MAC address in config space.
    pub const MAC: u32 = virtio_net::VIRTIO_NET_F_MAC;
    /// The driver can receive TSOv4.
    pub const GUEST_TSO4: u32 = virtio_net::VIRTIO_NET_F_GUEST_TSO4;
    /// The driver can receive TSOv6.
    pub const GUEST_TSO6: u32 = virtio_net::VIRTIO_NET_F_GUEST_TSO6;
    /// The driver can receive TSO with ECN.
    pub const GUEST_ECN: u32 = virtio_net::VIRTIO_NET_F_GUEST_ECN;
    /// The device can receive TSOv4 (the TAP segments or forwards it).
    pub const HOST_TSO4: u32 = virtio_net::VIRTIO_NET_F_HOST_TSO4;
    /// The device can receive TSOv6.
    pub const HOST_TSO6: u32 = virtio_net::VIRTIO_NET_F_HOST_TSO6;
    /// The device can receive TSO with ECN.
    pub const HOST_ECN: u32 = virtio_net::VIRTIO_NET_F_HOST_ECN;
    /// The driver can merge receive buffers (num_buffers in the header).
    pub const MRG_RXBUF: u32 = virtio_net::VIRTIO_NET_F_MRG_RXBUF;
    /// The config space has a link status field.
    pub const STATUS: u32 = virtio_net::VIRTIO_NET_F_STATUS;
}

/// Link status bit in config space `status` (virtio 1.2 §5.1.4).
pub const VIRTIO_NET_S_LINK_UP: u16 = virtio_net::VIRTIO_NET_S_LINK_UP as u16;
/// virtio 1.2 §5: the device ID of a network card.
pub const VIRTIO_ID_NET: u32 = 1;
