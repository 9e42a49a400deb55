//! Datapath tests on real rings (MockSplitQueue) over real guest memory, against a real TAP.
//!
//! Each test runs on its own thread inside a fresh network namespace (`unshare(CLONE_NEWNET)`
//! is per thread), so its TAP is invisible to the host and vanishes with the namespace even if
//! the test panics. IPv6 is disabled on the TAP before it comes up: the only frames on it are
//! the test's own. Needs root (CAP_SYS_ADMIN, CAP_NET_ADMIN) and /dev/net/tun.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use virtio_queue::mock::MockSplitQueue;
use virtio_queue::{Queue, QueueT};
use vm_memory::{Address, Bytes, GuestAddress, GuestMemoryMmap};
use vmm_sys_util::eventfd::{EFD_NONBLOCK, EventFd};

use super::features as f;
use super::handler::{RX_KICK_EVENT, TAP_EVENT, TX_KICK_EVENT};
use super::*;
use crate::virtio::{
    ActivateError, ActivatedQueue, ActivationContext, DeviceHandler, InterruptKind,
    VIRTIO_F_EVENT_IDX, VIRTIO_F_VERSION_1, VirtioDevice, VirtioInterrupt,
};

type Mem = GuestMemoryMmap;

const QSIZE: u16 = 64;
const RX_RING: GuestAddress = GuestAddress(0x0);
const TX_RING: GuestAddress = GuestAddress(0x4000);
const BUF_BASE: u64 = 0x10_0000;
const MEM_SIZE: usize = 0x100_0000;
/// IEEE 802 "local experimental" EtherType: nothing else on the TAP uses it.
const TEST_ETHERTYPE: [u8; 2] = [0x88, 0xb5];

#[derive(Default)]
struct CountIrq {
    rx: AtomicUsize,
    tx: AtomicUsize,
}

impl VirtioInterrupt for CountIrq {
    fn trigger(&self, kind: InterruptKind) -> io::Result<()> {
        match kind {
            InterruptKind::Queue(RX_QUEUE) => self.rx.fetch_add(1, Ordering::SeqCst),
            InterruptKind::Queue(_) => self.tx.fetch_add(1, Ordering::SeqCst),
            InterruptKind::Config => 0,
        };
        Ok(())
    }
}

/// Runs `body` on a new thread in a new network namespace; re-raises its panic.
fn in_netns(body: impl FnOnce() + Send + 'static) {
    let t = std::thread::spawn(move || {
        // SAFETY: unshare only changes this thread's namespace membership.
        if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
            panic!(
                "unshare(CLONE_NEWNET) failed ({}): the virtio-net TAP tests need root",
                io::Error::last_os_error()
            );
        }
        body();
    });
    if let Err(e) = t.join() {
        std::panic::resume_unwind(e);
    }
}

fn ifindex(name: &str) -> u32 {
    let c = std::ffi::CString::new(name).unwrap();
    // SAFETY: `c` is a valid NUL-terminated string for the duration of the call.
    unsafe { libc::if_nametoindex(c.as_ptr()) }
}

/// Creates a persistent TAP, not yet up, with IPv6 disabled so the kernel sends nothing on it.
fn quiet_persistent_tap(name: &str) {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/net/tun")
        .expect("open /dev/net/tun");
    let mut req = [0u8; 40];
    req[..name.len()].copy_from_slice(name.as_bytes());
    req[16..18].copy_from_slice(&((libc::IFF_TAP | libc::IFF_NO_PI) as u16).to_ne_bytes());
    assert_eq!(
        // SAFETY: TUNSETIFF reads/writes a 40-byte struct ifreq; `req` is 40 bytes.
        unsafe { libc::ioctl(file.as_raw_fd(), libc::TUNSETIFF, req.as_mut_ptr()) },
        0,
        "TUNSETIFF {name}: {}",
        io::Error::last_os_error()
    );
    assert_eq!(
        // SAFETY: TUNSETPERSIST takes its argument by value.
        unsafe { libc::ioctl(file.as_raw_fd(), libc::TUNSETPERSIST, 1 as libc::c_ulong) },
        0
    );
    // /proc/sys/net resolves in the opening thread's namespace; the unique name cannot exist
    // elsewhere, so this can never touch the host's settings.
    let path = format!("/proc/sys/net/ipv6/conf/{name}/disable_ipv6");
    if std::path::Path::new("/proc/sys/net/ipv6").exists() {
        std::fs::write(&path, "1").unwrap_or_else(|e| panic!("{path}: {e}"));
    }
}

/// Sets the MTU of interface `name` (for frames above 1514 bytes).
fn set_mtu(name: &str, mtu: i32) {
    // SAFETY: plain socket creation, checked below.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM, 0) };
    assert!(fd >= 0);
    // SAFETY: `fd` is fresh and owned by nobody else.
    let sock = unsafe { OwnedFd::from_raw_fd(fd) };
    let mut req = [0u8; 40];
    req[..name.len()].copy_from_slice(name.as_bytes());
    req[16..20].copy_from_slice(&mtu.to_ne_bytes());
    // SAFETY: SIOCSIFMTU reads a 40-byte struct ifreq; `req` is 40 bytes.
    let ret = unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFMTU, req.as_ptr()) };
    assert_eq!(ret, 0, "SIOCSIFMTU {name}: {}", io::Error::last_os_error());
}

/// An AF_PACKET socket bound to one interface: the host's view of the TAP.
struct PacketSock(OwnedFd);

