//! The shared accelerator's scheduler: deficit round robin by bytes across tenants, with
//! per-tenant limits (requests in flight, byte and op token buckets).
//!
//! Pure and single-threaded: it is told the time and never sleeps, so fairness and rate
//! limits are unit-tested against a fake clock. The caller holds it under a lock and asks
//! [`Scheduler::next`] for the job a free worker should run.

use std::collections::{HashMap, VecDeque};

use super::bucket::{BucketConfig, Nanos, TokenBucket};
use crate::virtio::accel::backend::TenantId;

/// Bytes a weight-1 tenant may send per round; a round serves `weight * QUANTUM_BYTES`.
/// Small enough that a light tenant waits at most one quantum of a flooding one.
pub const QUANTUM_BYTES: u64 = 64 << 10;
/// Every job costs at least this many bytes, so floods of empty requests are not free.
pub const MIN_JOB_COST: u64 = 64;
/// Default bound on a tenant's queued (not yet running) jobs.
pub const DEFAULT_MAX_QUEUED: u32 = 4096;
/// Largest weight accepted.
pub const MAX_WEIGHT: u32 = 1000;

/// What `max_in_flight` means (docs/virtio-accel.md §8 "Backpressure and BUSY").
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LimitPolicy {
    /// At most `max_in_flight` requests run at once; more wait in the VM's queue (which
    /// holds `max_queued`) and are scheduled later.
    #[default]
    Wait,
    /// The VM's queue at the accelerator holds `max_in_flight` requests (queued + running);
    /// a request beyond that is completed with BUSY at once.
    Busy,
}

/// Per-mapping limits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TenantLimits {
    /// Requests accepted and not yet completed (queued + running); 0 = unlimited.
    pub max_in_flight: u32,
    /// Bytes (aad + src) per second.
    pub bytes: Option<BucketConfig>,
    /// Requests per second.
    pub ops: Option<BucketConfig>,
    /// Wait or BUSY when over `max_in_flight` or a bucket.
    pub policy: LimitPolicy,
    /// Queued jobs beyond which a request is BUSY whatever the policy.
    pub max_queued: u32,
}

impl Default for TenantLimits {
    fn default() -> Self {
        TenantLimits {
            max_in_flight: 0,
            bytes: None,
            ops: None,
            policy: LimitPolicy::Wait,
            max_queued: DEFAULT_MAX_QUEUED,
        }
    }
}

/// Counters of one tenant (or, summed, of the accelerator).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Requests completed by the backend.
    pub requests: u64,
    /// Bytes (aad + src) of completed requests.
    pub bytes: u64,
    /// Requests completed with an error status, plus BUSY refusals.
    pub errors: u64,
    /// Requests refused with BUSY.
    pub busy: u64,
    /// Total time requests spent queued before a worker took them.
    pub queue_wait_ns: u64,
    /// Total time the tenant's next request was held back by a rate limit.
    pub throttled_ns: u64,
}

impl Counters {
    /// Adds `o` to `self`.
    pub fn add(&mut self, o: &Counters) {
        self.requests += o.requests;
        self.bytes += o.bytes;
        self.errors += o.errors;
        self.busy += o.busy;
        self.queue_wait_ns += o.queue_wait_ns;
        self.throttled_ns += o.throttled_ns;
    }
}

/// A tenant's state as stats see it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TenantSnapshot {
    /// Weight.
    pub weight: u32,
    /// Jobs waiting.
    pub queued: u32,
    /// Jobs running.
    pub running: u32,
    /// Counters.
    pub counters: Counters,
}

/// Why a job was not queued.
#[derive(Debug, PartialEq, Eq)]
pub enum Refused<T> {
    /// Over a limit (or the queue bound): BUSY.
    Busy(T),
    /// No such tenant (it detached).
    NoTenant(T),
}

/// What a free worker should do.
#[derive(Debug, PartialEq, Eq)]
pub enum Next<T> {
    /// Run this job of this tenant.
    Run(TenantId, T),
    /// Nothing may run before this time (a rate limit); ask again then.
    WaitUntil(Nanos),
    /// Nothing to run until a job arrives or one completes.
    Idle,
}

struct Queued<T> {
    item: T,
    cost: u64,
    since: Nanos,
}

struct Tenant<T> {
    weight: u32,
    limits: TenantLimits,
    queue: VecDeque<Queued<T>>,
    deficit: u64,
    in_turn: bool,
    active: bool,
    running: u32,
    bytes: Option<TokenBucket>,
    ops: Option<TokenBucket>,
    throttled_since: Option<Nanos>,
    counters: Counters,
}

