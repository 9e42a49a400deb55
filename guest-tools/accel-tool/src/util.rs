//! Small helpers: hex, a deterministic PRNG for test data, /proc/crypto parsing.

use std::fs;

pub fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("valid hex literal"))
        .collect()
}

pub fn to_hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// xorshift64*: reproducible test data without a dependency.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next_u64() as u8).collect()
    }
}

/// Compressible data that looks like text/logs (words from a small vocabulary).
pub fn text_like(n: usize, seed: u64) -> Vec<u8> {
    const WORDS: [&str; 16] = [
        "virtio ", "accel ", "queue ", "packet ", "the ", "crypto ", "session ", "device ",
        "guest ", "host ", "0x1f2e ", "ESP ", "tunnel\n", "lz4 ", "deflate ", "offload ",
    ];
    let mut r = Rng::new(seed);
    let mut v = Vec::with_capacity(n + 16);
    while v.len() < n {
        v.extend_from_slice(WORDS[(r.next_u64() % 16) as usize].as_bytes());
    }
    v.truncate(n);
    v
}

/// One /proc/crypto entry (the fields we use).
#[derive(Clone, Debug, Default)]
pub struct CryptoEntry {
    pub name: String,
    pub driver: String,
    pub priority: i64,
    pub selftest: String,
    pub refcnt: i64,
}

pub fn proc_crypto() -> Vec<CryptoEntry> {
    let text = fs::read_to_string("/proc/crypto").unwrap_or_default();
    let mut out = Vec::new();
    let mut cur = CryptoEntry::default();
    for line in text.lines().chain(std::iter::once("")) {
        if line.trim().is_empty() {
            if !cur.name.is_empty() {
                out.push(std::mem::take(&mut cur));
            }
            continue;
        }
        let Some((k, v)) = line.split_once(':') else {
            continue;
        };
        let v = v.trim().to_string();
        match k.trim() {
            "name" => cur.name = v,
            "driver" => cur.driver = v,
            "priority" => cur.priority = v.parse().unwrap_or(0),
            "selftest" => cur.selftest = v,
            "refcnt" => cur.refcnt = v.parse().unwrap_or(0),
            _ => {}
        }
    }
    out
}

/// The driver the crypto API picks for `name`: the tested entry with the highest priority.
pub fn best_driver(entries: &[CryptoEntry], name: &str) -> Option<CryptoEntry> {
    entries
        .iter()
        .filter(|e| e.name == name && e.selftest == "passed")
        .max_by_key(|e| e.priority)
        .cloned()
}
