//! Glue between the IPsec wire protocol and the ESP packet engine (`esp/`, RFC 4303/4106).
//!
//! The control queue's ADD_SA body is validated here into [`SaParams`]; [`EspSa`] wraps one
//! engine security association and maps its errors onto wire statuses and per-SA counters.
//! Keeping this seam in one file keeps the engine a pure module with no virtio knowledge.

use super::protocol::{
    SA_DIR_INBOUND, SA_DIR_OUTBOUND, SA_FAMILY_IPV4, SA_FAMILY_IPV6, SA_MODE_TRANSPORT,
    SA_MODE_TUNNEL, SaPara, SaStats, Status,
};
use zeroize::Zeroize;

/// Transforms the engine implements (bitmap of `IPSEC_*`); 0 until the engine is merged.
pub const SUPPORTED_TRANSFORMS: u32 = 0;

/// Largest anti-replay window the wire protocol accepts.
pub const MAX_REPLAY_WINDOW: u32 = 1024;

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
    if replay_window > MAX_REPLAY_WINDOW {
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

/// One security association as the device holds it.
pub struct EspSa {
    params: SaParams,
    stats: SaStats,
}

impl std::fmt::Debug for EspSa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "EspSa(spi {:#x}, inbound {})",
            self.params.spi, self.params.inbound
        )
    }
}

impl EspSa {
    /// Creates the engine SA; NOTSUPP while no engine is linked in.
    pub fn new(params: SaParams) -> Result<Self, Status> {
        let _ = &params;
        Err(Status::NotSupp)
    }

    /// True for inbound SAs.
    pub fn inbound(&self) -> bool {
        self.params.inbound
    }

    /// Encapsulates (`encap`) or decapsulates `input` into `out`.
    pub fn process(&mut self, encap: bool, input: &[u8], out: &mut Vec<u8>) -> Result<(), Status> {
        let _ = (encap, input, out);
        Err(Status::NotSupp)
    }

    /// The SA's counters in wire form.
    pub fn stats(&self) -> SaStats {
        self.stats
    }
}