enum Gate {
    Open,
    InFlight,
    Throttled(Nanos),
}

impl<T> Tenant<T> {
    fn in_flight(&self) -> u32 {
        self.queue.len() as u32 + self.running
    }

    /// Whether the head job may start now (ignoring the deficit).
    fn gate(&mut self, cost: u64, now: Nanos) -> Gate {
        // With policy Busy the in-flight limit was enforced at submit time.
        if self.limits.policy == LimitPolicy::Wait
            && self.limits.max_in_flight > 0
            && self.running >= self.limits.max_in_flight
        {
            return Gate::InFlight;
        }
        let wait = self
            .bytes
            .as_mut()
            .map_or(0, |b| b.wait_for(cost, now))
            .max(self.ops.as_mut().map_or(0, |b| b.wait_for(1, now)));
        if wait > 0 {
            Gate::Throttled(now + wait)
        } else {
            Gate::Open
        }
    }

    fn take_tokens(&mut self, cost: u64, now: Nanos) {
        if let Some(b) = &mut self.bytes {
            b.try_take(cost, now);
        }
        if let Some(b) = &mut self.ops {
            b.try_take(1, now);
        }
    }

    fn end_throttle(&mut self, now: Nanos) {
        if let Some(since) = self.throttled_since.take() {
            self.counters.throttled_ns += now.saturating_sub(since);
        }
    }
}

/// Deficit round robin over the tenants with queued jobs.
pub struct Scheduler<T> {
    tenants: HashMap<TenantId, Tenant<T>>,
    /// Tenants with queued jobs; the front one is being served.
    order: VecDeque<TenantId>,
    /// Jobs running on the backend, all tenants.
    running: u32,
    /// Most jobs running at once (the accelerator's parallelism).
    capacity: u32,
    /// Counters of tenants that have left, so accelerator totals never go down.
    departed: Counters,
}

impl<T> Scheduler<T> {
    /// A scheduler running at most `capacity` jobs at once (at least 1).
    pub fn new(capacity: u32) -> Self {
        Scheduler {
            tenants: HashMap::new(),
            order: VecDeque::new(),
            running: 0,
            capacity: capacity.max(1),
            departed: Counters::default(),
        }
    }

    /// Adds a tenant with `weight` (clamped to 1..=[`MAX_WEIGHT`]).
    pub fn add_tenant(&mut self, id: TenantId, weight: u32, limits: TenantLimits, now: Nanos) {
        let weight = weight.clamp(1, MAX_WEIGHT);
        self.tenants.insert(
            id,
            Tenant {
                weight,
                limits,
                queue: VecDeque::new(),
                deficit: 0,
                in_turn: false,
                active: false,
                running: 0,
                bytes: limits.bytes.map(|c| TokenBucket::new(c, now)),
                ops: limits.ops.map(|c| TokenBucket::new(c, now)),
                throttled_since: None,
                counters: Counters::default(),
            },
        );
    }

    /// Removes a tenant and hands back its queued jobs (its running jobs still complete,
    /// and [`done`](Self::done) ignores them).
    pub fn remove_tenant(&mut self, id: TenantId, now: Nanos) -> Vec<T> {
        self.order.retain(|t| *t != id);
        let Some(mut t) = self.tenants.remove(&id) else {
            return Vec::new();
        };
        t.end_throttle(now);
        self.departed.add(&t.counters);
        t.queue.into_iter().map(|q| q.item).collect()
    }

    /// Queues a job of `cost` bytes for `tenant`.
    pub fn push(
        &mut self,
        tenant: TenantId,
        item: T,
        cost: u64,
        now: Nanos,
    ) -> Result<(), Refused<T>> {
        let Some(t) = self.tenants.get_mut(&tenant) else {
            return Err(Refused::NoTenant(item));
        };
        let cost = cost.max(MIN_JOB_COST);
        let over_queue = t.queue.len() as u32 >= t.limits.max_queued;
        // docs/virtio-accel.md §8: BUSY only when the VM's queue at the accelerator is full;
        // with policy Busy, `max_in_flight` is that queue's size. Rate limits always delay.
        let over_limit = t.limits.policy == LimitPolicy::Busy
            && t.limits.max_in_flight > 0
            && t.in_flight() >= t.limits.max_in_flight;
        if over_queue || over_limit {
            t.counters.busy += 1;
            t.counters.errors += 1;
            return Err(Refused::Busy(item));
        }
        t.queue.push_back(Queued {
            item,
            cost,
            since: now,
        });
        if !t.active {
            t.active = true;
            t.in_turn = false;
            self.order.push_back(tenant);
        }
        Ok(())
    }

