//! One accelerator shared by several VMs.
//!
//! A [`SharedAccelerator`] owns the worker threads of a real backend and hands each VM a
//! [`TenantHandle`], which implements [`Accelerator`] and is what that VM's virtio-accel
//! device is built on. Jobs from all tenants meet in one [`Scheduler`] (deficit round robin
//! by bytes, weights, per-tenant limits), so a flooding VM cannot starve another, and each
//! handle stamps its own tenant id on every job, whatever the device put there.

pub mod bucket;
pub mod scheduler;

use std::collections::BTreeMap;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use zeroize::Zeroize;

pub use bucket::{BucketConfig, Clock, FakeClock, MonotonicClock, Nanos, TokenBucket};
pub use scheduler::{
    Counters, LimitPolicy, Next, Refused, Scheduler, TenantLimits, TenantSnapshot,
};

use super::{Accelerator, Capabilities, CompletionSink, Job, JobResult, SubmitError, TenantId};
use crate::virtio::accel::protocol::Status;

/// Most worker threads per shared accelerator.
pub const MAX_SHARED_WORKERS: usize = 64;
/// Most tenants per shared accelerator.
pub const MAX_TENANTS: u32 = 1024;

/// Why a shared accelerator or a tenant could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum ShareError {
    /// 0 or too many worker threads.
    #[error("worker threads must be between 1 and {MAX_SHARED_WORKERS}, got {0}")]
    Workers(usize),
    /// The offered capabilities are not a subset of the backend's.
    #[error("the backend does not have every capability offered")]
    Capabilities,
    /// The accelerator has as many tenants as it accepts.
    #[error("accelerator {0} already serves its maximum of {1} tenants")]
    Full(String, u32),
    /// A tenant asked for something the accelerator does not offer.
    #[error("accelerator {0} does not offer the requested capabilities")]
    NotOffered(String),
    /// A rate limit that can never admit anything.
    #[error("invalid token bucket (size and refill time must be non-zero)")]
    Bucket,
    /// A worker thread could not be started.
    #[error("cannot start a worker thread")]
    Spawn(#[source] std::io::Error),
}

/// How a shared accelerator is set up.
#[derive(Clone, Debug)]
pub struct SharedConfig {
    /// Name, for stats.
    pub name: String,
    /// Worker threads, i.e. jobs executing at once.
    pub workers: usize,
    /// What tenants may use: a subset of the backend's capabilities.
    pub offered: Capabilities,
    /// Most tenants at once.
    pub max_tenants: u32,
}

/// A tenant's mapping: what it may use and how it is limited.
#[derive(Clone, Debug)]
pub struct TenantConfig {
    /// Name (the VM's), for stats.
    pub name: String,
    /// DRR weight.
    pub weight: u32,
    /// Limits.
    pub limits: TenantLimits,
    /// What this tenant's device offers: a subset of the accelerator's.
    pub caps: Capabilities,
}

/// Counters of one tenant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TenantStats {
    /// Tenant id.
    pub id: TenantId,
    /// Name.
    pub name: String,
    /// State and counters.
    pub snapshot: TenantSnapshot,
}

/// Counters of one shared accelerator.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AcceleratorStats {
    /// Name.
    pub name: String,
    /// Worker threads.
    pub workers: u32,
    /// Jobs executing.
    pub running: u32,
    /// Totals over all tenants, including those that have left.
    pub total: Counters,
    /// Current tenants, by id.
    pub tenants: Vec<TenantStats>,
}

type Work = (Job, Arc<dyn CompletionSink>);

struct State {
    sched: Scheduler<Work>,
    names: BTreeMap<TenantId, String>,
    next_tenant: TenantId,
    stopping: bool,
}

struct Inner {
    name: String,
    backend: Arc<dyn Accelerator>,
    offered: Capabilities,
    max_tenants: u32,
    workers: u32,
    clock: Arc<dyn Clock>,
    state: Mutex<State>,
    cv: Condvar,
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A backend shared by several tenants through a fair scheduler.
pub struct SharedAccelerator {
    inner: Arc<Inner>,
    threads: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for SharedAccelerator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedAccelerator")
            .field("name", &self.inner.name)
            .field("workers", &self.threads.len())
            .finish()
    }
}

