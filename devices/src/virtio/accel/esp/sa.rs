//! A security association: its configuration, keys, sequence state and counters. The packet
//! paths live in `encap.rs` and `decap.rs`.

use std::fmt;
use std::net::IpAddr;

use aes_gcm::aead::Generate;
use zeroize::Zeroize;

use super::cipher::EspAead;
use super::error::EspError;
use super::replay::ReplayWindow;
use super::{MAX_REPLAY_WINDOW, MIN_REPLAY_WINDOW};

/// Which way an SA protects traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Encapsulates: inner packets in, ESP packets out.
    Outbound,
    /// Decapsulates: ESP packets in, inner packets out.
    Inbound,
}

/// ESP mode (RFC 4303 §3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// The whole inner packet is protected and carried behind a new outer header from `src` to
    /// `dst` (for an inbound SA: the peer's and our address as they appear in received packets).
    Tunnel {
        /// Outer source address.
        src: IpAddr,
        /// Outer destination address.
        dst: IpAddr,
    },
    /// ESP is inserted after the packet's own IP header; only the upper-layer payload is protected.
    Transport,
}

/// What is needed to create an SA. The key is wiped when the configuration is dropped.
#[derive(Clone)]
pub struct SaConfig {
    /// Security parameter index (RFC 4303 §2.1), host order; 256 and up.
    pub spi: u32,
    /// Outbound or inbound.
    pub direction: Direction,
    /// Tunnel or transport.
    pub mode: Mode,
    /// AES key (16, 24 or 32 bytes) followed by the 4-byte salt: the keying material of Linux's
    /// `rfc4106(gcm(aes))` (20, 28 or 36 bytes).
    pub key: Vec<u8>,
    /// ICV length in bytes: 8, 12 or 16.
    pub icv_len: u8,
    /// Anti-replay window in packets for inbound SAs, `MIN_REPLAY_WINDOW..=MAX_REPLAY_WINDOW`;
    /// ignored for outbound SAs.
    pub replay_window: u32,
}

impl Drop for SaConfig {
    fn drop(&mut self) {
        self.key.zeroize();
    }
}

impl fmt::Debug for SaConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SaConfig")
            .field("spi", &format_args!("{:#010x}", self.spi))
            .field("direction", &self.direction)
            .field("mode", &self.mode)
            .field("key", &format_args!("<{} bytes>", self.key.len()))
            .field("icv_len", &self.icv_len)
            .field("replay_window", &self.replay_window)
            .finish()
    }
}

/// Options beyond [`SaConfig`] (kept apart so that `SaConfig` literals stay valid).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SaOptions {
    /// Extended (64-bit) sequence numbers, RFC 4303 §2.2.1 / RFC 4106 §5: the high half is not
    /// sent but authenticated (AAD = SPI || seq high || seq low) and inferred by the receiver
    /// (RFC 4303 Appendix A2). Linux: `ip xfrm state ... flag esn`.
    pub esn: bool,
    /// First outbound sequence number (normally 1), or for an inbound SA the highest sequence
    /// number to treat as already received (normally 0). For SA migration and tests.
    pub initial_seq: Option<u64>,
}

/// Per-SA statistics. Byte counts are of the inner (plaintext) packets.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SaCounters {
    /// Packets encapsulated.
    pub packets_out: u64,
    /// Bytes of the packets encapsulated (before ESP).
    pub bytes_out: u64,
    /// Packets decapsulated and delivered.
    pub packets_in: u64,
    /// Bytes delivered (after ESP removal).
    pub bytes_in: u64,
    /// Inbound packets refused by the anti-replay window.
    pub replay_drops: u64,
    /// Inbound packets whose ICV did not verify.
    pub icv_failures: u64,
    /// Packets dropped as malformed, unsupported, of another SPI or address, or with bad padding.
    pub malformed_drops: u64,
    /// Verified dummy packets (next header 59) discarded.
    pub dummy_drops: u64,
    /// Outbound packets refused because the sequence number space is exhausted.
    pub seq_overflows: u64,
}

/// Sequence-number state, by direction.
pub(super) enum SeqState {
    /// The next sequence number to send and the random mask XORed into it to make the explicit
    /// IV (like Linux's seqiv). Past 2^32-1 without ESN, or wrapped to 0 with ESN, the SA is
    /// exhausted.
    Outbound { next: u64, iv_mask: u64 },
    /// The anti-replay window.
    Inbound(ReplayWindow),
}

/// One ESP security association with AES-GCM (RFC 4303 + RFC 4106).
pub struct SecurityAssociation {
    pub(super) spi: u32,
    pub(super) mode: Mode,
    pub(super) aead: EspAead,
    pub(super) seq: SeqState,
    pub(super) esn: bool,
    pub(super) counters: SaCounters,
}

