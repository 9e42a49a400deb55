//! Arbitrary descriptor chains and request bytes through an activated virtio-accel device.
//! The body lives in the devices crate (`virtio::accel::fuzzing`) so a stable unit test runs
//! the same code over pseudo-random inputs.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = accelvm_devices::virtio::accel::fuzzing::run(data);
});
