//! Inbound processing (RFC 4303 §3.4): outer header and SPI checks, the anti-replay check before
//! the ICV (cheap rejection) and the window update only after it (§3.4.3), AES-GCM verification
//! and decryption (RFC 4106), then padding and next-header checks and the inner packet.

use super::cipher::IV_LEN;
use super::error::EspError;
use super::ip;
use super::sa::{Mode, SecurityAssociation, SeqState};
use super::{ESP_HEADER_LEN, ESP_TRAILER_LEN};

/// The smallest possible ciphertext: pad length and next header, padded to 4 bytes.
const MIN_CIPHERTEXT_LEN: usize = 4;

fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

impl SecurityAssociation {
    /// Decapsulates the ESP packet `packet` (an IPv4 or IPv6 packet whose next header is ESP;
    /// bytes beyond the IP length are ignored) into `out` (cleared first; left empty on error).
    ///
    /// Tunnel mode yields the inner packet (any TFC padding after it removed, an outer ECN
    /// congestion mark carried inside per RFC 6040) and requires the outer addresses to be the
    /// SA's endpoints; transport mode yields the packet rebuilt without
    /// ESP (protocol/next header, length and IPv4 checksum fixed up). IPv4 fragments and IPv6
    /// extension headers before ESP are refused: reassembly is the caller's job. A verified
    /// dummy packet (next header 59) returns [`EspError::DummyPacket`].
    pub fn decapsulate(&mut self, packet: &[u8], out: &mut Vec<u8>) -> Result<(), EspError> {
        out.clear();
        match self.open_packet(packet, out) {
            Ok(()) => {
                self.counters.packets_in += 1;
                self.counters.bytes_in += out.len() as u64;
                Ok(())
            }
            Err(e) => {
                out.clear();
                match e {
                    EspError::Replay(_) => self.counters.replay_drops += 1,
                    EspError::IcvMismatch => self.counters.icv_failures += 1,
                    EspError::DummyPacket => self.counters.dummy_drops += 1,
                    EspError::WrongDirection => {}
                    _ => self.counters.malformed_drops += 1,
                }
                Err(e)
            }
        }
    }

    fn open_packet(&mut self, packet: &[u8], out: &mut Vec<u8>) -> Result<(), EspError> {
        let SeqState::Inbound(window) = &self.seq else {
            return Err(EspError::WrongDirection);
        };
        let hdr = ip::parse(packet)?;
        if hdr.src.is_ipv4() && ip::ipv4_checksum(&packet[..hdr.header_len]) != 0 {
            return Err(EspError::Malformed("bad IPv4 header checksum"));
        }
        if hdr.is_fragment {
            return Err(EspError::UnsupportedPacket(
                "IPv4 fragment: reassemble before decapsulation",
            ));
        }
        if hdr.protocol != ip::proto::ESP {
            return Err(
                if hdr.src.is_ipv6() && ip::is_ipv6_extension_header(hdr.protocol) {
                    EspError::UnsupportedPacket("IPv6 extension headers before ESP")
                } else {
                    EspError::UnsupportedPacket("not an ESP packet")
                },
            );
        }
        if let Mode::Tunnel { src, dst } = self.mode
            && (hdr.src != src || hdr.dst != dst)
        {
            return Err(EspError::AddressMismatch);
        }

        let esp = &packet[hdr.header_len..hdr.packet_len];
        let icv_len = self.aead.icv_len();
        if esp.len() < ESP_HEADER_LEN + IV_LEN + MIN_CIPHERTEXT_LEN + icv_len {
            return Err(EspError::Malformed("ESP packet too short"));
        }
        let spi = be32(&esp[0..4]);
        if spi != self.spi {
            return Err(EspError::WrongSpi {
                expected: self.spi,
                got: spi,
            });
        }
        let seq_lo = be32(&esp[4..8]);
        let seq = if self.esn {
            // RFC 4303 Appendix A2.2: infer the unsent high half from the window.
            window
                .infer_esn(seq_lo)
                .ok_or(EspError::Replay(u64::from(seq_lo)))?
        } else {
            u64::from(seq_lo)
        };
        // RFC 4303 §3.4.3: the replay check comes first, before the expensive ICV.
        window.check(seq).map_err(|_| EspError::Replay(seq))?;

        let (aad, aad_len) = self.aad(seq);
        let aad = &aad[..aad_len];
        let rest = &esp[ESP_HEADER_LEN..];
        let (iv, rest) = rest.split_at(IV_LEN);
        let (ciphertext, icv) = rest.split_at(rest.len() - icv_len);
        if !ciphertext.len().is_multiple_of(4) {
            // RFC 4303 §2.4: the ciphertext ends on a 4-byte boundary.
            return Err(EspError::Malformed(
                "ESP ciphertext not a multiple of 4 bytes",
            ));
        }
        let mut iv_bytes = [0u8; IV_LEN];
        iv_bytes.copy_from_slice(iv);

        let prefix = match self.mode {
            Mode::Tunnel { .. } => 0,
            Mode::Transport => hdr.header_len,
        };
        out.extend_from_slice(&packet[..prefix]);
        out.resize(prefix + ciphertext.len(), 0);
        self.aead
            .open(&iv_bytes, aad, ciphertext, &mut out[prefix..], icv)?;

        // RFC 4303 §3.4.3: only an authenticated packet moves the window.
        if let SeqState::Inbound(window) = &mut self.seq {
            window.update(seq);
        }

        let end = out.len();
        let next_header = out[end - 1];
        let pad_len = usize::from(out[end - 2]);
        let payload_end = end
            .checked_sub(ESP_TRAILER_LEN + pad_len)
            .filter(|&e| e >= prefix)
            .ok_or(EspError::BadPadding)?;
        // RFC 4303 §2.4: the receiver SHOULD check the padding is 1, 2, 3, ...
        if !out[payload_end..end - ESP_TRAILER_LEN]
            .iter()
            .zip(1u8..)
            .all(|(&b, want)| b == want)
        {
            return Err(EspError::BadPadding);
        }
        out.truncate(payload_end);
        if next_header == ip::proto::NO_NEXT_HEADER {
            return Err(EspError::DummyPacket);
        }

        match self.mode {
            Mode::Tunnel { .. } => {
                let want_v4 = match next_header {
                    ip::proto::IPV4 => true,
                    ip::proto::IPV6 => false,
                    _ => {
                        return Err(EspError::UnsupportedPacket(
                            "tunnel mode next header is neither IPv4 nor IPv6",
                        ));
                    }
                };
                let inner = ip::parse(out)
                    .map_err(|_| EspError::Malformed("inner packet has a bad IP header"))?;
                if inner.src.is_ipv4() != want_v4 {
                    return Err(EspError::Malformed(
                        "next header does not match the inner IP version",
                    ));
                }
                // RFC 4303 §2.4: TFC padding may follow the inner packet; its length says where.
                out.truncate(inner.packet_len);
                ip::propagate_ce(hdr.tos, out);
            }
            Mode::Transport => {
                let len = out.len();
                if hdr.src.is_ipv4() {
                    ip::fix_ipv4_header(&mut out[..prefix], next_header, len);
                } else {
                    ip::fix_ipv6_header(&mut out[..prefix], next_header, len - prefix);
                }
            }
        }
        Ok(())
    }
}