impl PacketSock {
    fn bind(ifname: &str) -> PacketSock {
        let proto = (libc::ETH_P_ALL as u16).to_be();
        // SAFETY: plain socket creation, checked below.
        let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW, proto as i32) };
        assert!(fd >= 0, "AF_PACKET socket: {}", io::Error::last_os_error());
        // SAFETY: `fd` is fresh and owned by nobody else.
        let sock = PacketSock(unsafe { OwnedFd::from_raw_fd(fd) });
        // SAFETY: all-zero is a valid sockaddr_ll.
        let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_protocol = proto;
        sll.sll_ifindex = ifindex(ifname) as i32;
        // SAFETY: `sll` is a sockaddr_ll of the size passed.
        let ret = unsafe {
            libc::bind(
                fd,
                (&sll as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as u32,
            )
        };
        assert_eq!(ret, 0, "bind AF_PACKET: {}", io::Error::last_os_error());
        // Straight to the TAP's xmit: a send returns with the frame queued on the TAP, not
        // parked in a qdisc that softirq drains later.
        let one: libc::c_int = 1;
        // SAFETY: PACKET_QDISC_BYPASS reads one int of the size passed.
        let ret = unsafe {
            libc::setsockopt(
                fd,
                libc::SOL_PACKET,
                libc::PACKET_QDISC_BYPASS,
                (&one as *const libc::c_int).cast(),
                4,
            )
        };
        assert_eq!(
            ret,
            0,
            "PACKET_QDISC_BYPASS: {}",
            io::Error::last_os_error()
        );
        let tv = libc::timeval {
            tv_sec: 3,
            tv_usec: 0,
        };
        // SAFETY: SO_RCVTIMEO reads one timeval of the size passed.
        unsafe {
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                (&tv as *const libc::timeval).cast(),
                std::mem::size_of::<libc::timeval>() as u32,
            )
        };
        sock
    }

    /// Frames sent and received through this socket carry a virtio_net_hdr (10 bytes).
    fn enable_vnet_hdr(&self) {
        let one: libc::c_int = 1;
        // SAFETY: PACKET_VNET_HDR reads one int of the size passed.
        let ret = unsafe {
            libc::setsockopt(
                self.0.as_raw_fd(),
                libc::SOL_PACKET,
                libc::PACKET_VNET_HDR,
                (&one as *const libc::c_int).cast(),
                4,
            )
        };
        assert_eq!(ret, 0, "PACKET_VNET_HDR: {}", io::Error::last_os_error());
    }

    fn send(&self, frame: &[u8]) {
        // SAFETY: the kernel reads `frame.len()` bytes from `frame`.
        let n = unsafe { libc::send(self.0.as_raw_fd(), frame.as_ptr().cast(), frame.len(), 0) };
        assert_eq!(
            n,
            frame.len() as isize,
            "send: {}",
            io::Error::last_os_error()
        );
    }

    /// Returns the next frame with the test EtherType at offset `skip + 12`.
    fn recv_test_frame(&self, skip: usize) -> Vec<u8> {
        let mut buf = vec![0u8; 128 << 10];
        loop {
            // SAFETY: the kernel writes at most `buf.len()` bytes into `buf`.
            let n =
                unsafe { libc::recv(self.0.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
            assert!(
                n >= 0,
                "no frame on the TAP: {}",
                io::Error::last_os_error()
            );
            let frame = &buf[..n as usize];
            if frame.len() >= skip + 14 && frame[skip + 12..skip + 14] == TEST_ETHERTYPE {
                return frame.to_vec();
            }
        }
    }
}

/// Test frame: broadcast destination, the test EtherType, `payload_len` patterned bytes.
fn test_frame(payload_len: usize, seed: u8) -> Vec<u8> {
    let mut frame = vec![0xff; 6];
    frame.extend_from_slice(&[0x02, 0, 0, 0, 0, seed]);
    frame.extend_from_slice(&TEST_ETHERTYPE);
    frame.extend((0..payload_len).map(|i| (i as u8).wrapping_mul(7).wrapping_add(seed)));
    frame
}

/// The driver side of one split queue: descriptors and avail entries written straight into
/// guest memory, as a guest would.
struct Driver {
    desc: GuestAddress,
    avail: GuestAddress,
    used: GuestAddress,
    next_desc: u16,
    avail_idx: u16,
    used_seen: u16,
}

impl Driver {
    /// Adds a chain of (address, length, device-writable) descriptors; returns its head.
    fn add_chain(&mut self, mem: &GuestMemoryMmap, descs: &[(u64, u32, bool)]) -> u16 {
        let head = self.next_desc;
        for (i, &(addr, len, writable)) in descs.iter().enumerate() {
            let idx = (self.next_desc % QSIZE) as u64;
            let next = (self.next_desc + 1) % QSIZE;
            let mut flags = 0u16;
            if i + 1 < descs.len() {
                flags |= 1; // VRING_DESC_F_NEXT
            }
            if writable {
                flags |= 2; // VRING_DESC_F_WRITE
            }
            let base = self.desc.unchecked_add(idx * 16);
            mem.write_obj(addr.to_le(), base).unwrap();
            mem.write_obj(len.to_le(), base.unchecked_add(8)).unwrap();
            mem.write_obj(flags.to_le(), base.unchecked_add(12))
                .unwrap();
            mem.write_obj(next.to_le(), base.unchecked_add(14)).unwrap();
            self.next_desc = next;
        }
        let slot = self
            .avail
            .unchecked_add(4 + 2 * (self.avail_idx % QSIZE) as u64);
        mem.write_obj(head.to_le(), slot).unwrap();
        self.avail_idx = self.avail_idx.wrapping_add(1);
        mem.write_obj(self.avail_idx.to_le(), self.avail.unchecked_add(2))
            .unwrap();
        head
    }

    /// Used entries (id, len) added since the last call.
    fn take_used(&mut self, mem: &GuestMemoryMmap) -> Vec<(u32, u32)> {
        let idx: u16 = u16::from_le(mem.read_obj(self.used.unchecked_add(2)).unwrap());
        let mut out = Vec::new();
        while self.used_seen != idx {
            let e = self
                .used
                .unchecked_add(4 + 8 * (self.used_seen % QSIZE) as u64);
            let id: u32 = u32::from_le(mem.read_obj(e).unwrap());
            let len: u32 = u32::from_le(mem.read_obj(e.unchecked_add(4)).unwrap());
            out.push((id, len));
            self.used_seen = self.used_seen.wrapping_add(1);
        }
        out
    }
}

/// A virtio-net device activated on mock rings, with its TAP and the host's view of it.
struct Rig {
    mem: Mem,
    handler: NetHandler<Mem>,
    irq: Arc<CountIrq>,
    metrics: Arc<NetMetrics>,
    rx: Driver,
    tx: Driver,
    rx_kick: EventFd,
    tx_kick: EventFd,
    next_buf: u64,
    host: PacketSock,
    tap_name: String,
}

fn make_queue(mem: &GuestMemoryMmap, at: GuestAddress, event_idx: bool) -> (Queue, Driver) {
    let mock = MockSplitQueue::create(mem, at, QSIZE);
    let mut q: Queue = mock.create_queue().unwrap();
    q.set_event_idx(event_idx);
    // virtio-queue 0.18's mock places the used ring at avail_addr + 4 + len (not + 2 * len),
    // overlapping the second half of the avail ring: use a used ring of our own, 4 KiB on.
    let used = at.unchecked_add(0x1000);
    q.try_set_used_ring_address(used).unwrap();
    mem.write_obj(0u32, used).unwrap();
    let driver = Driver {
        desc: mock.desc_table_addr(),
        avail: mock.avail_addr(),
        used,
        next_desc: 0,
        avail_idx: 0,
        used_seen: 0,
    };
    (q, driver)
}

impl Rig {
    fn new(tap_name: &str, extra_features: &[u32]) -> Rig {
        quiet_persistent_tap(tap_name);
        let tap = Tap::open(tap_name).expect("open TAP");
        assert!(!tap.created(), "the TAP existed (persistent) before");
        let mut dev = Net::with_tap(tap, Some("02:00:00:00:00:01".parse().unwrap()));
        let mem: Mem = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), MEM_SIZE)]).unwrap();
        let mut features = 1u64 << VIRTIO_F_VERSION_1;
        for &bit in extra_features {
            features |= 1 << bit;
        }
        let event_idx = features & (1 << VIRTIO_F_EVENT_IDX) != 0;
        let (rxq, rx) = make_queue(&mem, RX_RING, event_idx);
        let (txq, tx) = make_queue(&mem, TX_RING, event_idx);
        let rx_kick = EventFd::new(EFD_NONBLOCK).unwrap();
        let tx_kick = EventFd::new(EFD_NONBLOCK).unwrap();
        let irq = Arc::new(CountIrq::default());
        let ctx = ActivationContext {
            mem: mem.clone(),
            acked_features: features,
            queues: vec![
                (
                    RX_QUEUE,
                    ActivatedQueue {
                        queue: rxq,
                        kick: rx_kick.try_clone().unwrap(),
                    },
                ),
                (
                    TX_QUEUE,
                    ActivatedQueue {
                        queue: txq,
                        kick: tx_kick.try_clone().unwrap(),
                    },
                ),
            ],
            interrupt: irq.clone(),
        };
        let metrics = dev.metrics();
        let handler = dev.activate_handler(ctx).expect("activate");
        let host = PacketSock::bind(tap_name);
        // The device (and its Arc<Tap>) lives on in the handler.
        drop(dev);
        Rig {
            mem,
            handler,
            irq,
            metrics,
            rx,
            tx,
            rx_kick,
            tx_kick,
            next_buf: BUF_BASE,
            host,
            tap_name: tap_name.to_string(),
        }
    }

    fn alloc(&mut self, len: u32) -> u64 {
        let at = self.next_buf;
        self.next_buf += (len as u64).next_multiple_of(0x1000);
        assert!(self.next_buf < MEM_SIZE as u64);
        at
    }

    /// Posts `count` RX buffers of `len` bytes, one descriptor each; returns their addresses.
    fn post_rx(&mut self, count: usize, len: u32) -> Vec<u64> {
        (0..count)
            .map(|_| {
                let at = self.alloc(len);
                self.rx.add_chain(&self.mem, &[(at, len, true)]);
                at
            })
            .collect()
    }

    /// Queues `hdr + frame` for transmission split over two descriptors, as Linux does.
    fn queue_tx(&mut self, hdr: [u8; VNET_HDR_LEN], frame: &[u8]) {
        let h = self.alloc(VNET_HDR_LEN as u32);
        let d = self.alloc(frame.len() as u32);
        self.mem.write_slice(&hdr, GuestAddress(h)).unwrap();
        self.mem.write_slice(frame, GuestAddress(d)).unwrap();
        self.tx.add_chain(
            &self.mem,
            &[
                (h, VNET_HDR_LEN as u32, false),
                (d, frame.len() as u32, false),
            ],
        );
    }

    fn kick(&mut self, event: usize) {
        let kick = if event == RX_KICK_EVENT {
            &self.rx_kick
        } else {
            &self.tx_kick
        };
        kick.write(1).unwrap();
        self.handler.handle(event);
    }

    /// Whether the fd the VMM would watch for the TAP is readable right now.
    fn tap_event_ready(&self) -> bool {
        poll_readable(self.handler.fds()[TAP_EVENT])
    }

    /// Waits until the TAP event is readable (a frame injected by the host reached the TAP).
    fn wait_tap_event(&self) {
        for _ in 0..300 {
            if self.tap_event_ready() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        panic!("TAP {} never became readable", self.tap_name);
    }

    fn read_guest(&self, addr: u64, len: usize) -> Vec<u8> {
        let mut v = vec![0u8; len];
        self.mem.read_slice(&mut v, GuestAddress(addr)).unwrap();
        v
    }
}

