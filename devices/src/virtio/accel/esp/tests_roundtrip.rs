//! Round trips through our own encapsulation and decapsulation for every key size, ICV length,
//! mode and address family, plus every refusal path with its exact error and counter.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::cipher::EspAead;
use super::ip::{self, IpHeader, OuterHeader};
use super::sa::SeqState;
use super::{
    Direction, ESP_HEADER_LEN, EspError, MAX_REPLAY_WINDOW, Mode, OUTER_TTL, SaConfig,
    SecurityAssociation,
};

const A4: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
const B4: IpAddr = IpAddr::V4(Ipv4Addr::new(198, 51, 100, 7));
const A6: IpAddr = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1));
const B6: IpAddr = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 2));

pub(super) fn key(len: usize) -> Vec<u8> {
    (0..len as u8)
        .map(|i| i.wrapping_mul(37).wrapping_add(11))
        .collect()
}

pub(super) fn config(direction: Direction, mode: Mode, key_len: usize, icv: u8) -> SaConfig {
    SaConfig {
        spi: 0x0000_2345,
        direction,
        mode,
        key: key(key_len),
        icv_len: icv,
        replay_window: 64,
    }
}

pub(super) fn pair(
    mode: Mode,
    key_len: usize,
    icv: u8,
) -> (SecurityAssociation, SecurityAssociation) {
    (
        SecurityAssociation::new(config(Direction::Outbound, mode, key_len, icv)).unwrap(),
        SecurityAssociation::new(config(Direction::Inbound, mode, key_len, icv)).unwrap(),
    )
}

/// A UDP-ish IPv4 packet with `payload_len` bytes after a header of `ihl` words.
pub(super) fn ipv4_packet(src: IpAddr, dst: IpAddr, ihl: u8, payload_len: usize) -> Vec<u8> {
    let (IpAddr::V4(s), IpAddr::V4(d)) = (src, dst) else {
        panic!("IPv4 addresses")
    };
    let hl = usize::from(ihl) * 4;
    let mut p = vec![0u8; hl + payload_len];
    p[0] = 0x40 | ihl;
    p[1] = 0x2e; // DSCP AF11-ish, ECN 10
    p[2..4].copy_from_slice(&((hl + payload_len) as u16).to_be_bytes());
    p[4..6].copy_from_slice(&0x1234u16.to_be_bytes());
    p[6] = 0x40; // DF
    p[8] = 17;
    p[9] = 17;
    p[12..16].copy_from_slice(&s.octets());
    p[16..20].copy_from_slice(&d.octets());
    for (i, b) in p[20..hl].iter_mut().enumerate() {
        *b = if i == 0 { 0x94 } else { 0x01 }; // router alert option, then NOPs
    }
    ip::fix_ipv4_header(&mut p[..hl], 17, hl + payload_len);
    for (i, b) in p[hl..].iter_mut().enumerate() {
        *b = (i * 7) as u8;
    }
    p
}

pub(super) fn ipv6_packet(
    src: IpAddr,
    dst: IpAddr,
    next_header: u8,
    payload_len: usize,
) -> Vec<u8> {
    let (IpAddr::V6(s), IpAddr::V6(d)) = (src, dst) else {
        panic!("IPv6 addresses")
    };
    let mut p = vec![0u8; 40 + payload_len];
    p[0..4].copy_from_slice(&0x6a1b_cdefu32.to_be_bytes());
    p[4..6].copy_from_slice(&(payload_len as u16).to_be_bytes());
    p[6] = next_header;
    p[7] = 33;
    p[8..24].copy_from_slice(&s.octets());
    p[24..40].copy_from_slice(&d.octets());
    for (i, b) in p[40..].iter_mut().enumerate() {
        *b = (i * 13) as u8;
    }
    p
}