    /// Picks the job a free worker should run at time `now`.
    pub fn next(&mut self, now: Nanos) -> Next<T> {
        if self.running >= self.capacity {
            return Next::Idle;
        }
        let mut earliest: Option<Nanos> = None;
        // Consecutive tenants that could not run at all; a full lap of them means wait.
        let mut blocked = 0;
        while blocked < self.order.len() {
            let id = self.order[0];
            let Some(t) = self.tenants.get_mut(&id) else {
                self.order.pop_front();
                continue;
            };
            let Some(head) = t.queue.front() else {
                t.active = false;
                t.deficit = 0;
                t.end_throttle(now);
                self.order.pop_front();
                continue;
            };
            let cost = head.cost;
            match t.gate(cost, now) {
                Gate::Open => {}
                gate => {
                    if let Gate::Throttled(at) = gate {
                        t.throttled_since.get_or_insert(now);
                        earliest = Some(earliest.map_or(at, |e| e.min(at)));
                    }
                    // A blocked tenant ends its turn without earning a quantum.
                    t.in_turn = false;
                    self.order.rotate_left(1);
                    blocked += 1;
                    continue;
                }
            }
            blocked = 0;
            if !t.in_turn {
                t.in_turn = true;
                t.deficit += QUANTUM_BYTES * t.weight as u64;
            }
            if t.deficit < cost {
                t.in_turn = false;
                self.order.rotate_left(1);
                continue;
            }
            t.deficit -= cost;
            t.end_throttle(now);
            t.take_tokens(cost, now);
            let q = t.queue.pop_front().expect("head exists");
            t.counters.queue_wait_ns += now.saturating_sub(q.since);
            t.running += 1;
            self.running += 1;
            if t.queue.is_empty() {
                // DRR: an emptied queue forfeits its remaining deficit.
                t.active = false;
                t.deficit = 0;
                self.order.pop_front();
            }
            return Next::Run(id, q.item);
        }
        earliest.map_or(Next::Idle, Next::WaitUntil)
    }

    /// Records the completion of a job of `tenant` that cost `cost` bytes.
    pub fn done(&mut self, tenant: TenantId, cost: u64, ok: bool) {
        self.running = self.running.saturating_sub(1);
        // A job finishing after its tenant left still counts for the accelerator.
        let counters = match self.tenants.get_mut(&tenant) {
            Some(t) => {
                t.running = t.running.saturating_sub(1);
                &mut t.counters
            }
            None => &mut self.departed,
        };
        counters.requests += 1;
        counters.bytes += cost;
        if !ok {
            counters.errors += 1;
        }
    }

    /// Jobs running on the backend.
    pub fn running(&self) -> u32 {
        self.running
    }

    /// A tenant's state at `now`.
    pub fn tenant(&self, id: TenantId, now: Nanos) -> Option<TenantSnapshot> {
        self.tenants.get(&id).map(|t| {
            let mut counters = t.counters;
            if let Some(since) = t.throttled_since {
                counters.throttled_ns += now.saturating_sub(since);
            }
            TenantSnapshot {
                weight: t.weight,
                queued: t.queue.len() as u32,
                running: t.running,
                counters,
            }
        })
    }

