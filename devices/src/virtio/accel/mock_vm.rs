//! A driver-side model of virtio-accel for tests and benches: real split rings in real
//! (anonymous mmap) guest memory, a device activated on them, and a poll thread standing in
//! for the VMM's event loop. Several of these over one shared accelerator are several VMs
//! as far as the device and the backend can tell.

use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use virtio_queue::{Queue, QueueT};
use vm_memory::endian::{Le32, Le64};
use vm_memory::{ByteValued, Bytes, GuestAddress, GuestMemoryMmap};
use vmm_sys_util::eventfd::{EFD_NONBLOCK, EventFd};

use super::Accel;
use super::protocol::{
    COMP_DEFLATE, CRYPTO_AES_GCM, CTRL_CREATE_SESSION, CTRL_DESTROY_SESSION, CryptoKey, CtrlHandle,
    CtrlHdr, CtrlResp, DataHdr, DataResp, IV_LEN, OP_COMPRESS, OP_DECRYPT, OP_ENCRYPT, Status,
};
use crate::virtio::{
    ActivatedQueue, ActivationContext, DeviceHandler, InterruptKind, VIRTIO_F_VERSION_1,
    VirtioDevice, VirtioInterrupt,
};

/// Guest memory type of the mock (cloning shares the same mappings).
pub type MockMem = GuestMemoryMmap;

/// Guest RAM of one mock VM.
const MEM_SIZE: u64 = 64 << 20;
/// Rings of queue q live at `q * RING_STRIDE`.
const RING_STRIDE: u64 = 64 << 10;
/// Request buffers start here.
const DATA_BASE: u64 = 1 << 20;
/// Largest aad + src a mock request may carry.
pub const MOCK_MAX_DATA: usize = 64 << 10;
/// Bytes reserved per request slot: readable part, then writable part.
const SLOT_BYTES: u64 = 2 * (MOCK_MAX_DATA as u64 + 4096);
/// Queue size used by the mock.
pub const MOCK_QUEUE_SIZE: u16 = 256;
/// Data queue the mock uses (the first crypto queue).
const DATA_QUEUE: u16 = 1;
const VRING_DESC_F_NEXT: u16 = 1;
const VRING_DESC_F_WRITE: u16 = 2;

/// Wakes the waiting driver when the device interrupts.
#[derive(Default)]
struct Irq {
    count: Mutex<u64>,
    cv: Condvar,
}

impl VirtioInterrupt for Irq {
    fn trigger(&self, _kind: InterruptKind) -> std::io::Result<()> {
        *self.count.lock().unwrap_or_else(|e| e.into_inner()) += 1;
        self.cv.notify_all();
        Ok(())
    }
}

/// The driver side of one split queue.
struct Ring {
    base: u64,
    size: u16,
    avail_idx: u16,
    last_used: u16,
    free: Vec<u16>,
    kick: EventFd,
}

impl Ring {
    fn avail(&self) -> u64 {
        self.base + 16 * self.size as u64
    }
    fn used(&self) -> u64 {
        (self.avail() + 6 + 2 * self.size as u64).next_multiple_of(4)
    }
    fn slot_addr(&self, queue: u16, slot: u16) -> u64 {
        DATA_BASE + ((queue as u64 * self.size as u64) + slot as u64) * SLOT_BYTES
    }
}

/// A finished data request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Completion {
    /// The id [`MockAccelDriver::submit_aead`] returned.
    pub id: u64,
    /// Status from the trailer (raw, so unknown values show).
    pub status: u32,
    /// Output bytes (empty unless OK).
    pub output: Vec<u8>,
    /// When the request was submitted.
    pub submitted: Instant,
    /// When the driver saw it complete.
    pub completed: Instant,
}

struct Pending {
    id: u64,
    out_cap: usize,
    submitted: Instant,
}

/// One mock VM: memory, a virtio-accel device activated on a control and a crypto queue,
/// and a thread running its handler.
pub struct MockAccelDriver {
    mem: MockMem,
    ctrl: Ring,
    data: Ring,
    pending: Vec<Option<Pending>>,
    next_id: u64,
    irq: Arc<Irq>,
    stop: EventFd,
    poller: Option<JoinHandle<()>>,
    device: Option<Accel>,
}