#[test]
fn round_trip_every_suite_mode_family_and_padding() {
    let modes = [
        Mode::Tunnel { src: A4, dst: B4 },
        Mode::Tunnel { src: A6, dst: B6 },
        Mode::Transport,
    ];
    for key_len in [20, 28, 36] {
        for icv in [8, 12, 16] {
            for mode in modes {
                let (mut tx, mut rx) = pair(mode, key_len, icv);
                let (mut esp, mut back) = (Vec::new(), Vec::new());
                for len in 0..9 {
                    for v6 in [false, true] {
                        let inner = if v6 {
                            ipv6_packet(A6, B6, 17, len)
                        } else {
                            ipv4_packet(A4, B4, 5 + (len % 2) as u8, len)
                        };
                        if mode == (Mode::Tunnel { src: A4, dst: B4 }) && len == 3 {
                            // Trailing link-layer padding is not part of the packet.
                            let mut padded = inner.clone();
                            padded.extend_from_slice(&[0xee; 5]);
                            tx.encapsulate(&padded, &mut esp).unwrap();
                        } else {
                            tx.encapsulate(&inner, &mut esp).unwrap();
                        }
                        let overhead = esp.len() - inner.len();
                        assert!(overhead <= tx.max_overhead(), "{overhead}");
                        let h = ip::parse(&esp).unwrap();
                        assert_eq!(h.packet_len, esp.len());
                        assert_eq!(h.protocol, ip::proto::ESP);
                        let ct_len = esp.len() - h.header_len - 16 - usize::from(icv);
                        assert_eq!(ct_len % 4, 0);
                        if let Mode::Tunnel { src, dst } = mode {
                            assert_eq!((h.src, h.dst), (src, dst));
                        }
                        rx.decapsulate(&esp, &mut back).unwrap();
                        assert_eq!(back, inner, "{key_len} {icv} {mode:?} {len} {v6}");
                    }
                }
                assert_eq!(tx.counters().packets_out, 18);
                assert_eq!(rx.counters().packets_in, 18);
                assert_eq!(rx.counters().bytes_in, tx.counters().bytes_out);
            }
        }
    }
}

#[test]
fn padding_and_trailer_follow_rfc4303() {
    // Tunnel mode IPv4 with a 16-byte ICV; inspect the plaintext by decrypting by hand.
    let mode = Mode::Tunnel { src: A4, dst: B4 };
    for len in 0..8 {
        let (mut tx, _) = pair(mode, 20, 16);
        let inner = ipv4_packet(A4, B4, 5, len);
        let mut esp = Vec::new();
        tx.encapsulate(&inner, &mut esp).unwrap();
        let aead = EspAead::new(&key(20), 16).unwrap();
        let body = &esp[20..];
        assert_eq!(&body[0..4], &0x2345u32.to_be_bytes());
        assert_eq!(&body[4..8], &1u32.to_be_bytes());
        let iv: [u8; 8] = body[8..16].try_into().unwrap();
        let (ct, icv) = body[16..].split_at(body.len() - 32);
        let mut plain = vec![0; ct.len()];
        aead.open(&iv, &body[..8], ct, &mut plain, icv).unwrap();
        let pad = (4 - (inner.len() + 2) % 4) % 4;
        assert_eq!(plain.len(), inner.len() + pad + 2);
        assert_eq!(&plain[..inner.len()], &inner[..]);
        let want: Vec<u8> = (1..=pad as u8).collect();
        assert_eq!(&plain[inner.len()..inner.len() + pad], &want[..]);
        assert_eq!(plain[plain.len() - 2], pad as u8);
        assert_eq!(plain[plain.len() - 1], ip::proto::IPV4);
        // Outer header: TTL, DF and DSCP/ECN copied, ID from the sequence number.
        assert_eq!(esp[8], OUTER_TTL);
        assert_eq!(esp[6] & 0x40, 0x40);
        assert_eq!(esp[1], inner[1]);
        assert_eq!(&esp[4..6], &[0, 1]);
        assert_eq!(ip::ipv4_checksum(&esp[..20]), 0);
    }
}