fn is_subset(a: Capabilities, of: Capabilities) -> bool {
    a.crypto_algos & !of.crypto_algos == 0
        && a.comp_algos & !of.comp_algos == 0
        && a.ipsec_algos & !of.ipsec_algos == 0
        && (!a.stateless || of.stateless)
}

impl SharedAccelerator {
    /// Starts `config.workers` threads that run jobs on `backend`. The backend should run
    /// jobs inline (e.g. `SoftwareAccelerator::new(0)`): these threads are its workers.
    pub fn new(backend: Arc<dyn Accelerator>, config: SharedConfig) -> Result<Self, ShareError> {
        Self::with_clock(backend, config, Arc::new(MonotonicClock::default()))
    }

    /// As [`new`](Self::new), with the clock rate limits run on.
    pub fn with_clock(
        backend: Arc<dyn Accelerator>,
        config: SharedConfig,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, ShareError> {
        if !(1..=MAX_SHARED_WORKERS).contains(&config.workers) {
            return Err(ShareError::Workers(config.workers));
        }
        if !is_subset(config.offered, backend.capabilities()) {
            return Err(ShareError::Capabilities);
        }
        let inner = Arc::new(Inner {
            name: config.name,
            backend,
            offered: config.offered,
            max_tenants: config.max_tenants.clamp(1, MAX_TENANTS),
            workers: config.workers as u32,
            clock,
            state: Mutex::new(State {
                sched: Scheduler::new(config.workers as u32),
                names: BTreeMap::new(),
                next_tenant: 1,
                stopping: false,
            }),
            cv: Condvar::new(),
        });
        let mut shared = SharedAccelerator {
            inner: inner.clone(),
            threads: Vec::new(),
        };
        for i in 0..config.workers {
            let inner = inner.clone();
            let t = std::thread::Builder::new()
                .name(format!("accel-{}-{i}", shared.inner.name))
                .spawn(move || worker(&inner))
                .map_err(ShareError::Spawn)?;
            // On error, Drop stops the threads already started.
            shared.threads.push(t);
        }
        Ok(shared)
    }

    /// The accelerator's name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// What tenants may be offered.
    pub fn offered(&self) -> Capabilities {
        self.inner.offered
    }

    /// Registers a tenant; its handle is the `Accelerator` its device is built on.
    /// Dropping the handle detaches the tenant and discards (and wipes) its queued jobs.
    pub fn attach(&self, config: TenantConfig) -> Result<Arc<TenantHandle>, ShareError> {
        if !is_subset(config.caps, self.inner.offered) {
            return Err(ShareError::NotOffered(self.inner.name.clone()));
        }
        for b in [config.limits.bytes, config.limits.ops]
            .into_iter()
            .flatten()
        {
            if !b.is_valid() {
                return Err(ShareError::Bucket);
            }
        }
        let now = self.inner.clock.now();
        let mut st = self.inner.lock();
        if st.names.len() as u32 >= self.inner.max_tenants {
            return Err(ShareError::Full(
                self.inner.name.clone(),
                self.inner.max_tenants,
            ));
        }
        // Ids are never reused, so a late completion can never be credited to a newcomer.
        let id = st.next_tenant;
        st.next_tenant += 1;
        st.sched.add_tenant(id, config.weight, config.limits, now);
        st.names.insert(id, config.name);
        Ok(Arc::new(TenantHandle {
            id,
            caps: config.caps,
            inner: self.inner.clone(),
        }))
    }

    /// Counters of the accelerator and each tenant, readable at any time.
    pub fn stats(&self) -> AcceleratorStats {
        let now = self.inner.clock.now();
        let st = self.inner.lock();
        let mut total = st.sched.departed();
        let tenants: Vec<TenantStats> = st
            .names
            .iter()
            .filter_map(|(id, name)| {
                let snapshot = st.sched.tenant(*id, now)?;
                total.add(&snapshot.counters);
                Some(TenantStats {
                    id: *id,
                    name: name.clone(),
                    snapshot,
                })
            })
            .collect();
        AcceleratorStats {
            name: self.inner.name.clone(),
            workers: self.inner.workers,
            running: st.sched.running(),
            total,
            tenants,
        }
    }
}

impl Drop for SharedAccelerator {
    fn drop(&mut self) {
        self.inner.lock().stopping = true;
        self.inner.cv.notify_all();
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// One tenant's view of a shared accelerator.
pub struct TenantHandle {
    id: TenantId,
    caps: Capabilities,
    inner: Arc<Inner>,
}

impl std::fmt::Debug for TenantHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TenantHandle")
            .field("id", &self.id)
            .field("accelerator", &self.inner.name)
            .finish()
    }
}

impl TenantHandle {
    /// The tenant id; a device built on this handle should use it as its `tenant` so its
    /// session handles are distinct from every other tenant's.
    pub fn id(&self) -> TenantId {
        self.id
    }
}

impl Accelerator for TenantHandle {
    fn capabilities(&self) -> Capabilities {
        self.caps
    }