impl fmt::Debug for SecurityAssociation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecurityAssociation")
            .field("spi", &format_args!("{:#010x}", self.spi))
            .field("direction", &self.direction())
            .field("mode", &self.mode)
            .field("icv_len", &self.aead.icv_len())
            .field("counters", &self.counters)
            .finish_non_exhaustive()
    }
}

impl SecurityAssociation {
    /// Validates `cfg` and sets up the SA (keys expanded; `cfg`'s copy of the key is wiped on
    /// drop). 32-bit sequence numbers starting at 1.
    pub fn new(cfg: SaConfig) -> Result<Self, EspError> {
        Self::with_options(cfg, SaOptions::default())
    }

    /// Like [`new`](Self::new), with ESN or a non-default initial sequence number.
    pub fn with_options(cfg: SaConfig, options: SaOptions) -> Result<Self, EspError> {
        // RFC 4303 §2.1: SPI 0 is local-only and 1..=255 are reserved by IANA.
        if cfg.spi < 256 {
            return Err(EspError::InvalidSpi(cfg.spi));
        }
        if let Mode::Tunnel { src, dst } = cfg.mode
            && src.is_ipv4() != dst.is_ipv4()
        {
            return Err(EspError::AddressFamilyMismatch);
        }
        let aead = EspAead::new(&cfg.key, cfg.icv_len)?;
        let seq = match cfg.direction {
            Direction::Outbound => {
                let next = options.initial_seq.unwrap_or(1);
                if next == 0 || (!options.esn && next > u64::from(u32::MAX)) {
                    return Err(EspError::InvalidInitialSeq(next));
                }
                SeqState::Outbound {
                    next,
                    iv_mask: u64::try_generate().map_err(|_| EspError::NoEntropy)?,
                }
            }
            Direction::Inbound => {
                if !(MIN_REPLAY_WINDOW..=MAX_REPLAY_WINDOW).contains(&cfg.replay_window) {
                    return Err(EspError::InvalidReplayWindow(cfg.replay_window));
                }
                let mut window = ReplayWindow::new(cfg.replay_window);
                match options.initial_seq {
                    Some(top) if !options.esn && top > u64::from(u32::MAX) => {
                        return Err(EspError::InvalidInitialSeq(top));
                    }
                    Some(top) if top > 0 => window.update(top),
                    _ => {}
                }
                SeqState::Inbound(window)
            }
        };
        Ok(Self {
            spi: cfg.spi,
            mode: cfg.mode,
            aead,
            seq,
            esn: options.esn,
            counters: SaCounters::default(),
        })
    }

    /// The SA's SPI.
    pub fn spi(&self) -> u32 {
        self.spi
    }

    /// The SA's direction.
    pub fn direction(&self) -> Direction {
        match self.seq {
            SeqState::Outbound { .. } => Direction::Outbound,
            SeqState::Inbound(_) => Direction::Inbound,
        }
    }

    /// The SA's mode.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// A snapshot of the counters.
    pub fn counters(&self) -> SaCounters {
        self.counters
    }

    /// For an outbound SA, the sequence number the next packet gets (2^32 once exhausted
    /// without ESN, 0 with ESN); for an inbound SA, the highest sequence number accepted so far.
    pub fn sequence(&self) -> u64 {
        match &self.seq {
            SeqState::Outbound { next, .. } => *next,
            SeqState::Inbound(w) => w.top(),
        }
    }

    /// Whether the SA uses extended sequence numbers.
    pub fn esn(&self) -> bool {
        self.esn
    }

    /// RFC 4106 §5: AAD = SPI || sequence number (32 bits), or SPI || high || low with ESN.
    /// Returns the buffer and the used length (8 or 12).
    pub(super) fn aad(&self, seq: u64) -> ([u8; 12], usize) {
        let mut aad = [0u8; 12];
        aad[..4].copy_from_slice(&self.spi.to_be_bytes());
        if self.esn {
            aad[4..12].copy_from_slice(&seq.to_be_bytes());
            (aad, 12)
        } else {
            aad[4..8].copy_from_slice(&(seq as u32).to_be_bytes());
            (aad, 8)
        }
    }

    /// The most bytes [`SecurityAssociation::encapsulate`] adds to a packet: outer header
    /// (tunnel mode), ESP header and IV, up to 3 padding bytes, the trailer and the ICV.
    pub fn max_overhead(&self) -> usize {
        let outer = match self.mode {
            Mode::Tunnel {
                src: IpAddr::V4(_), ..
            } => super::ip::IPV4_HEADER_LEN,
            Mode::Tunnel { .. } => super::ip::IPV6_HEADER_LEN,
            Mode::Transport => 0,
        };
        outer + super::ESP_HEADER_LEN + super::cipher::IV_LEN + 3 + 2 + self.aead.icv_len()
    }
}
