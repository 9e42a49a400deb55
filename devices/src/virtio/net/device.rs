//! The virtio-net device model: features, config space (MAC, link status) and activation.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use vm_memory::GuestMemory;

use super::features as f;
use super::handler::NetHandler;
use super::metrics::NetMetrics;
use super::tap::{Tap, TapError};
use super::{NUM_QUEUES, QUEUE_MAX_SIZE, RX_QUEUE, TX_QUEUE, VIRTIO_ID_NET, VIRTIO_NET_S_LINK_UP};
use crate::virtio::{
    ActivateError, ActivationContext, DeviceHandler, VIRTIO_F_EVENT_IDX, VIRTIO_F_VERSION_1,
    VirtioDevice,
};

/// Why a virtio-net device could not be created.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    /// The TAP backend failed.
    #[error(transparent)]
    Tap(#[from] TapError),
}

/// A MAC address was not six colon-separated hex bytes, or was multicast.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MacAddrError {
    /// Not in the `xx:xx:xx:xx:xx:xx` form.
    #[error("invalid MAC address {0:?}: expected six hex bytes like 52:54:00:12:34:56")]
    Syntax(String),
    /// The multicast bit (bit 0 of the first byte) is set: a NIC cannot own it.
    #[error("MAC address {0} is a multicast address")]
    Multicast(String),
}

/// An Ethernet MAC address for the guest's NIC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MacAddr(pub [u8; 6]);

impl MacAddr {
    /// A random locally administered unicast address (02:xx:xx:xx:xx:xx style), so two guests
    /// on one bridge never collide unless told to.
    pub fn random() -> MacAddr {
        let mut bytes = [0u8; 6];
        // SAFETY: getrandom writes at most `bytes.len()` bytes into `bytes`.
        let n = unsafe { libc::getrandom(bytes.as_mut_ptr().cast(), bytes.len(), 0) };
        if n != bytes.len() as isize {
            // getrandom cannot really fail for 6 bytes; fall back to something per-process.
            let seed = std::process::id() as u64
                ^ std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_nanos() as u64)
                    .unwrap_or(0);
            bytes.copy_from_slice(&seed.to_le_bytes()[..6]);
        }
        bytes[0] = (bytes[0] & 0xfe) | 0x02;
        MacAddr(bytes)
    }
}

impl FromStr for MacAddr {
    type Err = MacAddrError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let syntax = || MacAddrError::Syntax(s.to_string());
        let mut bytes = [0u8; 6];
        let mut parts = s.split(':');
        for byte in &mut bytes {
            let part = parts.next().ok_or_else(syntax)?;
            if part.len() != 2 {
                return Err(syntax());
            }
            *byte = u8::from_str_radix(part, 16).map_err(|_| syntax())?;
        }
        if parts.next().is_some() {
            return Err(syntax());
        }
        if bytes[0] & 1 != 0 {
            return Err(MacAddrError::Multicast(s.to_string()));
        }
        Ok(MacAddr(bytes))
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            b[0], b[1], b[2], b[3], b[4], b[5]
        )
    }
}

/// Size of the config space we expose: mac[6] + status (le16). max_virtqueue_pairs and mtu
/// follow in the spec layout but only exist with MQ/MTU, which are not offered.
const CONFIG_LEN: usize = 8;

/// Features this device offers.
pub(crate) const AVAIL_FEATURES: u64 = (1 << VIRTIO_F_VERSION_1)
    | (1 << VIRTIO_F_EVENT_IDX)
    | (1 << f::CSUM)
    | (1 << f::GUEST_CSUM)
    | (1 << f::MAC)
    | (1 << f::GUEST_TSO4)
    | (1 << f::GUEST_TSO6)
    | (1 << f::GUEST_ECN)
    | (1 << f::HOST_TSO4)
    | (1 << f::HOST_TSO6)
    | (1 << f::HOST_ECN)
    | (1 << f::MRG_RXBUF)
    | (1 << f::STATUS);

/// Checks the feature dependencies of virtio 1.2 §5.1.3.1 ("The driver MUST NOT negotiate
/// GUEST_TSO4 ... without GUEST_CSUM", and likewise for the host side and ECN).
fn features_consistent(acked: u64) -> bool {
    let has = |bit: u32| acked & (1u64 << bit) != 0;
    let guest_tso = has(f::GUEST_TSO4) || has(f::GUEST_TSO6);
    let host_tso = has(f::HOST_TSO4) || has(f::HOST_TSO6);
    (!guest_tso || has(f::GUEST_CSUM))
        && (!has(f::GUEST_ECN) || guest_tso)
        && (!host_tso || has(f::CSUM))
        && (!has(f::HOST_ECN) || host_tso)
}

