//! Register-level tests of the virtio-mmio transport against a dummy device.
use super::*;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::Mutex;
use std::sync::atomic::AtomicUsize;

use vm_memory::{GuestAddress, GuestMemoryMmap};

use crate::virtio::ActivateError;
use crate::virtio::mmio::{INT_CONFIG, INT_VRING};

type Mem = GuestMemoryMmap;

#[derive(Default)]
struct Shared {
    activations: AtomicUsize,
    resets: AtomicUsize,
    config: Mutex<[u8; 8]>,
    last_features: Mutex<u64>,
    last_queues: Mutex<Vec<u16>>,
    interrupt: Mutex<Option<Arc<dyn VirtioInterrupt>>>,
}

struct Dummy {
    shared: Arc<Shared>,
    fail: bool,
}

struct NopHandler(Vec<EventFd>);
impl DeviceHandler for NopHandler {
    fn fds(&self) -> Vec<RawFd> {
        self.0.iter().map(|e| e.as_raw_fd()).collect()
    }
    fn handle(&mut self, _index: usize) {}
}

impl VirtioDevice<Mem> for Dummy {
    fn device_type(&self) -> u32 {
        42
    }
    fn queue_max_sizes(&self) -> &[u16] {
        &[16, 8]
    }
    fn avail_features(&self) -> u64 {
        (1 << VIRTIO_F_VERSION_1) | (1 << VIRTIO_F_EVENT_IDX) | 1
    }
    fn read_config(&self, offset: u64, data: &mut [u8]) {
        let config = self.shared.config.lock().unwrap();
        for (i, b) in data.iter_mut().enumerate() {
            *b = config.get(offset as usize + i).copied().unwrap_or(0);
        }
    }
    fn write_config(&mut self, offset: u64, data: &[u8]) {
        let mut config = self.shared.config.lock().unwrap();
        for (i, b) in data.iter().enumerate() {
            if let Some(slot) = config.get_mut(offset as usize + i) {
                *slot = *b;
            }
        }
    }
    fn activate(
        &mut self,
        ctx: ActivationContext<Mem>,
    ) -> Result<Box<dyn DeviceHandler>, ActivateError> {
        if self.fail {
            return Err(ActivateError::Backend("test".into()));
        }
        self.shared.activations.fetch_add(1, Ordering::SeqCst);
        *self.shared.last_features.lock().unwrap() = ctx.acked_features;
        *self.shared.last_queues.lock().unwrap() = ctx.queues.iter().map(|q| q.0).collect();
        *self.shared.interrupt.lock().unwrap() = Some(ctx.interrupt.clone());
        Ok(Box::new(NopHandler(
            ctx.queues.into_iter().map(|(_, q)| q.kick).collect(),
        )))
    }
    fn reset(&mut self) {
        self.shared.resets.fetch_add(1, Ordering::SeqCst);
    }
}

fn setup(fail: bool) -> (MmioTransport<Mem>, Arc<Shared>, Arc<EventFd>) {
    let mem = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 0x10_0000)]).unwrap();
    let shared = Arc::new(Shared::default());
    let irq = Arc::new(EventFd::new(EFD_NONBLOCK).unwrap());
    let dev = Box::new(Dummy {
        shared: shared.clone(),
        fail,
    });
    let t = MmioTransport::new(dev, mem, irq.clone()).unwrap();
    (t, shared, irq)
}

fn r(t: &mut MmioTransport<Mem>, off: u64) -> u32 {
    let mut b = [0u8; 4];
    t.read(off, &mut b);
    u32::from_le_bytes(b)
}

fn w(t: &mut MmioTransport<Mem>, off: u64, v: u32) -> Option<TransportEvent> {
    t.write(off, &v.to_le_bytes())
}

fn setup_queue(t: &mut MmioTransport<Mem>, index: u32, base: u64) {
    w(t, regs::QUEUE_SEL, index);
    w(t, regs::QUEUE_NUM, 8);
    w(t, regs::QUEUE_DESC_LOW, base as u32);
    w(t, regs::QUEUE_DESC_HIGH, 0);
    w(t, regs::QUEUE_DRIVER_LOW, (base + 0x1000) as u32);
    w(t, regs::QUEUE_DRIVER_HIGH, 0);
    w(t, regs::QUEUE_DEVICE_LOW, (base + 0x2000) as u32);
    w(t, regs::QUEUE_DEVICE_HIGH, 0);
    w(t, regs::QUEUE_READY, 1);
}

fn negotiate(t: &mut MmioTransport<Mem>, features: u64) {
    w(t, regs::STATUS, status::ACKNOWLEDGE);
    w(t, regs::STATUS, status::ACKNOWLEDGE | status::DRIVER);
    w(t, regs::DRIVER_FEATURES_SEL, 0);
    w(t, regs::DRIVER_FEATURES, features as u32);
    w(t, regs::DRIVER_FEATURES_SEL, 1);
    w(t, regs::DRIVER_FEATURES, (features >> 32) as u32);
    w(
        t,
        regs::STATUS,
        status::ACKNOWLEDGE | status::DRIVER | status::FEATURES_OK,
    );
}

