//! Just enough IPv4/IPv6 header handling for ESP: parse and validate a header, build an outer
//! tunnel header, and the IPv4 header checksum (RFC 791 / RFC 1071).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::error::EspError;

/// IPv4 header without options.
pub const IPV4_HEADER_LEN: usize = 20;
/// Fixed IPv6 header.
pub const IPV6_HEADER_LEN: usize = 40;
/// The largest IPv4 total length or IPv6 payload length (no jumbograms).
pub const MAX_IP_LEN: usize = 65535;

/// IP protocol numbers (IANA) this module cares about.
pub mod proto {
    /// IPv4 encapsulated (tunnel mode next header).
    pub const IPV4: u8 = 4;
    /// IPv6 encapsulated (tunnel mode next header).
    pub const IPV6: u8 = 41;
    /// Encapsulating Security Payload.
    pub const ESP: u8 = 50;
    /// RFC 4303 §2.6: "no next header", a dummy packet.
    pub const NO_NEXT_HEADER: u8 = 59;
}

/// The IPv6 next-header values that are extension headers (RFC 8200 §4, IANA), which transport
/// mode would have to walk; this engine refuses them instead.
const IPV6_EXTENSION_HEADERS: [u8; 10] = [0, 43, 44, 50, 51, 60, 135, 139, 140, 253];

/// IPv4 flags/fragment-offset field bits.
const IPV4_DF: u16 = 0x4000;
const IPV4_MF: u16 = 0x2000;
const IPV4_OFFSET_MASK: u16 = 0x1fff;

/// ECN field of the TOS / traffic class byte.
const ECN_MASK: u8 = 0x03;
const ECN_CE: u8 = 0x03;
const ECN_ECT0: u8 = 0x02;

/// The parts of an IP header that ESP processing needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpHeader {
    /// Source address.
    pub src: IpAddr,
    /// Destination address.
    pub dst: IpAddr,
    /// Header length in bytes (IPv4 with options; IPv6: the fixed 40 bytes).
    pub header_len: usize,
    /// Length of the whole packet according to the header (IPv4 total length, IPv6 40 +
    /// payload length); the buffer may be longer (link-layer padding), never shorter.
    pub packet_len: usize,
    /// IPv4 protocol / IPv6 next header.
    pub protocol: u8,
    /// IPv4 TOS / IPv6 traffic class.
    pub tos: u8,
    /// IPv4 DF bit; always set for IPv6 (no fragmentation on the path).
    pub dont_fragment: bool,
    /// IPv4 MF set or fragment offset non-zero.
    pub is_fragment: bool,
    /// IPv6 flow label (0 for IPv4).
    pub flow_label: u32,
}

impl IpHeader {
    /// Next-header value announcing this packet inside a tunnel.
    pub fn tunnel_next_header(&self) -> u8 {
        match self.src {
            IpAddr::V4(_) => proto::IPV4,
            IpAddr::V6(_) => proto::IPV6,
        }
    }
}

/// Parses and validates the IP header at the start of `packet`.
pub fn parse(packet: &[u8]) -> Result<IpHeader, EspError> {
    match packet.first().map(|b| b >> 4) {
        Some(4) => parse_v4(packet),
        Some(6) => parse_v6(packet),
        Some(_) => Err(EspError::Malformed("IP version is neither 4 nor 6")),
        None => Err(EspError::Malformed("empty packet")),
    }
}

fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

fn parse_v4(p: &[u8]) -> Result<IpHeader, EspError> {
    if p.len() < IPV4_HEADER_LEN {
        return Err(EspError::Malformed("truncated IPv4 header"));
    }
    let header_len = usize::from(p[0] & 0x0f) * 4;
    if header_len < IPV4_HEADER_LEN {
        return Err(EspError::Malformed("IPv4 header length below 20"));
    }
    let packet_len = usize::from(be16(p, 2));
    if packet_len < header_len {
        return Err(EspError::Malformed("IPv4 total length below header length"));
    }
    if packet_len > p.len() {
        return Err(EspError::Malformed("IPv4 total length beyond the buffer"));
    }
    let frag = be16(p, 6);
    let mut src = [0u8; 4];
    let mut dst = [0u8; 4];
    src.copy_from_slice(&p[12..16]);
    dst.copy_from_slice(&p[16..20]);
    Ok(IpHeader {
        src: IpAddr::V4(Ipv4Addr::from(src)),
        dst: IpAddr::V4(Ipv4Addr::from(dst)),
        header_len,
        packet_len,
        protocol: p[9],
        tos: p[1],
        dont_fragment: frag & IPV4_DF != 0,
        is_fragment: frag & (IPV4_MF | IPV4_OFFSET_MASK) != 0,
        flow_label: 0,
    })
}