    fn submit(&self, mut job: Job, sink: Arc<dyn CompletionSink>) -> Result<(), SubmitError> {
        // The handle, not the device, says whose job this is.
        job.tenant = self.id;
        let cost = job.cost();
        let now = self.inner.clock.now();
        let mut st = self.inner.lock();
        if st.stopping {
            return Err(SubmitError::Stopped(Box::new(job)));
        }
        match st.sched.push(self.id, (job, sink), cost, now) {
            Ok(()) => {
                drop(st);
                self.inner.cv.notify_one();
                Ok(())
            }
            Err(Refused::Busy((job, _))) => Err(SubmitError::Busy(Box::new(job))),
            Err(Refused::NoTenant((job, _))) => Err(SubmitError::Stopped(Box::new(job))),
        }
    }
}

impl Drop for TenantHandle {
    fn drop(&mut self) {
        let now = self.inner.clock.now();
        let left = {
            let mut st = self.inner.lock();
            st.names.remove(&self.id);
            st.sched.remove_tenant(self.id, now)
        };
        // The VM is gone: wipe its data; dropping the ops releases its keys (which wipe
        // themselves when the last reference goes).
        for (mut job, _) in left {
            job.buf.zeroize();
            job.spare.zeroize();
        }
    }
}

/// Forwards a result to the tenant's sink after crediting the scheduler.
struct Tracked {
    inner: Arc<Inner>,
    tenant: TenantId,
    cost: u64,
    sink: Arc<dyn CompletionSink>,
}

impl CompletionSink for Tracked {
    fn complete(&self, result: JobResult) {
        let ok = result.status == Status::Ok;
        self.inner.lock().sched.done(self.tenant, self.cost, ok);
        // A slot is free: a worker held back by capacity or an in-flight limit may go on.
        self.inner.cv.notify_one();
        self.sink.complete(result);
    }
}

fn worker(inner: &Arc<Inner>) {
    let mut st = inner.lock();
    loop {
        if st.stopping {
            return;
        }
        let now = inner.clock.now();
        match st.sched.next(now) {
            Next::Run(tenant, (job, sink)) => {
                drop(st);
                let tracked = Arc::new(Tracked {
                    inner: inner.clone(),
                    tenant,
                    cost: job.cost(),
                    sink,
                });
                if let Err(e) = inner.backend.submit(job, tracked.clone()) {
                    let (job, status) = match e {
                        SubmitError::Busy(j) => (j, Status::Busy),
                        SubmitError::Stopped(j) => (j, Status::Err),
                    };
                    tracked.complete(JobResult::status(*job, status));
                }
                st = inner.lock();
            }
            Next::WaitUntil(at) => {
                let timeout = Duration::from_nanos(at.saturating_sub(now).max(1));
                st = inner
                    .cv
                    .wait_timeout(st, timeout)
                    .unwrap_or_else(|e| e.into_inner())
                    .0;
            }
            Next::Idle => {
                st = inner.cv.wait(st).unwrap_or_else(|e| e.into_inner());
            }
        }
    }
}

#[cfg(test)]
mod tests;
