//! Errors of the ESP engine: one variant per reason a packet or a configuration is refused, so the
//! device can map each to a status and a counter.

use thiserror::Error;

/// Why the ESP engine refused a security association or a packet.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum EspError {
    /// The AEAD key is not AES-128/192/256 followed by the 4-byte RFC 4106 salt.
    #[error(
        "invalid key length {0}: expected 20, 28 or 36 bytes (AES key followed by a 4-byte salt)"
    )]
    InvalidKeyLength(usize),
    /// The ICV length is not one RFC 4106 allows.
    #[error("invalid ICV length {0}: expected 8, 12 or 16 bytes")]
    InvalidIcvLength(u8),
    /// The anti-replay window of an inbound SA is out of range.
    #[error("invalid replay window {0}: expected {min}..={max} packets", min = super::MIN_REPLAY_WINDOW, max = super::MAX_REPLAY_WINDOW)]
    InvalidReplayWindow(u32),
    /// The SPI is 0, or 1..=255 which RFC 4303 §2.1 reserves.
    #[error("invalid SPI {0:#x}: values 0..=255 are reserved (RFC 4303 §2.1)")]
    InvalidSpi(u32),
    /// The initial sequence number does not fit the sequence number space.
    #[error("invalid initial sequence number {0}")]
    InvalidInitialSeq(u64),
    /// The tunnel endpoints are not of the same address family.
    #[error("tunnel source and destination are of different address families")]
    AddressFamilyMismatch,
    /// Encapsulation was asked of an inbound SA or decapsulation of an outbound SA.
    #[error("operation does not match the SA's direction")]
    WrongDirection,
    /// The packet is truncated or its headers are inconsistent.
    #[error("malformed packet: {0}")]
    Malformed(&'static str),
    /// The packet is well formed but uses something this engine does not handle.
    #[error("unsupported packet: {0}")]
    UnsupportedPacket(&'static str),
    /// The ESP header names another SA.
    #[error("wrong SPI {got:#010x} (SA has {expected:#010x})")]
    WrongSpi {
        /// The SA's SPI.
        expected: u32,
        /// The SPI in the packet.
        got: u32,
    },
    /// The outer destination address is not the tunnel endpoint of this SA.
    #[error("outer addresses do not match the SA's tunnel endpoints")]
    AddressMismatch,
    /// The sequence number (64-bit with ESN: high half inferred) is 0, already received, or
    /// left of the anti-replay window.
    #[error("replayed or too old sequence number {0}")]
    Replay(u64),
    /// The integrity check value did not verify; nothing was decrypted.
    #[error("ICV mismatch")]
    IcvMismatch,
    /// The padding after a verified payload is not 1, 2, 3, ... (RFC 4303 §2.4).
    #[error("bad ESP padding")]
    BadPadding,
    /// The outbound sequence number would cycle (RFC 4303 §3.3.3): the SA must be replaced.
    #[error(
        "sequence number overflow: the SA has sent its last sequence number and must be replaced"
    )]
    SeqOverflow,
    /// A verified dummy packet (next header 59, RFC 4303 §2.6) to be discarded silently.
    #[error("dummy packet (next header 59)")]
    DummyPacket,
    /// The operating system's random number generator failed (needed for the IV mask).
    #[error("no entropy for the IV mask")]
    NoEntropy,
    /// The AEAD implementation refused the operation (length limits).
    #[error("AEAD operation failed")]
    Crypto,
}