fn parse_v6(p: &[u8]) -> Result<IpHeader, EspError> {
    if p.len() < IPV6_HEADER_LEN {
        return Err(EspError::Malformed("truncated IPv6 header"));
    }
    let packet_len = IPV6_HEADER_LEN + usize::from(be16(p, 4));
    if packet_len > p.len() {
        return Err(EspError::Malformed("IPv6 payload length beyond the buffer"));
    }
    let word = u32::from_be_bytes([p[0], p[1], p[2], p[3]]);
    let mut src = [0u8; 16];
    let mut dst = [0u8; 16];
    src.copy_from_slice(&p[8..24]);
    dst.copy_from_slice(&p[24..40]);
    Ok(IpHeader {
        src: IpAddr::V6(Ipv6Addr::from(src)),
        dst: IpAddr::V6(Ipv6Addr::from(dst)),
        header_len: IPV6_HEADER_LEN,
        packet_len,
        protocol: p[6],
        tos: ((word >> 20) & 0xff) as u8,
        // Routers never fragment IPv6 packets, so an outer IPv4 header carrying one gets DF
        // (as Linux's xfrm sets it): path MTU discovery keeps working through the tunnel.
        dont_fragment: true,
        is_fragment: false,
        flow_label: word & 0x000f_ffff,
    })
}

/// Whether an IPv6 next-header value is an extension header.
pub fn is_ipv6_extension_header(next_header: u8) -> bool {
    IPV6_EXTENSION_HEADERS.contains(&next_header)
}

/// RFC 1071 Internet checksum over an IPv4 header (its checksum field included: a valid header
/// sums to 0).
pub fn ipv4_checksum(header: &[u8]) -> u16 {
    let mut sum: u32 = header
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
        .sum();
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// Rewrites an IPv4 header's protocol and total length and recomputes its checksum.
pub fn fix_ipv4_header(header: &mut [u8], protocol: u8, total_len: usize) {
    header[9] = protocol;
    header[2..4].copy_from_slice(&(total_len as u16).to_be_bytes());
    header[10..12].fill(0);
    let sum = ipv4_checksum(header);
    header[10..12].copy_from_slice(&sum.to_be_bytes());
}

/// Rewrites an IPv6 header's next header and payload length.
pub fn fix_ipv6_header(header: &mut [u8], next_header: u8, payload_len: usize) {
    header[6] = next_header;
    header[4..6].copy_from_slice(&(payload_len as u16).to_be_bytes());
}

/// RFC 6040 §4.1 (as Linux's INET_ECN_encapsulate): the outer header copies the inner ECN field,
/// except that CE becomes ECT(0).
fn encapsulated_tos(inner_tos: u8) -> u8 {
    let ecn = if inner_tos & ECN_MASK == ECN_CE {
        ECN_ECT0
    } else {
        inner_tos & ECN_MASK
    };
    (inner_tos & !ECN_MASK) | ecn
}

/// RFC 6040 §4.2 (as Linux's `ipip_ecn_decapsulate`): congestion experienced on the outer
/// header is carried to an ECN-capable inner packet; a not-ECT inner packet stays as it is.
/// `inner` starts with a header that `parse` accepted.
pub fn propagate_ce(outer_tos: u8, inner: &mut [u8]) {
    if outer_tos & ECN_MASK != ECN_CE {
        return;
    }
    match inner[0] >> 4 {
        4 => {
            if matches!(inner[1] & ECN_MASK, 1 | 2) {
                inner[1] |= ECN_CE;
                let header_len = usize::from(inner[0] & 0x0f) * 4;
                inner[10..12].fill(0);
                let sum = ipv4_checksum(&inner[..header_len]);
                inner[10..12].copy_from_slice(&sum.to_be_bytes());
            }
        }
        _ => {
            // Traffic class straddles bytes 0 and 1: its ECN bits are bits 4-5 of byte 1.
            if matches!((inner[1] >> 4) & ECN_MASK, 1 | 2) {
                inner[1] |= ECN_CE << 4;
            }
        }
    }
}

/// Parameters of an outer tunnel header.
pub struct OuterHeader<'a> {
    /// Tunnel source.
    pub src: IpAddr,
    /// Tunnel destination.
    pub dst: IpAddr,
    /// The inner packet's header (DSCP/ECN, DF and flow label are derived from it).
    pub inner: &'a IpHeader,
    /// IPv4 TTL / IPv6 hop limit.
    pub ttl: u8,
    /// IPv4 identification (ignored for IPv6).
    pub id: u16,
    /// Bytes that follow the outer header.
    pub payload_len: usize,
}