    /// Counters of tenants that have detached.
    pub fn departed(&self) -> Counters {
        self.departed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Nanos = 1_000_000;
    const SEC: Nanos = 1000 * MS;

    fn sched(tenants: &[(TenantId, u32, TenantLimits)]) -> Scheduler<(TenantId, u64)> {
        let mut s = Scheduler::new(1);
        for (id, w, l) in tenants {
            s.add_tenant(*id, *w, *l, 0);
        }
        s
    }

    /// Runs the next job to completion at once; returns (tenant, cost) or None.
    fn step(s: &mut Scheduler<(TenantId, u64)>, now: Nanos) -> Option<(TenantId, u64)> {
        match s.next(now) {
            Next::Run(t, (_, cost)) => {
                s.done(t, cost, true);
                Some((t, cost))
            }
            _ => None,
        }
    }

    #[test]
    fn weights_one_to_three_under_saturation() {
        let l = TenantLimits::default();
        let mut s = sched(&[(1, 1, l), (2, 3, l)]);
        // Mixed sizes, so the ratio is by bytes and not by requests.
        let sizes = [4096u64, 65536, 1500, 16384];
        let mut bytes = [0u64; 3];
        for i in 0..20_000usize {
            // Keep both saturated: refill each queue to 64 jobs.
            for t in [1u32, 2] {
                while s.tenant(t, 0).unwrap().queued < 64 {
                    let c = sizes[(i + t as usize) % sizes.len()];
                    s.push(t, (t, c), c, 0).unwrap();
                }
            }
            let (t, c) = step(&mut s, 0).unwrap();
            bytes[t as usize] += c;
        }
        let ratio = bytes[2] as f64 / bytes[1] as f64;
        assert!(
            (ratio - 3.0).abs() <= 0.3,
            "byte ratio {ratio} not within 10% of 3"
        );
    }

    #[test]
    fn a_flooding_tenant_cannot_starve_a_light_one() {
        let l = TenantLimits::default();
        let mut s = sched(&[(1, 1, l), (2, 1, l)]);
        for _ in 0..4000 {
            s.push(1, (1, 65536), 65536, 0).unwrap();
        }
        // Tenant 2 sends one small request at a time and waits for it.
        let mut served_between = Vec::new();
        for _ in 0..50 {
            s.push(2, (2, 64), 64, 0).unwrap();
            let mut flood_jobs = 0;
            loop {
                let (t, _) = step(&mut s, 0).unwrap();
                if t == 2 {
                    break;
                }
                flood_jobs += 1;
            }
            served_between.push(flood_jobs);
        }
        // The light tenant waits at most one flood quantum (one 64 KiB job) each time.
        assert!(
            served_between.iter().all(|n| *n <= 1),
            "light tenant waited behind {served_between:?} flood jobs"
        );
    }

    #[test]
    fn byte_rate_limit_holds_within_ten_percent() {
        // 10 MB/s with a 100 ms bucket; saturated with 16 KiB jobs for 10 simulated seconds.
        let l = TenantLimits {
            bytes: Some(BucketConfig::per_second(10_000_000, 100)),
            ..TenantLimits::default()
        };
        let mut s = sched(&[(1, 1, l)]);
        let mut now = 0;
        let mut bytes = 0u64;
        let mut throttled_waits = 0;
        while now < 10 * SEC {
            while s.tenant(1, now).unwrap().queued < 16 {
                s.push(1, (1, 16384), 16384, now).unwrap();
            }
            match s.next(now) {
                Next::Run(t, (_, c)) => {
                    s.done(t, c, true);
                    bytes += c;
                }
                Next::WaitUntil(at) => {
                    assert!(at > now);
                    throttled_waits += 1;
                    now = at;
                }
                Next::Idle => panic!("saturated tenant idle"),
            }
        }
        let rate = bytes as f64 / 10.0;
        assert!(
            (rate - 10e6).abs() <= 1e6,
            "measured {rate} B/s for a 10 MB/s limit"
        );
        assert!(throttled_waits > 0);
        let snap = s.tenant(1, now).unwrap();
        // Nearly all of the 10 s except the first bucket's worth was spent throttled.
        assert!(snap.counters.throttled_ns > 8 * SEC, "{:?}", snap.counters);
    }

    #[test]
    fn ops_rate_limit_and_one_time_burst() {
        let l = TenantLimits {
            ops: Some(BucketConfig {
                size: 100,
                one_time_burst: 500,
                refill_time_ms: 1000,
            }),
            ..TenantLimits::default()
        };
        let mut s = sched(&[(1, 1, l)]);
        for _ in 0..2000 {
            s.push(1, (1, 64), 64, 0).unwrap();
        }
        let mut n = 0;
        while step(&mut s, 0).is_some() {
            n += 1;
        }
        assert_eq!(n, 600, "full bucket plus the one-time burst");
        let mut now = 0;
        let mut later = 0;
        while now < 5 * SEC {
            match s.next(now) {
                Next::Run(t, (_, c)) => {
                    s.done(t, c, true);
                    later += 1;
                }
                Next::WaitUntil(at) => now = at,
                Next::Idle => break,
            }
        }
        assert!((495..=505).contains(&later), "{later} ops in 5 s at 100/s");
    }

    #[test]
    fn a_throttled_tenant_does_not_block_others() {
        let limited = TenantLimits {
            bytes: Some(BucketConfig::per_second(1000, 1000)),
            ..TenantLimits::default()
        };
        let mut s = sched(&[(1, 1, limited), (2, 1, TenantLimits::default())]);
        for _ in 0..10 {
            s.push(1, (1, 1000), 1000, 0).unwrap();
            s.push(2, (2, 1000), 1000, 0).unwrap();
        }
        let served: Vec<TenantId> = std::iter::from_fn(|| step(&mut s, 0).map(|x| x.0)).collect();
        assert_eq!(served.iter().filter(|t| **t == 1).count(), 1);
        assert_eq!(served.iter().filter(|t| **t == 2).count(), 10);
        assert_eq!(s.next(0), Next::WaitUntil(SEC));
    }

    #[test]
    fn in_flight_limit_waits_or_refuses() {
        let wait = TenantLimits {
            max_in_flight: 2,
            ..TenantLimits::default()
        };
        let mut s: Scheduler<u32> = Scheduler::new(8);
        s.add_tenant(1, 1, wait, 0);
        for i in 0..5 {
            s.push(1, i, 100, 0).unwrap();
        }
        assert!(matches!(s.next(0), Next::Run(1, 0)));
        assert!(matches!(s.next(0), Next::Run(1, 1)));
        assert_eq!(s.next(0), Next::Idle, "third job waits for a completion");
        s.done(1, 100, true);
        assert!(matches!(s.next(0), Next::Run(1, 2)));

        let busy = TenantLimits {
            policy: LimitPolicy::Busy,
            ..wait
        };
        s.add_tenant(2, 1, busy, 0);
        s.push(2, 10, 100, 0).unwrap();
        s.push(2, 11, 100, 0).unwrap();
        assert_eq!(s.push(2, 12, 100, 0), Err(Refused::Busy(12)));
        let c = s.tenant(2, 0).unwrap().counters;
        assert_eq!((c.busy, c.errors), (1, 1));
        assert_eq!(s.push(9, 1, 1, 0), Err(Refused::NoTenant(1)));
    }

    #[test]
    fn rate_limits_delay_even_with_the_busy_policy() {
        let l = TenantLimits {
            bytes: Some(BucketConfig::per_second(1000, 1000)),
            policy: LimitPolicy::Busy,
            ..TenantLimits::default()
        };
        let mut s: Scheduler<u32> = Scheduler::new(1);
        s.add_tenant(1, 1, l, 0);
        s.push(1, 0, 1000, 0).unwrap();
        assert!(matches!(s.next(0), Next::Run(1, 0)));
        s.done(1, 1000, true);
        s.push(1, 1, 1000, 0).unwrap();
        assert_eq!(s.next(0), Next::WaitUntil(SEC));
        assert!(matches!(s.next(SEC), Next::Run(1, 1)));
    }

    #[test]
    fn queue_bound_and_capacity() {
        let l = TenantLimits {
            max_queued: 3,
            ..TenantLimits::default()
        };
        let mut s: Scheduler<u32> = Scheduler::new(2);
        s.add_tenant(1, 1, l, 0);
        for i in 0..3 {
            s.push(1, i, 10, 0).unwrap();
        }
        assert_eq!(s.push(1, 3, 10, 0), Err(Refused::Busy(3)));
        assert!(matches!(s.next(0), Next::Run(..)));
        assert!(matches!(s.next(0), Next::Run(..)));
        assert_eq!(s.next(0), Next::Idle, "capacity 2 reached");
        assert_eq!(s.running(), 2);
    }

    #[test]
    fn removing_a_tenant_returns_its_jobs_and_keeps_totals() {
        let mut s: Scheduler<u32> = Scheduler::new(4);
        s.add_tenant(1, 1, TenantLimits::default(), 0);
        s.add_tenant(2, 1, TenantLimits::default(), 0);
        for i in 0..4 {
            s.push(1, i, 100, 0).unwrap();
        }
        s.push(2, 100, 100, 0).unwrap();
        let Next::Run(1, 0) = s.next(0) else {
            panic!("tenant 1 first")
        };
        let left = s.remove_tenant(1, 0);
        assert_eq!(left, vec![1, 2, 3]);
        // Its running job completes after it left: ignored, global count still drops.
        s.done(1, 100, true);
        assert_eq!(s.running(), 0);
        assert!(matches!(s.next(0), Next::Run(2, 100)));
        s.done(2, 100, false);
        let t2 = s.tenant(2, 0).unwrap().counters;
        assert_eq!((t2.requests, t2.errors, t2.bytes), (1, 1, 100));
        assert!(s.tenant(1, 0).is_none());
    }

    #[test]
    fn queue_wait_is_measured() {
        let mut s: Scheduler<u32> = Scheduler::new(1);
        s.add_tenant(1, 1, TenantLimits::default(), 0);
        s.push(1, 0, 10, 5 * MS).unwrap();
        assert!(matches!(s.next(12 * MS), Next::Run(1, 0)));
        assert_eq!(s.tenant(1, 0).unwrap().counters.queue_wait_ns, 7 * MS);
    }
}
