//! The fuzz body shared by `fuzz/` (cargo-fuzz) and a stable unit test: arbitrary bytes become
//! a sequence of descriptor chains — well-formed, hostile, or raw descriptor-table garbage —
//! with arbitrary request bytes, driven through an activated device over 1 MiB of guest memory.
//! It checks that the device never panics, answers every well-formed chain with exactly one
//! used entry, never reports more bytes than the chain could hold, and keeps working.

use std::sync::Arc;

use vm_memory::endian::{Le32, Le64};
use vm_memory::{ByteValued, Bytes, GuestAddress, GuestMemoryMmap};

use super::mock_driver::MockDriver;
use super::protocol::*;
use super::{Accel, AccelConfig, SoftwareAccelerator};
use crate::test_utils::CountingInterrupt;
use crate::virtio::{ActivationContext, VIRTIO_F_EVENT_IDX, VIRTIO_F_VERSION_1, VirtioDevice};

const MEM: u64 = 1 << 20;
const DATA: u64 = 0x8_0000;
const QSIZE: u16 = 16;

/// Consumes input bytes.
struct Input<'a>(&'a [u8]);

impl Input<'_> {
    fn byte(&mut self) -> Option<u8> {
        let (b, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(*b)
    }
    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes([
            self.byte()?,
            self.byte()?,
            self.byte()?,
            self.byte()?,
        ]))
    }
    fn take(&mut self, n: usize) -> &[u8] {
        let n = n.min(self.0.len());
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        a
    }
}

const OPCODES: [u32; 6] = [
    OP_ENCRYPT,
    OP_DECRYPT,
    OP_COMPRESS,
    OP_DECOMPRESS,
    OP_ESP_ENCAP,
    OP_ESP_DECAP,
];

