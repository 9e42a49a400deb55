//! `accel-tool gateway`: an IPsec tunnel gateway whose whole ESP processing runs on the device.
//! Inner packets read from a TUN interface are encapsulated by the device with the outbound SA
//! and sent out as complete IP packets (raw socket); ESP packets received on a raw IPPROTO_ESP
//! socket are decapsulated and verified by the device (ICV, anti-replay) and written back to
//! the TUN. Both directions go through one batch ioctl per poll round. The SAs belong to the
//! gateway's open char device: SIGUSR1 removes them (traffic then stops), SIGTERM/SIGINT end it.
//! Counters are rewritten to `--stats-file` as `GW_<NAME>=<n>` lines several times a second.

use std::io::{self, Write};
use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::dev::{AccelDev, DataOp};
use crate::netio;
use crate::uapi::{self, Sa, status};

/// ESP over IPv4 with AES-GCM adds at most: outer IPv4 header 20, ESP header 8, IV 8,
/// padding 3, pad length + next header 2, ICV 16.
const ENCAP_OVERHEAD: usize = 64;
/// Largest packet the gateway reads from either side (jumbo-sized inner MTUs are refused by
/// the device's max_data_size anyway).
const MAX_PACKET: usize = 9216;
/// How often the statistics file is rewritten.
const STATS_INTERVAL: Duration = Duration::from_millis(200);

static STOP: AtomicBool = AtomicBool::new(false);
static REMOVE_SAS: AtomicBool = AtomicBool::new(false);

extern "C" fn on_stop(_: libc::c_int) {
    STOP.store(true, Ordering::Relaxed);
}

extern "C" fn on_remove(_: libc::c_int) {
    REMOVE_SAS.store(true, Ordering::Relaxed);
}

#[derive(Clone, Debug)]
pub struct GatewayOpts {
    pub tun: String,
    pub local: Ipv4Addr,
    pub remote: Ipv4Addr,
    pub spi_out: u32,
    pub spi_in: u32,
    /// AES key followed by the 4-byte RFC 4106 salt (as `ip xfrm ... aead` takes it).
    pub key_out: Vec<u8>,
    pub key_in: Vec<u8>,
    pub icv_len: u8,
    pub replay_window: u32,
    pub batch: usize,
    pub stats_file: Option<String>,
}

fn parse_u32(s: &str) -> Result<u32, String> {
    let r = match s.strip_prefix("0x") {
        Some(h) => u32::from_str_radix(h, 16),
        None => s.parse(),
    };
    r.map_err(|e| format!("{s:?}: {e}"))
}

fn parse_key(s: &str) -> Result<Vec<u8>, String> {
    let h = s.strip_prefix("0x").unwrap_or(s);
    if !h.len().is_multiple_of(2) || !h.bytes().all(|c| c.is_ascii_hexdigit()) {
        return Err(format!("key {s:?} is not hex"));
    }
    let k: Vec<u8> = (0..h.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&h[i..i + 2], 16).unwrap_or(0))
        .collect();
    if k.len() != 20 && k.len() != 36 {
        return Err(format!(
            "key of {} bytes: AES-128 or AES-256 key plus 4 salt bytes (20 or 36)",
            k.len()
        ));
    }
    Ok(k)
}

impl GatewayOpts {
    pub fn parse(args: &[String]) -> Result<Self, String> {
        let mut tun = None;
        let mut local = None;
        let mut remote = None;
        let mut spi_out = None;
        let mut spi_in = None;
        let mut key_out = None;
        let mut key_in = None;
        let mut icv_len = 16u8;
        let mut replay_window = 64u32;
        let mut batch = 64usize;
        let mut stats_file = None;
        let mut it = args.iter();
        while let Some(a) = it.next() {
            let v = it.next().ok_or(format!("{a} needs a value"))?;
            let addr = |v: &str| v.parse::<Ipv4Addr>().map_err(|e| format!("{a} {v}: {e}"));
            match a.as_str() {
                "--tun" => tun = Some(v.clone()),
                "--local" => local = Some(addr(v)?),
                "--remote" => remote = Some(addr(v)?),
                "--spi-out" => spi_out = Some(parse_u32(v)?),
                "--spi-in" => spi_in = Some(parse_u32(v)?),
                "--key-out" => key_out = Some(parse_key(v)?),
                "--key-in" => key_in = Some(parse_key(v)?),
                "--icv" => {
                    icv_len = match v.as_str() {
                        "8" => 8,
                        "12" => 12,
                        "16" => 16,
                        _ => return Err("--icv: 8, 12 or 16".into()),
                    }
                }
                "--replay-window" => {
                    replay_window = parse_u32(v)?;
                    if !(32..=4096).contains(&replay_window) {
                        return Err("--replay-window: 32..=4096".into());
                    }
                }
                "--batch" => {
                    batch = v.parse().map_err(|e| format!("--batch: {e}"))?;
                    if batch == 0 || batch > uapi::MAX_BATCH / 2 {
                        return Err(format!("--batch: 1..={}", uapi::MAX_BATCH / 2));
                    }
                }
                "--stats-file" => stats_file = Some(v.clone()),
                other => return Err(format!("unknown gateway option {other}")),
            }
        }
        fn need<T>(o: Option<T>, n: &str) -> Result<T, String> {
            o.ok_or(format!("gateway needs {n}"))
        }
        Ok(GatewayOpts {
            tun: need(tun, "--tun")?,
            local: need(local, "--local")?,
            remote: need(remote, "--remote")?,
            spi_out: need(spi_out, "--spi-out")?,
            spi_in: need(spi_in, "--spi-in")?,
            key_out: need(key_out, "--key-out")?,
            key_in: need(key_in, "--key-in")?,
            icv_len,
            replay_window,
            batch,
            stats_file,
        })
    }
}

