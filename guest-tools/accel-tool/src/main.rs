//! accel-tool: the guest-side tool for the virtio-accel device (static binary in the guest
//! image). `info`, `stats`, `selftest`, `bench`, `kcomp`, the sharing-test
//! load/latency/handle commands, the full-offload IPsec `gateway`, and
//! `esp-inject` (a test helper for the peer side); see `accel-tool help`.

mod afalg;
mod bench;
mod dev;
mod gateway;
mod inject;
mod netio;
mod selftest;
mod share;
mod skcipher;
mod uapi;
mod util;

use std::process::ExitCode;
use std::time::Duration;

use dev::AccelDev;

const USAGE: &str = "usage: accel-tool [-d N] COMMAND
  info                  device information and the crypto API drivers
  stats                 driver statistics of /dev/virtio-accel<N>
  smoke                 one quick AF_ALG + char device check
  selftest              known-answer and cross-checks (AF_ALG, char device, kernel acomp)
  bench [--time-ms T] [--sizes a,b,..] [--batch B] [--aead-only|--comp-only]
        [--afalg-skcipher NAME --driver DRIVER]
                        device vs guest software; with --afalg-skcipher only that skcipher
                        driver through AF_ALG (e.g. cbc(aes) virtio_crypto_aes_cbc: QEMU's
                        virtio-crypto), one request at a time; no virtio-accel device needed
  skcipher-kat --driver DRIVER [--name cbc(aes)] [--reference cbc(aes-generic)]
                        NIST CBC-AES128 vectors through DRIVER, and random requests against the
                        software reference (exit 1 on a mismatch)
  kcomp ALG compress|decompress INFILE OUTFILE
                        one (de)compression through the in-kernel acomp API
  gateway --tun IF --local A --remote B --spi-out X --spi-in Y --key-out HEX --key-in HEX
          [--icv 16] [--replay-window 64] [--batch 64] [--stats-file PATH]
                        full-offload IPsec tunnel (IPv4, ESP AES-GCM, tunnel mode): TUN <-> device
                        <-> raw ESP socket; keys are AES key + 4-byte salt as for `ip xfrm`.
                        SIGUSR1 removes the SAs, SIGTERM stops and prints the counters
  esp-inject --ifname IF --dst A --mac MAC --mode replay|tamper [--copies N] [--delay-ms D]
          [--timeout-ms T]
                        (peer side, for tests) re-send the next ESP frame sent to A on IF,
                        unchanged or with one ciphertext byte flipped, to MAC
  load [--op deflate|gcm] [--size N] [--threads T] [--batch B] [--secs S] [--level 1-9]
                        (sharing tests) T threads keep a batch of B requests in flight for S s
                        (default deflate 65536 B, 1 thread, batch 8, 10 s); every answer is
                        compared with a device-verified reference. Prints LOAD_DONE ok= wrong=
  latency [--op gcm|deflate] [--size N] [--secs S] [--window-ms W]
                        one request at a time (default gcm 1024 B, 10 s), answers checked;
                        prints LATENCY n= p50_us= p90_us= p99_us= max_us=, and every W ms
                        LATWIN n= h=i:count,... (bucket i: 50 us x 1.15^i and up)
  hold-session SECS     creates a session, prints HELD_HANDLE=, checks it still works after SECS
  probe-handles TENANTS LOW
                        uses every other tenant's handle (tenant << 32 | 1..LOW, tenants 1..TENANTS):
                        each must get NO_SESSION and be impossible to destroy
options: -d N selects /dev/virtio-accelN (default 0)";