/// Runs one fuzz input and returns the device's counters. Panics only if an invariant of the
/// device is broken.
pub fn run(data: &[u8]) -> Vec<(&'static str, u64)> {
    let mem = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), MEM as usize)]).expect("memory");
    let backend = Arc::new(SoftwareAccelerator::new(0).expect("backend"));
    let cfg = AccelConfig {
        crypto_queues: 1,
        comp_queues: 1,
        ipsec_queues: 1,
        queue_size: QSIZE,
        max_sessions: 4,
        max_sas: 4,
        max_data_size: 64 << 10,
        tenant: 0,
        max_inflight_bytes: 1 << 20,
    };
    let mut dev = Accel::new(backend, cfg).expect("device");
    let n = dev.layout().num_queues();
    let (mut drv, queues) = MockDriver::new(&mem, n, QSIZE);
    let mut inp = Input(data);
    let features = (1u64 << VIRTIO_F_VERSION_1)
        | 0xf
        | if inp.byte().unwrap_or(0) & 1 == 1 {
            1 << VIRTIO_F_EVENT_IDX
        } else {
            0
        };
    let ctx = ActivationContext {
        mem: mem.clone(),
        acked_features: features,
        queues,
        interrupt: Arc::new(CountingInterrupt::default()),
    };
    let mut handler = VirtioDevice::<GuestMemoryMmap>::activate(&mut dev, ctx).expect("activate");
    let completion = handler.fds().len() - 1;
    // A session and a key so that requests can get past the session lookup.
    let mut key = CryptoKey {
        algo: Le32::from(CRYPTO_AES_GCM),
        key_len: Le32::from(16),
        key: [0; 32],
    };
    key.key[..16].fill(7);
    let ctrl = [
        CtrlHdr {
            opcode: Le32::from(CTRL_CREATE_SESSION),
            reserved: Le32::from(0),
        }
        .as_slice(),
        key.as_slice(),
    ]
    .concat();
    mem.write_slice(&ctrl, GuestAddress(DATA)).expect("write");
    drv.push(
        0,
        &[(DATA, ctrl.len() as u32, false), (DATA + 0x100, 16, true)],
    );
    drv.notify(0);
    handler.handle(0);
    assert_eq!(drv.used(0).len(), 1);

    let mut cursor = DATA + 0x1000;
    for _ in 0..32 {
        let Some(kind) = inp.byte() else { break };
        let q = (inp.byte().unwrap_or(0) as usize % n) as u16;
        match kind % 4 {
            // A chain of well-formed descriptors over request bytes partly made up by the input.
            0 | 1 => {
                let mut req = Vec::new();
                if kind & 0x10 != 0 {
                    let op = OPCODES[inp.byte().unwrap_or(0) as usize % OPCODES.len()];
                    let n = inp.byte().unwrap_or(0) as usize * 8;
                    let body = inp.take(n).to_vec();
                    let hdr = DataHdr {
                        opcode: Le32::from(op),
                        handle: Le64::from(inp.byte().unwrap_or(1) as u64 % 3),
                        algo: Le32::from(inp.byte().unwrap_or(0) as u32 % 4),
                        src_len: Le32::from(body.len() as u32),
                        tag_len: Le32::from(if op < OP_COMPRESS { 16 } else { 0 }),
                        iv_len: Le32::from(if op < OP_COMPRESS { IV_LEN } else { 0 }),
                        ..Default::default()
                    };
                    req.extend_from_slice(hdr.as_slice());
                    req.extend_from_slice(&body);
                } else {
                    let n = inp.byte().unwrap_or(0) as usize;
                    req.extend_from_slice(inp.take(n));
                }
                let rlen = req.len() as u64;
                if cursor + rlen + 0x1_0000 > MEM {
                    cursor = DATA + 0x1000;
                }
                mem.write_slice(&req, GuestAddress(cursor)).expect("write");
                let mut descs = Vec::new();
                // Readable split at an input-chosen point, then writable pieces.
                let cut = (inp.byte().unwrap_or(0) as u64).min(rlen);
                if cut > 0 {
                    descs.push((cursor, cut as u32, false));
                }
                if rlen > cut {
                    descs.push((cursor + cut, (rlen - cut) as u32, false));
                }
                let out = cursor + rlen.next_multiple_of(64);
                let mut off = 0;
                for _ in 0..(inp.byte().unwrap_or(1) % 4) {
                    let len = inp.byte().unwrap_or(64) as u64 * 64;
                    descs.push((out + off, len as u32, true));
                    off += len;
                }
                if kind & 0x20 != 0 && !descs.is_empty() {
                    // Hostile address or length in one descriptor.
                    let i = inp.byte().unwrap_or(0) as usize % descs.len();
                    let a = inp.u32().unwrap_or(0) as u64;
                    descs[i].0 = if kind & 0x40 != 0 {
                        MEM - (a & 0xff)
                    } else {
                        a << 12
                    };
                    descs[i].1 = inp.u32().unwrap_or(u32::MAX);
                }
                if kind & 0x80 != 0 && descs.len() > 1 {
                    let last = descs.len() - 1;
                    descs.swap(0, last); // writable before readable
                }
                cursor = out + off + 64;
                if descs.is_empty() {
                    continue;
                }
                let cap: u64 = descs.iter().filter(|d| d.2).map(|d| d.1 as u64).sum();
                drv.push(q, &descs);
                drv.notify(q);
                handler.handle(q as usize);
                let used = drv.used(q);
                assert_eq!(used.len(), 1, "every chain gets exactly one used entry");
                assert!(used[0].1 as u64 <= cap, "used len beyond the writable area");
            }
            // Raw descriptor-table garbage: loops, bad next indices, indirect tables.
            2 => {
                let mut raw = Vec::new();
                for _ in 0..(inp.byte().unwrap_or(1) % 6 + 1) {
                    let addr = (inp.u32().unwrap_or(0) as u64) << (inp.byte().unwrap_or(0) % 24);
                    let len = inp.u32().unwrap_or(0) >> (inp.byte().unwrap_or(0) % 32);
                    let flags = inp.byte().unwrap_or(0) as u16 & 7;
                    let next = inp.byte().unwrap_or(0) as u16 % (QSIZE + 2);
                    raw.push((addr, len, flags, next));
                }
                let head = inp.byte().unwrap_or(0) as u16 % (QSIZE + 1);
                drv.push_raw(q, &raw, head);
                drv.notify(q);
                handler.handle(q as usize);
                let _ = drv.used(q);
                // An invalid head may stay at the front of the ring (virtio-queue refuses it
                // without consuming it), so stop counting used entries per chain from here.
                break;
            }
            // A spurious completion wakeup.
            _ => {
                let _ = handler.fds();
                handler.handle(completion);
            }
        }
    }
    handler.handle(completion);
    dev.metrics().snapshot()
}

#[cfg(test)]
mod tests {
    /// The fuzz body over pseudo-random inputs, on stable Rust (cargo-fuzz needs nightly).
    #[test]
    fn fuzz_body_on_pseudo_random_inputs() {
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let mut totals = std::collections::BTreeMap::new();
        for i in 0..3000 {
            let len = (next() % 600) as usize;
            let mut input: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            // Bias a third of the inputs towards well-formed headers.
            if i % 3 == 0 {
                for b in input.iter_mut().step_by(7) {
                    *b |= 0x10;
                    *b &= !0xA0;
                }
            }
            for (k, v) in super::run(&input) {
                *totals.entry(k).or_insert(0) += v;
            }
        }
        // The inputs reach every layer: successes, parse errors and each kind of bad chain.
        for k in [
            "requests_ok",
            "bad_request",
            "not_supported",
            "no_session",
            "bad_address",
            "bad_direction",
            "dropped_no_trailer",
        ] {
            assert!(totals[k] > 0, "{k} never hit: {totals:?}");
        }
    }
}
