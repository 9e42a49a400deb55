//! Glue between the IPsec wire protocol and the ESP packet engine (`esp/`, RFC 4303/4106).
//!
//! The control queue's ADD_SA body is validated here into [`SaParams`]; [`EspSa`] wraps one
//! engine security association and maps its errors onto wire statuses and per-SA counters.
//! Keeping this seam in one file keeps the engine a pure module with no virtio knowledge.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::esp::{self, Direction, EspError, Mode, SaConfig, SecurityAssociation};
use super::protocol::{
    IPSEC_ESP_AES_GCM, SA_DIR_INBOUND, SA_DIR_OUTBOUND, SA_FAMILY_IPV4, SA_FAMILY_IPV6,
    SA_MODE_TRANSPORT, SA_MODE_TUNNEL, SaPara, SaStats, Status,
};
use zeroize::Zeroize;

/// Transforms the engine implements (bitmap of `IPSEC_*`).
pub const SUPPORTED_TRANSFORMS: u32 = 1 << IPSEC_ESP_AES_GCM;

/// ADD_SA parameters after wire validation.
#[derive(Clone)]
pub struct SaParams {
    /// SPI.
    pub spi: u32,
    /// True for inbound (decapsulate) SAs.
    pub inbound: bool,
    /// `Some((src, dst))` in tunnel mode, outer addresses of `family`'s length.
    pub tunnel: Option<(Vec<u8>, Vec<u8>)>,
    /// True for IPv6 outer headers.
    pub ipv6: bool,
    /// AES key followed by the 4-byte salt (RFC 4106 keying material).
    pub keymat: Vec<u8>,
    /// ICV bytes.
    pub icv_len: u8,
    /// Anti-replay window, 0 = off.
    pub replay_window: u32,
}

impl Drop for SaParams {
    fn drop(&mut self) {
        self.keymat.zeroize();
    }
}

/// Validates an ADD_SA body (the algorithm bitmap was checked by the caller).
pub fn sa_params(p: &SaPara) -> Result<SaParams, Status> {
    let key_len = p.key_len.to_native() as usize;
    if !matches!(key_len, 16 | 24 | 32) || !matches!(p.icv_len, 8 | 12 | 16) {
        return Err(Status::NotSupp);
    }
    let inbound = match p.direction {
        SA_DIR_OUTBOUND => false,
        SA_DIR_INBOUND => true,
        _ => return Err(Status::BadMsg),
    };
    let ipv6 = match p.family {
        SA_FAMILY_IPV4 => false,
        SA_FAMILY_IPV6 => true,
        _ => return Err(Status::BadMsg),
    };
    let alen = if ipv6 { 16 } else { 4 };
    let tunnel = match p.mode {
        SA_MODE_TUNNEL => Some((p.tunnel_src[..alen].to_vec(), p.tunnel_dst[..alen].to_vec())),
        SA_MODE_TRANSPORT => None,
        _ => return Err(Status::BadMsg),
    };
    let replay_window = p.replay_window.to_native();
    if inbound && !(esp::MIN_REPLAY_WINDOW..=esp::MAX_REPLAY_WINDOW).contains(&replay_window) {
        return Err(Status::NotSupp);
    }
    let mut keymat = Vec::with_capacity(key_len + 4);
    keymat.extend_from_slice(&p.key[..key_len]);
    keymat.extend_from_slice(&p.salt);
    Ok(SaParams {
        spi: p.spi.to_native(),
        inbound,
        tunnel,
        ipv6,
        keymat,
        icv_len: p.icv_len,
        replay_window,
    })
}

/// Maps an engine error onto the wire status.
pub fn status_of(e: &EspError) -> Status {
    match e {
        EspError::InvalidKeyLength(_)
        | EspError::InvalidIcvLength(_)
        | EspError::InvalidReplayWindow(_)
        | EspError::InvalidInitialSeq(_) => Status::NotSupp,
        EspError::InvalidSpi(_) | EspError::AddressFamilyMismatch | EspError::WrongDirection => {
            Status::BadMsg
        }
        EspError::Malformed(_)
        | EspError::UnsupportedPacket(_)
        | EspError::WrongSpi { .. }
        | EspError::AddressMismatch
        | EspError::BadPadding => Status::DataError,
        EspError::Replay(_) => Status::Replay,
        EspError::IcvMismatch => Status::AuthFailed,
        EspError::SeqOverflow => Status::SaExpired,
        // A verified dummy packet is success with nothing to deliver; handled by the caller.
        EspError::DummyPacket => Status::Ok,
        EspError::NoEntropy | EspError::Crypto => Status::Err,
    }
}

fn addr(bytes: &[u8]) -> IpAddr {
    match bytes.len() {
        4 => IpAddr::V4(Ipv4Addr::new(bytes[0], bytes[1], bytes[2], bytes[3])),
        _ => {
            let mut a = [0u8; 16];
            a.copy_from_slice(&bytes[..16]);
            IpAddr::V6(Ipv6Addr::from(a))
        }
    }
}

/// One security association as the device holds it.
pub struct EspSa {
    sa: SecurityAssociation,
    inbound: bool,
}

impl std::fmt::Debug for EspSa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "EspSa(spi {:#x}, inbound {})",
            self.sa.spi(),
            self.inbound
        )
    }
}

impl EspSa {
    /// Creates the engine SA.
    pub fn new(params: SaParams) -> Result<Self, Status> {
        let cfg = SaConfig {
            spi: params.spi,
            direction: if params.inbound {
                Direction::Inbound
            } else {
                Direction::Outbound
            },
            mode: match &params.tunnel {
                Some((src, dst)) => Mode::Tunnel {
                    src: addr(src),
                    dst: addr(dst),
                },
                None => Mode::Transport,
            },
            key: params.keymat.clone(),
            icv_len: params.icv_len,
            replay_window: params.replay_window,
        };
        let sa = SecurityAssociation::new(cfg).map_err(|e| status_of(&e))?;
        Ok(EspSa {
            sa,
            inbound: params.inbound,
        })
    }

    /// True for inbound SAs.
    pub fn inbound(&self) -> bool {
        self.inbound
    }

    /// The most bytes processing `len` input bytes can produce.
    pub fn max_output(&self, encap: bool, len: usize) -> usize {
        if encap {
            len + self.sa.max_overhead()
        } else {
            len
        }
    }

    /// Encapsulates (`encap`) or decapsulates `input` into `out`. A verified dummy packet
    /// decapsulates to OK with an empty output (RFC 4303 §2.6: discard it).
    pub fn process(&mut self, encap: bool, input: &[u8], out: &mut Vec<u8>) -> Result<(), Status> {
        let r = if encap {
            self.sa.encapsulate(input, out)
        } else {
            self.sa.decapsulate(input, out)
        };
        match r {
            Ok(()) => Ok(()),
            Err(EspError::DummyPacket) => {
                out.clear();
                Ok(())
            }
            Err(e) => Err(status_of(&e)),
        }
    }

    /// The SA's counters in wire form.
    pub fn stats(&self) -> SaStats {
        let c = self.sa.counters();
        let last_seq = if self.inbound {
            self.sa.sequence()
        } else {
            self.sa.sequence().saturating_sub(1)
        };
        SaStats {
            packets: (c.packets_in + c.packets_out).into(),
            bytes: (c.bytes_in + c.bytes_out).into(),
            auth_failures: c.icv_failures.into(),
            replay_drops: c.replay_drops.into(),
            malformed: c.malformed_drops.into(),
            last_seq: last_seq.into(),
        }
    }
}
