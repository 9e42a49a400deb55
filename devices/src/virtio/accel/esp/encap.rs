//! Outbound processing (RFC 4303 §3.3): sequence number, ESP header, padding and trailer,
//! AES-GCM over the payload (RFC 4106), then the outer header (tunnel) or the fixed-up original
//! header (transport).

use super::cipher::IV_LEN;
use super::error::EspError;
use super::ip::{self, OuterHeader};
use super::sa::{Mode, SecurityAssociation, SeqState};
use super::{ESP_HEADER_LEN, ESP_TRAILER_LEN, OUTER_TTL};

/// RFC 4303 §2.4 with RFC 4106 §3.2: the ciphertext (payload, padding, trailer) is a multiple
/// of 4 bytes; GCM itself needs no block alignment.
const ESP_ALIGN: usize = 4;

impl SecurityAssociation {
    /// Encapsulates the IP packet `packet` (IPv4 or IPv6; trailing bytes beyond its header's
    /// length are ignored) into `out` (cleared first; left empty on error).
    ///
    /// Tunnel mode wraps the whole packet (next header 4 or 41) behind an outer header from the
    /// SA's endpoints with TTL/hop limit [`OUTER_TTL`], DSCP copied, ECN encapsulated (RFC
    /// 6040), DF copied from an inner IPv4 header (set for IPv6), IPv6 flow label copied, and
    /// IPv4 ID = the low 16 bits
    /// of the sequence number. Transport mode keeps the packet's header (IPv4 options included)
    /// and protects the rest; it refuses IPv4 fragments and IPv6 packets with extension headers.
    ///
    /// The explicit IV is the 64-bit sequence number XOR a random per-SA mask, as Linux's seqiv
    /// does: unique per key without a per-packet random draw.
    pub fn encapsulate(&mut self, packet: &[u8], out: &mut Vec<u8>) -> Result<(), EspError> {
        self.encapsulate_inner(packet, out, None)
    }

    /// Like [`encapsulate`](Self::encapsulate) with a caller-chosen explicit IV: lets tests
    /// reproduce another implementation's packet byte for byte. An IV must never repeat under
    /// one key, which is why this is not public.
    #[cfg(test)]
    pub(super) fn encapsulate_with_iv(
        &mut self,
        packet: &[u8],
        out: &mut Vec<u8>,
        iv: [u8; IV_LEN],
    ) -> Result<(), EspError> {
        self.encapsulate_inner(packet, out, Some(iv))
    }

    fn encapsulate_inner(
        &mut self,
        packet: &[u8],
        out: &mut Vec<u8>,
        iv: Option<[u8; IV_LEN]>,
    ) -> Result<(), EspError> {
        out.clear();
        match self.build(packet, out, iv) {
            Ok(inner_len) => {
                self.counters.packets_out += 1;
                self.counters.bytes_out += inner_len as u64;
                Ok(())
            }
            Err(e) => {
                out.clear();
                match e {
                    EspError::SeqOverflow => self.counters.seq_overflows += 1,
                    EspError::WrongDirection => {}
                    _ => self.counters.malformed_drops += 1,
                }
                Err(e)
            }
        }
    }

    /// Builds the ESP packet; returns the length of the inner packet that was protected.
    fn build(
        &mut self,
        packet: &[u8],
        out: &mut Vec<u8>,
        iv: Option<[u8; IV_LEN]>,
    ) -> Result<usize, EspError> {
        let SeqState::Outbound { next, iv_mask } = self.seq else {
            return Err(EspError::WrongDirection);
        };
        // RFC 4303 §3.3.3: the counter must not cycle. Without ESN 2^32-1 is the last number;
        // with ESN 2^64-1, after which `next` wrapped to 0.
        if next == 0 || (!self.esn && next > u64::from(u32::MAX)) {
            return Err(EspError::SeqOverflow);
        }
        let hdr = ip::parse(packet)?;
        let packet = &packet[..hdr.packet_len];

        let (header, payload, next_header) = match self.mode {
            Mode::Tunnel { .. } => (&[][..], packet, hdr.tunnel_next_header()),
            Mode::Transport => {
                if hdr.is_fragment {
                    // RFC 4303 §3.3: transport mode applies to whole datagrams only.
                    return Err(EspError::UnsupportedPacket(
                        "IPv4 fragment in transport mode",
                    ));
                }
                if hdr.src.is_ipv6() && ip::is_ipv6_extension_header(hdr.protocol) {
                    return Err(EspError::UnsupportedPacket(
                        "IPv6 extension headers in transport mode",
                    ));
                }
                let (h, p) = packet.split_at(hdr.header_len);
                (h, p, hdr.protocol)
            }
        };

        let pad_len = (ESP_ALIGN - (payload.len() + ESP_TRAILER_LEN) % ESP_ALIGN) % ESP_ALIGN;
        let ct_len = payload.len() + pad_len + ESP_TRAILER_LEN;
        let icv_len = self.aead.icv_len();
        let esp_len = ESP_HEADER_LEN + IV_LEN + ct_len + icv_len;
        let iv = iv.unwrap_or_else(|| (next ^ iv_mask).to_be_bytes());

        out.reserve(header.len() + ip::IPV6_HEADER_LEN + esp_len);
        match self.mode {
            Mode::Tunnel { src, dst } => ip::push_outer_header(
                out,
                &OuterHeader {
                    src,
                    dst,
                    inner: &hdr,
                    ttl: OUTER_TTL,
                    id: next as u16,
                    payload_len: esp_len,
                },
            )?,
            Mode::Transport => {
                out.extend_from_slice(header);
                let len = if hdr.src.is_ipv4() {
                    header.len() + esp_len
                } else {
                    esp_len
                };
                if len > ip::MAX_IP_LEN {
                    return Err(EspError::UnsupportedPacket(
                        "ESP packet would exceed the maximum IP length of 65535 bytes",
                    ));
                }
                if hdr.src.is_ipv4() {
                    ip::fix_ipv4_header(out, ip::proto::ESP, len);
                } else {
                    ip::fix_ipv6_header(out, ip::proto::ESP, len);
                }
            }
        }

        // RFC 4303 §2: SPI and the low 32 bits of the sequence number; RFC 4106 §3.1: explicit
        // IV; §5: AAD = SPI || seq (|| high half first with ESN).
        let (aad, aad_len) = self.aad(next);
        let aad = &aad[..aad_len];
        out.extend_from_slice(&self.spi.to_be_bytes());
        out.extend_from_slice(&(next as u32).to_be_bytes());
        out.extend_from_slice(&iv);
        let ct_start = out.len();
        out.extend_from_slice(payload);
        // RFC 4303 §2.4: the padding bytes are 1, 2, 3, ...
        out.extend(1..=pad_len as u8);
        out.extend_from_slice(&[pad_len as u8, next_header]);
        let ct_end = out.len();
        out.resize(ct_end + icv_len, 0);
        let (body, icv) = out.split_at_mut(ct_end);
        self.aead.seal(&iv, aad, &mut body[ct_start..], icv)?;

        self.seq = SeqState::Outbound {
            next: next.wrapping_add(1),
            iv_mask,
        };
        Ok(packet.len())
    }
}