/// Builds the char-device SA for one direction of an IPv4 tunnel.
fn sa_for(o: &GatewayOpts, outbound: bool) -> Sa {
    let key = if outbound { &o.key_out } else { &o.key_in };
    let (aes, salt) = key.split_at(key.len() - 4);
    let (src, dst) = if outbound {
        (o.local, o.remote)
    } else {
        (o.remote, o.local)
    };
    let mut sa = Sa {
        spi: if outbound { o.spi_out } else { o.spi_in },
        algo: uapi::IPSEC_ESP_AES_GCM,
        direction: if outbound {
            uapi::SA_DIR_OUTBOUND
        } else {
            uapi::SA_DIR_INBOUND
        },
        mode: uapi::SA_MODE_TUNNEL,
        family: uapi::SA_FAMILY_IPV4,
        icv_len: o.icv_len,
        key_len: aes.len() as u32,
        replay_window: o.replay_window,
        ..Default::default()
    };
    sa.salt.copy_from_slice(salt);
    sa.tunnel_src[..4].copy_from_slice(&src.octets());
    sa.tunnel_dst[..4].copy_from_slice(&dst.octets());
    sa.key[..aes.len()].copy_from_slice(aes);
    sa
}

/// What happened to the packets, by outcome.
#[derive(Default, Debug)]
struct Counters {
    tun_rx: u64,
    esp_rx: u64,
    encap_ok: u64,
    decap_ok: u64,
    auth_failed: u64,
    replay: u64,
    no_sa: u64,
    other_status: u64,
    batch_errors: u64,
    send_errors: u64,
    batches: u64,
    max_batch: u64,
    foreign_esp: u64,
}

/// Per-SA counters as the device reports them (QUERY_SA), while the SAs exist.
#[derive(Default, Debug)]
struct SaCounters {
    out_packets: u64,
    in_packets: u64,
    in_auth_failures: u64,
    in_replay_drops: u64,
    in_malformed: u64,
    in_last_seq: u64,
}

struct Gateway {
    opts: GatewayOpts,
    dev: AccelDev,
    tun: std::os::fd::OwnedFd,
    rx: std::os::fd::OwnedFd,
    tx: std::os::fd::OwnedFd,
    sa_out: u64,
    sa_in: u64,
    sas_removed: bool,
    c: Counters,
    sa: SaCounters,
}

impl Gateway {
    /// True for an IPv4 ESP packet from the remote peer to us (the raw socket sees all ESP).
    fn ours(&self, p: &[u8]) -> bool {
        p.len() >= 20
            && p[0] >> 4 == 4
            && p[12..16] == self.opts.remote.octets()
            && p[16..20] == self.opts.local.octets()
    }

