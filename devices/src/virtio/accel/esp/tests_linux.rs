//! Interoperability with Linux xfrm: `testdata/linux-xfrm.txt` holds ESP packets that Linux
//! 6.1's software ESP (`rfc4106(gcm(aes))`) sent between two network namespaces, made by
//! `testdata/capture.sh`, with the UDP payloads Linux's receiving side delivered. We decapsulate
//! them to exactly those datagrams, and re-encapsulate the inner packets with Linux's IVs to
//! reproduce Linux's ESP packets byte for byte.

use std::net::IpAddr;

use super::ip;
use super::{Direction, EspError, Mode, SaConfig, SaOptions, SecurityAssociation};

const CAPTURE: &str = include_str!("testdata/linux-xfrm.txt");

/// One captured SA with its packets, in the order Linux sent them (sequence numbers 1, 2, ...).
struct Case {
    name: String,
    spi: u32,
    tunnel: bool,
    key: Vec<u8>,
    icv_len: u8,
    /// Linux padded the inner packets with TFC padding (`tfcpad`), which we do not emit.
    tfc: bool,
    /// ESN, and the sequence number Linux's SAs started from (`replay-seq[-hi]`,
    /// `replay-oseq[-hi]`: the last one sent/received), from the xfrm extras.
    esn: bool,
    start_seq: u64,
    replay_window: u32,
    /// Outer (tunnel) endpoints.
    src: IpAddr,
    dst: IpAddr,
    /// Addresses of the UDP datagrams (the policy selector): the inner header in tunnel mode.
    isrc: IpAddr,
    idst: IpAddr,
    packets: Vec<Vec<u8>>,
    payloads: Vec<Vec<u8>>,
}

fn unhex(s: &str) -> Vec<u8> {
    let s = s.trim_start_matches("0x");
    assert!(s.len().is_multiple_of(2), "odd hex length");
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

/// The word after `key` in the xfrm extras (everything after `extra=` on a CASE line).
fn extra<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let mut words = line.split_once("extra=")?.1.split_whitespace();
    words.by_ref().find(|w| *w == key)?;
    words.next()
}

fn num(v: &str) -> u64 {
    match v.strip_prefix("0x") {
        Some(h) => u64::from_str_radix(h, 16).unwrap(),
        None => v.parse().unwrap(),
    }
}

fn cases() -> Vec<Case> {
    let mut cases: Vec<Case> = Vec::new();
    for line in CAPTURE.lines().filter(|l| !l.starts_with('#')) {
        let mut words = line.split_whitespace();
        let kind = words.next().unwrap();
        let name = words.next().unwrap().to_string();
        match kind {
            "CASE" => {
                let kv = |k: &str| {
                    line.split_whitespace()
                        .find_map(|w| w.strip_prefix(&format!("{k}=")))
                        .unwrap_or_else(|| panic!("{name}: no {k}"))
                        .to_string()
                };
                cases.push(Case {
                    spi: u32::from_str_radix(kv("spi").trim_start_matches("0x"), 16).unwrap(),
                    tunnel: kv("mode") == "tunnel",
                    key: unhex(&kv("key")),
                    icv_len: (kv("icv").parse::<u32>().unwrap() / 8) as u8,
                    src: kv("src").parse().unwrap(),
                    dst: kv("dst").parse().unwrap(),
                    isrc: kv("isrc").parse().unwrap(),
                    idst: kv("idst").parse().unwrap(),
                    tfc: kv("extra").starts_with("tfcpad"),
                    esn: extra(line, "flag") == Some("esn"),
                    start_seq: (extra(line, "replay-seq-hi").map_or(0, num) << 32)
                        | extra(line, "replay-seq").map_or(0, num),
                    replay_window: extra(line, "replay-window").map_or(64, |v| num(v) as u32),
                    name,
                    packets: Vec::new(),
                    payloads: Vec::new(),
                });
            }
            "ESPCAP" | "RECV" => {
                let case = cases.iter_mut().find(|c| c.name == name).expect("case");
                let bytes = unhex(words.next().unwrap());
                if kind == "ESPCAP" {
                    case.packets.push(bytes);
                } else {
                    case.payloads.push(bytes);
                }
            }
            other => panic!("unknown line kind {other}"),
        }
    }
    cases
}

