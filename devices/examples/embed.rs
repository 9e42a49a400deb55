//! Embedding virtio-accel in another VMM: own guest memory, a hand-rolled "transport" that
//! configures the queues and activates the device, its own interrupt sink and event loop.
//! It then plays the guest driver: creates an AES-256-GCM session on the control queue and
//! encrypts, then decrypts, a message on a crypto data queue.
//!
//! Run: `cargo run -p accelvm-devices --example embed`

use std::os::fd::RawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use accelvm_devices::virtio::accel::protocol::*;
use accelvm_devices::virtio::accel::{Accel, AccelConfig, QueueKind, SoftwareAccelerator};
use accelvm_devices::virtio::{
    ActivatedQueue, ActivationContext, InterruptKind, VIRTIO_F_VERSION_1, VirtioDevice,
    VirtioInterrupt,
};
use virtio_queue::{Queue, QueueT};
use vm_memory::endian::{Le32, Le64};
use vm_memory::{ByteValued, Bytes, GuestAddress, GuestMemoryMmap};
use vmm_sys_util::eventfd::EventFd;

/// This VMM's interrupt controller: it just counts.
#[derive(Default)]
struct CountingInterrupt(AtomicUsize);

impl VirtioInterrupt for CountingInterrupt {
    fn trigger(&self, kind: InterruptKind) -> std::io::Result<()> {
        if let InterruptKind::Queue(q) = kind {
            println!("  interrupt: queue {q}");
        }
        self.0.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

const QSIZE: u16 = 16;

/// Guest-side view of one split ring (what a driver keeps).
struct Ring {
    desc: u64,
    avail: u64,
    used: u64,
    next: u16,
}

impl Ring {
    fn at(base: u64) -> Ring {
        let avail = base + 16 * QSIZE as u64;
        let used = (avail + 6 + 2 * QSIZE as u64).next_multiple_of(4);
        Ring {
            desc: base,
            avail,
            used,
            next: 0,
        }
    }

    /// Publishes a chain: readable buffers, then writable ones.
    fn push(&mut self, mem: &GuestMemoryMmap, bufs: &[(u64, u32, bool)]) {
        let head = self.next % QSIZE;
        for (i, (addr, len, w)) in bufs.iter().enumerate() {
            let slot = (head + i as u16) % QSIZE;
            let flags: u16 = if *w { 2 } else { 0 } | if i + 1 < bufs.len() { 1 } else { 0 };
            let mut d = [0u8; 16];
            d[..8].copy_from_slice(&addr.to_le_bytes());
            d[8..12].copy_from_slice(&len.to_le_bytes());
            d[12..14].copy_from_slice(&flags.to_le_bytes());
            d[14..16].copy_from_slice(&((slot + 1) % QSIZE).to_le_bytes());
            mem.write_slice(&d, GuestAddress(self.desc + 16 * slot as u64))
                .unwrap();
        }
        let idx: u16 = mem.read_obj(GuestAddress(self.avail + 2)).unwrap();
        mem.write_obj(
            head,
            GuestAddress(self.avail + 4 + 2 * (idx % QSIZE) as u64),
        )
        .unwrap();
        mem.write_obj(idx.wrapping_add(1), GuestAddress(self.avail + 2))
            .unwrap();
        self.next = (head + bufs.len() as u16) % QSIZE;
    }

    fn used_idx(&self, mem: &GuestMemoryMmap) -> u16 {
        mem.read_obj(GuestAddress(self.used + 2)).unwrap()
    }
}

/// Waits for any of `fds` with poll(2) and returns the readable indices.
fn wait(fds: &[RawFd]) -> Vec<usize> {
    let mut p: Vec<libc::pollfd> = fds
        .iter()
        .map(|&fd| libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    // SAFETY: `p` is a valid array of `p.len()` pollfds for the duration of the call.
    let n = unsafe { libc::poll(p.as_mut_ptr(), p.len() as libc::nfds_t, 5000) };
    assert!(n > 0, "device did not answer within 5 s");
    p.iter()
        .enumerate()
        .filter(|(_, p)| p.revents & libc::POLLIN != 0)
        .map(|(i, _)| i)
        .collect()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // 1. Guest memory and the device, with a 2-thread software accelerator.
    let mem = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 16 << 20)])?;
    let backend = Arc::new(SoftwareAccelerator::new(2)?);
    let mut dev = Accel::new(backend, AccelConfig::default())?;
    let dev_ref: &mut dyn VirtioDevice<GuestMemoryMmap> = &mut dev;
    println!(
        "device id {:#x}, {} queues, features {:#x}",
        dev_ref.device_type(),
        dev_ref.queue_max_sizes().len(),
        dev_ref.avail_features()
    );
    let mut cfg = [0u8; 40];
    dev_ref.read_config(0, &mut cfg);
    let cfg = AccelConfigSpace::from_slice(&cfg).copied().unwrap();
    println!(
        "services {:#x}, crypto queues {}, max_data_size {}",
        cfg.services.to_native(),
        cfg.crypto_queues.to_native(),
        cfg.max_data_size.to_native()
    );