#[test]
fn ivs_are_unique_and_sequence_numbers_count_from_one() {
    let (mut tx, _) = pair(Mode::Transport, 36, 16);
    let inner = ipv4_packet(A4, B4, 5, 10);
    let mut esp = Vec::new();
    let mut ivs = std::collections::HashSet::new();
    for seq in 1..=300u32 {
        tx.encapsulate(&inner, &mut esp).unwrap();
        assert_eq!(&esp[24..28], &seq.to_be_bytes());
        assert!(ivs.insert(esp[28..36].to_vec()), "IV repeated");
    }
    assert_eq!(tx.sequence(), 301);
}

#[test]
fn transport_mode_keeps_ipv4_options_and_fixes_the_header() {
    let (mut tx, mut rx) = pair(Mode::Transport, 20, 16);
    let inner = ipv4_packet(A4, B4, 6, 33);
    let mut esp = Vec::new();
    tx.encapsulate(&inner, &mut esp).unwrap();
    assert_eq!(&esp[20..24], &inner[20..24], "option kept");
    assert_eq!(esp[9], ip::proto::ESP);
    assert_eq!(usize::from(u16::from_be_bytes([esp[2], esp[3]])), esp.len());
    assert_eq!(ip::ipv4_checksum(&esp[..24]), 0);
    let mut back = Vec::new();
    rx.decapsulate(&esp, &mut back).unwrap();
    assert_eq!(back, inner);
}

#[test]
fn sequence_number_overflow_is_refused() {
    let (mut tx, mut rx) = pair(Mode::Tunnel { src: A4, dst: B4 }, 20, 16);
    let SeqState::Outbound { iv_mask, .. } = tx.seq else {
        unreachable!()
    };
    tx.seq = SeqState::Outbound {
        next: u64::from(u32::MAX - 1),
        iv_mask,
    };
    let inner = ipv4_packet(A4, B4, 5, 20);
    let (mut esp, mut back) = (Vec::new(), Vec::new());
    tx.encapsulate(&inner, &mut esp).unwrap();
    rx.decapsulate(&esp, &mut back).unwrap();
    tx.encapsulate(&inner, &mut esp).unwrap();
    assert_eq!(&esp[24..28], &u32::MAX.to_be_bytes());
    rx.decapsulate(&esp, &mut back).unwrap();
    assert_eq!(rx.sequence(), u64::from(u32::MAX));
    for _ in 0..3 {
        assert_eq!(tx.encapsulate(&inner, &mut esp), Err(EspError::SeqOverflow));
        assert!(esp.is_empty());
    }
    let c = tx.counters();
    assert_eq!((c.packets_out, c.seq_overflows), (2, 3));
}

#[test]
fn config_errors() {
    let mode = Mode::Transport;
    let new = |cfg: SaConfig| SecurityAssociation::new(cfg).map(|_| ());
    for bad in [0, 16, 19, 21, 32, 40] {
        let mut c = config(Direction::Inbound, mode, 20, 16);
        c.key = key(bad);
        assert_eq!(new(c), Err(EspError::InvalidKeyLength(bad)));
    }
    for bad in [0, 4, 10, 17] {
        assert_eq!(
            new(config(Direction::Inbound, mode, 20, bad)),
            Err(EspError::InvalidIcvLength(bad))
        );
    }
    for bad in [0, 31, MAX_REPLAY_WINDOW + 1] {
        let mut c = config(Direction::Inbound, mode, 20, 16);
        c.replay_window = bad;
        assert_eq!(new(c), Err(EspError::InvalidReplayWindow(bad)));
    }
    // Outbound SAs have no window.
    let mut c = config(Direction::Outbound, mode, 20, 16);
    c.replay_window = 0;
    assert_eq!(new(c), Ok(()));
    for bad in [0, 1, 255] {
        let mut c = config(Direction::Outbound, mode, 20, 16);
        c.spi = bad;
        assert_eq!(new(c), Err(EspError::InvalidSpi(bad)));
    }
    let c = config(
        Direction::Outbound,
        Mode::Tunnel { src: A4, dst: B6 },
        20,
        16,
    );
    assert_eq!(new(c), Err(EspError::AddressFamilyMismatch));
    // The key never shows up in Debug output.
    let c = config(Direction::Outbound, mode, 20, 16);
    assert!(!format!("{c:?}").contains(&format!("{:?}", &c.key[..4])));
}

