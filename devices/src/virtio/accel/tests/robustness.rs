//! Hostile and malformed chains: every one gets an exact status or a counted drop, and the
//! device keeps serving afterwards.

use super::*;
use crate::virtio::VIRTIO_F_EVENT_IDX;

fn ok_request(h: &mut Harness) {
    let d = h.data(
        QueueKind::Compression,
        &comp_req(OP_COMPRESS, COMP_LZ4, 0, b"still alive, still alive"),
        64,
    );
    assert_eq!(d.status, Status::Ok as u32, "the device must keep working");
}

#[test]
fn truncated_and_inconsistent_requests_are_badmsg() {
    let mut h = Harness::new(0);
    let full = comp_req(OP_COMPRESS, COMP_LZ4, 0, b"hello hello hello");
    // Header cut short.
    let d = h.data(QueueKind::Compression, &full[..40], 64);
    assert_eq!((d.status, d.used_len), (Status::BadMsg as u32, 8));
    // Source shorter than src_len says.
    let d = h.data(QueueKind::Compression, &full[..full.len() - 1], 64);
    assert_eq!(d.status, Status::BadMsg as u32);
    // Extra bytes after the source.
    let mut long = full.clone();
    long.push(0);
    assert_eq!(
        h.data(QueueKind::Compression, &long, 64).status,
        Status::BadMsg as u32
    );
    // Reserved field set.
    let mut r = full.clone();
    r[40] = 1;
    assert_eq!(
        h.data(QueueKind::Compression, &r, 64).status,
        Status::BadMsg as u32
    );
    // Unknown flag.
    let mut r = full.clone();
    r[5] = 1;
    assert_eq!(
        h.data(QueueKind::Compression, &r, 64).status,
        Status::BadMsg as u32
    );
    // src_len near u32::MAX must not overflow anything.
    let mut r = full.clone();
    r[20..24].copy_from_slice(&u32::MAX.to_le_bytes());
    assert_eq!(
        h.data(QueueKind::Compression, &r, 64).status,
        Status::BadMsg as u32
    );
    // Unknown opcode is NOTSUPP; a crypto opcode on the compression queue is BADMSG.
    let mut r = full.clone();
    r[0..4].copy_from_slice(&0x999u32.to_le_bytes());
    assert_eq!(
        h.data(QueueKind::Compression, &r, 64).status,
        Status::NotSupp as u32
    );
    let enc = crypto_req(OP_ENCRYPT, 1, None, &[0; 12], b"", b"x", 16);
    assert_eq!(
        h.data(QueueKind::Compression, &enc, 64).status,
        Status::BadMsg as u32
    );
    // IV length other than 12.
    let mut r = enc.clone();
    r[32] = 16;
    assert_eq!(
        h.data(QueueKind::Crypto, &r, 64).status,
        Status::NotSupp as u32
    );
    // A control request with a short body and an unknown control opcode.
    let (s, _, _) = h.ctrl(CTRL_CREATE_SESSION, &[0; 10], 0);
    assert_eq!(s, Status::BadMsg as u32);
    let (s, _, _) = h.ctrl(0x77, &[], 0);
    assert_eq!(s, Status::NotSupp as u32);
    // An ADD_SA of zeros names no transform; QUERY_SA of nothing is NO_SESSION.
    let (s, _, _) = h.ctrl(CTRL_ADD_SA, SaPara::default().as_slice(), 0);
    assert_eq!(s, Status::NotSupp as u32);
    let (s, _, _) = h.ctrl(CTRL_QUERY_SA, handle_body(5).as_slice(), 48);
    assert_eq!(s, Status::NoSession as u32);
    let m = h.dev.metrics();
    assert_eq!(m.get(&m.bad_request), 8);
    ok_request(&mut h);
}

