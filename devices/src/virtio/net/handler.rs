//! Event glue of a running virtio-net device: which fds the VMM watches, what each event does,
//! and when the TAP is watched at all.
//!
//! The VMM's loop is level-triggered, so a readable TAP that we cannot drain (the guest posted
//! no RX buffers) would wake it forever. The TAP therefore sits in a private epoll set whose fd
//! is what the VMM watches: taking the TAP out of that set silences it without the VMM knowing
//! or the [`DeviceHandler`] trait changing; an RX kick puts it back.

use std::os::fd::{AsRawFd, RawFd};
use std::sync::Arc;

use log::{error, warn};
use virtio_queue::{Queue, QueueT};
use vm_memory::GuestMemory;
use vmm_sys_util::epoll::{ControlOperation, Epoll, EpollEvent, EventSet};
use vmm_sys_util::eventfd::EventFd;

use super::features::MRG_RXBUF;
use super::metrics::NetMetrics;
use super::tap::Tap;
use super::{MAX_BUFFER_LEN, RX_QUEUE, TX_QUEUE};
use crate::virtio::{ActivationContext, DeviceHandler, InterruptKind, VirtioInterrupt};

/// `fds()` index of the RX queue's kick eventfd (the guest added receive buffers).
pub const RX_KICK_EVENT: usize = 0;
/// `fds()` index of the TX queue's kick eventfd (the guest queued frames).
pub const TX_KICK_EVENT: usize = 1;
/// `fds()` index of the private epoll fd that is readable while the TAP is watched and has data.
pub const TAP_EVENT: usize = 2;

/// One queue of the running device.
pub(super) struct NetQueue {
    pub(super) queue: Queue,
    pub(super) kick: EventFd,
    /// A ring error (bad avail index, used ring outside memory) stopped the queue until reset.
    pub(super) broken: bool,
}

impl NetQueue {
    /// Asks the event loop to call us again: used when a budget ran out with work left.
    pub(super) fn rearm(&self) {
        if let Err(e) = self.kick.write(1) {
            warn!("virtio-net: cannot re-arm queue: {e}");
        }
    }
}

/// Runs one activated virtio-net device on the VMM's event loop.
pub struct NetHandler<M: GuestMemory + Clone> {
    pub(super) mem: M,
    pub(super) rx: NetQueue,
    pub(super) tx: NetQueue,
    pub(super) interrupt: Arc<dyn VirtioInterrupt>,
    pub(super) tap: Arc<Tap>,
    tap_epoll: Epoll,
    tap_watched: bool,
    /// The TAP returned a hard error: stop reading it (the device keeps transmitting).
    pub(super) tap_broken: bool,
    pub(super) mrg_rxbuf: bool,
    /// Frame read from the TAP; `rx_pending` says how much of it awaits delivery.
    pub(super) rx_buf: Vec<u8>,
    pub(super) rx_pending: Option<usize>,
    /// Chains collected for the frame being delivered: (head index, bytes written).
    pub(super) rx_used: Vec<(u16, u32)>,
    pub(super) tx_buf: Vec<u8>,
    pub(super) metrics: Arc<NetMetrics>,
}

impl<M: GuestMemory + Clone> NetHandler<M> {
    /// Takes the RX and TX queues out of `ctx` (the caller checked both are there).
    pub(super) fn new(
        ctx: ActivationContext<M>,
        tap: Arc<Tap>,
        metrics: Arc<NetMetrics>,
    ) -> std::io::Result<Self> {
        let mut rx = None;
        let mut tx = None;
        for (index, aq) in ctx.queues {
            let q = NetQueue {
                queue: aq.queue,
                kick: aq.kick,
                broken: false,
            };
            match index {
                RX_QUEUE => rx = Some(q),
                TX_QUEUE => tx = Some(q),
                _ => warn!("virtio-net: ignoring unexpected queue {index}"),
            }
        }
        let missing = |i| std::io::Error::other(format!("queue {i} missing"));
        let mut handler = NetHandler {
            mem: ctx.mem,
            rx: rx.ok_or_else(|| missing(RX_QUEUE))?,
            tx: tx.ok_or_else(|| missing(TX_QUEUE))?,
            interrupt: ctx.interrupt,
            tap,
            tap_epoll: Epoll::new()?,
            tap_watched: false,
            tap_broken: false,
            mrg_rxbuf: ctx.acked_features & (1 << MRG_RXBUF) != 0,
            // One byte more than the largest frame we forward, to detect longer ones.
            rx_buf: vec![0; MAX_BUFFER_LEN + 1],
            rx_pending: None,
            rx_used: Vec::new(),
            tx_buf: vec![0; MAX_BUFFER_LEN],
            metrics,
        };
        handler.watch_tap();
        Ok(handler)
    }

