//! Device counters: one per outcome and failure path, readable while the device runs.

use std::sync::atomic::{AtomicU64, Ordering};

macro_rules! counters {
    ($($(#[$m:meta])* $name:ident),* $(,)?) => {
        /// Counters of one virtio-accel device.
        #[derive(Debug, Default)]
        pub struct AccelMetrics {
            $($(#[$m])* pub $name: AtomicU64,)*
        }

        impl AccelMetrics {
            /// `(name, value)` pairs, for stats output.
            pub fn snapshot(&self) -> Vec<(&'static str, u64)> {
                vec![$((stringify!($name), self.$name.load(Ordering::Relaxed)),)*]
            }
        }
    };
}

counters! {
    /// Data requests completed with OK.
    requests_ok,
    /// Control requests completed with OK.
    ctrl_ok,
    /// Bytes of aad + src consumed by successful data requests.
    bytes_in,
    /// Bytes written to dst by successful data requests.
    bytes_out,
    /// Chains dropped without a status: no room for the trailer.
    dropped_no_trailer,
    /// Chains with a descriptor outside guest memory.
    bad_address,
    /// Chains with readable descriptors after writable ones.
    bad_direction,
    /// Chains longer than the segment or size limits.
    chain_too_long,
    /// Requests answered BADMSG.
    bad_request,
    /// Requests answered NOTSUPP.
    not_supported,
    /// Requests answered NO_SESSION.
    no_session,
    /// Requests answered AUTH_FAILED.
    auth_failed,
    /// Requests answered OUTPUT_TOO_SMALL.
    output_too_small,
    /// Requests answered BUSY.
    busy,
    /// Requests answered REPLAY.
    replay,
    /// Requests answered NOSPC.
    no_space,
    /// Requests answered DATA_ERROR.
    data_error,
    /// Requests answered SA_EXPIRED.
    sa_expired,
    /// Requests answered ERR.
    device_error,
    /// Guest memory writes that failed at completion time.
    write_failed,
    /// add_used failures (the queue is then broken).
    add_used_failed,
    /// Interrupts that could not be delivered.
    interrupt_failed,
    /// Results dropped because the device was reset while they were in flight.
    stale_completions,
    /// Interrupts raised.
    interrupts,
    /// Encrypt requests submitted to run in place on guest memory (no host copies).
    in_place,
}

impl AccelMetrics {
    /// Counts a request outcome by status.
    pub fn count_status(&self, s: super::protocol::Status) {
        use super::protocol::Status;
        let c = match s {
            Status::Ok => return,
            Status::Err => &self.device_error,
            Status::BadMsg => &self.bad_request,
            Status::NotSupp => &self.not_supported,
            Status::NoSession => &self.no_session,
            Status::AuthFailed => &self.auth_failed,
            Status::OutputTooSmall => &self.output_too_small,
            Status::Busy => &self.busy,
            Status::Replay => &self.replay,
            Status::NoSpc => &self.no_space,
            Status::DataError => &self.data_error,
            Status::SaExpired => &self.sa_expired,
        };
        c.fetch_add(1, Ordering::Relaxed);
    }

    /// Reads one counter.
    pub fn get(&self, c: &AtomicU64) -> u64 {
        c.load(Ordering::Relaxed)
    }
}
