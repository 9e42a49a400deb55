//! `accel-tool esp-inject`: the attacker on the wire, for tests. Runs on the *peer* (host side)
//! and watches an interface for the next ESP frame the peer sends to `--dst`, then re-sends it:
//! `replay` sends the exact frame again (after the original was delivered), `tamper` flips one
//! ciphertext byte and sends that. For `tamper` the caller points the peer's neighbour entry for
//! the destination at a wrong MAC first, so the original frame never reaches the destination's IP
//! layer and the tampered copy (sent to `--mac`) carries a sequence number the receiver has not
//! seen: it must then fail the ICV check rather than the anti-replay check.

use std::io;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use crate::netio::{PACKET_OUTGOING, PacketSocket};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Replay,
    Tamper,
}

#[derive(Clone, Debug)]
pub struct InjectOpts {
    pub ifname: String,
    pub dst: Ipv4Addr,
    pub mac: [u8; 6],
    pub mode: Mode,
    pub copies: u32,
    pub delay: Duration,
    pub timeout: Duration,
}

/// Ethernet + IPv4 (without options would be 20; we read IHL) + ESP SPI and sequence number.
const ETH_HDR: usize = 14;
const MAX_COPIES: u32 = 1000;

fn parse_mac(s: &str) -> Result<[u8; 6], String> {
    let parts: Vec<&str> = s.split(':').collect();
    if parts.len() != 6 {
        return Err(format!("bad MAC {s:?}"));
    }
    let mut m = [0u8; 6];
    for (d, p) in m.iter_mut().zip(parts) {
        *d = u8::from_str_radix(p, 16).map_err(|_| format!("bad MAC {s:?}"))?;
    }
    Ok(m)
}

impl InjectOpts {
    pub fn parse(args: &[String]) -> Result<Self, String> {
        let mut o = InjectOpts {
            ifname: String::new(),
            dst: Ipv4Addr::UNSPECIFIED,
            mac: [0; 6],
            mode: Mode::Replay,
            copies: 1,
            delay: Duration::from_millis(300),
            timeout: Duration::from_secs(20),
        };
        let (mut have_dst, mut have_mac) = (false, false);
        let mut it = args.iter();
        while let Some(a) = it.next() {
            let v = it.next().ok_or(format!("{a} needs a value"))?;
            let ms = |v: &str| {
                v.parse::<u64>()
                    .map(Duration::from_millis)
                    .map_err(|e| format!("{a}: {e}"))
            };
            match a.as_str() {
                "--ifname" => o.ifname = v.clone(),
                "--dst" => {
                    o.dst = v.parse().map_err(|e| format!("--dst {v}: {e}"))?;
                    have_dst = true;
                }
                "--mac" => {
                    o.mac = parse_mac(v)?;
                    have_mac = true;
                }
                "--mode" => {
                    o.mode = match v.as_str() {
                        "replay" => Mode::Replay,
                        "tamper" => Mode::Tamper,
                        _ => return Err("--mode: replay or tamper".into()),
                    }
                }
                "--copies" => {
                    o.copies = v.parse().map_err(|e| format!("--copies: {e}"))?;
                    if o.copies == 0 || o.copies > MAX_COPIES {
                        return Err(format!("--copies: 1..={MAX_COPIES}"));
                    }
                }
                "--delay-ms" => o.delay = ms(v)?,
                "--timeout-ms" => o.timeout = ms(v)?,
                other => return Err(format!("unknown esp-inject option {other}")),
            }
        }
        if o.ifname.is_empty() || !have_dst || !have_mac {
            return Err("esp-inject needs --ifname, --dst and --mac".into());
        }
        Ok(o)
    }
}

/// The ESP payload offset of an Ethernet frame carrying IPv4 ESP to `dst`, if it is one.
fn esp_offset(f: &[u8], dst: Ipv4Addr) -> Option<usize> {
    if f.len() < ETH_HDR + 20 || f[12..14] != [0x08, 0x00] {
        return None;
    }
    let ip = &f[ETH_HDR..];
    let ihl = usize::from(ip[0] & 0x0f) * 4;
    if ip[0] >> 4 != 4 || ihl < 20 || ip[9] != libc::IPPROTO_ESP as u8 || ip[16..20] != dst.octets()
    {
        return None;
    }
    // SPI + sequence number + at least an IV and an ICV.
    (f.len() >= ETH_HDR + ihl + 8 + 8 + 16).then_some(ETH_HDR + ihl)
}