const DRIVER_OK_ALL: u32 =
    status::ACKNOWLEDGE | status::DRIVER | status::FEATURES_OK | status::DRIVER_OK;

#[test]
fn identification_registers() {
    let (mut t, _, _) = setup(false);
    assert_eq!(r(&mut t, regs::MAGIC_VALUE), MMIO_MAGIC_VALUE);
    assert_eq!(r(&mut t, regs::VERSION), 2);
    assert_eq!(r(&mut t, regs::DEVICE_ID), 42);
    assert_eq!(r(&mut t, regs::VENDOR_ID), MMIO_VENDOR_ID);
    w(&mut t, regs::DEVICE_FEATURES_SEL, 0);
    assert_eq!(
        r(&mut t, regs::DEVICE_FEATURES),
        1 | (1 << VIRTIO_F_EVENT_IDX)
    );
    w(&mut t, regs::DEVICE_FEATURES_SEL, 1);
    assert_eq!(r(&mut t, regs::DEVICE_FEATURES), 1);
    w(&mut t, regs::DEVICE_FEATURES_SEL, 7);
    assert_eq!(r(&mut t, regs::DEVICE_FEATURES), 0);
    w(&mut t, regs::QUEUE_SEL, 0);
    assert_eq!(r(&mut t, regs::QUEUE_NUM_MAX), 16);
    w(&mut t, regs::QUEUE_SEL, 1);
    assert_eq!(r(&mut t, regs::QUEUE_NUM_MAX), 8);
    w(&mut t, regs::QUEUE_SEL, 2);
    assert_eq!(r(&mut t, regs::QUEUE_NUM_MAX), 0);
    assert_eq!(r(&mut t, regs::SHM_LEN_LOW), u32::MAX);
}

#[test]
fn activation_hands_over_ready_queues_and_features() {
    let (mut t, shared, irq) = setup(false);
    let features = (1 << VIRTIO_F_VERSION_1) | (1 << VIRTIO_F_EVENT_IDX);
    negotiate(&mut t, features);
    assert_ne!(r(&mut t, regs::STATUS) & status::FEATURES_OK, 0);
    setup_queue(&mut t, 0, 0x1_0000);
    assert_eq!(r(&mut t, regs::QUEUE_READY), 1);
    let ev = w(&mut t, regs::STATUS, DRIVER_OK_ALL);
    assert!(matches!(ev, Some(TransportEvent::Activated(_))));
    assert!(t.is_activated());
    assert_eq!(shared.activations.load(Ordering::SeqCst), 1);
    assert_eq!(*shared.last_features.lock().unwrap(), features);
    assert_eq!(*shared.last_queues.lock().unwrap(), vec![0]);

    // The device's interrupt sets the status bit and raises the line; ACK clears it.
    let int = shared.interrupt.lock().unwrap().clone().unwrap();
    int.trigger(InterruptKind::Queue(0)).unwrap();
    assert_eq!(irq.read().unwrap(), 1);
    assert_eq!(r(&mut t, regs::INTERRUPT_STATUS), INT_VRING);
    int.trigger(InterruptKind::Config).unwrap();
    assert_eq!(r(&mut t, regs::INTERRUPT_STATUS), INT_VRING | INT_CONFIG);
    assert_eq!(r(&mut t, regs::CONFIG_GENERATION), 1);
    w(&mut t, regs::INTERRUPT_ACK, INT_VRING);
    assert_eq!(r(&mut t, regs::INTERRUPT_STATUS), INT_CONFIG);

    // Queue registers are frozen after DRIVER_OK.
    w(&mut t, regs::QUEUE_SEL, 1);
    w(&mut t, regs::QUEUE_READY, 1);
    assert_eq!(r(&mut t, regs::QUEUE_READY), 0);

    // Reset tells the VMM to drop the handler and resets the device.
    let ev = w(&mut t, regs::STATUS, 0);
    assert!(matches!(ev, Some(TransportEvent::Reset)));
    assert_eq!(shared.resets.load(Ordering::SeqCst), 1);
    assert_eq!(r(&mut t, regs::STATUS), 0);
    assert_eq!(r(&mut t, regs::INTERRUPT_STATUS), 0);
    w(&mut t, regs::QUEUE_SEL, 0);
    assert_eq!(r(&mut t, regs::QUEUE_READY), 0);

    // And the device can be brought up again.
    negotiate(&mut t, features);
    setup_queue(&mut t, 0, 0x1_0000);
    setup_queue(&mut t, 1, 0x4_0000);
    let ev = w(&mut t, regs::STATUS, DRIVER_OK_ALL);
    assert!(matches!(ev, Some(TransportEvent::Activated(_))));
    assert_eq!(*shared.last_queues.lock().unwrap(), vec![0, 1]);
}