#[test]
fn wrong_direction() {
    let (mut tx, mut rx) = pair(Mode::Transport, 20, 16);
    let inner = ipv4_packet(A4, B4, 5, 20);
    let mut esp = Vec::new();
    let mut out = Vec::new();
    assert_eq!(
        rx.encapsulate(&inner, &mut out),
        Err(EspError::WrongDirection)
    );
    tx.encapsulate(&inner, &mut esp).unwrap();
    assert_eq!(
        tx.decapsulate(&esp, &mut out),
        Err(EspError::WrongDirection)
    );
}

#[test]
fn transport_mode_refuses_fragments_and_ipv6_extension_headers() {
    let (mut tx, _) = pair(Mode::Transport, 20, 16);
    let mut out = Vec::new();
    for nh in [0u8, 43, 44, 60] {
        assert_eq!(
            tx.encapsulate(&ipv6_packet(A6, B6, nh, 16), &mut out),
            Err(EspError::UnsupportedPacket(
                "IPv6 extension headers in transport mode"
            ))
        );
    }
    let mut frag = ipv4_packet(A4, B4, 5, 16);
    frag[6] = 0x20; // MF
    ip::fix_ipv4_header(&mut frag[..20], 17, 36);
    assert_eq!(
        tx.encapsulate(&frag, &mut out),
        Err(EspError::UnsupportedPacket(
            "IPv4 fragment in transport mode"
        ))
    );
    assert_eq!(tx.counters().malformed_drops, 5);
    // Tunnel mode carries fragments and extension headers untouched.
    let (mut tx, mut rx) = pair(Mode::Tunnel { src: A6, dst: B6 }, 20, 16);
    let mut back = Vec::new();
    for inner in [frag, ipv6_packet(A6, B6, 44, 16)] {
        tx.encapsulate(&inner, &mut out).unwrap();
        rx.decapsulate(&out, &mut back).unwrap();
        assert_eq!(back, inner);
    }
}

#[test]
fn oversized_results_are_refused() {
    let (mut tx, _) = pair(Mode::Tunnel { src: A4, dst: B4 }, 20, 16);
    let mut out = Vec::new();
    let big = ipv4_packet(A4, B4, 5, 65535 - 20);
    assert!(matches!(
        tx.encapsulate(&big, &mut out),
        Err(EspError::UnsupportedPacket(_))
    ));
    assert!(out.is_empty());
    let (mut tx, _) = pair(Mode::Transport, 20, 16);
    let big = ipv6_packet(A6, B6, 17, 65535 - 10);
    assert!(matches!(
        tx.encapsulate(&big, &mut out),
        Err(EspError::UnsupportedPacket(_))
    ));
    // The sequence number was not consumed by refused packets.
    assert_eq!(tx.sequence(), 1);
}

