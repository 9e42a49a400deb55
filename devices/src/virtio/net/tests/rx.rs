//! Receive path: buffered and direct, with and without MRG_RXBUF, pause/resume, budget.

use super::*;

#[test]
fn rx_without_mrg_rxbuf_one_buffer_per_frame() {
    in_netns(|| {
        let mut rig = Rig::new(&tap_name("rx"), &[VIRTIO_F_EVENT_IDX]);
        let addrs = rig.post_rx(4, 2048);
        let frames: Vec<_> = (0..3).map(|i| test_frame(200 + 300 * i, i as u8)).collect();
        for frame in &frames {
            rig.host.send(frame);
        }
        rig.wait_tap_event();
        rig.handler.handle(TAP_EVENT);
        let used = rig.rx.take_used(&rig.mem);
        assert_eq!(used.len(), 3, "{used:?}");
        for (i, frame) in frames.iter().enumerate() {
            assert_eq!(used[i], (i as u32, (VNET_HDR_LEN + frame.len()) as u32));
            let hdr = rig.read_guest(addrs[i], VNET_HDR_LEN);
            assert_eq!(&hdr[10..12], &1u16.to_le_bytes(), "num_buffers is 1");
            assert_eq!(&rig.read_guest(addrs[i] + 12, frame.len()), frame);
        }
        assert_eq!(get(&rig.metrics.rx_frames), 3);
        assert!(rig.irq.rx.load(Ordering::SeqCst) >= 1);
        assert!(!rig.handler.rx_paused());
        // A frame larger than the (single) next buffer is dropped, the buffer kept.
        let small = rig.post_rx(1, 128);
        let _ = small;
        rig.host.send(&test_frame(1400, 7)); // lands in buffer 3 (2048 bytes)
        let big = test_frame(1400, 8); // does not fit the 128-byte buffer
        rig.host.send(&big);
        let last = test_frame(50, 9); // fits the 128-byte buffer
        rig.host.send(&last);
        rig.wait_tap_event();
        rig.handler.handle(TAP_EVENT);
        let used = rig.rx.take_used(&rig.mem);
        assert_eq!(used.len(), 2, "{used:?}");
        assert_eq!(used[1], (4, (VNET_HDR_LEN + last.len()) as u32));
        assert_eq!(get(&rig.metrics.rx_oversized_frames), 1);
    });
}

#[test]
fn rx_with_mrg_rxbuf_spans_buffers_and_sets_num_buffers() {
    in_netns(|| {
        let mut rig = Rig::new(&tap_name("mrg"), &[f::MRG_RXBUF, VIRTIO_F_EVENT_IDX]);
        let addrs = rig.post_rx(8, 256);
        let frame = test_frame(990, 5); // 12 + 1004 bytes: 4 buffers of 256
        rig.host.send(&frame);
        rig.wait_tap_event();
        rig.handler.handle(TAP_EVENT);
        let used = rig.rx.take_used(&rig.mem);
        assert_eq!(used, vec![(0, 256), (1, 256), (2, 256), (3, 1016 - 768)]);
        let hdr = rig.read_guest(addrs[0], VNET_HDR_LEN);
        assert_eq!(&hdr[10..12], &4u16.to_le_bytes());
        let mut data = rig.read_guest(addrs[0] + 12, 256 - 12);
        for &a in &addrs[1..4] {
            data.extend(rig.read_guest(a, 256));
        }
        data.truncate(frame.len());
        assert_eq!(data, frame);
        assert_eq!(get(&rig.metrics.rx_frames), 1);
    });
}