fn sa(case: &Case, direction: Direction) -> SecurityAssociation {
    let initial_seq = match direction {
        _ if case.start_seq == 0 => None,
        Direction::Outbound => Some(case.start_seq + 1),
        Direction::Inbound => Some(case.start_seq),
    };
    let options = SaOptions {
        esn: case.esn,
        initial_seq,
    };
    SecurityAssociation::with_options(
        SaConfig {
            spi: case.spi,
            direction,
            mode: if case.tunnel {
                Mode::Tunnel {
                    src: case.src,
                    dst: case.dst,
                }
            } else {
                Mode::Transport
            },
            key: case.key.clone(),
            icv_len: case.icv_len,
            replay_window: case.replay_window,
        },
        options,
    )
    .unwrap()
}

/// RFC 768 UDP checksum over the pseudo-header; 0 when the datagram verifies.
fn udp_checksum(src: IpAddr, dst: IpAddr, udp: &[u8]) -> u16 {
    let mut pseudo = Vec::new();
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            pseudo.extend_from_slice(&s.octets());
            pseudo.extend_from_slice(&d.octets());
            pseudo.extend_from_slice(&[0, 17]);
            pseudo.extend_from_slice(&(udp.len() as u16).to_be_bytes());
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            pseudo.extend_from_slice(&s.octets());
            pseudo.extend_from_slice(&d.octets());
            pseudo.extend_from_slice(&(udp.len() as u32).to_be_bytes());
            pseudo.extend_from_slice(&[0, 0, 0, 17]);
        }
        _ => panic!("mixed families"),
    }
    pseudo.extend_from_slice(udp);
    ip::ipv4_checksum(&pseudo)
}

/// Checks that `inner` is the UDP datagram Linux's receiver got: right addresses, ports,
/// lengths, a verifying UDP checksum (every byte right) and the delivered payload.
fn assert_is_datagram(case: &Case, inner: &[u8], payload: &[u8]) {
    let h = ip::parse(inner).expect("inner IP header");
    assert_eq!(h.packet_len, inner.len(), "{}: length", case.name);
    assert_eq!((h.src, h.dst, h.protocol), (case.isrc, case.idst, 17));
    if h.src.is_ipv4() {
        assert_eq!(ip::ipv4_checksum(&inner[..h.header_len]), 0);
    }
    let udp = &inner[h.header_len..];
    assert_eq!(&udp[0..4], &[0x9c, 0x40, 0x13, 0x89], "ports 40000 -> 5001");
    assert_eq!(usize::from(u16::from_be_bytes([udp[4], udp[5]])), udp.len());
    assert_eq!(
        udp_checksum(h.src, h.dst, udp),
        0,
        "{}: UDP checksum",
        case.name
    );
    assert_eq!(&udp[8..], payload, "{}: payload", case.name);
}

#[test]
fn capture_covers_all_modes_and_families() {
    let cases = cases();
    let names: Vec<&str> = cases.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "tunnel4",
            "tunnel4-icv8",
            "transport4",
            "tunnel6",
            "transport6",
            "tunnel6-aes192-icv12",
            "tunnel4-tfc",
            "transport4-options",
            "tunnel6in4",
            "tunnel4-esn",
            "tunnel6-esn-wrap",
            "transport4-esn-hi",
        ]
    );
    for c in &cases {
        assert_eq!(c.packets.len(), 4, "{}", c.name);
        assert_eq!(c.payloads.len(), 4, "{}", c.name);
        // Payloads one byte apart: all four ESP padding lengths occur (TFC aside).
        if !c.tfc {
            let inner_lens: std::collections::BTreeSet<usize> =
                c.payloads.iter().map(|p| p.len() % 4).collect();
            assert_eq!(inner_lens.len(), 4, "{}", c.name);
        }
    }
    let opts = cases
        .iter()
        .find(|c| c.name == "transport4-options")
        .unwrap();
    assert!(
        opts.packets.iter().all(|p| p[0] == 0x46),
        "IPv4 options present"
    );
}