#[test]
fn wrong_direction_and_missing_trailer_are_dropped_and_counted() {
    let mut h = Harness::new(0);
    let q = h.queue_index(QueueKind::Compression);
    let req = comp_req(OP_COMPRESS, COMP_LZ4, 0, b"abcabcabc");
    let r = h.alloc(&req);
    let o = h.alloc_out(64);
    // Writable first, readable after it: virtio forbids that order.
    h.push_chain(q, &[(o, 64, true), (r, req.len() as u32, false)]);
    h.kick(q);
    assert_eq!(h.take_used(q), vec![(0, 0)]);
    // No writable descriptor at all: nowhere to put a status.
    h.push_chain(q, &[(r, req.len() as u32, false)]);
    // Writable area of 7 bytes: smaller than the trailer.
    h.push_chain(q, &[(r, req.len() as u32, false), (o, 7, true)]);
    h.kick(q);
    let used = h.take_used(q);
    assert_eq!(used.iter().map(|u| u.1).collect::<Vec<_>>(), vec![0, 0]);
    let m = h.dev.metrics();
    assert_eq!(
        (m.get(&m.bad_direction), m.get(&m.dropped_no_trailer)),
        (1, 2)
    );
    // Nothing was written into the output buffer.
    let mut out = [0u8; 64];
    h.mem.read_slice(&mut out, GuestAddress(o)).unwrap();
    assert!(out.iter().all(|b| *b == POISON));
    ok_request(&mut h);
}

#[test]
fn addresses_outside_guest_memory_are_never_touched() {
    let mut h = Harness::new(0);
    let q = h.queue_index(QueueKind::Compression);
    let req = comp_req(OP_COMPRESS, COMP_LZ4, 0, b"abcabcabc");
    let r = h.alloc(&req);
    let o = h.alloc_out(64);
    let end = MEM_SIZE as u64;
    for descs in [
        vec![(end + 0x1000, req.len() as u32, false), (o, 64, true)],
        vec![(r, req.len() as u32, false), (end - 8, 64, true)], // straddles the end
        vec![(r, req.len() as u32, false), (u64::MAX - 4, 16, true)], // wraps
        vec![(end - 16, 64, false), (o, 64, true)],              // readable, straddles the end
        vec![(end - 16, u32::MAX, false), (o, 64, true)],        // and longer than any request
    ] {
        h.push_chain(q, &descs);
        h.kick(q);
        assert_eq!(h.take_used(q).len(), 1);
    }
    let m = h.dev.metrics();
    assert_eq!(m.get(&m.bad_address), 4);
    // The length limit is checked before any readable byte is read.
    assert_eq!(m.get(&m.chain_too_long), 1);
    let mut out = [0u8; 64];
    h.mem.read_slice(&mut out, GuestAddress(o)).unwrap();
    assert!(
        out.iter().all(|b| *b == POISON),
        "nothing written for a refused chain"
    );
    ok_request(&mut h);
}

#[test]
fn oversized_requests_and_output_caps() {
    let mut h = Harness::new(0);
    // One byte over the 128 KiB max_data_size: parsed, refused with BADMSG.
    let big = vec![b'z'; (128 << 10) + 1];
    let d = h.data(
        QueueKind::Compression,
        &comp_req(OP_COMPRESS, COMP_LZ4, 0, &big),
        64,
    );
    assert_eq!(d.status, Status::BadMsg as u32);
    // A readable area larger than any valid request is not even copied: dropped and counted.
    let huge = vec![b'z'; 129 << 10];
    let d = h.data(
        QueueKind::Compression,
        &comp_req(OP_COMPRESS, COMP_LZ4, 0, &huge),
        64,
    );
    assert_eq!(d.used_len, 0);
    let m = h.dev.metrics();
    assert_eq!(m.get(&m.chain_too_long), 1);
    // A huge writable area is fine: the trailer goes at its very end, output is capped.
    let q = h.queue_index(QueueKind::Compression);
    let small = comp_req(OP_COMPRESS, COMP_LZ4, 0, b"0123456789");
    let r = h.alloc(&small);
    let o = h.alloc_out(4 << 20);
    h.push_chain(q, &[(r, small.len() as u32, false), (o, 4 << 20, true)]);
    h.kick(q);
    let used = h.take_used(q);
    assert_eq!(used[0].1, 11 + 8);
    let mut tr = [0u8; 8];
    h.mem
        .read_slice(&mut tr, GuestAddress(o + (4 << 20) - 8))
        .unwrap();
    assert_eq!(tr, [0, 0, 0, 0, 11, 0, 0, 0]);
}

