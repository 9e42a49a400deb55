//! A minimal split-ring driver over real guest memory, for benches, fuzzing and embedders'
//! tests (feature `test-utils`). It fills descriptors and the available ring itself, wrapping
//! indices modulo the queue size so it can run for millions of requests. (virtio-queue 0.18's
//! `MockSplitQueue` places the used ring `size` bytes after the available ring's entries
//! instead of `2 * size`, so past `size / 2` entries its rings overlap; hence our own layout.)

use virtio_bindings::bindings::virtio_ring::{VRING_DESC_F_NEXT, VRING_DESC_F_WRITE};
use virtio_queue::desc::split::Descriptor as SplitDescriptor;
use virtio_queue::{Queue, QueueT};
use vm_memory::{Address, Bytes, GuestAddress, GuestMemoryBackend, GuestMemoryMmap};
use vmm_sys_util::eventfd::EventFd;

use crate::virtio::ActivatedQueue;

/// Bytes reserved per queue for its rings.
pub const QUEUE_STRIDE: u64 = 0x1_0000;

/// One descriptor: guest address, length, device-writable.
pub type Desc = (u64, u32, bool);

struct Ring {
    desc: GuestAddress,
    avail: GuestAddress,
    used: GuestAddress,
    size: u16,
    next_desc: u16,
    avail_idx: u16,
    used_seen: u16,
}

/// Drives the device's queues from the guest side.
pub struct MockDriver<'a> {
    mem: &'a GuestMemoryMmap,
    rings: Vec<Ring>,
    kicks: Vec<EventFd>,
}

impl<'a> MockDriver<'a> {
    /// Lays out `n` queues of `size` entries from guest address 0 (each in its own
    /// [`QUEUE_STRIDE`]) and returns the driver and the activated queues for the device.
    pub fn new(
        mem: &'a GuestMemoryMmap,
        n: usize,
        size: u16,
    ) -> (Self, Vec<(u16, ActivatedQueue)>) {
        let mut rings = Vec::new();
        let mut activated = Vec::new();
        let mut kicks = Vec::new();
        for i in 0..n {
            // virtio 1.2 §2.7: descriptor table (16 * size), available ring (6 + 2 * size),
            // used ring (6 + 8 * size) aligned to 4.
            let desc = GuestAddress(i as u64 * QUEUE_STRIDE);
            let avail = desc.unchecked_add(16 * size as u64);
            let used = GuestAddress((avail.0 + 6 + 2 * size as u64).next_multiple_of(4));
            assert!(
                used.0 + 6 + 8 * size as u64 <= desc.0 + QUEUE_STRIDE,
                "queue too large"
            );
            let zero = vec![0u8; QUEUE_STRIDE as usize];
            mem.write_slice(&zero, desc).expect("ring memory");
            let mut queue = Queue::new(size).expect("queue size");
            queue.set_size(size);
            queue
                .try_set_desc_table_address(desc)
                .expect("desc address");
            queue
                .try_set_avail_ring_address(avail)
                .expect("avail address");
            queue.try_set_used_ring_address(used).expect("used address");
            queue.set_ready(true);
            let kick = EventFd::new(0).expect("eventfd");
            kicks.push(kick.try_clone().expect("eventfd clone"));
            activated.push((i as u16, ActivatedQueue { queue, kick }));
            rings.push(Ring {
                desc,
                avail,
                used,
                size,
                next_desc: 0,
                avail_idx: 0,
                used_seen: 0,
            });
        }
        (MockDriver { mem, rings, kicks }, activated)
    }

    /// Makes a chain of `descs` available on queue `q`; returns its head index. Descriptor
    /// slots are used round-robin: the caller keeps at most `size` descriptors in flight.
    pub fn push(&mut self, q: u16, descs: &[Desc]) -> u16 {
        let r = &mut self.rings[q as usize];
        let head = r.next_desc;
        // A guest writes its rings with plain stores: one region lookup per ring here, not
        // one per field (this driver's cost counts in the benches' device path).
        let table = self
            .mem
            .get_slice(r.desc, 16 * r.size as usize)
            .expect("descriptor table in memory");
        let avail = self
            .mem
            .get_slice(r.avail, 4 + 2 * r.size as usize)
            .expect("avail ring in memory");
        for (i, (addr, len, writable)) in descs.iter().enumerate() {
            let slot = (head as usize + i) % r.size as usize;
            let next = ((slot + 1) % r.size as usize) as u16;
            let mut flags = if *writable { VRING_DESC_F_WRITE } else { 0 };
            if i + 1 < descs.len() {
                flags |= VRING_DESC_F_NEXT;
            }
            let d = SplitDescriptor::new(*addr, *len, flags as u16, next);
            table
                .write_obj(d, 16 * slot)
                .expect("descriptor table in memory");
        }
        r.next_desc = ((head as usize + descs.len()) % r.size as usize) as u16;
        let ring_slot = 4 + 2 * (r.avail_idx % r.size) as usize;
        avail
            .write_obj(head.to_le(), ring_slot)
            .expect("avail ring in memory");
        r.avail_idx = r.avail_idx.wrapping_add(1);
        // virtio 1.2 §2.7.13: the index is published after the ring entry.
        std::sync::atomic::fence(std::sync::atomic::Ordering::Release);
        avail.write_obj(r.avail_idx.to_le(), 2).expect("avail idx");
        head
    }

    /// Makes a chain of raw descriptors `(addr, len, flags, next)` available at slot 0..,
    /// exactly as given: loops, bad indices and indirect flags included (for fuzzing).
    pub fn push_raw(&mut self, q: u16, descs: &[(u64, u32, u16, u16)], head: u16) {
        let r = &mut self.rings[q as usize];
        for (i, (addr, len, flags, next)) in descs.iter().enumerate().take(r.size as usize) {
            let d = SplitDescriptor::new(*addr, *len, *flags, *next);
            let _ = self.mem.write_obj(d, r.desc.unchecked_add(16 * i as u64));
        }
        let ring_slot = r.avail.unchecked_add(4 + 2 * (r.avail_idx % r.size) as u64);
        let _ = self.mem.write_obj(head.to_le(), ring_slot);
        r.avail_idx = r.avail_idx.wrapping_add(1);
        let _ = self
            .mem
            .write_obj(r.avail_idx.to_le(), r.avail.unchecked_add(2));
    }

    /// Number of queues.
    pub fn num_queues(&self) -> usize {
        self.rings.len()
    }

    /// Signals queue `q`'s notification eventfd, as a transport would on a driver notify.
    pub fn notify(&self, q: u16) {
        let _ = self.kicks[q as usize].write(1);
    }

    /// Used-ring entries `(head, len)` of queue `q` not collected before.
    pub fn used(&mut self, q: u16) -> Vec<(u32, u32)> {
        let r = &mut self.rings[q as usize];
        let ring = self
            .mem
            .get_slice(r.used, 4 + 8 * r.size as usize)
            .expect("used ring in memory");
        let idx: u16 = ring.read_obj(2).unwrap_or(r.used_seen);
        let mut out = Vec::new();
        while r.used_seen != idx {
            let at = 4 + 8 * (r.used_seen % r.size) as usize;
            let id: u32 = ring.read_obj(at).unwrap_or(u32::MAX);
            let len: u32 = ring.read_obj(at + 4).unwrap_or(0);
            out.push((id, len));
            r.used_seen = r.used_seen.wrapping_add(1);
        }
        out
    }
}