/// Builds an ESP packet by hand from an arbitrary plaintext (payload || padding || trailer),
/// sealed with the real key: for paths our encapsulator never produces.
fn handmade(outer: (IpAddr, IpAddr), spi: u32, seq: u32, plaintext: &[u8], icv_len: u8) -> Vec<u8> {
    let aead = EspAead::new(&key(20), icv_len).unwrap();
    let inner = IpHeader {
        src: outer.0,
        dst: outer.1,
        header_len: 20,
        packet_len: 20,
        protocol: 0,
        tos: 0,
        dont_fragment: false,
        is_fragment: false,
        flow_label: 0,
    };
    let mut p = Vec::new();
    let esp_len = ESP_HEADER_LEN + 8 + plaintext.len() + usize::from(icv_len);
    ip::push_outer_header(
        &mut p,
        &OuterHeader {
            src: outer.0,
            dst: outer.1,
            inner: &inner,
            ttl: 64,
            id: 0,
            payload_len: esp_len,
        },
    )
    .unwrap();
    let mut aad = [0u8; 8];
    aad[..4].copy_from_slice(&spi.to_be_bytes());
    aad[4..].copy_from_slice(&seq.to_be_bytes());
    let iv = [7u8; 8];
    p.extend_from_slice(&aad);
    p.extend_from_slice(&iv);
    let start = p.len();
    p.extend_from_slice(plaintext);
    let end = p.len();
    p.resize(end + usize::from(icv_len), 0);
    let (body, icv) = p.split_at_mut(end);
    aead.seal(&iv, &aad, &mut body[start..], icv).unwrap();
    p
}

#[test]
fn inbound_refusals_have_exact_errors_and_counters() {
    let mode = Mode::Tunnel { src: A4, dst: B4 };
    let (_, mut rx) = pair(mode, 20, 16);
    let mut out = Vec::new();
    let inner = ipv4_packet(A4, B4, 5, 8); // 28 bytes: pad 2
    let with_trailer = |pad: &[u8], nh: u8| {
        let mut v = inner.clone();
        v.extend_from_slice(pad);
        v.extend_from_slice(&[pad.len() as u8, nh]);
        v
    };
    // A correct handmade packet decapsulates.
    let ok = handmade((A4, B4), 0x2345, 1, &with_trailer(&[1, 2], 4), 16);
    rx.decapsulate(&ok, &mut out).unwrap();
    assert_eq!(out, inner);
    // Verified but bad padding content, or a pad length beyond the payload.
    let bad = handmade((A4, B4), 0x2345, 2, &with_trailer(&[1, 3], 4), 16);
    assert_eq!(rx.decapsulate(&bad, &mut out), Err(EspError::BadPadding));
    let mut pt = with_trailer(&[1, 2], 4);
    let n = pt.len();
    pt[n - 2] = 200;
    let bad = handmade((A4, B4), 0x2345, 3, &pt, 16);
    assert_eq!(rx.decapsulate(&bad, &mut out), Err(EspError::BadPadding));
    // Dummy packet (next header 59).
    let dummy = handmade((A4, B4), 0x2345, 4, &with_trailer(&[1, 2], 59), 16);
    assert_eq!(rx.decapsulate(&dummy, &mut out), Err(EspError::DummyPacket));
    // Next header not IPv4/IPv6 in tunnel mode; next header that contradicts the inner version.
    let odd = handmade((A4, B4), 0x2345, 5, &with_trailer(&[1, 2], 17), 16);
    assert!(matches!(
        rx.decapsulate(&odd, &mut out),
        Err(EspError::UnsupportedPacket(_))
    ));
    let odd = handmade((A4, B4), 0x2345, 6, &with_trailer(&[1, 2], 41), 16);
    assert_eq!(
        rx.decapsulate(&odd, &mut out),
        Err(EspError::Malformed(
            "next header does not match the inner IP version"
        ))
    );
    // TFC padding after the inner packet (RFC 4303 §2.4) is accepted and removed.
    let mut tfc = inner.clone();
    tfc.extend_from_slice(&[0; 10]);
    tfc.extend_from_slice(&[0, 4]);
    let tfc = handmade((A4, B4), 0x2345, 7, &tfc, 16);
    rx.decapsulate(&tfc, &mut out).unwrap();
    assert_eq!(out, inner);
    // Wrong SPI, wrong endpoints, not ESP, bad outer checksum.
    let other = handmade((A4, B4), 0x9999, 8, &with_trailer(&[1, 2], 4), 16);
    assert_eq!(
        rx.decapsulate(&other, &mut out),
        Err(EspError::WrongSpi {
            expected: 0x2345,
            got: 0x9999
        })
    );
    let elsewhere = handmade((B4, A4), 0x2345, 9, &with_trailer(&[1, 2], 4), 16);
    assert_eq!(
        rx.decapsulate(&elsewhere, &mut out),
        Err(EspError::AddressMismatch)
    );
    let mut notesp = ok.clone();
    notesp[9] = 17;
    ip::fix_ipv4_header(&mut notesp[..20], 17, ok.len());
    assert_eq!(
        rx.decapsulate(&notesp, &mut out),
        Err(EspError::UnsupportedPacket("not an ESP packet"))
    );
    let mut badsum = ok.clone();
    badsum[10] ^= 1;
    assert_eq!(
        rx.decapsulate(&badsum, &mut out),
        Err(EspError::Malformed("bad IPv4 header checksum"))
    );
    // Replays: seq 1 again, seq 0.
    assert_eq!(rx.decapsulate(&ok, &mut out), Err(EspError::Replay(1)));
    let zero = handmade((A4, B4), 0x2345, 0, &with_trailer(&[1, 2], 4), 16);
    assert_eq!(rx.decapsulate(&zero, &mut out), Err(EspError::Replay(0)));
    // Ciphertext not a multiple of 4.
    let odd_len = handmade((A4, B4), 0x2345, 10, &[1, 2, 3, 0, 4], 16);
    assert_eq!(
        rx.decapsulate(&odd_len, &mut out),
        Err(EspError::Malformed(
            "ESP ciphertext not a multiple of 4 bytes"
        ))
    );
    // A replay-window hit is refused before the ICV is even looked at: a forged duplicate
    // counts as a replay, not as an ICV failure.
    let mut forged = ok.clone();
    let n = forged.len();
    forged[n - 1] ^= 1;
    assert_eq!(rx.decapsulate(&forged, &mut out), Err(EspError::Replay(1)));
    assert!(out.is_empty());

    let c = rx.counters();
    assert_eq!(c.packets_in, 2);
    assert_eq!(c.dummy_drops, 1);
    assert_eq!(c.replay_drops, 3);
    assert_eq!(c.icv_failures, 0);
    // bad padding x2, next header x2, SPI, address, not ESP, checksum, length
    assert_eq!(c.malformed_drops, 9);
    // Padding/next-header failures still consumed their (authenticated) sequence numbers.
    for seq in [2, 3, 4, 5, 6] {
        let again = handmade((A4, B4), 0x2345, seq, &with_trailer(&[1, 2], 4), 16);
        assert_eq!(
            rx.decapsulate(&again, &mut out),
            Err(EspError::Replay(u64::from(seq)))
        );
    }
}