#[test]
fn indirect_and_scattered_chains() {
    let mut h = Harness::new(0);
    let q = h.queue_index(QueueKind::Compression);
    let req = comp_req(OP_COMPRESS, COMP_DEFLATE, 1, &b"scatter gather ".repeat(20));
    // Header split mid-field over three readable descriptors, output over three writable.
    let parts = [&req[..10], &req[10..70], &req[70..]];
    let mut descs: Vec<Desc> = parts
        .iter()
        .map(|p| (h.alloc(p), p.len() as u32, false))
        .collect();
    let outs = [h.alloc_out(5), h.alloc_out(100), h.alloc_out(3)];
    descs.extend([(outs[0], 5, true), (outs[1], 100, true), (outs[2], 3, true)]);
    h.push_indirect(q, &descs);
    h.kick(q);
    let used = h.take_used(q);
    assert_eq!(used.len(), 1);
    let mut out = [0u8; 108];
    h.mem
        .read_slice(&mut out[..5], GuestAddress(outs[0]))
        .unwrap();
    h.mem
        .read_slice(&mut out[5..105], GuestAddress(outs[1]))
        .unwrap();
    h.mem
        .read_slice(&mut out[105..], GuestAddress(outs[2]))
        .unwrap();
    let status = u32::from_le_bytes(out[100..104].try_into().unwrap());
    let len = u32::from_le_bytes(out[104..108].try_into().unwrap()) as usize;
    assert_eq!(status, 0);
    assert_eq!(used[0].1 as usize, len + 8);
    let mut d = flate2::Decompress::new(false);
    let mut plain = vec![0u8; 400];
    d.decompress(&out[..len], &mut plain, flate2::FlushDecompress::Finish)
        .unwrap();
    assert_eq!(
        &plain[..d.total_out() as usize],
        &b"scatter gather ".repeat(20)[..]
    );
}

#[test]
fn event_idx_suppresses_interrupts() {
    // Without EVENT_IDX: one interrupt per processed batch.
    let mut h = Harness::new(0);
    ok_request(&mut h);
    assert_eq!(h.irq.queue_count(), 1);
    // With EVENT_IDX and used_event left far ahead, the driver asked for no interrupt.
    let mut h = Harness::with(0, test_config(), features_all() | (1 << VIRTIO_F_EVENT_IDX));
    let q = h.queue_index(QueueKind::Compression);
    let used_event_addr = GuestAddress(q as u64 * 0x1_0000 + 64 * 16 + 4 + 2 * 64);
    // virtio-queue always signals the very first time (it has no previous index to compare).
    ok_request(&mut h);
    assert_eq!(h.irq.queue_count(), 1);
    h.mem.write_obj(100u16, used_event_addr).unwrap();
    ok_request(&mut h);
    assert_eq!(h.irq.queue_count(), 1, "used_event far ahead: no interrupt");
    // used_event = 2: the completion moving used idx from 2 to 3 crosses it.
    h.mem.write_obj(2u16, used_event_addr).unwrap();
    ok_request(&mut h);
    assert_eq!(h.irq.queue_count(), 2);
}

/// A backend that holds every job until `release`, then runs it on an inline software
/// backend: makes "in flight during reset" deterministic.
#[derive(Default)]
struct GatedBackend {
    held: std::sync::Mutex<
        Vec<(
            crate::virtio::accel::backend::Job,
            Arc<dyn crate::virtio::accel::backend::CompletionSink>,
        )>,
    >,
}

impl GatedBackend {
    fn release(&self) -> usize {
        use crate::virtio::accel::Accelerator;
        let inner = SoftwareAccelerator::new(0).unwrap();
        let held = std::mem::take(&mut *self.held.lock().unwrap());
        let n = held.len();
        for (job, sink) in held {
            assert!(inner.submit(job, sink).is_ok());
        }
        n
    }
}

impl crate::virtio::accel::Accelerator for GatedBackend {
    fn capabilities(&self) -> crate::virtio::accel::backend::Capabilities {
        SoftwareAccelerator::new(0).unwrap().capabilities()
    }
    fn submit(
        &self,
        job: crate::virtio::accel::backend::Job,
        sink: Arc<dyn crate::virtio::accel::backend::CompletionSink>,
    ) -> Result<(), crate::virtio::accel::backend::SubmitError> {
        self.held.lock().unwrap().push((job, sink));
        Ok(())
    }
}