    /// One poll round: gathers what both sides have (up to `batch` each), runs it as one
    /// batch on the device, and forwards the results.
    fn round(&mut self, tun_ready: bool, esp_ready: bool) -> io::Result<()> {
        let mut ops = Vec::new();
        let mut buf = vec![0u8; MAX_PACKET];
        if tun_ready {
            while ops.len() < self.opts.batch {
                let Some(n) = netio::read_nb(self.tun.as_raw_fd(), &mut buf)? else {
                    break;
                };
                self.c.tun_rx += 1;
                ops.push(DataOp {
                    opcode: uapi::op::ESP_ENCAP,
                    handle: self.sa_out,
                    src: buf[..n].to_vec(),
                    dst: vec![0u8; n + ENCAP_OVERHEAD],
                    ..Default::default()
                });
            }
        }
        let encaps = ops.len();
        if esp_ready {
            while ops.len() < encaps + self.opts.batch {
                let Some(n) = netio::read_nb(self.rx.as_raw_fd(), &mut buf)? else {
                    break;
                };
                if !self.ours(&buf[..n]) {
                    self.c.foreign_esp += 1;
                    continue;
                }
                self.c.esp_rx += 1;
                ops.push(DataOp {
                    opcode: uapi::op::ESP_DECAP,
                    handle: self.sa_in,
                    src: buf[..n].to_vec(),
                    dst: vec![0u8; n],
                    ..Default::default()
                });
            }
        }
        if ops.is_empty() {
            return Ok(());
        }
        self.c.batches += 1;
        self.c.max_batch = self.c.max_batch.max(ops.len() as u64);
        if let Err(e) = self.dev.batch(&mut ops) {
            // After SA removal the driver refuses unknown handles for the whole batch.
            self.c.batch_errors += ops.len() as u64;
            if !self.sas_removed {
                eprintln!("accel-tool gateway: batch of {}: {e}", ops.len());
            }
            return Ok(());
        }
        for (i, o) in ops.iter().enumerate() {
            let encap = i < encaps;
            match o.status {
                status::OK if encap => {
                    self.c.encap_ok += 1;
                    if netio::send_ip(&self.tx, &o.dst, self.opts.remote).is_err() {
                        self.c.send_errors += 1;
                    }
                }
                status::OK => {
                    self.c.decap_ok += 1;
                    if netio::write_packet(self.tun.as_raw_fd(), &o.dst).is_err() {
                        self.c.send_errors += 1;
                    }
                }
                status::AUTH_FAILED => self.c.auth_failed += 1,
                status::REPLAY => self.c.replay += 1,
                status::NO_SESSION => self.c.no_sa += 1,
                _ => self.c.other_status += 1,
            }
        }
        Ok(())
    }

    fn remove_sas(&mut self) {
        if self.sas_removed {
            return;
        }
        self.refresh_sa_counters();
        for h in [self.sa_out, self.sa_in] {
            if let Err(e) = self.dev.sa_remove(h) {
                eprintln!("accel-tool gateway: removing SA {h:#x}: {e}");
            }
        }
        self.sas_removed = true;
        println!("GATEWAY_SAS_REMOVED");
    }

    fn refresh_sa_counters(&mut self) {
        if self.sas_removed {
            return;
        }
        if let Ok(q) = self.dev.sa_query(self.sa_out) {
            self.sa.out_packets = q.packets;
        }
        if let Ok(q) = self.dev.sa_query(self.sa_in) {
            self.sa.in_packets = q.packets;
            self.sa.in_auth_failures = q.auth_failures;
            self.sa.in_replay_drops = q.replay_drops;
            self.sa.in_malformed = q.malformed;
            self.sa.in_last_seq = q.last_seq;
        }
    }

    fn report(&mut self) -> String {
        self.refresh_sa_counters();
        let c = &self.c;
        let s = &self.sa;
        let pairs: [(&str, u64); 20] = [
            ("TUN_RX", c.tun_rx),
            ("ESP_RX", c.esp_rx),
            ("ENCAP_OK", c.encap_ok),
            ("DECAP_OK", c.decap_ok),
            ("AUTH_FAILED", c.auth_failed),
            ("REPLAY", c.replay),
            ("NO_SA", c.no_sa),
            ("OTHER_STATUS", c.other_status),
            ("BATCH_ERRORS", c.batch_errors),
            ("SEND_ERRORS", c.send_errors),
            ("BATCHES", c.batches),
            ("MAX_BATCH", c.max_batch),
            ("FOREIGN_ESP", c.foreign_esp),
            ("SAS_REMOVED", self.sas_removed as u64),
            ("SA_OUT_PACKETS", s.out_packets),
            ("SA_IN_PACKETS", s.in_packets),
            ("SA_IN_AUTH_FAILURES", s.in_auth_failures),
            ("SA_IN_REPLAY_DROPS", s.in_replay_drops),
            ("SA_IN_MALFORMED", s.in_malformed),
            ("SA_IN_LAST_SEQ", s.in_last_seq),
        ];
        pairs.iter().map(|(k, v)| format!("GW_{k}={v}\n")).collect()
    }

    fn write_stats(&mut self) -> io::Result<()> {
        let Some(path) = self.opts.stats_file.clone() else {
            return Ok(());
        };
        let text = self.report();
        // Write-then-rename so a reader never sees half a file.
        let tmp = format!("{path}.tmp");
        std::fs::File::create(&tmp)?.write_all(text.as_bytes())?;
        std::fs::rename(&tmp, &path)
    }
}