    // 2. "Transport": the driver configured every queue; hand them over at DRIVER_OK.
    let mut rings = Vec::new();
    let mut queues = Vec::new();
    let mut kicks = Vec::new();
    for (i, &max) in dev_ref.queue_max_sizes().iter().enumerate() {
        let ring = Ring::at(0x10_0000 + i as u64 * 0x1000);
        let mut q = Queue::new(max)?;
        q.set_size(QSIZE);
        q.try_set_desc_table_address(GuestAddress(ring.desc))?;
        q.try_set_avail_ring_address(GuestAddress(ring.avail))?;
        q.try_set_used_ring_address(GuestAddress(ring.used))?;
        q.set_ready(true);
        let kick = EventFd::new(0)?;
        kicks.push(kick.try_clone()?);
        queues.push((i as u16, ActivatedQueue { queue: q, kick }));
        rings.push(ring);
    }
    let irq = Arc::new(CountingInterrupt::default());
    let features = dev_ref.avail_features() & ((1 << VIRTIO_F_VERSION_1) | 0xf);
    let mut handler = dev_ref.activate(ActivationContext {
        mem: mem.clone(),
        acked_features: features,
        queues,
        interrupt: irq.clone(),
    })?;
    let fds = handler.fds();

    // The driver side: submit a chain, notify, run the event loop until it completes.
    let mut run = |rings: &mut Vec<Ring>, q: u16, bufs: &[(u64, u32, bool)]| {
        let before = rings[q as usize].used_idx(&mem);
        rings[q as usize].push(&mem, bufs);
        kicks[q as usize].write(1).unwrap();
        while rings[q as usize].used_idx(&mem) == before {
            for i in wait(&fds) {
                handler.handle(i);
            }
        }
    };

    // 3. Create a session (control queue 0).
    let mut key = CryptoKey {
        algo: Le32::from(CRYPTO_AES_GCM),
        key_len: Le32::from(32),
        key: [0; 32],
    };
    key.key.copy_from_slice(b"an example 256-bit key, 32 bytes");
    let req = [
        CtrlHdr {
            opcode: Le32::from(CTRL_CREATE_SESSION),
            reserved: Le32::from(0),
        }
        .as_slice(),
        key.as_slice(),
    ]
    .concat();
    mem.write_slice(&req, GuestAddress(0x20_0000))?;
    run(
        &mut rings,
        CTRL_QUEUE,
        &[(0x20_0000, req.len() as u32, false), (0x20_1000, 16, true)],
    );
    let resp: CtrlResp = mem.read_obj(GuestAddress(0x20_1000))?;
    assert_eq!(resp.status.to_native(), Status::Ok as u32);
    let session = resp.handle.to_native();
    println!("session {session} created");

    // 4. Encrypt on the first crypto queue.
    let crypto_q = dev.layout().index(QueueKind::Crypto, 0);
    let msg = b"hello from another VMM";
    let data_req = |op: u32, src: &[u8]| {
        let mut hdr = DataHdr {
            opcode: Le32::from(op),
            handle: Le64::from(session),
            src_len: Le32::from(src.len() as u32),
            aad_len: Le32::from(4),
            tag_len: Le32::from(16),
            iv_len: Le32::from(IV_LEN),
            ..Default::default()
        };
        hdr.iv[..12].copy_from_slice(b"unique nonce");
        [hdr.as_slice(), b"aad!", src].concat()
    };
    let enc = data_req(OP_ENCRYPT, msg);
    mem.write_slice(&enc, GuestAddress(0x30_0000))?;
    let out_len = (msg.len() + 16) as u32;
    run(
        &mut rings,
        crypto_q,
        &[
            (0x30_0000, enc.len() as u32, false),
            (0x31_0000, out_len, true),
            (0x32_0000, 8, true),
        ],
    );
    let trailer: DataResp = mem.read_obj(GuestAddress(0x32_0000))?;
    assert_eq!(trailer.status.to_native(), Status::Ok as u32);
    let mut sealed = vec![0u8; trailer.len.to_native() as usize];
    mem.read_slice(&mut sealed, GuestAddress(0x31_0000))?;
    println!(
        "ciphertext+tag: {}",
        sealed
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    );

    // 5. Decrypt it again and check the round trip.
    let dec = data_req(OP_DECRYPT, &sealed);
    mem.write_slice(&dec, GuestAddress(0x40_0000))?;
    run(
        &mut rings,
        crypto_q,
        &[
            (0x40_0000, dec.len() as u32, false),
            (0x41_0000, msg.len() as u32, true),
            (0x42_0000, 8, true),
        ],
    );
    let trailer: DataResp = mem.read_obj(GuestAddress(0x42_0000))?;
    assert_eq!(trailer.status.to_native(), Status::Ok as u32);
    let mut plain = vec![0u8; msg.len()];
    mem.read_slice(&mut plain, GuestAddress(0x41_0000))?;
    assert_eq!(&plain, msg);
    println!(
        "decrypted: {:?}; {} interrupts; metrics: {:?}",
        String::from_utf8_lossy(&plain),
        irq.0.load(Ordering::SeqCst),
        dev.metrics()
            .snapshot()
            .into_iter()
            .filter(|(_, v)| *v != 0)
            .collect::<Vec<_>>()
    );
    Ok(())
}