#[test]
fn forged_packets_do_not_move_the_window() {
    let mode = Mode::Tunnel { src: A6, dst: B6 };
    let (mut tx, mut rx) = pair(mode, 28, 12);
    let inner = ipv6_packet(A6, B6, 17, 50);
    let mut esp = Vec::new();
    let mut out = Vec::new();
    tx.encapsulate(&inner, &mut esp).unwrap();
    // Forge a huge sequence number: the ICV (which covers it) fails, the window stays.
    let mut forged = esp.clone();
    forged[44..48].copy_from_slice(&1_000_000u32.to_be_bytes());
    assert_eq!(
        rx.decapsulate(&forged, &mut out),
        Err(EspError::IcvMismatch)
    );
    assert_eq!(rx.sequence(), 0);
    rx.decapsulate(&esp, &mut out).unwrap();
    assert_eq!(out, inner);
    assert_eq!(rx.counters().icv_failures, 1);
}

fn esn_pair(mode: Mode, first: u64) -> (SecurityAssociation, SecurityAssociation) {
    let opts = |initial_seq| super::SaOptions {
        esn: true,
        initial_seq,
    };
    (
        SecurityAssociation::with_options(
            config(Direction::Outbound, mode, 20, 16),
            opts(Some(first)),
        )
        .unwrap(),
        SecurityAssociation::with_options(
            config(Direction::Inbound, mode, 20, 16),
            opts(Some(first - 1)),
        )
        .unwrap(),
    )
}

