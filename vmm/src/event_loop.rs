//! The device event loop: one thread running event-manager, polling each active device's
//! [`DeviceHandler`] fds and stdin, so device work never runs on a vCPU thread.

use std::collections::HashMap;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use accelvm_devices::virtio::DeviceHandler;
use event_manager::{
    EventManager, EventOps, EventSet, Events, MutEventSubscriber, RemoteEndpoint, SubscriberId,
    SubscriberOps,
};
use log::warn;
use vmm_sys_util::eventfd::{EFD_NONBLOCK, EventFd};
use vmm_sys_util::timerfd::TimerFd;

/// The subscriber type of the loop.
pub type Subscriber = Arc<Mutex<dyn MutEventSubscriber + Send>>;

/// Errors starting or stopping the loop.
#[derive(Debug, thiserror::Error)]
pub enum EventLoopError {
    /// event-manager could not be created.
    #[error("cannot create the event loop")]
    Create(#[source] event_manager::Error),
    /// An eventfd could not be created.
    #[error("cannot create the event loop's stop eventfd")]
    EventFd(#[source] std::io::Error),
    /// The thread could not be spawned.
    #[error("cannot spawn the event loop thread")]
    Spawn(#[source] std::io::Error),
    /// A request could not be sent to the loop.
    #[error("cannot reach the event loop")]
    Remote(#[source] event_manager::Error),
}

/// Runs a device handler: fd `i` of `handler.fds()` is registered with data `i`.
struct HandlerSubscriber {
    handler: Box<dyn DeviceHandler>,
}

impl MutEventSubscriber for HandlerSubscriber {
    fn process(&mut self, events: Events, _ops: &mut EventOps) {
        self.handler.handle(events.data() as usize);
    }

    fn init(&mut self, ops: &mut EventOps) {
        for (i, fd) in self.handler.fds().into_iter().enumerate() {
            let fd = BorrowedRawFd(fd);
            if let Err(e) = ops.add(Events::with_data(&fd, i as u32, EventSet::IN)) {
                warn!("cannot watch device fd {i}: {e}");
            }
        }
    }
}

/// A raw fd that some other object owns for at least as long as it is registered.
struct BorrowedRawFd(RawFd);
impl AsRawFd for BorrowedRawFd {
    fn as_raw_fd(&self) -> RawFd {
        self.0
    }
}

/// Stops the loop when its eventfd is written.
struct StopSubscriber {
    evt: EventFd,
    stopped: Arc<AtomicBool>,
}

impl MutEventSubscriber for StopSubscriber {
    fn process(&mut self, _events: Events, _ops: &mut EventOps) {
        let _ = self.evt.read();
        self.stopped.store(true, Ordering::SeqCst);
    }

    fn init(&mut self, ops: &mut EventOps) {
        if let Err(e) = ops.add(Events::new(&self.evt, EventSet::IN)) {
            warn!("cannot watch the event loop stop eventfd: {e}");
        }
    }
}

/// Handle to the running loop.
pub struct EventLoop {
    endpoint: RemoteEndpoint<Subscriber>,
    stop: EventFd,
    thread: Option<JoinHandle<()>>,
    active: Arc<Mutex<HashMap<usize, SubscriberId>>>,
}

impl EventLoop {
    /// Spawns the loop thread with `initial` subscribers (e.g. stdin).
    pub fn spawn(initial: Vec<Subscriber>) -> Result<Self, EventLoopError> {
        let mut em = EventManager::<Subscriber>::new().map_err(EventLoopError::Create)?;
        let stop = EventFd::new(EFD_NONBLOCK).map_err(EventLoopError::EventFd)?;
        let stopped = Arc::new(AtomicBool::new(false));
        em.add_subscriber(Arc::new(Mutex::new(StopSubscriber {
            evt: stop.try_clone().map_err(EventLoopError::EventFd)?,
            stopped: stopped.clone(),
        })));
        for s in initial {
            em.add_subscriber(s);
        }
        let endpoint = em.remote_endpoint();
        let thread = std::thread::Builder::new()
            .name("event-loop".into())
            .spawn(move || {
                while !stopped.load(Ordering::SeqCst) {
                    if let Err(e) = em.run() {
                        warn!("event loop error: {e}");
                    }
                }
            })
            .map_err(EventLoopError::Spawn)?;
        Ok(EventLoop {
            endpoint,
            stop,
            thread: Some(thread),
            active: Arc::default(),
        })
    }

    /// A handle vCPU threads use to start and stop device handlers without blocking.
    pub fn handle(&self) -> EventLoopHandle {
        EventLoopHandle {
            endpoint: Mutex::new(self.endpoint.clone()),
            active: self.active.clone(),
        }
    }

    /// Stops the loop and joins its thread; every subscriber (and its fds) is dropped.
    pub fn stop(&mut self) {
        if let Some(thread) = self.thread.take() {
            let _ = self.stop.write(1);
            if thread.join().is_err() {
                warn!("event loop thread panicked");
            }
        }
    }
}

impl Drop for EventLoop {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Starts and stops device handlers on the loop; callable from any thread.
pub struct EventLoopHandle {
    endpoint: Mutex<RemoteEndpoint<Subscriber>>,
    active: Arc<Mutex<HashMap<usize, SubscriberId>>>,
}

impl EventLoopHandle {
    /// Runs `handler` for device `slot`, replacing a handler still running for it.
    pub fn activate(&self, slot: usize, handler: Box<dyn DeviceHandler>) {
        let active = self.active.clone();
        self.fire(move |ops| {
            let mut active = active.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(old) = active.remove(&slot) {
                let _ = ops.remove_subscriber(old);
            }
            let id = ops.add_subscriber(Arc::new(Mutex::new(HandlerSubscriber { handler })));
            active.insert(slot, id);
        });
    }

    /// Stops the handler of device `slot` (device reset).
    pub fn deactivate(&self, slot: usize) {
        let active = self.active.clone();
        self.fire(move |ops| {
            let mut active = active.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(id) = active.remove(&slot) {
                let _ = ops.remove_subscriber(id);
            }
        });
    }

    fn fire<F>(&self, f: F)
    where
        F: FnOnce(&mut dyn SubscriberOps<Subscriber = Subscriber>) + Send + 'static,
    {
        // fire() only queues the closure and kicks the loop: the vCPU does not wait.
        let endpoint = self.endpoint.lock().unwrap_or_else(|e| e.into_inner());
        if let Err(e) = endpoint.fire(f) {
            warn!("cannot reach the event loop: {e}");
        }
    }
}

/// Event token of stdin.
const STDIN_TOKEN: u32 = 0;
/// Event token of the retry timer armed while the guest's receive FIFO is full.
const RETRY_TOKEN: u32 = 1;
/// How long stdin is left alone when the guest has not drained its FIFO.
const RETRY_DELAY: std::time::Duration = std::time::Duration::from_millis(5);

/// Feeds stdin into the UART; unregisters itself at end of file. While the guest's receive
/// FIFO is full, stdin is unwatched and a timer brings it back, so the loop never spins.
pub struct StdinSubscriber<F: FnMut(&[u8]) -> usize + Send> {
    sink: F,
    capacity: Box<dyn Fn() -> usize + Send>,
    retry: TimerFd,
}

impl<F: FnMut(&[u8]) -> usize + Send> StdinSubscriber<F> {
    /// `sink` pushes bytes to the guest and returns how many it took; `capacity` is the free
    /// space in the guest's receive FIFO.
    pub fn new(sink: F, capacity: Box<dyn Fn() -> usize + Send>) -> std::io::Result<Self> {
        Ok(StdinSubscriber {
            sink,
            capacity,
            retry: TimerFd::new().map_err(|e| std::io::Error::from_raw_os_error(e.errno()))?,
        })
    }

    fn stdin_events() -> Events {
        Events::with_data(
            &BorrowedRawFd(libc::STDIN_FILENO),
            STDIN_TOKEN,
            EventSet::IN,
        )
    }

    fn pause(&mut self, ops: &mut EventOps) {
        let _ = ops.remove(Self::stdin_events());
        if let Err(e) = self.retry.reset(RETRY_DELAY, None) {
            warn!("cannot arm the stdin retry timer: {e}; input stops");
            return;
        }
        let _ = ops.add(Events::with_data(&self.retry, RETRY_TOKEN, EventSet::IN));
    }

    fn resume(&mut self, ops: &mut EventOps) {
        let _ = self.retry.wait();
        let _ = ops.remove(Events::with_data(&self.retry, RETRY_TOKEN, EventSet::IN));
        let _ = ops.add(Self::stdin_events());
    }
}

impl<F: FnMut(&[u8]) -> usize + Send> MutEventSubscriber for StdinSubscriber<F> {
    fn process(&mut self, events: Events, ops: &mut EventOps) {
        if events.data() == RETRY_TOKEN {
            self.resume(ops);
            return;
        }
        let room = (self.capacity)();
        if room == 0 {
            self.pause(ops);
            return;
        }
        let mut buf = [0u8; 64];
        let want = room.min(buf.len());
        // SAFETY: reads at most `want` bytes into `buf`, which holds at least that many.
        let n = unsafe { libc::read(libc::STDIN_FILENO, buf.as_mut_ptr().cast(), want) };
        if n < 0 {
            let err = std::io::Error::last_os_error();
            if matches!(
                err.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::Interrupted
            ) {
                return;
            }
        }
        if n <= 0 {
            // End of input (or a read error): stop watching stdin, the guest keeps running.
            let _ = ops.remove(events);
            return;
        }
        (self.sink)(&buf[..n as usize]);
    }

    fn init(&mut self, ops: &mut EventOps) {
        if let Err(e) = ops.add(Self::stdin_events()) {
            // e.g. stdin is a regular file, which epoll refuses: no input then.
            log::debug!("stdin not watched: {e}");
        }
    }
}