pub fn run(o: &InjectOpts) -> io::Result<()> {
    let sock = PacketSocket::bind(&o.ifname)?;
    let mut buf = vec![0u8; 65536];
    let deadline = Instant::now() + o.timeout;
    let (frame, esp) = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::Error::other(format!(
                "no ESP frame to {} seen on {} within {:?}",
                o.dst, o.ifname, o.timeout
            )));
        }
        let Some((n, kind)) = sock.recv(&mut buf, left.as_millis().max(1) as i32)? else {
            continue;
        };
        if kind != PACKET_OUTGOING {
            continue;
        }
        if let Some(off) = esp_offset(&buf[..n], o.dst) {
            break (buf[..n].to_vec(), off);
        }
    };
    let spi = u32::from_be_bytes(frame[esp..esp + 4].try_into().unwrap_or_default());
    let seq = u32::from_be_bytes(frame[esp + 4..esp + 8].try_into().unwrap_or_default());
    let mut out = frame.clone();
    out[..6].copy_from_slice(&o.mac);
    if o.mode == Mode::Tamper {
        // A byte of the encrypted payload, just before the 16-byte ICV.
        let at = out.len() - 16 - 4;
        out[at] ^= 0x5a;
    }
    std::thread::sleep(o.delay);
    for _ in 0..o.copies {
        sock.send(&out)?;
    }
    println!(
        "INJECT_SENT mode={} spi={spi:#x} seq={seq} copies={} len={}",
        if o.mode == Mode::Tamper {
            "tamper"
        } else {
            "replay"
        },
        o.copies,
        out.len()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Ethernet + 20-byte IPv4 header (protocol `proto`, to `dst`) + `payload` bytes.
    fn frame(proto: u8, dst: [u8; 4], payload: usize) -> Vec<u8> {
        let mut f = vec![0u8; ETH_HDR + 20 + payload];
        f[12..14].copy_from_slice(&[0x08, 0x00]);
        f[ETH_HDR] = 0x45;
        f[ETH_HDR + 9] = proto;
        f[ETH_HDR + 16..ETH_HDR + 20].copy_from_slice(&dst);
        f
    }

    #[test]
    fn finds_esp_to_the_destination_only() {
        let dst = Ipv4Addr::new(192, 0, 2, 2);
        assert_eq!(esp_offset(&frame(50, [192, 0, 2, 2], 64), dst), Some(34));
        assert_eq!(esp_offset(&frame(50, [192, 0, 2, 9], 64), dst), None);
        assert_eq!(esp_offset(&frame(17, [192, 0, 2, 2], 64), dst), None);
        // Too short for SPI, sequence number, IV and ICV.
        assert_eq!(esp_offset(&frame(50, [192, 0, 2, 2], 20), dst), None);
        let mut v6 = frame(50, [192, 0, 2, 2], 64);
        v6[12..14].copy_from_slice(&[0x86, 0xdd]);
        assert_eq!(esp_offset(&v6, dst), None);
    }

    #[test]
    fn parses_options_and_refuses_bad_ones() {
        let a = |s: &str| s.split_whitespace().map(String::from).collect::<Vec<_>>();
        let o = InjectOpts::parse(&a(
            "--ifname t0 --dst 192.0.2.2 --mac 02:00:00:00:00:02 --mode tamper --copies 2",
        ))
        .unwrap();
        assert_eq!(o.mode, Mode::Tamper);
        assert_eq!(o.mac, [2, 0, 0, 0, 0, 2]);
        assert_eq!(o.copies, 2);
        assert!(InjectOpts::parse(&a("--ifname t0 --dst 192.0.2.2")).is_err());
        assert!(parse_mac("02:00:00:00:00").is_err());
        assert!(parse_mac("02:00:00:00:00:zz").is_err());
        let e = InjectOpts::parse(&a(
            "--ifname t0 --dst 192.0.2.2 --mac 02:00:00:00:00:02 --copies 0",
        ))
        .unwrap_err();
        assert!(e.contains("--copies"), "{e}");
    }
}