#[test]
fn reset_stops_the_old_handler_and_wipes_state() {
    // The gate holds the job until after reset, so it is surely in flight when reset runs.
    let gate = Arc::new(GatedBackend::default());
    let mut h = Harness::with_backend(gate.clone(), test_config(), features_all());
    let (_, sess) = h.create_session(&[3; 32]);
    let q = h.queue_index(QueueKind::Crypto);
    let req = crypto_req(OP_ENCRYPT, sess, None, &[0; 12], b"", &vec![1; 100_000], 16);
    let r = h.alloc(&req);
    let o = h.alloc_out(100_024);
    h.push_chain(q, &[(r, req.len() as u32, false), (o, 100_024, true)]);
    h.kick(q);
    assert!(
        h.take_used(q).is_empty(),
        "the gated job cannot have completed"
    );
    VirtioDevice::<GuestMemoryMmap>::reset(&mut h.dev);
    // Whatever the backend finishes now is dropped, not written.
    assert_eq!(gate.release(), 1);
    let fd = h.handler.fds().len() - 1;
    h.handler.handle(fd);
    h.kick(q);
    assert!(h.take_used(q).is_empty());
    let mut tr = [0u8; 8];
    h.mem
        .read_slice(&mut tr, GuestAddress(o + 100_016))
        .unwrap();
    assert_eq!(tr, [POISON; 8]);
    assert_eq!(h.dev.session_counts(), (0, 0));
}

#[test]
fn a_stale_handler_leaves_kicks_to_the_next_activation() {
    // After reset the old handler can still be polled for one batch of events, and the kick
    // eventfd is shared with the next activation: a kick the driver makes on the re-activated
    // device must survive that poll, or the request is never seen (with EVENT_IDX the driver
    // does not kick that queue again). This was the guest driver's reload hang.
    let mut h = Harness::new(1);
    let q = h.queue_index(QueueKind::Control);
    VirtioDevice::<GuestMemoryMmap>::reset(&mut h.dev);
    h.kick(q);
    h.kick(q);
    // Both notifications are still on the eventfd for whoever runs the queue next (one more
    // write keeps the blocking read from hanging when they were eaten).
    h.kicks[q as usize].write(1).unwrap();
    assert_eq!(h.kicks[q as usize].read().unwrap(), 3);
}

/// A software accelerator that records the most jobs it ever held at once.
struct PeakBackend {
    inner: SoftwareAccelerator,
    now: Arc<std::sync::atomic::AtomicUsize>,
    peak: std::sync::atomic::AtomicUsize,
}

/// Passes results on and counts the job as finished.
struct PeakSink {
    inner: Arc<dyn crate::virtio::accel::backend::CompletionSink>,
    now: Arc<std::sync::atomic::AtomicUsize>,
}

impl crate::virtio::accel::backend::CompletionSink for PeakSink {
    fn complete(&self, result: crate::virtio::accel::backend::JobResult) {
        self.now.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
        self.inner.complete(result);
    }
}

impl crate::virtio::accel::Accelerator for PeakBackend {
    fn capabilities(&self) -> crate::virtio::accel::backend::Capabilities {
        self.inner.capabilities()
    }
    fn submit(
        &self,
        job: crate::virtio::accel::backend::Job,
        sink: Arc<dyn crate::virtio::accel::backend::CompletionSink>,
    ) -> Result<(), crate::virtio::accel::backend::SubmitError> {
        use std::sync::atomic::Ordering::SeqCst;
        let n = self.now.fetch_add(1, SeqCst) + 1;
        self.peak.fetch_max(n, SeqCst);
        let sink = Arc::new(PeakSink {
            inner: sink,
            now: self.now.clone(),
        });
        self.inner.submit(job, sink).inspect_err(|_| {
            self.now.fetch_sub(1, SeqCst);
        })
    }
}