#[test]
fn rx_pauses_without_buffers_and_resumes_on_kick() {
    in_netns(|| {
        let mut rig = Rig::new(&tap_name("pz"), &[f::MRG_RXBUF, VIRTIO_F_EVENT_IDX]);
        let frame = test_frame(990, 4); // 1016 bytes with the header: 4 buffers of 256
        rig.host.send(&frame);
        rig.wait_tap_event();
        rig.handler.handle(TAP_EVENT);
        // No buffers: RX paused, and the fd the VMM watches is quiet although the TAP is not
        // drained — a level-triggered loop does not spin.
        assert!(rig.handler.rx_paused());
        assert_eq!(get(&rig.metrics.rx_no_buffers), 1);
        rig.host.send(&test_frame(64, 6));
        std::thread::sleep(std::time::Duration::from_millis(50));
        assert!(
            !rig.tap_event_ready(),
            "paused TAP still wakes the event loop"
        );
        // One 256-byte buffer is not enough for the 1016-byte frame: it stays in the avail
        // ring (rewound), nothing is used, and the driver is asked to notify on its next add.
        let first = rig.post_rx(1, 256);
        rig.kick(RX_KICK_EVENT);
        assert!(rig.handler.rx_paused());
        assert!(rig.rx.take_used(&rig.mem).is_empty());
        let avail_event: u16 = u16::from_le(
            rig.mem
                .read_obj(rig.rx.used.unchecked_add(4 + 8 * QSIZE as u64))
                .unwrap(),
        );
        assert_eq!(avail_event, 1, "avail_event points past the posted buffer");
        // Enough buffers: the kept frame, then the second one, are delivered.
        let more = rig.post_rx(7, 256);
        rig.kick(RX_KICK_EVENT);
        assert!(!rig.handler.rx_paused());
        let used = rig.rx.take_used(&rig.mem);
        assert_eq!(used[..4], [(0, 256), (1, 256), (2, 256), (3, 248)]);
        assert_eq!(used[4], (4, (VNET_HDR_LEN + 64 + 14) as u32));
        assert_eq!(rig.read_guest(first[0] + 12, 244), frame[..244].to_vec());
        assert_eq!(
            &rig.read_guest(more[0], VNET_HDR_LEN)[..],
            &frame[244..256],
            "second buffer continues the frame"
        );
        assert_eq!(used.len(), 5, "{used:?}");
        assert_eq!(get(&rig.metrics.rx_frames), 2);
        // Drained: the watched fd is quiet again, and stays watched.
        assert!(!rig.tap_event_ready());
        assert!(!rig.handler.rx_paused());
    });
}

#[test]
fn rx_malformed_chains_are_returned_empty_and_counted() {
    in_netns(|| {
        let mut rig = Rig::new(&tap_name("rxb"), &[]);
        let mem = rig.mem.clone();
        // Read-only chain, a chain outside memory, a first buffer smaller than the header.
        let ro = rig.alloc(2048);
        rig.rx.add_chain(&mem, &[(ro, 2048, false)]);
        rig.rx
            .add_chain(&mem, &[(MEM_SIZE as u64 + 0x1000, 2048, true)]);
        let tiny = rig.alloc(8);
        rig.rx.add_chain(&mem, &[(tiny, 8, true)]);
        let good = rig.post_rx(1, 2048);
        let frame = test_frame(300, 2);
        rig.host.send(&frame);
        rig.wait_tap_event();
        rig.handler.handle(TAP_EVENT);
        let used = rig.rx.take_used(&mem);
        assert_eq!(
            used,
            vec![
                (0, 0),
                (1, 0),
                (2, 0),
                (3, (VNET_HDR_LEN + frame.len()) as u32)
            ]
        );
        assert_eq!(rig.read_guest(good[0] + 12, frame.len()), frame);
        assert_eq!(get(&rig.metrics.rx_malformed_chains), 3);
        assert_eq!(get(&rig.metrics.rx_frames), 1);
    });
}