fn info(index: u32) -> std::io::Result<()> {
    let d = AccelDev::open(index)?;
    let i = d.info()?;
    println!("device        {}", d.path);
    println!(
        "services      {:#x} (crypto {} compression {} ipsec {})",
        i.services,
        i.services & 1 != 0,
        i.services & 2 != 0,
        i.services & 4 != 0
    );
    println!(
        "algorithms    crypto {:#x} compression {:#x} ipsec {:#x}",
        i.crypto_algos, i.comp_algos, i.ipsec_algos
    );
    println!(
        "queues        crypto {} compression {} ipsec {}",
        i.crypto_queues, i.comp_queues, i.ipsec_queues
    );
    println!(
        "limits        sessions {} sas {} data {} key {}",
        i.max_sessions, i.max_sas, i.max_data_size, i.max_key_len
    );
    println!("features      {:#x}", i.features);
    for e in util::proc_crypto()
        .iter()
        .filter(|e| e.driver.starts_with("virtio_accel"))
    {
        println!(
            "crypto api    {:<20} {:<30} priority {} selftest {} refcnt {}",
            e.name, e.driver, e.priority, e.selftest, e.refcnt
        );
    }
    Ok(())
}

fn stats(index: u32) -> std::io::Result<()> {
    let s = AccelDev::open(index)?.stats()?;
    for (i, n) in uapi::STAT_NAMES.iter().enumerate() {
        println!(
            "{n:<11} ops {:>10} errors {:>8} bytes_in {:>14} bytes_out {:>14}",
            s.ops[i], s.errors[i], s.bytes_in[i], s.bytes_out[i]
        );
    }
    println!(
        "api_ops {} chardev_ops {} auth_failures {} backlogged {} rejected_busy {} ctrl_ops {} sessions_live {} sas_live {}",
        s.api_ops,
        s.chardev_ops,
        s.auth_failures,
        s.backlogged,
        s.rejected_busy,
        s.ctrl_ops,
        s.sessions_live,
        s.sas_live
    );
    Ok(())
}

fn kcomp(index: u32, args: &[String]) -> std::io::Result<()> {
    let [alg, dir, inf, outf] = args else {
        return Err(std::io::Error::other(USAGE));
    };
    let data = std::fs::read(inf)?;
    let decompress = match dir.as_str() {
        "compress" => false,
        "decompress" => true,
        _ => return Err(std::io::Error::other(USAGE)),
    };
    let cap = if decompress {
        128 << 10
    } else {
        data.len() + data.len() / 8 + 1024
    };
    let (out, driver, _) = AccelDev::open(index)?.kcomp(alg, decompress, &data, cap, 1)?;
    std::fs::write(outf, &out)?;
    println!("{alg}: {} -> {} bytes by {driver}", data.len(), out.len());
    Ok(())
}

fn parse_bench(args: &[String]) -> Result<bench::BenchOpts, String> {
    let mut o = bench::BenchOpts::default();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut val = || it.next().ok_or(format!("{a} needs a value"));
        match a.as_str() {
            "--time-ms" => {
                let ms: u64 = val()?.parse().map_err(|e| format!("--time-ms: {e}"))?;
                o.time = Duration::from_millis(ms);
            }
            "--sizes" => {
                o.sizes = val()?
                    .split(',')
                    .map(|s| s.parse::<usize>().map_err(|e| format!("--sizes: {e}")))
                    .collect::<Result<_, _>>()?;
                if o.sizes.iter().any(|&s| s == 0 || s > 128 << 10) {
                    return Err("--sizes: each size must be 1..=131072".into());
                }
            }
            "--batch" => {
                o.batch = val()?.parse().map_err(|e| format!("--batch: {e}"))?;
                if o.batch == 0 || o.batch > uapi::MAX_BATCH {
                    return Err(format!("--batch: 1..={}", uapi::MAX_BATCH));
                }
            }
            "--afalg-skcipher" => {
                let name = val()?.clone();
                let driver = o.skcipher.take().map(|(_, d)| d).unwrap_or_default();
                o.skcipher = Some((name, driver));
            }
            "--driver" => {
                let driver = val()?.clone();
                let name = o.skcipher.take().map(|(n, _)| n).unwrap_or_default();
                o.skcipher = Some((name, driver));
            }
            "--aead-only" => o.comp = false,
            "--comp-only" => o.aead = false,
            other => return Err(format!("unknown bench option {other}")),
        }
    }
    if let Some((name, driver)) = &o.skcipher
        && (name.is_empty() || driver.is_empty())
    {
        return Err("--afalg-skcipher NAME and --driver DRIVER go together".into());
    }
    Ok(o)
}

