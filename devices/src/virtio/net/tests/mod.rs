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

mod device;
mod rx;
mod tx;