fn poll_readable(fd: RawFd) -> bool {
    let mut pfd = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: `pfd` is one valid pollfd.
    let n = unsafe { libc::poll(&mut pfd, 1, 0) };
    n == 1 && pfd.revents & libc::POLLIN != 0
}

fn get(c: &std::sync::atomic::AtomicU64) -> u64 {
    NetMetrics::get(c)
}

/// A unique interface name per test (names are per namespace, but keep them readable).
fn tap_name(tag: &str) -> String {
    format!("avt{}{}", tag, std::process::id() % 10000)
}

#[test]
fn tx_frame_reaches_the_tap_unchanged() {
    in_netns(|| {
        let mut rig = Rig::new(&tap_name("tx"), &[VIRTIO_F_EVENT_IDX]);
        let frame = test_frame(1000, 3);
        rig.queue_tx([0; VNET_HDR_LEN], &frame);
        rig.kick(TX_KICK_EVENT);
        assert_eq!(rig.host.recv_test_frame(0), frame);
        assert_eq!(rig.tx.take_used(&rig.mem), vec![(0, 0)]);
        assert_eq!(get(&rig.metrics.tx_frames), 1);
        assert_eq!(get(&rig.metrics.tx_bytes), frame.len() as u64);
        assert_eq!(rig.irq.tx.load(Ordering::SeqCst), 1);
    });
}