#[test]
fn host_memory_in_flight_is_bounded_and_resumes() {
    // A worker-backed device allowed to pin 512 KiB, flooded with 20 requests of 64 KiB in and
    // out: it never holds more than fits in 512 KiB, leaves the rest in the ring,
    // and finishes all of them.
    let cfg = AccelConfig {
        max_inflight_bytes: 512 << 10,
        ..test_config()
    };
    let backend = Arc::new(PeakBackend {
        inner: SoftwareAccelerator::new(1).unwrap(),
        now: Default::default(),
        peak: Default::default(),
    });
    let mut h = Harness::with_backend(backend.clone(), cfg, features_all());
    let (_, sess) = h.create_session(&[9; 32]);
    let q = h.queue_index(QueueKind::Crypto);
    let n = 20;
    let len = 64 << 10;
    let src = vec![0x5a; len];
    let req = crypto_req(OP_ENCRYPT, sess, None, &[1; 12], b"", &src, 16);
    let r = h.alloc(&req);
    let o = h.alloc_out(len + 24);
    for _ in 0..n {
        // All requests read the same source and write the same output: fine for a bound test.
        h.push_chain(
            q,
            &[(r, req.len() as u32, false), (o, (len + 24) as u32, true)],
        );
    }
    h.kick(q);
    // How many completed during the kick depends on the worker's speed; the bound does not.
    let early = h.take_used(q).len();
    let used = h.wait_used(q, n - early);
    assert_eq!(used.len() + early, n);
    assert!(used.iter().all(|u| u.1 as usize == len + 16 + 8));
    // Each job accounts for its output capacity (~64 KiB) plus what it copied: the copy path
    // holds the payload too (~128 KiB each: 4 fit), in-place encryption only the header (8 fit).
    let peak = backend.peak.load(std::sync::atomic::Ordering::SeqCst);
    assert!((1..=8).contains(&peak), "{peak} jobs held at once");
}

/// A backend over quota: records what it was offered and refuses it, as a shared scheduler
/// does when a VM exceeds its limits.
struct BusyBackend {
    offered: std::sync::Mutex<Vec<(u32, u64)>>,
}

impl crate::virtio::accel::Accelerator for BusyBackend {
    fn capabilities(&self) -> crate::virtio::accel::backend::Capabilities {
        SoftwareAccelerator::new(0).unwrap().capabilities()
    }
    fn submit(
        &self,
        job: crate::virtio::accel::backend::Job,
        _sink: Arc<dyn crate::virtio::accel::backend::CompletionSink>,
    ) -> Result<(), crate::virtio::accel::backend::SubmitError> {
        self.offered.lock().unwrap().push((job.tenant, job.cost()));
        Err(crate::virtio::accel::backend::SubmitError::Busy(Box::new(
            job,
        )))
    }
}

#[test]
fn backend_over_quota_answers_busy_with_tenant_and_cost() {
    use crate::virtio::accel::Accelerator;
    let backend = Arc::new(BusyBackend {
        offered: Default::default(),
    });
    let cfg = AccelConfig {
        tenant: 7,
        ..test_config()
    };
    let mut h = Harness::with_backend(backend.clone(), cfg, features_all());
    let d = h.data(
        QueueKind::Compression,
        &comp_req(OP_COMPRESS, COMP_LZ4, 0, &[1; 300]),
        400,
    );
    assert_eq!((d.status, d.used_len), (Status::Busy as u32, 8));
    assert!(d.out.iter().all(|b| *b == POISON));
    let (_, sess) = h.create_session(&[2; 16]);
    let req = crypto_req(OP_ENCRYPT, sess, None, &[0; 12], b"aad", b"0123456789", 16);
    assert_eq!(
        h.data(QueueKind::Crypto, &req, 26).status,
        Status::Busy as u32
    );
    // The scheduler saw the VM's tenant id and each job's cost in bytes (aad + src).
    assert_eq!(*backend.offered.lock().unwrap(), vec![(7, 300), (7, 13)]);
    let m = h.dev.metrics();
    assert_eq!(m.get(&m.busy), 2);
    let _ = backend.capabilities();
}

/// A driver that moves the available index more than a ring ahead (virtio 1.2 §2.7.6 bounds it)
/// stops that queue; the handler returns at once (it used to spin: `enable_notification` kept
/// reporting new buffers that no pop could take) and the other queues keep working.
#[test]
fn an_available_index_beyond_the_ring_stops_only_that_queue() {
    let mut h = Harness::new(0);
    let q = h.queue_index(QueueKind::Crypto);
    h.set_avail_idx(q, QSIZE + 5);
    // A spinning handler never returns: end the test process rather than hang the suite.
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = done.clone();
    std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_secs(20));
        if !flag.load(std::sync::atomic::Ordering::SeqCst) {
            eprintln!("the handler did not return from a bad available index");
            std::process::abort();
        }
    });
    h.kick(q);
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    assert_eq!(h.take_used(q), vec![]);
    ok_request(&mut h);
}
