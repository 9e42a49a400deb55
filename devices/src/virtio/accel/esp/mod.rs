//! IPsec ESP packet engine for the virtio-accel IPsec queues (full offload): RFC 4303 ESP with
//! RFC 4106 AES-GCM, tunnel and transport mode, IPv4 and IPv6. Pure packet processing, no I/O:
//! the device hands it whole IP packets and gets whole IP packets back.
//!
//! Supported: AES-128/192/256-GCM (keying material = key || 4-byte salt, as Linux's
//! `rfc4106(gcm(aes))`), ICV 8/12/16 bytes, 32-bit sequence numbers (an outbound SA stops at
//! 2^32-1 with [`EspError::SeqOverflow`]) or 64-bit extended ones ([`SaOptions::esn`]), AAD =
//! SPI || sequence number, anti-replay window of [`MIN_REPLAY_WINDOW`]..=[`MAX_REPLAY_WINDOW`]
//! packets. Not supported: NAT traversal (UDP encapsulation), IPv4 fragments (reassemble
//! first), IPv6 extension headers in transport mode or before ESP, TFC padding on output
//! (accepted on input).
//! Interoperability is tested against Linux xfrm in both directions (`testdata/`).
//!
//! ```
//! use accelvm_devices::virtio::accel::esp::{
//!     Direction, EspError, Mode, SaConfig, SecurityAssociation,
//! };
//!
//! let mode = Mode::Tunnel { src: "192.0.2.1".parse().unwrap(), dst: "192.0.2.2".parse().unwrap() };
//! let cfg = |direction| SaConfig {
//!     spi: 0x1001,
//!     direction,
//!     mode,
//!     key: vec![7; 20], // AES-128 key || salt
//!     icv_len: 16,
//!     replay_window: 64,
//! };
//! let mut tx = SecurityAssociation::new(cfg(Direction::Outbound))?;
//! let mut rx = SecurityAssociation::new(cfg(Direction::Inbound))?;
//!
//! // A minimal IPv4 header (protocol 253, "experimental") with a 4-byte payload.
//! let mut inner = vec![0x45, 0, 0, 24, 0, 0, 0x40, 0, 64, 253, 0, 0, 192, 0, 2, 1, 192, 0, 2, 2];
//! inner.extend_from_slice(b"ping");
//! let (mut esp, mut back) = (Vec::new(), Vec::new());
//! tx.encapsulate(&inner, &mut esp)?;
//! rx.decapsulate(&esp, &mut back)?;
//! assert_eq!(back, inner);
//! assert_eq!(rx.decapsulate(&esp, &mut back), Err(EspError::Replay(1)));
//! assert_eq!(rx.counters().replay_drops, 1);
//! # Ok::<(), EspError>(())
//! ```

mod cipher;
mod decap;
mod encap;
mod error;
mod ip;
mod replay;
mod sa;

#[cfg(test)]
mod tests_linux;
#[cfg(test)]
mod tests_refusals;
#[cfg(test)]
mod tests_robustness;
#[cfg(test)]
mod tests_roundtrip;

pub use error::EspError;
pub use sa::{Direction, Mode, SaConfig, SaCounters, SaOptions, SecurityAssociation};

/// ESP header: SPI and sequence number (RFC 4303 §2).
pub const ESP_HEADER_LEN: usize = 8;
/// ESP trailer: pad length and next header (RFC 4303 §2).
pub const ESP_TRAILER_LEN: usize = 2;
/// TTL / hop limit of outer tunnel headers (Linux's default `ip_default_ttl`).
pub const OUTER_TTL: u8 = 64;
/// Smallest anti-replay window (RFC 4303 §3.4.3: at least 32 packets).
pub const MIN_REPLAY_WINDOW: u32 = 32;
/// Default anti-replay window (RFC 4303 §3.4.3: 64 packets).
pub const DEFAULT_REPLAY_WINDOW: u32 = 64;
/// Largest anti-replay window (a 512-byte bitmap).
pub const MAX_REPLAY_WINDOW: u32 = 4096;
