//! Every refusal path of the engine, each with its exact error and counter: configuration,
//! direction, unsupported packets, and inbound packets crafted by hand (sealed with the real key)
//! to reach the checks that only run after the ICV verified.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::cipher::EspAead;
use super::ip::{self, IpHeader, OuterHeader};
use super::tests_roundtrip::{config, ipv4_packet, ipv6_packet, key, pair};
use super::{
    Direction, ESP_HEADER_LEN, EspError, MAX_REPLAY_WINDOW, Mode, SaConfig, SecurityAssociation,
};

const A4: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
const B4: IpAddr = IpAddr::V4(Ipv4Addr::new(198, 51, 100, 7));
const A6: IpAddr = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1));
const B6: IpAddr = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 2));

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
