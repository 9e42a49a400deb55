//! Hostile input: thousands of pseudo-random, truncated and bit-flipped packets into both
//! directions. Nothing may panic; anything accepted must be exactly what was sent.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::tests_roundtrip::{ipv4_packet, ipv6_packet, pair};
use super::{EspError, Mode};

const A4: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 10));
const B4: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 20));
const A6: IpAddr = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 10));
const B6: IpAddr = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 20));

/// xorshift64*: deterministic, so a failure reproduces.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

/// `out` is `inner` except perhaps for the ECN field (and so the IPv4 checksum, which must
/// verify).
fn assert_same_but_ecn(out: &[u8], inner: &[u8]) {
    assert_eq!(out.len(), inner.len());
    assert_eq!(out[0], inner[0]);
    if inner[0] >> 4 == 4 {
        assert_eq!(out[1] & !0x03, inner[1] & !0x03);
        assert_eq!(out[2..10], inner[2..10]);
        assert_eq!(out[12..], inner[12..]);
        assert_eq!(super::ip::ipv4_checksum(&out[..20]), 0);
    } else {
        assert_eq!(out[1] & 0xcf, inner[1] & 0xcf);
        assert_eq!(out[2..], inner[2..]);
    }
}

fn modes() -> [Mode; 3] {
    [
        Mode::Tunnel { src: A4, dst: B4 },
        Mode::Tunnel { src: A6, dst: B6 },
        Mode::Transport,
    ]
}

#[test]
fn random_and_truncated_packets_never_panic() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut runs = 0usize;
    for mode in modes() {
        for icv in [8u8, 12, 16] {
            let (mut tx, mut rx) = pair(mode, 20, icv);
            let (mut esp, mut out) = (Vec::new(), Vec::new());
            for round in 0..400 {
                let v6 = round % 2 == 1;
                let inner = if v6 {
                    ipv6_packet(A6, B6, 17, rng.below(300))
                } else {
                    ipv4_packet(A4, B4, 5, rng.below(300))
                };
                tx.encapsulate(&inner, &mut esp).unwrap();

                // Every truncation of a valid ESP packet is refused.
                for cut in 0..esp.len() {
                    assert!(rx.decapsulate(&esp[..cut], &mut out).is_err());
                    assert!(out.is_empty());
                    runs += 1;
                }
                // Random bit flips: refused, or (header fields outside the ICV's reach, such as
                // the IPv6 flow label or hop limit) accepted with the original protected bytes.
                let mut accepted = false;
                for _ in 0..4 {
                    let mut bad = esp.clone();
                    for _ in 0..=rng.below(3) {
                        let at = rng.below(bad.len());
                        bad[at] ^= 1 << rng.below(8);
                    }
                    if rx.decapsulate(&bad, &mut out).is_ok() {
                        accepted = true;
                        if mode == Mode::Transport {
                            let hl = super::ip::parse(&inner).unwrap().header_len;
                            assert_eq!(out[hl..], inner[hl..]);
                        } else {
                            // A flipped outer ECN field may have carried CE inside (RFC 6040).
                            assert_same_but_ecn(&out, &inner);
                        }
                    }
                    runs += 1;
                }
                // Pure noise, and noise behind a plausible header, in both directions.
                let n = rng.below(200);
                let mut noise = rng.bytes(n);
                if !noise.is_empty() && rng.below(2) == 0 {
                    noise[0] = if v6 { 0x60 } else { 0x45 };
                }
                let _ = rx.decapsulate(&noise, &mut out);
                let _ = tx.encapsulate(&noise, &mut out);
                let mut prefix = esp[..esp.len().min(40)].to_vec();
                let n = rng.below(100);
                prefix.extend(rng.bytes(n));
                let _ = rx.decapsulate(&prefix, &mut out);
                runs += 3;

                // The genuine packet still decapsulates: forgeries never moved the window.
                if accepted {
                    assert!(matches!(
                        rx.decapsulate(&esp, &mut out),
                        Err(EspError::Replay(_))
                    ));
                } else {
                    rx.decapsulate(&esp, &mut out).unwrap();
                    assert_eq!(out, inner);
                }
                // Truncated and corrupted inner packets: refused or, if accepted, round-trip.
                for cut in [0, 1, 19, 20, 39, 40, inner.len() - 1] {
                    if cut < inner.len() {
                        let r = tx.encapsulate(&inner[..cut], &mut esp);
                        assert!(r.is_err(), "truncated inner packet accepted at {cut}");
                        runs += 1;
                    }
                }
                let mut odd = inner.clone();
                let at = rng.below(odd.len());
                odd[at] = rng.next() as u8;
                if tx.encapsulate(&odd, &mut esp).is_ok() {
                    rx.decapsulate(&esp, &mut out).unwrap();
                    let mut want = odd[..super::ip::parse(&odd).unwrap().packet_len].to_vec();
                    if mode == Mode::Transport && !v6 {
                        // Transport mode rewrites the IPv4 header, recomputing its checksum.
                        want[10..12].copy_from_slice(&out[10..12]);
                        let hl = super::ip::parse(&out).unwrap().header_len;
                        assert_eq!(super::ip::ipv4_checksum(&out[..hl]), 0);
                    }
                    assert_eq!(out, want);
                }
                runs += 1;
            }
        }
    }
    assert!(runs > 100_000, "{runs}");
}

#[test]
fn malformed_counter_counts_every_refused_truncation() {
    let (mut tx, mut rx) = pair(Mode::Tunnel { src: A4, dst: B4 }, 36, 16);
    let inner = ipv4_packet(A4, B4, 5, 64);
    let (mut esp, mut out) = (Vec::new(), Vec::new());
    tx.encapsulate(&inner, &mut esp).unwrap();
    for cut in 0..esp.len() {
        let e = rx.decapsulate(&esp[..cut], &mut out).unwrap_err();
        assert!(matches!(e, EspError::Malformed(_)), "{cut}: {e}");
    }
    let c = rx.counters();
    assert_eq!(c.malformed_drops, esp.len() as u64);
    assert_eq!((c.packets_in, c.icv_failures, c.replay_drops), (0, 0, 0));
}