/// The TUN_F_* receive offloads matching what the guest accepted: the TAP may then hand us
/// partial-checksum and GSO frames, which the guest finishes itself.
pub(crate) fn tap_offload_flags(acked: u64) -> u32 {
    let has = |bit: u32| acked & (1u64 << bit) != 0;
    let mut flags = 0;
    if has(f::GUEST_CSUM) {
        flags |= libc::TUN_F_CSUM;
        if has(f::GUEST_TSO4) {
            flags |= libc::TUN_F_TSO4;
        }
        if has(f::GUEST_TSO6) {
            flags |= libc::TUN_F_TSO6;
        }
        if has(f::GUEST_ECN) {
            flags |= libc::TUN_F_TSO_ECN;
        }
    }
    flags
}

/// A virtio-net device backed by a TAP.
pub struct Net {
    tap: Arc<Tap>,
    mac: MacAddr,
    metrics: Arc<NetMetrics>,
    queue_sizes: [u16; NUM_QUEUES],
}

impl Net {
    /// Opens (or creates) the TAP `tap_name` and builds a device with `mac`, or a random
    /// locally administered MAC.
    pub fn new(tap_name: &str, mac: Option<MacAddr>) -> Result<Net, NetError> {
        Ok(Net::with_tap(Tap::open(tap_name)?, mac))
    }

    /// Builds a device on an already opened TAP.
    pub fn with_tap(tap: Tap, mac: Option<MacAddr>) -> Net {
        Net {
            tap: Arc::new(tap),
            mac: mac.unwrap_or_else(MacAddr::random),
            metrics: Arc::new(NetMetrics::default()),
            queue_sizes: [QUEUE_MAX_SIZE; NUM_QUEUES],
        }
    }

    /// The guest's MAC address.
    pub fn mac(&self) -> MacAddr {
        self.mac
    }

    /// The TAP backend.
    pub fn tap(&self) -> &Tap {
        &self.tap
    }

    /// Counters, shared with the running handler.
    pub fn metrics(&self) -> Arc<NetMetrics> {
        self.metrics.clone()
    }

    fn config_bytes(&self) -> [u8; CONFIG_LEN] {
        let mut cfg = [0u8; CONFIG_LEN];
        cfg[..6].copy_from_slice(&self.mac.0);
        // The link is up as long as the TAP is open; carrier changes are not tracked.
        cfg[6..8].copy_from_slice(&VIRTIO_NET_S_LINK_UP.to_le_bytes());
        cfg
    }

    /// Activation shared by every guest memory type: checks queues and features, configures
    /// the TAP's offloads and builds the handler.
    pub fn activate_handler<M: GuestMemory + Clone + Send + 'static>(
        &mut self,
        ctx: ActivationContext<M>,
    ) -> Result<NetHandler<M>, ActivateError> {
        for required in [RX_QUEUE, TX_QUEUE] {
            if !ctx.queues.iter().any(|(i, _)| *i == required) {
                return Err(ActivateError::QueueNotReady(required));
            }
        }
        if !features_consistent(ctx.acked_features) {
            return Err(ActivateError::BadFeatures(ctx.acked_features));
        }
        self.tap
            .set_offload(tap_offload_flags(ctx.acked_features))
            .map_err(|e| ActivateError::Backend(e.to_string()))?;
        NetHandler::new(ctx, self.tap.clone(), self.metrics.clone())
            .map_err(|e| ActivateError::Backend(e.to_string()))
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        // The counters' one appearance outside an embedder: a summary when the VM goes away.
        let m = &self.metrics;
        let g = NetMetrics::get;
        log::info!(
            "virtio-net {}: tx {} frames {} bytes, rx {} frames ({} direct) {} bytes; dropped: \
             tx malformed {} oversized {} tap-errors {}, rx malformed-chains {} oversized {} \
             runts {} tap-errors {}; rx pauses (no buffers) {}, queue errors {}, irq errors {}",
            self.tap.name(),
            g(&m.tx_frames),
            g(&m.tx_bytes),
            g(&m.rx_frames),
            g(&m.rx_direct_frames),
            g(&m.rx_bytes),
            g(&m.tx_malformed_chains),
            g(&m.tx_oversized_frames),
            g(&m.tx_tap_errors),
            g(&m.rx_malformed_chains),
            g(&m.rx_oversized_frames),
            g(&m.rx_runt_frames),
            g(&m.rx_tap_errors),
            g(&m.rx_no_buffers),
            g(&m.queue_errors),
            g(&m.interrupt_errors),
        );
    }
}

