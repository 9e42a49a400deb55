//! Token buckets (the Firecracker rate limiter's shape: a size, a refill time for a full
//! bucket, and a one-time burst spent first) and the clock they run on.
//!
//! Time is passed in as nanoseconds from an arbitrary origin so the scheduler can be tested
//! against a fake clock; the shared accelerator feeds it a monotonic clock.

use std::time::Instant;

/// Nanoseconds since some fixed origin.
pub type Nanos = u64;

/// Nanoseconds per millisecond.
const NS_PER_MS: u128 = 1_000_000;

/// Where the shared accelerator gets the time from.
pub trait Clock: Send + Sync {
    /// Nanoseconds since a fixed origin; never goes backwards.
    fn now(&self) -> Nanos;
}

/// The monotonic clock.
#[derive(Debug)]
pub struct MonotonicClock(Instant);

impl Default for MonotonicClock {
    fn default() -> Self {
        MonotonicClock(Instant::now())
    }
}

impl Clock for MonotonicClock {
    fn now(&self) -> Nanos {
        self.0.elapsed().as_nanos() as Nanos
    }
}

/// How a token bucket is configured (Firecracker's `TokenBucket` fields).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BucketConfig {
    /// Tokens the bucket holds when full.
    pub size: u64,
    /// Extra tokens available once, spent before the bucket's own.
    pub one_time_burst: u64,
    /// Milliseconds to refill an empty bucket completely; the rate is `size / refill_time_ms`.
    pub refill_time_ms: u64,
}

impl BucketConfig {
    /// A limit of `per_second` tokens/s with a bucket holding `burst_ms` worth of tokens.
    pub fn per_second(per_second: u64, burst_ms: u64) -> Self {
        BucketConfig {
            size: (per_second as u128 * burst_ms as u128 / 1000).max(1) as u64,
            one_time_burst: 0,
            refill_time_ms: burst_ms,
        }
    }

    /// Sustained tokens per second this bucket admits.
    pub fn rate_per_second(&self) -> f64 {
        self.size as f64 * 1000.0 / self.refill_time_ms as f64
    }

    /// Whether the bucket can ever admit anything.
    pub fn is_valid(&self) -> bool {
        self.size > 0 && self.refill_time_ms > 0
    }
}

/// A token bucket. Tokens may go negative: a request larger than the bucket runs once the
/// bucket is full and leaves a debt, so the long-run rate is exact whatever the sizes.
#[derive(Clone, Debug)]
pub struct TokenBucket {
    cfg: BucketConfig,
    tokens: i128,
    burst: u64,
    last: Nanos,
}

impl TokenBucket {
    /// A full bucket (plus its one-time burst) at time `now`.
    pub fn new(cfg: BucketConfig, now: Nanos) -> Self {
        TokenBucket {
            cfg,
            tokens: cfg.size as i128,
            burst: cfg.one_time_burst,
            last: now,
        }
    }

    /// The configuration.
    pub fn config(&self) -> BucketConfig {
        self.cfg
    }

    fn refill(&mut self, now: Nanos) {
        let elapsed = now.saturating_sub(self.last) as u128;
        // tokens = elapsed * size / refill_time; keep the remainder by only moving `last`
        // forward by the time the whole tokens account for.
        let refill_ns = self.cfg.refill_time_ms as u128 * NS_PER_MS;
        let add = elapsed * self.cfg.size as u128 / refill_ns;
        if add == 0 {
            return;
        }
        let room = (self.cfg.size as i128 - self.tokens).max(0) as u128;
        if add >= room {
            self.tokens = self.cfg.size as i128;
            self.last = now;
        } else {
            self.tokens += add as i128;
            self.last += (add * refill_ns / self.cfg.size as u128) as Nanos;
        }
    }

    /// Nanoseconds from `now` until `cost` could be taken (0 if it can be now).
    pub fn wait_for(&mut self, cost: u64, now: Nanos) -> Nanos {
        self.refill(now);
        let need = cost.min(self.cfg.size) as i128 - self.tokens - self.burst as i128;
        if need <= 0 {
            return 0;
        }
        let refill_ns = self.cfg.refill_time_ms as u128 * NS_PER_MS;
        (need as u128 * refill_ns).div_ceil(self.cfg.size as u128) as Nanos
    }

    /// Takes `cost` tokens if [`wait_for`](Self::wait_for) says 0; returns whether it did.
    pub fn try_take(&mut self, cost: u64, now: Nanos) -> bool {
        if self.wait_for(cost, now) > 0 {
            return false;
        }
        let from_burst = cost.min(self.burst);
        self.burst -= from_burst;
        self.tokens -= (cost - from_burst) as i128;
        true
    }
}

/// A fake clock for tests: time moves only when told to.
#[derive(Debug, Default)]
pub struct FakeClock(std::sync::atomic::AtomicU64);

impl FakeClock {
    /// Moves time forward.
    pub fn advance(&self, ns: Nanos) {
        self.0.fetch_add(ns, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Clock for FakeClock {
    fn now(&self) -> Nanos {
        self.0.load(std::sync::atomic::Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Nanos = 1_000_000;

    #[test]
    fn starts_full_then_refills_at_the_configured_rate() {
        // 1000 tokens per 100 ms = 10_000/s.
        let cfg = BucketConfig {
            size: 1000,
            one_time_burst: 0,
            refill_time_ms: 100,
        };
        let mut b = TokenBucket::new(cfg, 0);
        assert!(b.try_take(1000, 0));
        assert!(!b.try_take(1, 0));
        assert_eq!(b.wait_for(500, 0), 50 * MS);
        assert!(!b.try_take(500, 49 * MS));
        assert!(b.try_take(500, 50 * MS));
        // Never more than full, however long it idles.
        assert!(b.try_take(1000, 10_000 * MS));
        assert!(!b.try_take(1, 10_000 * MS));
    }

    #[test]
    fn one_time_burst_is_spent_once() {
        let cfg = BucketConfig {
            size: 100,
            one_time_burst: 900,
            refill_time_ms: 1000,
        };
        let mut b = TokenBucket::new(cfg, 0);
        assert!(b.try_take(1000, 0));
        assert!(!b.try_take(1, 0));
        assert!(b.try_take(100, 1000 * MS));
        assert!(!b.try_take(100, 1000 * MS + 500 * MS));
    }

    #[test]
    fn oversized_request_runs_when_full_and_leaves_a_debt() {
        let cfg = BucketConfig::per_second(1000, 100); // size 100
        assert_eq!(cfg.size, 100);
        let mut b = TokenBucket::new(cfg, 0);
        assert!(b.try_take(300, 0));
        // 300 tokens owed: 300 ms until 100 tokens are back.
        assert_eq!(b.wait_for(300, 0), 300 * MS);
        assert!(b.try_take(300, 300 * MS));
    }

    #[test]
    fn fractional_refill_is_not_lost() {
        // 3 tokens per 10 ms: steps of 1 ms must still add up to 300 tokens per second.
        let cfg = BucketConfig {
            size: 3,
            one_time_burst: 0,
            refill_time_ms: 10,
        };
        let mut b = TokenBucket::new(cfg, 0);
        let mut taken = 0;
        for ms in 0..=1000 {
            while b.try_take(1, ms * MS) {
                taken += 1;
            }
        }
        assert_eq!(taken, 3 + 300);
    }
}