#[test]
fn tx_gso_frame_passes_through_as_one_super_frame() {
    in_netns(|| {
        let mut rig = Rig::new(&tap_name("tso"), &[f::CSUM, f::HOST_TSO4]);
        // A 30000-byte TCP segment in one IPv4 packet, asking the host to segment it.
        let payload = 30000usize;
        let mut frame = vec![0xff; 6];
        frame.extend_from_slice(&[0x02, 0, 0, 0, 0, 1, 0x08, 0x00]);
        let ip_len = (20 + 20 + payload) as u16;
        frame.extend_from_slice(&[0x45, 0, (ip_len >> 8) as u8, ip_len as u8, 0, 1, 0x40, 0]);
        frame.extend_from_slice(&[64, 6, 0, 0, 192, 0, 2, 2, 192, 0, 2, 1]);
        frame.extend_from_slice(&[0x30, 0x39, 0x13, 0x89, 0, 0, 0, 1, 0, 0, 0, 0]);
        frame.extend_from_slice(&[0x50, 0x18, 0xff, 0xff, 0, 0, 0, 0]);
        frame.extend((0..payload).map(|i| i as u8));
        let mut hdr = [0u8; VNET_HDR_LEN];
        hdr[0] = 1; // VIRTIO_NET_HDR_F_NEEDS_CSUM
        hdr[1] = 1; // VIRTIO_NET_HDR_GSO_TCPV4
        hdr[2..4].copy_from_slice(&54u16.to_le_bytes()); // hdr_len
        hdr[4..6].copy_from_slice(&1448u16.to_le_bytes()); // gso_size
        hdr[6..8].copy_from_slice(&34u16.to_le_bytes()); // csum_start: TCP header
        hdr[8..10].copy_from_slice(&16u16.to_le_bytes()); // csum_offset: TCP checksum
        let sniff = PacketSock::bind(&rig.tap_name);
        sniff.enable_vnet_hdr();
        rig.queue_tx(hdr, &frame);
        rig.kick(TX_KICK_EVENT);
        assert_eq!(get(&rig.metrics.tx_frames), 1);
        // The host sees one GSO packet carrying the guest's header, not 21 segments.
        let mut seen = [0u8; 10];
        let mut buf = vec![0u8; 128 << 10];
        loop {
            // SAFETY: the kernel writes at most buf.len() bytes into buf.
            let n =
                unsafe { libc::recv(sniff.0.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
            assert!(n > 0, "no GSO frame: {}", io::Error::last_os_error());
            if buf[10 + 12..10 + 14] == [0x08, 0x00] {
                seen.copy_from_slice(&buf[..10]);
                assert_eq!(n as usize, 10 + frame.len());
                assert_eq!(&buf[10..n as usize], &frame[..]);
                break;
            }
        }
        assert_eq!(seen[1], 1, "gso_type TCPV4 kept");
        assert_eq!(u16::from_le_bytes([seen[4], seen[5]]), 1448);
    });
}

#[test]
fn tx_malformed_chains_are_dropped_and_counted() {
    in_netns(|| {
        let mut rig = Rig::new(&tap_name("bad"), &[]);
        let mem = rig.mem.clone();
        // 1: shorter than a vnet header.
        let a = rig.alloc(8);
        rig.tx.add_chain(&mem, &[(a, 8, false)]);
        // 2: header and a descriptor pointing past the end of guest memory.
        let h = rig.alloc(12);
        rig.tx
            .add_chain(&mem, &[(h, 12, false), (MEM_SIZE as u64 - 16, 4096, false)]);
        // 3: larger than MAX_BUFFER_LEN.
        let big = rig.alloc(MAX_BUFFER_LEN as u32 + 1);
        rig.tx
            .add_chain(&mem, &[(big, MAX_BUFFER_LEN as u32 + 1, false)]);
        // 4: device-writable only: nothing to read.
        let w = rig.alloc(100);
        rig.tx.add_chain(&mem, &[(w, 100, true)]);
        // 5: header plus 2 bytes: no Ethernet header.
        let s = rig.alloc(14);
        rig.tx.add_chain(&mem, &[(s, 14, false)]);
        // 6: a good frame still goes through afterwards.
        let frame = test_frame(60, 9);
        rig.queue_tx([0; VNET_HDR_LEN], &frame);
        rig.kick(TX_KICK_EVENT);
        assert_eq!(rig.host.recv_test_frame(0), frame);
        let used = rig.tx.take_used(&mem);
        assert_eq!(used.len(), 6, "every chain is returned: {used:?}");
        assert!(used.iter().all(|&(_, len)| len == 0));
        assert_eq!(get(&rig.metrics.tx_malformed_chains), 4);
        assert_eq!(get(&rig.metrics.tx_oversized_frames), 1);
        assert_eq!(get(&rig.metrics.tx_frames), 1);
    });
}

#[test]
fn tx_bad_avail_index_stops_the_queue_without_panic() {
    in_netns(|| {
        let mut rig = Rig::new(&tap_name("idx"), &[]);
        // The driver claims 1000 new entries in a 64-entry ring (virtio 1.2 §2.7.6 violation).
        rig.mem
            .write_obj(1000u16.to_le(), rig.tx.avail.unchecked_add(2))
            .unwrap();
        rig.kick(TX_KICK_EVENT);
        rig.kick(TX_KICK_EVENT);
        assert_eq!(get(&rig.metrics.queue_errors), 1);
        assert!(rig.handler.tx.broken);
        // RX keeps working.
        let addrs = rig.post_rx(1, 2048);
        rig.kick(RX_KICK_EVENT);
        let frame = test_frame(100, 1);
        rig.host.send(&frame);
        rig.wait_tap_event();
        rig.handler.handle(TAP_EVENT);
        let used = rig.rx.take_used(&rig.mem);
        assert_eq!(used, vec![(0, (VNET_HDR_LEN + frame.len()) as u32)]);
        assert_eq!(rig.read_guest(addrs[0] + 12, frame.len()), frame);
    });
}

#[test]
fn rx_without_mrg_rxbuf_one_buffer_per_frame() {
    in_netns(|| {
        let mut rig = Rig::new(&tap_name("rx"), &[VIRTIO_F_EVENT_IDX]);
        let addrs = rig.post_rx(4, 2048);
        let frames: Vec<_> = (0..3).map(|i| test_frame(200 + 300 * i, i as u8)).collect();
        for frame in &frames {
            rig.host.send(frame);
        }
        rig.wait_tap_event();
        rig.handler.handle(TAP_EVENT);
        let used = rig.rx.take_used(&rig.mem);
        assert_eq!(used.len(), 3, "{used:?}");
        for (i, frame) in frames.iter().enumerate() {
            assert_eq!(used[i], (i as u32, (VNET_HDR_LEN + frame.len()) as u32));
            let hdr = rig.read_guest(addrs[i], VNET_HDR_LEN);
            assert_eq!(&hdr[10..12], &1u16.to_le_bytes(), "num_buffers is 1");
            assert_eq!(&rig.read_guest(addrs[i] + 12, frame.len()), frame);
        }
        assert_eq!(get(&rig.metrics.rx_frames), 3);
        assert!(rig.irq.rx.load(Ordering::SeqCst) >= 1);
        assert!(!rig.handler.rx_paused());
        // A frame larger than the (single) next buffer is dropped, the buffer kept.
        let small = rig.post_rx(1, 128);
        let _ = small;
        rig.host.send(&test_frame(1400, 7)); // lands in buffer 3 (2048 bytes)
        let big = test_frame(1400, 8); // does not fit the 128-byte buffer
        rig.host.send(&big);
        let last = test_frame(50, 9); // fits the 128-byte buffer
        rig.host.send(&last);
        rig.wait_tap_event();
        rig.handler.handle(TAP_EVENT);
        let used = rig.rx.take_used(&rig.mem);
        assert_eq!(used.len(), 2, "{used:?}");
        assert_eq!(used[1], (4, (VNET_HDR_LEN + last.len()) as u32));
        assert_eq!(get(&rig.metrics.rx_oversized_frames), 1);
    });
}

#[test]
fn rx_with_mrg_rxbuf_spans_buffers_and_sets_num_buffers() {
    in_netns(|| {
        let mut rig = Rig::new(&tap_name("mrg"), &[f::MRG_RXBUF, VIRTIO_F_EVENT_IDX]);
        let addrs = rig.post_rx(8, 256);
        let frame = test_frame(990, 5); // 12 + 1004 bytes: 4 buffers of 256
        rig.host.send(&frame);
        rig.wait_tap_event();
        rig.handler.handle(TAP_EVENT);
        let used = rig.rx.take_used(&rig.mem);
        assert_eq!(used, vec![(0, 256), (1, 256), (2, 256), (3, 1016 - 768)]);
        let hdr = rig.read_guest(addrs[0], VNET_HDR_LEN);
        assert_eq!(&hdr[10..12], &4u16.to_le_bytes());
        let mut data = rig.read_guest(addrs[0] + 12, 256 - 12);
        for &a in &addrs[1..4] {
            data.extend(rig.read_guest(a, 256));
        }
        data.truncate(frame.len());
        assert_eq!(data, frame);
        assert_eq!(get(&rig.metrics.rx_frames), 1);
    });
}

#[test]
fn rx_pauses_without_buffers_and_resumes_on_kick() {
    in_netns(|| {
        let mut rig = Rig::new(&tap_name("pz"), &[f::MRG_RXBUF, VIRTIO_F_EVENT_IDX]);
        let frame = test_frame(990, 4); // 1016 bytes with the header: 4 buffers of 256
        rig.host.send(&frame);
        rig.wait_tap_event();
        rig.handler.handle(TAP_EVENT);
        // No buffers: RX paused, and the fd the VMM watches is quiet although the TAP is not
        // drained — a level-triggered loop does not spin.
        assert!(rig.handler.rx_paused());
        assert_eq!(get(&rig.metrics.rx_no_buffers), 1);
        rig.host.send(&test_frame(64, 6));
        std::thread::sleep(std::time::Duration::from_millis(50));
        assert!(
            !rig.tap_event_ready(),
            "paused TAP still wakes the event loop"
        );
        // One 256-byte buffer is not enough for the 1016-byte frame: it stays in the avail
        // ring (rewound), nothing is used, and the driver is asked to notify on its next add.
        let first = rig.post_rx(1, 256);
        rig.kick(RX_KICK_EVENT);
        assert!(rig.handler.rx_paused());
        assert!(rig.rx.take_used(&rig.mem).is_empty());
        let avail_event: u16 = u16::from_le(
            rig.mem
                .read_obj(rig.rx.used.unchecked_add(4 + 8 * QSIZE as u64))
                .unwrap(),
        );
        assert_eq!(avail_event, 1, "avail_event points past the posted buffer");
        // Enough buffers: the kept frame, then the second one, are delivered.
        let more = rig.post_rx(7, 256);
        rig.kick(RX_KICK_EVENT);
        assert!(!rig.handler.rx_paused());
        let used = rig.rx.take_used(&rig.mem);
        assert_eq!(used[..4], [(0, 256), (1, 256), (2, 256), (3, 248)]);
        assert_eq!(used[4], (4, (VNET_HDR_LEN + 64 + 14) as u32));
        assert_eq!(rig.read_guest(first[0] + 12, 244), frame[..244].to_vec());
        assert_eq!(
            &rig.read_guest(more[0], VNET_HDR_LEN)[..],
            &frame[244..256],
            "second buffer continues the frame"
        );
        assert_eq!(used.len(), 5, "{used:?}");
        assert_eq!(get(&rig.metrics.rx_frames), 2);
        // Drained: the watched fd is quiet again, and stays watched.
        assert!(!rig.tap_event_ready());
        assert!(!rig.handler.rx_paused());
    });
}

#[test]
fn rx_malformed_chains_are_returned_empty_and_counted() {
    in_netns(|| {
        let mut rig = Rig::new(&tap_name("rxb"), &[]);
        let mem = rig.mem.clone();
        // Read-only chain, a chain outside memory, a first buffer smaller than the header.
        let ro = rig.alloc(2048);
        rig.rx.add_chain(&mem, &[(ro, 2048, false)]);
        rig.rx
            .add_chain(&mem, &[(MEM_SIZE as u64 + 0x1000, 2048, true)]);
        let tiny = rig.alloc(8);
        rig.rx.add_chain(&mem, &[(tiny, 8, true)]);
        let good = rig.post_rx(1, 2048);
        let frame = test_frame(300, 2);
        rig.host.send(&frame);
        rig.wait_tap_event();
        rig.handler.handle(TAP_EVENT);
        let used = rig.rx.take_used(&mem);
        assert_eq!(
            used,
            vec![
                (0, 0),
                (1, 0),
                (2, 0),
                (3, (VNET_HDR_LEN + frame.len()) as u32)
            ]
        );
        assert_eq!(rig.read_guest(good[0] + 12, frame.len()), frame);
        assert_eq!(get(&rig.metrics.rx_malformed_chains), 3);
        assert_eq!(get(&rig.metrics.rx_frames), 1);
    });
}

#[test]
fn rx_gso_frames_arrive_whole_when_the_guest_takes_tso() {
    in_netns(|| {
        let mut rig = Rig::new(
            &tap_name("gro"),
            &[f::GUEST_CSUM, f::GUEST_TSO4, f::MRG_RXBUF],
        );
        let addrs = rig.post_rx(40, 4096);
        let inject = PacketSock::bind(&rig.tap_name);
        inject.enable_vnet_hdr();
        // A 20000-byte TCP GSO packet from the host; the TAP may pass it on unsegmented
        // only because TUNSETOFFLOAD got TUN_F_CSUM|TUN_F_TSO4 from the guest's features.
        let payload = 20000usize;
        let mut pkt = vec![1u8, 1]; // NEEDS_CSUM, GSO_TCPV4
        pkt.extend_from_slice(&54u16.to_le_bytes());
        pkt.extend_from_slice(&1448u16.to_le_bytes());
        pkt.extend_from_slice(&34u16.to_le_bytes());
        pkt.extend_from_slice(&16u16.to_le_bytes());
        pkt.extend_from_slice(&[0x02, 0, 0, 0, 0, 1, 0x02, 0, 0, 0, 0, 2, 0x08, 0x00]);
        let ip_len = (40 + payload) as u16;
        pkt.extend_from_slice(&[0x45, 0, (ip_len >> 8) as u8, ip_len as u8, 0, 1, 0x40, 0]);
        pkt.extend_from_slice(&[64, 6, 0, 0, 192, 0, 2, 1, 192, 0, 2, 2]);
        pkt.extend_from_slice(&[0x13, 0x89, 0x30, 0x39, 0, 0, 0, 1, 0, 0, 0, 0]);
        pkt.extend_from_slice(&[0x50, 0x18, 0xff, 0xff, 0, 0, 0, 0]);
        pkt.extend((0..payload).map(|i| (i % 251) as u8));
        inject.send(&pkt);
        rig.wait_tap_event();
        rig.handler.handle(TAP_EVENT);
        let used = rig.rx.take_used(&rig.mem);
        let frame_len = pkt.len() - 10;
        let total: u32 = used.iter().map(|&(_, l)| l).sum();
        assert_eq!(total as usize, VNET_HDR_LEN + frame_len, "{used:?}");
        let hdr = rig.read_guest(addrs[0], VNET_HDR_LEN);
        assert_eq!(hdr[1], 1, "gso_type TCPV4 reaches the guest");
        assert_eq!(u16::from_le_bytes([hdr[10], hdr[11]]) as usize, used.len());
        let mut data = rig.read_guest(addrs[0] + 12, 4096 - 12);
        for &a in &addrs[1..used.len()] {
            data.extend(rig.read_guest(a, 4096));
        }
        data.truncate(frame_len);
        assert_eq!(&data[54..], &pkt[10 + 54..]);
        assert_eq!(get(&rig.metrics.rx_frames), 1);
        assert_eq!(
            get(&rig.metrics.rx_direct_frames),
            1,
            "read straight into guest buffers"
        );
    });
}

#[test]
fn tap_created_here_is_removed_and_existing_one_kept() {
    in_netns(|| {
        let name = tap_name("own");
        assert_eq!(ifindex(&name), 0);
        let tap = Tap::open(&name).expect("create TAP");
        assert!(tap.created());
        assert_ne!(ifindex(&name), 0);
        drop(tap);
        assert_eq!(ifindex(&name), 0, "created TAP removed on drop");

        quiet_persistent_tap(&name);
        let tap = Tap::open(&name).expect("open existing TAP");
        assert!(!tap.created());
        drop(tap);
        assert_ne!(ifindex(&name), 0, "existing TAP kept");

        // A second open of a TAP in use fails cleanly.
        let held = Tap::open(&name).unwrap();
        assert!(matches!(Tap::open(&name), Err(TapError::SetIff { .. })));
        drop(held);
    });
}

#[test]
fn device_model_config_and_activation_errors() {
    in_netns(|| {
        let name = tap_name("dev");
        let mut dev = Net::new(&name, Some("52:54:00:12:34:56".parse().unwrap())).unwrap();
        let d: &mut dyn VirtioDevice<Mem> = &mut dev;
        assert_eq!(d.device_type(), VIRTIO_ID_NET);
        assert_eq!(d.queue_max_sizes(), &[QUEUE_MAX_SIZE, QUEUE_MAX_SIZE]);
        let mut cfg = [0xaa; 10];
        d.read_config(0, &mut cfg);
        assert_eq!(cfg, [0x52, 0x54, 0, 0x12, 0x34, 0x56, 1, 0, 0, 0]);
        let mut tail = [0xaa; 4];
        d.read_config(u64::MAX - 1, &mut tail);
        assert_eq!(tail, [0; 4]);
        d.write_config(0, &[0; 6]);
        d.read_config(0, &mut cfg[..6]);
        assert_eq!(
            cfg[..6],
            [0x52, 0x54, 0, 0x12, 0x34, 0x56],
            "mac is read-only"
        );

        let mem: Mem = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), MEM_SIZE)]).unwrap();
        let ctx = |queues: Vec<u16>, features: u64| ActivationContext {
            mem: mem.clone(),
            acked_features: features,
            queues: queues
                .into_iter()
                .map(|i| {
                    let (queue, _) = make_queue(&mem, GuestAddress(0x4000 * i as u64), false);
                    (
                        i,
                        ActivatedQueue {
                            queue,
                            kick: EventFd::new(EFD_NONBLOCK).unwrap(),
                        },
                    )
                })
                .collect(),
            interrupt: Arc::new(CountIrq::default()),
        };
        let v1 = 1u64 << VIRTIO_F_VERSION_1;
        assert!(matches!(
            dev.activate_handler(ctx(vec![0], v1)),
            Err(ActivateError::QueueNotReady(1))
        ));
        let bad = v1 | (1 << f::GUEST_TSO4);
        assert!(matches!(
            dev.activate_handler(ctx(vec![0, 1], bad)),
            Err(ActivateError::BadFeatures(b)) if b == bad
        ));
        let h = dev.activate_handler(ctx(vec![0, 1], v1)).expect("activate");
        assert_eq!(h.fds().len(), 3);
        VirtioDevice::<Mem>::reset(&mut dev);
    });
}