fn skcipher_kat(args: &[String]) -> Result<bool, String> {
    let (mut name, mut driver, mut reference) =
        ("cbc(aes)".to_string(), None, "cbc(aes-generic)".to_string());
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let v = it.next().ok_or(format!("{a} needs a value"))?.clone();
        match a.as_str() {
            "--name" => name = v,
            "--driver" => driver = Some(v),
            "--reference" => reference = v,
            other => return Err(format!("unknown skcipher-kat option {other}")),
        }
    }
    let driver = driver.ok_or("skcipher-kat needs --driver DRIVER")?;
    if name != "cbc(aes)" {
        return Err(format!(
            "skcipher-kat knows cbc(aes) vectors only, not {name}"
        ));
    }
    skcipher::kat(&name, &driver, &reference).map_err(|e| e.to_string())
}

/// The sharing commands: exit 1 when a check failed, 2 on bad usage.
fn share_cmd(index: u32, cmd: &str, rest: &[String]) -> ExitCode {
    let num = |i: usize| rest.get(i).and_then(|s| s.parse::<u64>().ok());
    let r = match cmd {
        "load" | "latency" => match share::ShareOpts::parse(rest, cmd == "latency") {
            Ok(o) if cmd == "load" => share::load(index, &o),
            Ok(o) => share::latency(index, &o),
            Err(e) => {
                eprintln!("accel-tool: {e}\n{USAGE}");
                return ExitCode::from(2);
            }
        },
        "hold-session" if rest.len() == 1 && num(0).is_some() => {
            share::hold_session(index, num(0).unwrap_or(0))
        }
        "probe-handles" if rest.len() == 2 && num(0).is_some() && num(1).is_some() => {
            let n = |i| num(i).unwrap_or(0).min(u64::from(u32::MAX)) as u32;
            share::probe_handles(index, n(0), n(1))
        }
        _ => {
            eprintln!("accel-tool: bad arguments for {cmd}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match r {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("accel-tool: {cmd}: {e}");
            ExitCode::from(1)
        }
    }
}

fn main() -> ExitCode {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let mut index = 0;
    if args.first().map(String::as_str) == Some("-d") {
        match args.get(1).and_then(|s| s.parse().ok()) {
            Some(n) => index = n,
            None => {
                eprintln!("{USAGE}");
                return ExitCode::from(2);
            }
        }
        args.drain(..2);
    }
    let Some(cmd) = args.first().cloned() else {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    };
    let rest = &args[1..];
    let r = match cmd.as_str() {
        "info" => info(index),
        "stats" => stats(index),
        "selftest" => match selftest::run(index) {
            Ok(true) => Ok(()),
            Ok(false) => return ExitCode::from(1),
            Err(e) => Err(e),
        },
        "bench" => match parse_bench(rest) {
            Ok(o) => bench::run(index, &o),
            Err(e) => {
                eprintln!("accel-tool: {e}\n{USAGE}");
                return ExitCode::from(2);
            }
        },
        "kcomp" => kcomp(index, rest),
        "skcipher-kat" => match skcipher_kat(rest) {
            Ok(true) => Ok(()),
            Ok(false) => return ExitCode::from(1),
            Err(e) => {
                eprintln!("accel-tool: {e}");
                return ExitCode::from(1);
            }
        },
        "gateway" => match gateway::GatewayOpts::parse(rest) {
            Ok(o) => gateway::run(index, o),
            Err(e) => {
                eprintln!("accel-tool: {e}\n{USAGE}");
                return ExitCode::from(2);
            }
        },
        "esp-inject" => match inject::InjectOpts::parse(rest) {
            Ok(o) => inject::run(&o),
            Err(e) => {
                eprintln!("accel-tool: {e}\n{USAGE}");
                return ExitCode::from(2);
            }
        },
        "smoke" => selftest::smoke(index),
        "load" | "latency" | "hold-session" | "probe-handles" => {
            return share_cmd(index, &cmd, rest);
        }
        "help" | "-h" | "--help" => {
            println!("{USAGE}");
            Ok(())
        }
        other => {
            eprintln!("accel-tool: unknown command {other}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("accel-tool: {e}");
            ExitCode::from(1)
        }
    }
}