#[test]
fn rx_gso_frames_arrive_whole_when_the_guest_takes_tso() {
    in_netns(|| {
        let mut rig = Rig::new(
            &tap_name("gro"),
            &[f::GUEST_CSUM, f::GUEST_TSO4, f::MRG_RXBUF],
        );
        let addrs = rig.post_rx(40, 4096);
        let inject = PacketSock::bind(&rig.tap_name);
        inject.enable_vnet_hdr();
        // A 20000-byte TCP GSO packet from the host; the TAP may pass it on unsegmented
        // only because TUNSETOFFLOAD got TUN_F_CSUM|TUN_F_TSO4 from the guest's features.
        let payload = 20000usize;
        let mut pkt = vec![1u8, 1]; // NEEDS_CSUM, GSO_TCPV4
        pkt.extend_from_slice(&54u16.to_le_bytes());
        pkt.extend_from_slice(&1448u16.to_le_bytes());
        pkt.extend_from_slice(&34u16.to_le_bytes());
        pkt.extend_from_slice(&16u16.to_le_bytes());
        pkt.extend_from_slice(&[0x02, 0, 0, 0, 0, 1, 0x02, 0, 0, 0, 0, 2, 0x08, 0x00]);
        let ip_len = (40 + payload) as u16;
        pkt.extend_from_slice(&[0x45, 0, (ip_len >> 8) as u8, ip_len as u8, 0, 1, 0x40, 0]);
        pkt.extend_from_slice(&[64, 6, 0, 0, 192, 0, 2, 1, 192, 0, 2, 2]);
        pkt.extend_from_slice(&[0x13, 0x89, 0x30, 0x39, 0, 0, 0, 1, 0, 0, 0, 0]);
        pkt.extend_from_slice(&[0x50, 0x18, 0xff, 0xff, 0, 0, 0, 0]);
        pkt.extend((0..payload).map(|i| (i % 251) as u8));
        inject.send(&pkt);
        rig.wait_tap_event();
        rig.handler.handle(TAP_EVENT);
        let used = rig.rx.take_used(&rig.mem);
        let frame_len = pkt.len() - 10;
        let total: u32 = used.iter().map(|&(_, l)| l).sum();
        assert_eq!(total as usize, VNET_HDR_LEN + frame_len, "{used:?}");
        let hdr = rig.read_guest(addrs[0], VNET_HDR_LEN);
        assert_eq!(hdr[1], 1, "gso_type TCPV4 reaches the guest");
        assert_eq!(u16::from_le_bytes([hdr[10], hdr[11]]) as usize, used.len());
        let mut data = rig.read_guest(addrs[0] + 12, 4096 - 12);
        for &a in &addrs[1..used.len()] {
            data.extend(rig.read_guest(a, 4096));
        }
        data.truncate(frame_len);
        assert_eq!(&data[54..], &pkt[10 + 54..]);
        assert_eq!(get(&rig.metrics.rx_frames), 1);
        assert_eq!(
            get(&rig.metrics.rx_direct_frames),
            1,
            "read straight into guest buffers"
        );
    });
}

#[test]
fn rx_budget_yields_and_rearms_itself() {
    in_netns(|| {
        let mut rig = Rig::new(&tap_name("bud"), &[]);
        rig.post_rx(QSIZE as usize, 256);
        let total = BUDGET_FRAMES + 6;
        for i in 0..total {
            rig.host.send(&test_frame(40, i as u8));
        }
        rig.wait_tap_event();
        rig.handler.handle(TAP_EVENT);
        // One budget's worth, then the handler yields and re-arms its RX kick.
        assert_eq!(rig.rx.take_used(&rig.mem).len(), BUDGET_FRAMES);
        let rx_kick = rig.handler.fds()[RX_KICK_EVENT];
        assert!(poll_readable(rx_kick), "RX did not re-arm after its budget");
        rig.handler.handle(RX_KICK_EVENT);
        // The ring had QSIZE buffers: the rest wait for more, RX pauses.
        let used = rig.rx.take_used(&rig.mem);
        assert_eq!(used.len(), QSIZE as usize - BUDGET_FRAMES);
        assert!(rig.handler.rx_paused());
        rig.post_rx(8, 256);
        rig.kick(RX_KICK_EVENT);
        let used = rig.rx.take_used(&rig.mem);
        assert_eq!(used.len(), total - QSIZE as usize);
        assert_eq!(get(&rig.metrics.rx_frames), total as u64);
        assert!(!rig.handler.rx_paused());
    });
}