#[test]
fn rx_budget_yields_and_rearms_itself() {
    in_netns(|| {
        let mut rig = Rig::new(&tap_name("bud"), &[]);
        rig.post_rx(QSIZE as usize, 256);
        let total = BUDGET_FRAMES + 6;
        for i in 0..total {
            rig.host.send(&test_frame(40, i as u8));
        }
        rig.wait_tap_event();
        rig.handler.handle(TAP_EVENT);
        // One budget's worth, then the handler yields and re-arms its RX kick.
        assert_eq!(rig.rx.take_used(&rig.mem).len(), BUDGET_FRAMES);
        let rx_kick = rig.handler.fds()[RX_KICK_EVENT];
        assert!(poll_readable(rx_kick), "RX did not re-arm after its budget");
        rig.handler.handle(RX_KICK_EVENT);
        // The ring had QSIZE buffers: the rest wait for more, RX pauses.
        let used = rig.rx.take_used(&rig.mem);
        assert_eq!(used.len(), QSIZE as usize - BUDGET_FRAMES);
        assert!(rig.handler.rx_paused());
        rig.post_rx(8, 256);
        rig.kick(RX_KICK_EVENT);
        let used = rig.rx.take_used(&rig.mem);
        assert_eq!(used.len(), total - QSIZE as usize);
        assert_eq!(get(&rig.metrics.rx_frames), total as u64);
        assert!(!rig.handler.rx_paused());
    });
}

