//! Embeddable virtio devices for accelvm: a virtio-mmio transport, virtio-net and virtio-accel.
//!
//! Nothing here knows KVM: a VMM hands a device its guest memory, queues, queue-notification
//! eventfds and an interrupt callback through [`virtio::ActivationContext`], and runs the
//! returned event handler on its own event loop.
#![deny(missing_docs)]

pub mod virtio;

#[cfg(any(test, feature = "test-utils"))]
pub mod test_utils;