#[test]
fn rx_direct_path_reads_frames_into_guest_buffers() {
    in_netns(|| {
        let mut rig = Rig::new(&tap_name("dir"), &[f::MRG_RXBUF, VIRTIO_F_EVENT_IDX]);
        set_mtu(&rig.tap_name, 9000);
        // 20 x 4 KiB: room for the largest frame, so frames go straight into guest memory.
        let addrs = rig.post_rx(20, 4096);
        let frames = [test_frame(100, 1), test_frame(3000, 2), test_frame(9000, 3)];
        for frame in &frames {
            rig.host.send(frame);
        }
        rig.wait_tap_event();
        rig.handler.handle(TAP_EVENT);
        let used = rig.rx.take_used(&rig.mem);
        let l = |f: &Vec<u8>| (VNET_HDR_LEN + f.len()) as u32;
        assert_eq!(
            used,
            vec![
                (0, l(&frames[0])),
                (1, l(&frames[1])),
                (2, 4096),
                (3, 4096),
                (4, l(&frames[2]) - 8192)
            ]
        );
        assert_eq!(get(&rig.metrics.rx_direct_frames), 3);
        for (i, &first) in [0usize, 1, 2].iter().enumerate() {
            let hdr = rig.read_guest(addrs[first], VNET_HDR_LEN);
            let expect: u16 = if i == 2 { 3 } else { 1 };
            assert_eq!(
                &hdr[10..12],
                &expect.to_le_bytes(),
                "num_buffers of frame {i}"
            );
        }
        assert_eq!(rig.read_guest(addrs[0] + 12, frames[0].len()), frames[0]);
        assert_eq!(rig.read_guest(addrs[1] + 12, frames[1].len()), frames[1]);
        let mut data = rig.read_guest(addrs[2] + 12, 4096 - 12);
        data.extend(rig.read_guest(addrs[3], 4096));
        data.extend(rig.read_guest(addrs[4], 4096));
        data.truncate(frames[2].len());
        assert_eq!(data, frames[2]);
        // The TAP is drained and the chains the readv did not need are still available: 15
        // left, under one largest frame's worth, so the next frame takes the buffered path.
        assert!(!rig.tap_event_ready());
        let last = test_frame(500, 4);
        rig.host.send(&last);
        rig.wait_tap_event();
        rig.handler.handle(TAP_EVENT);
        assert_eq!(rig.rx.take_used(&rig.mem), vec![(5, l(&last))]);
        assert_eq!(rig.read_guest(addrs[5] + 12, last.len()), last);
        assert_eq!(get(&rig.metrics.rx_direct_frames), 3);
        assert_eq!(get(&rig.metrics.rx_frames), 4);
    });
}

#[test]
fn rx_direct_path_without_mrg_rxbuf_uses_one_big_buffer() {
    in_netns(|| {
        let mut rig = Rig::new(&tap_name("big"), &[]);
        set_mtu(&rig.tap_name, 9000);
        let big = MAX_BUFFER_LEN as u32 + 4096;
        let addrs = rig.post_rx(2, big);
        let frame = test_frame(7000, 9);
        rig.host.send(&frame);
        rig.wait_tap_event();
        rig.handler.handle(TAP_EVENT);
        assert_eq!(
            rig.rx.take_used(&rig.mem),
            vec![(0, (VNET_HDR_LEN + frame.len()) as u32)]
        );
        assert_eq!(&rig.read_guest(addrs[0], 12)[10..], &1u16.to_le_bytes());
        assert_eq!(rig.read_guest(addrs[0] + 12, frame.len()), frame);
        assert_eq!(get(&rig.metrics.rx_direct_frames), 1);
    });
}

#[test]
fn rx_direct_path_falls_back_for_chains_it_cannot_take() {
    in_netns(|| {
        let mut rig = Rig::new(&tap_name("fb"), &[f::MRG_RXBUF]);
        let mem = rig.mem.clone();
        // A read-only chain, then a chain whose 12-byte header is split over two descriptors,
        // then plenty of room: the first two make the direct path hand over to the buffered one.
        let ro = rig.alloc(4096);
        rig.rx.add_chain(&mem, &[(ro, 4096, false)]);
        let (a, b) = (rig.alloc(8), rig.alloc(4096));
        rig.rx.add_chain(&mem, &[(a, 8, true), (b, 4096, true)]);
        let rest = rig.post_rx(20, 4096);
        let frames = [test_frame(200, 1), test_frame(300, 2)];
        for frame in &frames {
            rig.host.send(frame);
        }
        rig.wait_tap_event();
        rig.handler.handle(TAP_EVENT);
        let l = |f: &Vec<u8>| (VNET_HDR_LEN + f.len()) as u32;
        assert_eq!(
            rig.rx.take_used(&mem),
            vec![(0, 0), (1, l(&frames[0])), (3, l(&frames[1]))]
        );
        // Frame 0 went through the buffered path across the split header...
        let mut first = rig.read_guest(a, 8);
        first.extend(rig.read_guest(b, frames[0].len() + 4));
        assert_eq!(&first[10..12], &1u16.to_le_bytes());
        assert_eq!(&first[12..], &frames[0][..]);
        // ...frame 1 straight into the next buffer.
        assert_eq!(rig.read_guest(rest[0] + 12, frames[1].len()), frames[1]);
        assert_eq!(get(&rig.metrics.rx_malformed_chains), 1);
        assert_eq!(get(&rig.metrics.rx_direct_frames), 1);
        assert_eq!(get(&rig.metrics.rx_frames), 2);
    });
}
