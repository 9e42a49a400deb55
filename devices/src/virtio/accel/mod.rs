//! virtio-accel: crypto, compression and IPsec offload for guests.

pub mod esp;