fn poll_loop(mut handler: Box<dyn DeviceHandler>, stop: EventFd) {
    let mut fds: Vec<RawFd> = handler.fds();
    fds.push(stop.as_raw_fd());
    let mut pfds: Vec<libc::pollfd> = fds
        .iter()
        .map(|fd| libc::pollfd {
            fd: *fd,
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    loop {
        // SAFETY: `pfds` is a valid array of `pfds.len()` pollfd structs that outlives the call.
        let n = unsafe { libc::poll(pfds.as_mut_ptr(), pfds.len() as libc::nfds_t, -1) };
        if n < 0 {
            continue;
        }
        for i in 0..pfds.len() {
            if pfds[i].revents & libc::POLLIN == 0 {
                continue;
            }
            if i == pfds.len() - 1 {
                return;
            }
            handler.handle(i);
        }
    }
}

impl MockAccelDriver {
    /// Activates `device` (which must offer crypto) on fresh rings and starts its handler.
    pub fn new(mut device: Accel) -> std::io::Result<Self> {
        let mem: MockMem = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), MEM_SIZE as usize)])
            .map_err(std::io::Error::other)?;
        let make_ring = |index: u16| -> std::io::Result<(Ring, ActivatedQueue)> {
            let ring = Ring {
                base: index as u64 * RING_STRIDE,
                size: MOCK_QUEUE_SIZE,
                avail_idx: 0,
                last_used: 0,
                free: (0..MOCK_QUEUE_SIZE / 2).rev().collect(),
                kick: EventFd::new(EFD_NONBLOCK)?,
            };
            let mut q = Queue::new(MOCK_QUEUE_SIZE).map_err(std::io::Error::other)?;
            q.set_size(MOCK_QUEUE_SIZE);
            let (d, a, u) = (ring.base, ring.avail(), ring.used());
            q.set_desc_table_address(Some(d as u32), Some((d >> 32) as u32));
            q.set_avail_ring_address(Some(a as u32), Some((a >> 32) as u32));
            q.set_used_ring_address(Some(u as u32), Some((u >> 32) as u32));
            q.set_ready(true);
            let kick = ring.kick.try_clone()?;
            Ok((ring, ActivatedQueue { queue: q, kick }))
        };
        let (ctrl, q0) = make_ring(0)?;
        let (data, q1) = make_ring(DATA_QUEUE)?;
        let irq = Arc::new(Irq::default());
        let ctx = ActivationContext {
            mem: mem.clone(),
            // Everything offered but EVENT_IDX (this driver reads every used entry anyway).
            acked_features: (VirtioDevice::<MockMem>::avail_features(&device)
                & !(1 << crate::virtio::VIRTIO_F_EVENT_IDX))
                | (1 << VIRTIO_F_VERSION_1),
            queues: vec![(0, q0), (DATA_QUEUE, q1)],
            interrupt: irq.clone(),
        };
        let handler =
            VirtioDevice::<MockMem>::activate(&mut device, ctx).map_err(std::io::Error::other)?;
        let stop = EventFd::new(EFD_NONBLOCK)?;
        let stop2 = stop.try_clone()?;
        let poller = std::thread::Builder::new()
            .name("mock-accel-loop".into())
            .spawn(move || poll_loop(handler, stop2))?;
        Ok(MockAccelDriver {
            mem,
            ctrl,
            data,
            pending: (0..MOCK_QUEUE_SIZE / 2).map(|_| None).collect(),
            next_id: 0,
            irq,
            stop,
            poller: Some(poller),
            device: Some(device),
        })
    }

    /// The device (for its counters).
    pub fn device(&self) -> &Accel {
        self.device.as_ref().expect("device present until drop")
    }

    /// Puts a two-descriptor chain (readable `rd` bytes at slot start, `wr_len` writable
    /// bytes after them) on `ring` and kicks; returns the slot.
    fn post(mem: &MockMem, ring: &mut Ring, queue: u16, rd: &[u8], wr_len: usize) -> Option<u16> {
        let slot = ring.free.pop()?;
        let addr = ring.slot_addr(queue, slot);
        let wr_addr = addr + (SLOT_BYTES / 2);
        mem.write_slice(rd, GuestAddress(addr)).ok()?;
        let (d0, d1) = (slot * 2, slot * 2 + 1);
        let desc = |i: u16, a: u64, len: u32, flags: u16, next: u16| {
            let at = ring.base + 16 * i as u64;
            let mut raw = [0u8; 16];
            raw[..8].copy_from_slice(&a.to_le_bytes());
            raw[8..12].copy_from_slice(&len.to_le_bytes());
            raw[12..14].copy_from_slice(&flags.to_le_bytes());
            raw[14..].copy_from_slice(&next.to_le_bytes());
            mem.write_slice(&raw, GuestAddress(at))
        };
        desc(d0, addr, rd.len() as u32, VRING_DESC_F_NEXT, d1).ok()?;
        desc(d1, wr_addr, wr_len as u32, VRING_DESC_F_WRITE, 0).ok()?;
        let entry = ring.avail() + 4 + 2 * (ring.avail_idx % ring.size) as u64;
        mem.write_obj(d0.to_le(), GuestAddress(entry)).ok()?;
        ring.avail_idx = ring.avail_idx.wrapping_add(1);
        // virtio 1.2 §2.7.13.3: the ring entry must be visible before the index.
        mem.store(
            ring.avail_idx.to_le(),
            GuestAddress(ring.avail() + 2),
            Ordering::Release,
        )
        .ok()?;
        ring.kick.write(1).ok()?;
        Some(slot)
    }

    /// (slot, used length) pairs the device has completed on `ring`.
    fn reap(mem: &MockMem, ring: &mut Ring) -> Vec<(u16, u32)> {
        let mut out = Vec::new();
        let Ok(idx) = mem.load::<u16>(GuestAddress(ring.used() + 2), Ordering::Acquire) else {
            return out;
        };
        let idx = u16::from_le(idx);
        while ring.last_used != idx {
            let at = ring.used() + 4 + 8 * (ring.last_used % ring.size) as u64;
            let id: u32 = mem.read_obj(GuestAddress(at)).unwrap_or(u32::MAX);
            let len: u32 = mem.read_obj(GuestAddress(at + 4)).unwrap_or(0);
            ring.last_used = ring.last_used.wrapping_add(1);
            let slot = (u32::from_le(id) / 2) as u16;
            ring.free.push(slot);
            out.push((slot, u32::from_le(len)));
        }
        out
    }

    fn wait_irq(&self, seen: u64, timeout: Duration) -> u64 {
        let g = self.irq.count.lock().unwrap_or_else(|e| e.into_inner());
        let (g, _) = self
            .irq
            .cv
            .wait_timeout_while(g, timeout, |c| *c == seen)
            .unwrap_or_else(|e| e.into_inner());
        *g
    }

    fn irq_count(&self) -> u64 {
        *self.irq.count.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn control(&mut self, req: &[u8]) -> CtrlResp {
        let seen = self.irq_count();
        let trailer = size_of::<CtrlResp>();
        let Some(slot) = Self::post(&self.mem, &mut self.ctrl, 0, req, trailer) else {
            return CtrlResp::default();
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut seen = seen;
        while Instant::now() < deadline {
            let done = Self::reap(&self.mem, &mut self.ctrl);
            if let Some((s, len)) = done.first() {
                assert_eq!(*s, slot);
                let at = self.ctrl.slot_addr(0, slot) + SLOT_BYTES / 2;
                if *len as usize != trailer {
                    return CtrlResp {
                        status: Le32::from(u32::MAX),
                        ..Default::default()
                    };
                }
                return self.mem.read_obj(GuestAddress(at)).unwrap_or_default();
            }
            seen = self.wait_irq(seen, Duration::from_millis(50));
        }
        panic!("control request timed out");
    }

    /// Creates an AES-GCM session; returns the status and the handle.
    pub fn create_session(&mut self, key: &[u8]) -> (u32, u64) {
        let mut k = CryptoKey {
            algo: Le32::from(CRYPTO_AES_GCM),
            key_len: Le32::from(key.len() as u32),
            key: [0; 32],
        };
        k.key[..key.len()].copy_from_slice(key);
        let hdr = CtrlHdr {
            opcode: Le32::from(CTRL_CREATE_SESSION),
            reserved: Le32::from(0),
        };
        let mut req = hdr.as_slice().to_vec();
        req.extend_from_slice(k.as_slice());
        let r = self.control(&req);
        (r.status.to_native(), r.handle.to_native())
    }

    /// Destroys a session; returns the status.
    pub fn destroy_session(&mut self, handle: u64) -> u32 {
        let hdr = CtrlHdr {
            opcode: Le32::from(CTRL_DESTROY_SESSION),
            reserved: Le32::from(0),
        };
        let mut req = hdr.as_slice().to_vec();
        req.extend_from_slice(
            CtrlHandle {
                handle: Le64::from(handle),
            }
            .as_slice(),
        );
        self.control(&req).status.to_native()
    }

    /// Requests that may still be submitted before the queue is full.
    pub fn free_slots(&self) -> usize {
        self.data.free.len()
    }

    /// Queues an AES-GCM request (16-byte tag) on the crypto queue; `None` when full.
    pub fn submit_aead(
        &mut self,
        encrypt: bool,
        handle: u64,
        iv: [u8; 12],
        aad: &[u8],
        src: &[u8],
    ) -> Option<u64> {
        assert!(aad.len() + src.len() <= MOCK_MAX_DATA);
        let mut hdr = DataHdr {
            opcode: Le32::from(if encrypt { OP_ENCRYPT } else { OP_DECRYPT }),
            handle: Le64::from(handle),
            src_len: Le32::from(src.len() as u32),
            aad_len: Le32::from(aad.len() as u32),
            tag_len: Le32::from(16),
            iv_len: Le32::from(IV_LEN),
            ..Default::default()
        };
        hdr.iv[..12].copy_from_slice(&iv);
        self.submit_data(&hdr, aad, src, src.len() + 16)
    }

    /// Queues a deflate compression of `src` (output room `out_cap`) on the first data queue,
    /// which must be a compression queue (a device built with `crypto_queues: 0`); `None`
    /// when full.
    pub fn submit_compress(&mut self, src: &[u8], out_cap: usize) -> Option<u64> {
        assert!(src.len() <= MOCK_MAX_DATA && out_cap <= MOCK_MAX_DATA + 1024);
        let hdr = DataHdr {
            opcode: Le32::from(OP_COMPRESS),
            algo: Le32::from(COMP_DEFLATE),
            src_len: Le32::from(src.len() as u32),
            ..Default::default()
        };
        self.submit_data(&hdr, &[], src, out_cap)
    }

    fn submit_data(
        &mut self,
        hdr: &DataHdr,
        aad: &[u8],
        src: &[u8],
        out_cap: usize,
    ) -> Option<u64> {
        let mut req = Vec::with_capacity(64 + aad.len() + src.len());
        req.extend_from_slice(hdr.as_slice());
        req.extend_from_slice(aad);
        req.extend_from_slice(src);
        let slot = Self::post(
            &self.mem,
            &mut self.data,
            DATA_QUEUE,
            &req,
            out_cap + size_of::<DataResp>(),
        )?;
        self.next_id += 1;
        self.pending[slot as usize] = Some(Pending {
            id: self.next_id,
            out_cap,
            submitted: Instant::now(),
        });
        Some(self.next_id)
    }

    /// Completed data requests, waiting up to `timeout` for at least one.
    pub fn wait_completions(&mut self, timeout: Duration) -> Vec<Completion> {
        let deadline = Instant::now() + timeout;
        let mut seen = self.irq_count();
        loop {
            let done = Self::reap(&self.mem, &mut self.data);
            if !done.is_empty() {
                let now = Instant::now();
                return done
                    .into_iter()
                    .filter_map(|(slot, used)| {
                        let p = self.pending.get_mut(slot as usize)?.take()?;
                        let wr = self.data.slot_addr(DATA_QUEUE, slot) + SLOT_BYTES / 2;
                        let trailer = size_of::<DataResp>();
                        let resp: DataResp = self
                            .mem
                            .read_obj(GuestAddress(wr + p.out_cap as u64))
                            .unwrap_or_default();
                        let status = if (used as usize) < trailer {
                            u32::MAX
                        } else {
                            resp.status.to_native()
                        };
                        let mut output = Vec::new();
                        if status == Status::Ok as u32 {
                            output.resize(resp.len.to_native() as usize, 0);
                            self.mem.read_slice(&mut output, GuestAddress(wr)).ok()?;
                        }
                        Some(Completion {
                            id: p.id,
                            status,
                            output,
                            submitted: p.submitted,
                            completed: now,
                        })
                    })
                    .collect();
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Vec::new();
            }
            seen = self.wait_irq(seen, left.min(Duration::from_millis(20)));
        }
    }

    /// Requests submitted and not yet completed.
    pub fn outstanding(&self) -> usize {
        self.pending.iter().filter(|p| p.is_some()).count()
    }
}

impl Drop for MockAccelDriver {
    fn drop(&mut self) {
        // Like a VM exit: stop the loop (dropping the handler), then the device.
        let _ = self.stop.write(1);
        if let Some(p) = self.poller.take() {
            let _ = p.join();
        }
        self.device.take();
    }
}