#[test]
fn features_without_version_1_or_unknown_bits_are_refused() {
    let (mut t, _, _) = setup(false);
    negotiate(&mut t, 1);
    assert_eq!(r(&mut t, regs::STATUS) & status::FEATURES_OK, 0);
    let (mut t, _, _) = setup(false);
    negotiate(&mut t, (1 << VIRTIO_F_VERSION_1) | (1 << 5));
    assert_eq!(r(&mut t, regs::STATUS) & status::FEATURES_OK, 0);
}

#[test]
fn driver_ok_without_features_ok_needs_reset() {
    let (mut t, shared, irq) = setup(false);
    w(&mut t, regs::STATUS, status::ACKNOWLEDGE | status::DRIVER);
    let ev = w(
        &mut t,
        regs::STATUS,
        status::ACKNOWLEDGE | status::DRIVER | status::DRIVER_OK,
    );
    assert!(ev.is_none());
    assert_ne!(r(&mut t, regs::STATUS) & status::DEVICE_NEEDS_RESET, 0);
    assert_eq!(shared.activations.load(Ordering::SeqCst), 0);
    assert_eq!(irq.read().unwrap(), 1);
    assert_eq!(r(&mut t, regs::INTERRUPT_STATUS), INT_CONFIG);
}

#[test]
fn queue_outside_memory_or_bad_size_needs_reset() {
    let (mut t, shared, _) = setup(false);
    negotiate(&mut t, 1 << VIRTIO_F_VERSION_1);
    // Rings far beyond the 1 MiB of guest memory.
    setup_queue(&mut t, 0, 0x4000_0000);
    assert!(w(&mut t, regs::STATUS, DRIVER_OK_ALL).is_none());
    assert_ne!(r(&mut t, regs::STATUS) & status::DEVICE_NEEDS_RESET, 0);
    assert_eq!(shared.activations.load(Ordering::SeqCst), 0);

    let (mut t, shared, _) = setup(false);
    negotiate(&mut t, 1 << VIRTIO_F_VERSION_1);
    setup_queue(&mut t, 0, 0x1_0000);
    // Reconfiguration while ready is ignored, so force a bad size before ready instead.
    w(&mut t, regs::STATUS, 0);
    negotiate(&mut t, 1 << VIRTIO_F_VERSION_1);
    w(&mut t, regs::QUEUE_SEL, 0);
    w(&mut t, regs::QUEUE_NUM, 3); // not a power of two: Queue keeps a valid size
    w(&mut t, regs::QUEUE_NUM, 1 << 20); // above max: refused
    setup_queue(&mut t, 0, 0x1_0000);
    assert!(matches!(
        w(&mut t, regs::STATUS, DRIVER_OK_ALL),
        Some(TransportEvent::Activated(_))
    ));
    assert_eq!(shared.activations.load(Ordering::SeqCst), 1);
}

#[test]
fn failed_activation_needs_reset() {
    let (mut t, _, _) = setup(true);
    negotiate(&mut t, 1 << VIRTIO_F_VERSION_1);
    setup_queue(&mut t, 0, 0x1_0000);
    assert!(w(&mut t, regs::STATUS, DRIVER_OK_ALL).is_none());
    assert_ne!(r(&mut t, regs::STATUS) & status::DEVICE_NEEDS_RESET, 0);
    assert!(!t.is_activated());
}

#[test]
fn status_bits_cannot_be_cleared_and_bad_accesses_are_ignored() {
    let (mut t, _, _) = setup(false);
    w(&mut t, regs::STATUS, status::ACKNOWLEDGE | status::DRIVER);
    w(&mut t, regs::STATUS, status::ACKNOWLEDGE);
    assert_eq!(
        r(&mut t, regs::STATUS),
        status::ACKNOWLEDGE | status::DRIVER
    );
    // 2-byte register accesses are ignored; reads give zeros.
    assert!(t.write(regs::STATUS, &[0, 0]).is_none());
    assert_eq!(
        r(&mut t, regs::STATUS),
        status::ACKNOWLEDGE | status::DRIVER
    );
    let mut two = [0xffu8; 2];
    t.read(regs::MAGIC_VALUE, &mut two);
    assert_eq!(two, [0, 0]);
    // Features written before DRIVER are ignored.
    let (mut t, _, _) = setup(false);
    w(&mut t, regs::DRIVER_FEATURES, 1);
    assert_eq!(t.acked_features, 0);
}

#[test]
fn notify_writes_the_queue_kick_and_config_goes_to_device() {
    let (mut t, shared, _) = setup(false);
    w(&mut t, regs::QUEUE_NOTIFY, 1);
    assert_eq!(t.queue_kick_fds()[1].read().unwrap(), 1);
    w(&mut t, regs::QUEUE_NOTIFY, 9); // missing queue: ignored
    t.write(regs::CONFIG + 2, &[7, 8]);
    assert_eq!(shared.config.lock().unwrap()[2..4], [7, 8]);
    let mut b = [0u8; 4];
    t.read(regs::CONFIG + 2, &mut b);
    assert_eq!(b, [7, 8, 0, 0]);
}