    /// Whether RX is paused: the TAP is not being read (no guest buffers, or a broken queue).
    pub fn rx_paused(&self) -> bool {
        !self.tap_watched
    }

    /// Starts reading the TAP again.
    pub(super) fn watch_tap(&mut self) {
        if self.tap_watched || self.tap_broken || self.rx.broken {
            return;
        }
        let event = EpollEvent::new(EventSet::IN, 0);
        match self
            .tap_epoll
            .ctl(ControlOperation::Add, self.tap.as_raw_fd(), event)
        {
            Ok(()) => self.tap_watched = true,
            Err(e) => {
                error!("virtio-net: cannot watch TAP {}: {e}", self.tap.name());
                self.tap_broken = true;
            }
        }
    }

    /// Stops reading the TAP; frames queue up (and eventually drop) in the kernel instead.
    pub(super) fn unwatch_tap(&mut self) {
        if !self.tap_watched {
            return;
        }
        // DEL rather than MOD to an empty mask: epoll always reports ERR/HUP of a member.
        let event = EpollEvent::new(EventSet::empty(), 0);
        if let Err(e) = self
            .tap_epoll
            .ctl(ControlOperation::Delete, self.tap.as_raw_fd(), event)
        {
            error!("virtio-net: cannot unwatch TAP {}: {e}", self.tap.name());
        }
        self.tap_watched = false;
    }

    /// Interrupts the guest for `queue`, counting failures.
    pub(super) fn signal(&self, queue: u16) {
        if let Err(e) = self.interrupt.trigger(InterruptKind::Queue(queue)) {
            NetMetrics::inc(&self.metrics.interrupt_errors);
            warn!("virtio-net: cannot interrupt the guest for queue {queue}: {e}");
        }
    }

    /// Marks a queue broken after a ring error; the guest must reset the device.
    pub(super) fn queue_error(&mut self, queue: u16, e: virtio_queue::Error) {
        NetMetrics::inc(&self.metrics.queue_errors);
        error!("virtio-net: queue {queue} stopped after a ring error: {e}");
        if queue == RX_QUEUE {
            self.rx.broken = true;
            self.unwatch_tap();
        } else {
            self.tx.broken = true;
        }
    }
}

impl<M: GuestMemory + Clone + Send> DeviceHandler for NetHandler<M> {
    fn fds(&self) -> Vec<RawFd> {
        let mut fds = vec![0; 3];
        fds[RX_KICK_EVENT] = self.rx.kick.as_raw_fd();
        fds[TX_KICK_EVENT] = self.tx.kick.as_raw_fd();
        fds[TAP_EVENT] = self.tap_epoll.as_raw_fd();
        fds
    }

    fn handle(&mut self, index: usize) {
        match index {
            RX_KICK_EVENT => {
                // Level-triggered: consume the kick or it fires again. WouldBlock is fine.
                let _ = self.rx.kick.read();
                let was_paused = self.rx_paused();
                self.watch_tap();
                if was_paused && !self.rx_paused() {
                    // Pausing asked for refill kicks; while frames flow we do not need them
                    // (a no-op with EVENT_IDX, where avail_event already limits them).
                    let mem = self.mem.clone();
                    if let Err(e) = self.rx.queue.disable_notification(&mem) {
                        self.queue_error(RX_QUEUE, e);
                    }
                }
                self.process_rx();
            }
            TX_KICK_EVENT => {
                let _ = self.tx.kick.read();
                self.process_tx();
            }
            TAP_EVENT => self.process_rx(),
            _ => warn!("virtio-net: event for unknown fd index {index}"),
        }
    }
}