#[test]
fn esn_round_trip_across_subspaces_with_reordering() {
    const B: u64 = 1 << 32;
    let (mut tx, mut rx) = esn_pair(Mode::Tunnel { src: A4, dst: B4 }, B - 40);
    assert!(tx.esn() && rx.esn());
    let inner = ipv4_packet(A4, B4, 5, 30);
    let mut sent = Vec::new();
    for _ in 0..80 {
        let mut esp = Vec::new();
        tx.encapsulate(&inner, &mut esp).unwrap();
        sent.push(esp);
    }
    assert_eq!(tx.sequence(), B + 40);
    // Only the low half is on the wire.
    assert_eq!(&sent[40][24..28], &[0, 0, 0, 0]);
    let mut out = Vec::new();
    // Deliver in a shuffled order within the window: every packet arrives exactly once.
    let mut order: Vec<usize> = (0..80).collect();
    for chunk in order.chunks_mut(16) {
        chunk.reverse();
    }
    for &i in &order {
        rx.decapsulate(&sent[i], &mut out)
            .unwrap_or_else(|e| panic!("packet {i}: {e}"));
        assert_eq!(out, inner);
    }
    assert_eq!(rx.sequence(), B + 39);
    for (i, p) in sent.iter().enumerate().rev().take(20) {
        assert_eq!(
            rx.decapsulate(p, &mut out),
            Err(EspError::Replay(B - 40 + i as u64))
        );
    }
    // A packet sealed with the wrong high half (as a non-ESN peer would) fails the ICV.
    let (mut plain_tx, _) = pair(Mode::Tunnel { src: A4, dst: B4 }, 20, 16);
    plain_tx.seq = SeqState::Outbound {
        next: 45,
        iv_mask: 0,
    };
    let mut esp = Vec::new();
    plain_tx.encapsulate(&inner, &mut esp).unwrap();
    assert_eq!(rx.decapsulate(&esp, &mut out), Err(EspError::IcvMismatch));
    assert_eq!(rx.counters().packets_in, 80);
}

#[test]
fn esn_overflow_and_initial_seq_validation() {
    let mode = Mode::Transport;
    let (mut tx, _) = esn_pair(mode, u64::MAX);
    let inner = ipv6_packet(A6, B6, 17, 3);
    let mut esp = Vec::new();
    tx.encapsulate(&inner, &mut esp).unwrap();
    assert_eq!(tx.encapsulate(&inner, &mut esp), Err(EspError::SeqOverflow));
    assert_eq!(tx.counters().seq_overflows, 1);

    let with = |dir, esn, initial_seq| {
        SecurityAssociation::with_options(
            config(dir, mode, 20, 16),
            super::SaOptions { esn, initial_seq },
        )
        .map(|_| ())
    };
    let big = u64::from(u32::MAX) + 1;
    assert_eq!(
        with(Direction::Outbound, false, Some(0)),
        Err(EspError::InvalidInitialSeq(0))
    );
    assert_eq!(
        with(Direction::Outbound, false, Some(big)),
        Err(EspError::InvalidInitialSeq(big))
    );
    assert_eq!(
        with(Direction::Inbound, false, Some(big)),
        Err(EspError::InvalidInitialSeq(big))
    );
    assert_eq!(with(Direction::Outbound, true, Some(big)), Ok(()));
    assert_eq!(with(Direction::Inbound, true, Some(big)), Ok(()));
}

#[test]
fn security_associations_can_move_to_worker_threads() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<SecurityAssociation>();
}