#[test]
fn decapsulates_linux_packets_to_the_delivered_datagrams() {
    for case in cases() {
        let mut rx = sa(&case, Direction::Inbound);
        let mut inner = Vec::new();
        for (i, (packet, payload)) in case.packets.iter().zip(&case.payloads).enumerate() {
            rx.decapsulate(packet, &mut inner)
                .unwrap_or_else(|e| panic!("{} packet {i}: {e}", case.name));
            assert_is_datagram(&case, &inner, payload);
            if !case.tunnel {
                // Transport mode: the rebuilt header is Linux's own header minus ESP.
                let hl = ip::parse(packet).unwrap().header_len;
                let outer = ip::parse(packet).unwrap();
                assert_eq!(ip::parse(&inner).unwrap().header_len, hl);
                assert_eq!(outer.tos, ip::parse(&inner).unwrap().tos);
            }
        }
        let c = rx.counters();
        assert_eq!((c.packets_in, c.replay_drops, c.icv_failures), (4, 0, 0));
        assert_eq!(rx.sequence(), case.start_seq + 4);
        if case.tfc {
            // Linux's TFC padding made every ESP packet as long as the longest; we cut it off.
            assert!(
                case.packets
                    .iter()
                    .all(|p| p.len() == case.packets[0].len())
            );
        }
    }
}

#[test]
fn linux_packets_replayed_or_tampered_are_refused() {
    for case in cases() {
        let mut rx = sa(&case, Direction::Inbound);
        let mut out = Vec::new();
        // A flipped ciphertext byte: the ICV fails and the window does not move.
        let mut forged = case.packets[1].clone();
        let n = forged.len();
        forged[n - usize::from(case.icv_len) - 3] ^= 0x01;
        assert_eq!(
            rx.decapsulate(&forged, &mut out),
            Err(EspError::IcvMismatch)
        );
        assert!(out.is_empty());
        // A flipped ICV byte too.
        let mut forged = case.packets[0].clone();
        *forged.last_mut().unwrap() ^= 0x80;
        assert_eq!(
            rx.decapsulate(&forged, &mut out),
            Err(EspError::IcvMismatch)
        );
        // Out of order is fine; each packet only once.
        for i in [1, 0, 3, 2] {
            rx.decapsulate(&case.packets[i], &mut out).unwrap();
        }
        for p in &case.packets {
            assert!(matches!(
                rx.decapsulate(p, &mut out),
                Err(EspError::Replay(_))
            ));
        }
        let c = rx.counters();
        assert_eq!(
            (c.packets_in, c.icv_failures, c.replay_drops),
            (4, 2, 4),
            "{}",
            case.name
        );
    }
}

#[test]
fn encapsulation_reproduces_linux_packets_byte_for_byte() {
    for case in cases().into_iter().filter(|c| !c.tfc) {
        let mut rx = sa(&case, Direction::Inbound);
        let mut tx = sa(&case, Direction::Outbound);
        let (mut inner, mut ours) = (Vec::new(), Vec::new());
        for linux in &case.packets {
            rx.decapsulate(linux, &mut inner).unwrap();
            let hl = ip::parse(linux).unwrap().header_len;
            let iv: [u8; 8] = linux[hl + 8..hl + 16].try_into().unwrap();
            tx.encapsulate_with_iv(&inner, &mut ours, iv).unwrap();
            if case.tunnel && case.src.is_ipv4() {
                // Linux draws the outer IPv4 ID from its per-destination generator; ours is
                // the sequence number. Take Linux's ID, then every other byte must match.
                assert_eq!(&ours[4..6], &[0, ours[4 + 1]]);
                ours[4..6].copy_from_slice(&linux[4..6]);
                ours[10..12].fill(0);
                let sum = ip::ipv4_checksum(&ours[..20]);
                ours[10..12].copy_from_slice(&sum.to_be_bytes());
            }
            assert_eq!(
                hex(&ours),
                hex(linux),
                "{}: our ESP packet differs from Linux's",
                case.name
            );
        }
        assert_eq!(tx.counters().packets_out, 4);
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Our engine's packets for Linux to decapsulate (`testdata/to-linux.txt`, injected by
/// capture.sh), and what Linux delivered from them (`testdata/linux-accepted.txt`).
const TO_LINUX: &str = include_str!("testdata/to-linux.txt");
const LINUX_ACCEPTED: &str = include_str!("testdata/linux-accepted.txt");

fn engine_payload(case: &str, i: usize) -> Vec<u8> {
    format!("accelvm ESP engine to Linux {case}: {}", "x".repeat(i + 1)).into_bytes()
}

/// A UDP datagram 40001 -> 5002 with a correct checksum, in an IPv4 (optionally with a 4-byte
/// option) or IPv6 packet.
fn datagram(src: IpAddr, dst: IpAddr, id: u16, ip_options: bool, payload: &[u8]) -> Vec<u8> {
    let mut udp = Vec::new();
    udp.extend_from_slice(&40001u16.to_be_bytes());
    udp.extend_from_slice(&5002u16.to_be_bytes());
    udp.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    udp.extend_from_slice(&[0, 0]);
    udp.extend_from_slice(payload);
    let sum = match udp_checksum(src, dst, &udp) {
        0 => 0xffff,
        s => s,
    };
    udp[6..8].copy_from_slice(&sum.to_be_bytes());
    let mut p = Vec::new();
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            let hl = if ip_options { 24 } else { 20 };
            p.extend_from_slice(&[0x40 | (hl / 4) as u8, 0]);
            p.extend_from_slice(&((hl + udp.len()) as u16).to_be_bytes());
            p.extend_from_slice(&id.to_be_bytes());
            p.extend_from_slice(&[0x40, 0, 64, 17, 0, 0]);
            p.extend_from_slice(&s.octets());
            p.extend_from_slice(&d.octets());
            if ip_options {
                p.extend_from_slice(&[1, 1, 1, 0]);
            }
            let sum = ip::ipv4_checksum(&p);
            p[10..12].copy_from_slice(&sum.to_be_bytes());
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            p.extend_from_slice(&0x6000_0000u32.to_be_bytes());
            p.extend_from_slice(&(udp.len() as u16).to_be_bytes());
            p.extend_from_slice(&[17, 64]);
            p.extend_from_slice(&s.octets());
            p.extend_from_slice(&d.octets());
        }
        _ => panic!("mixed families"),
    }
    p.extend_from_slice(&udp);
    p
}