impl<M: GuestMemory + Clone + Send + 'static> VirtioDevice<M> for Net {
    fn device_type(&self) -> u32 {
        VIRTIO_ID_NET
    }

    fn queue_max_sizes(&self) -> &[u16] {
        &self.queue_sizes
    }

    fn avail_features(&self) -> u64 {
        AVAIL_FEATURES
    }

    fn read_config(&self, offset: u64, data: &mut [u8]) {
        let cfg = self.config_bytes();
        for (i, byte) in data.iter_mut().enumerate() {
            *byte = offset
                .checked_add(i as u64)
                .and_then(|o| usize::try_from(o).ok())
                .and_then(|o| cfg.get(o).copied())
                .unwrap_or(0);
        }
    }

    fn write_config(&mut self, offset: u64, data: &[u8]) {
        // virtio 1.2 §5.1.4: mac is writable only for legacy drivers (we are modern-only) and
        // status is read-only: ignore, but leave a trace for whoever debugs a driver.
        log::debug!(
            "virtio-net: ignoring {}-byte config write at {offset:#x}",
            data.len()
        );
    }

    fn activate(
        &mut self,
        ctx: ActivationContext<M>,
    ) -> Result<Box<dyn DeviceHandler>, ActivateError> {
        Ok(Box::new(self.activate_handler(ctx)?))
    }

    fn reset(&mut self) {
        // The handler (and with it the queues) is dropped by the VMM; the TAP stays open so the
        // host side keeps its configuration. Stop GSO frames until the next negotiation.
        if let Err(e) = self.tap.set_offload(0) {
            log::warn!("virtio-net: {e}");
        }
    }
}

#[cfg(test)]
mod unit_tests {
    use super::*;

    #[test]
    fn mac_parse_and_display() {
        let mac: MacAddr = "52:54:00:AB:cd:0f".parse().unwrap();
        assert_eq!(mac.0, [0x52, 0x54, 0x00, 0xab, 0xcd, 0x0f]);
        assert_eq!(mac.to_string(), "52:54:00:ab:cd:0f");
        for bad in [
            "",
            "52:54:00:ab:cd",
            "52:54:00:ab:cd:0f:11",
            "52-54-00-ab-cd-0f",
            "5:54:00:ab:cd:0f0",
            "zz:54:00:ab:cd:0f",
        ] {
            assert_eq!(
                bad.parse::<MacAddr>(),
                Err(MacAddrError::Syntax(bad.to_string())),
                "{bad}"
            );
        }
        assert_eq!(
            "01:00:5e:00:00:01".parse::<MacAddr>(),
            Err(MacAddrError::Multicast("01:00:5e:00:00:01".to_string()))
        );
    }

    #[test]
    fn random_mac_is_local_unicast() {
        for _ in 0..16 {
            let mac = MacAddr::random();
            assert_eq!(mac.0[0] & 0x03, 0x02, "{mac}");
        }
    }

    #[test]
    fn feature_dependencies() {
        let b = |bits: &[u32]| bits.iter().fold(0u64, |a, &x| a | (1 << x));
        assert!(features_consistent(AVAIL_FEATURES));
        assert!(features_consistent(b(&[VIRTIO_F_VERSION_1])));
        assert!(!features_consistent(b(&[f::GUEST_TSO4])));
        assert!(!features_consistent(b(&[f::HOST_TSO6])));
        assert!(!features_consistent(b(&[f::GUEST_CSUM, f::GUEST_ECN])));
        assert!(!features_consistent(b(&[f::CSUM, f::HOST_ECN])));
        assert!(features_consistent(b(&[
            f::CSUM,
            f::HOST_TSO4,
            f::HOST_ECN
        ])));
        assert_eq!(tap_offload_flags(0), 0);
        assert_eq!(
            tap_offload_flags(AVAIL_FEATURES),
            libc::TUN_F_CSUM | libc::TUN_F_TSO4 | libc::TUN_F_TSO6 | libc::TUN_F_TSO_ECN
        );
        // TSO without checksum offload would make TUNSETOFFLOAD fail: never ask for it.
        assert_eq!(tap_offload_flags(b(&[f::GUEST_TSO4])), 0);
    }
}