pub fn run(index: u32, opts: GatewayOpts) -> io::Result<()> {
    let dev = AccelDev::open(index)?;
    let tun = netio::open_tun(&opts.tun)?;
    let rx = netio::raw_rx_socket(libc::IPPROTO_ESP)?;
    let tx = netio::raw_tx_socket()?;
    let sa_out = dev
        .sa_add(&mut sa_for(&opts, true))
        .map_err(|e| io::Error::new(e.kind(), format!("adding the outbound SA: {e}")))?;
    let sa_in = dev
        .sa_add(&mut sa_for(&opts, false))
        .map_err(|e| io::Error::new(e.kind(), format!("adding the inbound SA: {e}")))?;
    // SAFETY: the handlers only store to atomics, which is async-signal-safe.
    unsafe {
        libc::signal(libc::SIGTERM, on_stop as *const () as libc::sighandler_t);
        libc::signal(libc::SIGINT, on_stop as *const () as libc::sighandler_t);
        libc::signal(libc::SIGUSR1, on_remove as *const () as libc::sighandler_t);
    }
    let mut gw = Gateway {
        opts,
        dev,
        tun,
        rx,
        tx,
        sa_out,
        sa_in,
        sas_removed: false,
        c: Counters::default(),
        sa: SaCounters::default(),
    };
    println!(
        "GATEWAY_READY tun={} sa_out={sa_out:#x} sa_in={sa_in:#x}",
        gw.opts.tun
    );
    gw.write_stats()?;
    let mut last = Instant::now();
    while !STOP.load(Ordering::Relaxed) {
        if REMOVE_SAS.load(Ordering::Relaxed) {
            gw.remove_sas();
            gw.write_stats()?;
        }
        let ready = netio::poll_readable(&[gw.tun.as_raw_fd(), gw.rx.as_raw_fd()], 100)?;
        gw.round(ready[0], ready[1])?;
        if last.elapsed() >= STATS_INTERVAL {
            gw.write_stats()?;
            last = Instant::now();
        }
    }
    gw.write_stats()?;
    print!("{}", gw.report());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    const FULL: &str = "--tun tun0 --local 192.0.2.2 --remote 192.0.2.1 --spi-out 0x2002 \
        --spi-in 4097 --key-out 0x000102030405060708090a0b0c0d0e0fa0a1a2a3 \
        --key-in 0x101112131415161718191a1b1c1d1e1fb0b1b2b3";

    #[test]
    fn parses_a_full_command_line_with_defaults() {
        let o = GatewayOpts::parse(&args(FULL)).unwrap();
        assert_eq!((o.spi_out, o.spi_in), (0x2002, 0x1001));
        assert_eq!((o.icv_len, o.replay_window, o.batch), (16, 64, 64));
        assert_eq!(o.key_out.len(), 20);
        assert!(o.stats_file.is_none());
    }

    #[test]
    fn refuses_bad_options_with_the_reason() {
        let err = |extra: &str| GatewayOpts::parse(&args(&format!("{FULL} {extra}"))).unwrap_err();
        assert!(err("--icv 10").contains("8, 12 or 16"));
        assert!(err("--replay-window 8").contains("32..=4096"));
        assert!(err("--batch 0").contains("--batch"));
        assert!(err("--bogus 1").contains("unknown gateway option"));
        assert!(err("--tun").contains("needs a value"));
        assert!(err("--key-in 0x0011").contains("20 or 36"));
        assert!(err("--key-in 0xzz").contains("not hex"));
        assert!(err("--local 300.1.1.1").contains("--local"));
        let e = GatewayOpts::parse(&args("--tun tun0")).unwrap_err();
        assert!(e.contains("gateway needs --local"), "{e}");
    }

    #[test]
    fn sas_split_key_and_salt_and_orient_the_tunnel() {
        let o = GatewayOpts::parse(&args(FULL)).unwrap();
        let out = sa_for(&o, true);
        assert_eq!(out.direction, uapi::SA_DIR_OUTBOUND);
        assert_eq!(out.spi, 0x2002);
        assert_eq!(out.key_len, 16);
        assert_eq!(out.salt, [0xa0, 0xa1, 0xa2, 0xa3]);
        assert_eq!(out.key[..16], o.key_out[..16]);
        assert!(out.key[16..].iter().all(|&b| b == 0));
        assert_eq!(out.tunnel_src[..4], [192, 0, 2, 2]);
        assert_eq!(out.tunnel_dst[..4], [192, 0, 2, 1]);
        let inb = sa_for(&o, false);
        assert_eq!(inb.direction, uapi::SA_DIR_INBOUND);
        assert_eq!(inb.spi, 0x1001);
        assert_eq!(inb.salt, [0xb0, 0xb1, 0xb2, 0xb3]);
        assert_eq!(inb.tunnel_src[..4], [192, 0, 2, 1]);
        assert_eq!(inb.tunnel_dst[..4], [192, 0, 2, 2]);
        assert_eq!(
            (inb.mode, inb.family, inb.icv_len),
            (uapi::SA_MODE_TUNNEL, 4, 16)
        );
    }
}