/// What `testdata/to-linux.txt` must contain: for every captured SA, four packets from our
/// encapsulator (deterministic IVs so the file is reproducible).
fn engine_packets() -> String {
    let mut text = String::from(
        "# ESP packets from our engine for Linux to decapsulate (capture.sh injects them).\n\
         # Generated by tests_linux::engine_packets_for_linux with ACCELVM_ESP_REGEN=1.\n",
    );
    for case in cases() {
        let line = CAPTURE
            .lines()
            .find(|l| l.starts_with(&format!("CASE {} ", case.name)))
            .unwrap();
        text.push_str(line);
        text.push('\n');
        let mut tx = sa(&case, Direction::Outbound);
        let mut esp = Vec::new();
        for i in 0..4 {
            let inner = datagram(
                case.isrc,
                case.idst,
                i as u16 + 1,
                case.name.contains("options"),
                &engine_payload(&case.name, i),
            );
            let iv = (0x0123_4567_89ab_cdef_u64 ^ (i as u64 + 1)).to_be_bytes();
            tx.encapsulate_with_iv(&inner, &mut esp, iv).unwrap();
            text.push_str(&format!("INJECT {} {}\n", case.name, hex(&esp)));
        }
    }
    text
}

#[test]
fn engine_packets_for_linux() {
    let want = engine_packets();
    if std::env::var_os("ACCELVM_ESP_REGEN").is_some() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/src/virtio/accel/esp/testdata/to-linux.txt"
        );
        std::fs::write(path, &want).unwrap();
    } else {
        // Not assert_eq!: dumping two 20 KB strings helps nobody.
        assert!(
            TO_LINUX == want,
            "testdata/to-linux.txt is stale: rerun with ACCELVM_ESP_REGEN=1, then capture.sh"
        );
    }
}

#[test]
fn linux_decapsulates_engine_packets() {
    let mut checked = 0;
    for case in cases() {
        let got: Vec<Vec<u8>> = LINUX_ACCEPTED
            .lines()
            .filter_map(|l| l.strip_prefix(&format!("ACCEPTED {} ", case.name)))
            .map(unhex)
            .collect();
        let want: Vec<Vec<u8>> = (0..4).map(|i| engine_payload(&case.name, i)).collect();
        assert_eq!(
            got, want,
            "{}: Linux did not deliver our packets",
            case.name
        );
        checked += 1;
    }
    assert_eq!(checked, 12);
}