/// Appends an outer IPv4 or IPv6 header with next header ESP to `out`.
///
/// Like Linux's xfrm tunnel output: DSCP is copied and ECN encapsulated from the inner header, DF
/// is copied from an inner IPv4 header and set for an inner IPv6 one (path MTU discovery through
/// the tunnel), an inner IPv6 flow label is copied.
pub fn push_outer_header(out: &mut Vec<u8>, h: &OuterHeader<'_>) -> Result<(), EspError> {
    let tos = encapsulated_tos(h.inner.tos);
    match (h.src, h.dst) {
        (IpAddr::V4(src), IpAddr::V4(dst)) => {
            let total = IPV4_HEADER_LEN + h.payload_len;
            if total > MAX_IP_LEN {
                return Err(EspError::UnsupportedPacket(
                    "ESP packet would exceed the IPv4 maximum of 65535 bytes",
                ));
            }
            let frag: u16 = if h.inner.dont_fragment { IPV4_DF } else { 0 };
            let start = out.len();
            out.extend_from_slice(&[0x45, tos]);
            out.extend_from_slice(&(total as u16).to_be_bytes());
            out.extend_from_slice(&h.id.to_be_bytes());
            out.extend_from_slice(&frag.to_be_bytes());
            out.extend_from_slice(&[h.ttl, proto::ESP, 0, 0]);
            out.extend_from_slice(&src.octets());
            out.extend_from_slice(&dst.octets());
            let sum = ipv4_checksum(&out[start..]);
            out[start + 10..start + 12].copy_from_slice(&sum.to_be_bytes());
            Ok(())
        }
        (IpAddr::V6(src), IpAddr::V6(dst)) => {
            if h.payload_len > MAX_IP_LEN {
                return Err(EspError::UnsupportedPacket(
                    "ESP packet would exceed the IPv6 maximum payload of 65535 bytes",
                ));
            }
            let word = (6u32 << 28) | (u32::from(tos) << 20) | h.inner.flow_label;
            out.extend_from_slice(&word.to_be_bytes());
            out.extend_from_slice(&(h.payload_len as u16).to_be_bytes());
            out.extend_from_slice(&[proto::ESP, h.ttl]);
            out.extend_from_slice(&src.octets());
            out.extend_from_slice(&dst.octets());
            Ok(())
        }
        _ => Err(EspError::AddressFamilyMismatch),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksum_matches_rfc1071_example_header() {
        // A well-known IPv4 header (checksum 0xb861).
        let mut h = [
            0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0xb8, 0x61, 0xc0, 0xa8,
            0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7,
        ];
        assert_eq!(ipv4_checksum(&h), 0);
        h[10] = 0;
        h[11] = 0;
        assert_eq!(ipv4_checksum(&h), 0xb861);
    }

    #[test]
    fn parse_rejects_inconsistent_lengths() {
        let mut h = [0u8; 20];
        h[0] = 0x45;
        h[3] = 19;
        assert_eq!(
            parse(&h),
            Err(EspError::Malformed("IPv4 total length below header length"))
        );
        h[3] = 21;
        assert_eq!(
            parse(&h),
            Err(EspError::Malformed("IPv4 total length beyond the buffer"))
        );
        h[0] = 0x44;
        assert_eq!(
            parse(&h),
            Err(EspError::Malformed("IPv4 header length below 20"))
        );
        assert_eq!(
            parse(&[0x60; 39]),
            Err(EspError::Malformed("truncated IPv6 header"))
        );
        assert_eq!(parse(&[]), Err(EspError::Malformed("empty packet")));
        assert_eq!(
            parse(&[0x50; 40]),
            Err(EspError::Malformed("IP version is neither 4 nor 6"))
        );
    }

    #[test]
    fn ce_reaches_ecn_capable_inner_packets_only() {
        let mut v4 = [0u8; 20];
        v4[0] = 0x45;
        v4[1] = 0xb8 | 2; // EF, ECT(0)
        v4[3] = 20;
        fix_ipv4_header(&mut v4, 17, 20);
        let mut marked = v4;
        propagate_ce(0x03, &mut marked);
        assert_eq!(marked[1], 0xb8 | 3);
        assert_eq!(ipv4_checksum(&marked), 0);
        let mut unmarked = v4;
        propagate_ce(0x02, &mut unmarked);
        assert_eq!(unmarked, v4);
        let mut not_ect = v4;
        not_ect[1] = 0xb8;
        fix_ipv4_header(&mut not_ect, 17, 20);
        let before = not_ect;
        propagate_ce(0x03, &mut not_ect);
        assert_eq!(not_ect, before);
        // IPv6: traffic class 0xb9 (ECT(1)) -> 0xbb.
        let mut v6 = [0u8; 40];
        v6[0] = 0x6b;
        v6[1] = 0x9f;
        propagate_ce(0x03, &mut v6);
        assert_eq!((v6[0], v6[1]), (0x6b, 0xbf));
    }

    #[test]
    fn ecn_ce_becomes_ect0_outside() {
        assert_eq!(encapsulated_tos(0xb8 | 3), 0xb8 | 2);
        assert_eq!(encapsulated_tos(0xb8 | 1), 0xb8 | 1);
        assert_eq!(encapsulated_tos(0), 0);
    }
}
