//! Round trips through our own encapsulation and decapsulation for every key size, ICV length,
//! mode and address family; padding, IVs, sequence numbers and ESN. Packet builders shared by
//! the other test files.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::cipher::EspAead;
use super::ip;
use super::sa::SeqState;
use super::{Direction, EspError, Mode, OUTER_TTL, SaConfig, SecurityAssociation};

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

#[test]
fn outer_congestion_marks_reach_the_inner_packet() {
    for (mode, v6) in [
        (Mode::Tunnel { src: A4, dst: B4 }, false),
        (Mode::Tunnel { src: A6, dst: B6 }, true),
    ] {
        let (mut tx, mut rx) = pair(mode, 20, 16);
        // ipv4_packet carries ECT(0); ipv6_packet ECT(1): the outer copies either.
        let inner = if v6 {
            ipv6_packet(A6, B6, 17, 20)
        } else {
            ipv4_packet(A4, B4, 5, 20)
        };
        let mut esp = Vec::new();
        tx.encapsulate(&inner, &mut esp).unwrap();
        // A router on the path marks congestion on the outer header.
        if v6 {
            esp[1] |= 0x30;
        } else {
            esp[1] |= 0x03;
            let len = esp.len();
            ip::fix_ipv4_header(&mut esp[..20], ip::proto::ESP, len);
        }
        let mut out = Vec::new();
        rx.decapsulate(&esp, &mut out).unwrap();
        let h = ip::parse(&out).unwrap();
        assert_eq!(h.tos & 0x03, 0x03, "CE carried inside");
        assert_eq!(h.tos & !0x03, ip::parse(&inner).unwrap().tos & !0x03);
        // Everything but the ECN field (and the IPv4 checksum, which must verify) is the
        // original packet.
        assert_eq!(out.len(), inner.len());
        assert_eq!(out[0], inner[0]);
        if v6 {
            assert_eq!(out[1] & 0xcf, inner[1] & 0xcf);
            assert_eq!(out[2..], inner[2..]);
        } else {
            assert_eq!(ip::ipv4_checksum(&out[..20]), 0);
            assert_eq!(out[2..10], inner[2..10]);
            assert_eq!(out[12..], inner[12..]);
        }
    }
}
