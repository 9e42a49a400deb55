//! One accelerator shared by several VMs (issue 7).
//!
//! - `kvm`: two and three real guests in one accelvm process (through the test-platform
//!   harness) with virtio-accel devices mapped onto one shared accelerator: the guest driver
//!   and `accel-tool` run in every guest, the stats API is read while they run, one guest is
//!   killed mid-stream, and the exit status rule is checked.
//! - `kvm_load`: the same, with the load driven from inside the guests through the driver's
//!   char device: correct results, weights 1:3, a light VM's p99 under a flood, a rate limit,
//!   cross-VM handles, and a guest killed mid-stream.
//! - `device_level`: saturation, weights, latency percentiles and rate limits measured on
//!   real worker threads with one virtio-accel device per "VM" over real rings, where the
//!   load is not limited by the emulated test host.
//! - `config`: `accelvm run --config` refuses bad files with one clear line (no KVM needed).

mod common;
#[path = "sharing/config.rs"]
mod config;
#[path = "sharing/device_level.rs"]
mod device_level;
#[path = "sharing/kvm.rs"]
mod kvm;
#[path = "sharing/kvm_load.rs"]
mod kvm_load;