#[test]
fn tx_long_chain_takes_the_gather_path() {
    in_netns(|| {
        let mut rig = Rig::new(&tap_name("sg"), &[]);
        let mem = rig.mem.clone();
        // Header plus 40 pieces: more segments than the zero-copy path takes.
        let frame = test_frame(40 * 30 - 14, 4);
        const { assert!(40 > super::tx::MAX_ZERO_COPY_SEGMENTS) };
        let mut descs = vec![];
        let h = rig.alloc(VNET_HDR_LEN as u32);
        mem.write_slice(&[0; VNET_HDR_LEN], GuestAddress(h))
            .unwrap();
        descs.push((h, VNET_HDR_LEN as u32, false));
        for piece in frame.chunks(30) {
            let at = rig.alloc(piece.len() as u32);
            mem.write_slice(piece, GuestAddress(at)).unwrap();
            descs.push((at, piece.len() as u32, false));
        }
        rig.tx.add_chain(&mem, &descs);
        rig.kick(TX_KICK_EVENT);
        assert_eq!(rig.host.recv_test_frame(0), frame);
        assert_eq!(get(&rig.metrics.tx_frames), 1);
        assert_eq!(rig.tx.take_used(&mem), vec![(0, 0)]);
    });
}

#[test]
fn rx_direct_path_reads_frames_into_guest_buffers() {
    in_netns(|| {
        let mut rig = Rig::new(&tap_name("dir"), &[f::MRG_RXBUF, VIRTIO_F_EVENT_IDX]);
        set_mtu(&rig.tap_name, 9000);
        // 20 x 4 KiB: room for the largest frame, so frames go straight into guest memory.
        let addrs = rig.post_rx(20, 4096);
        let frames = [test_frame(100, 1), test_frame(3000, 2), test_frame(9000, 3)];
        for frame in &frames {
            rig.host.send(frame);
        }
        rig.wait_tap_event();
        rig.handler.handle(TAP_EVENT);
        let used = rig.rx.take_used(&rig.mem);
        let l = |f: &Vec<u8>| (VNET_HDR_LEN + f.len()) as u32;
        assert_eq!(
            used,
            vec![
                (0, l(&frames[0])),
                (1, l(&frames[1])),
                (2, 4096),
                (3, 4096),
                (4, l(&frames[2]) - 8192)
            ]
        );
        assert_eq!(get(&rig.metrics.rx_direct_frames), 3);
        for (i, &first) in [0usize, 1, 2].iter().enumerate() {
            let hdr = rig.read_guest(addrs[first], VNET_HDR_LEN);
            let expect: u16 = if i == 2 { 3 } else { 1 };
            assert_eq!(
                &hdr[10..12],
                &expect.to_le_bytes(),
                "num_buffers of frame {i}"
            );
        }
        assert_eq!(rig.read_guest(addrs[0] + 12, frames[0].len()), frames[0]);
        assert_eq!(rig.read_guest(addrs[1] + 12, frames[1].len()), frames[1]);
        let mut data = rig.read_guest(addrs[2] + 12, 4096 - 12);
        data.extend(rig.read_guest(addrs[3], 4096));
        data.extend(rig.read_guest(addrs[4], 4096));
        data.truncate(frames[2].len());
        assert_eq!(data, frames[2]);
        // The TAP is drained and the chains the readv did not need are still available: 15
        // left, under one largest frame's worth, so the next frame takes the buffered path.
        assert!(!rig.tap_event_ready());
        let last = test_frame(500, 4);
        rig.host.send(&last);
        rig.wait_tap_event();
        rig.handler.handle(TAP_EVENT);
        assert_eq!(rig.rx.take_used(&rig.mem), vec![(5, l(&last))]);
        assert_eq!(rig.read_guest(addrs[5] + 12, last.len()), last);
        assert_eq!(get(&rig.metrics.rx_direct_frames), 3);
        assert_eq!(get(&rig.metrics.rx_frames), 4);
    });
}

#[test]
fn rx_direct_path_without_mrg_rxbuf_uses_one_big_buffer() {
    in_netns(|| {
        let mut rig = Rig::new(&tap_name("big"), &[]);
        set_mtu(&rig.tap_name, 9000);
        let big = MAX_BUFFER_LEN as u32 + 4096;
        let addrs = rig.post_rx(2, big);
        let frame = test_frame(7000, 9);
        rig.host.send(&frame);
        rig.wait_tap_event();
        rig.handler.handle(TAP_EVENT);
        assert_eq!(
            rig.rx.take_used(&rig.mem),
            vec![(0, (VNET_HDR_LEN + frame.len()) as u32)]
        );
        assert_eq!(&rig.read_guest(addrs[0], 12)[10..], &1u16.to_le_bytes());
        assert_eq!(rig.read_guest(addrs[0] + 12, frame.len()), frame);
        assert_eq!(get(&rig.metrics.rx_direct_frames), 1);
    });
}
