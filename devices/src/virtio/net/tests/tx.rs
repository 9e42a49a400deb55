//! Transmit path: frames to the TAP, GSO pass-through, malformed chains, ring errors.

use super::*;

#[test]
fn tx_frame_reaches_the_tap_unchanged() {
    in_netns(|| {
        let mut rig = Rig::new(&tap_name("tx"), &[VIRTIO_F_EVENT_IDX]);
        let frame = test_frame(1000, 3);
        rig.queue_tx([0; VNET_HDR_LEN], &frame);
        rig.kick(TX_KICK_EVENT);
        assert_eq!(rig.host.recv_test_frame(0), frame);
        assert_eq!(rig.tx.take_used(&rig.mem), vec![(0, 0)]);
        assert_eq!(get(&rig.metrics.tx_frames), 1);
        assert_eq!(get(&rig.metrics.tx_bytes), frame.len() as u64);
        assert_eq!(rig.irq.tx.load(Ordering::SeqCst), 1);
    });
}

#[test]
fn tx_gso_frame_passes_through_as_one_super_frame() {
    in_netns(|| {
        let mut rig = Rig::new(&tap_name("tso"), &[f::CSUM, f::HOST_TSO4]);
        // A 30000-byte TCP segment in one IPv4 packet, asking the host to segment it.
        let payload = 30000usize;
        let mut frame = vec![0xff; 6];
        frame.extend_from_slice(&[0x02, 0, 0, 0, 0, 1, 0x08, 0x00]);
        let ip_len = (20 + 20 + payload) as u16;
        frame.extend_from_slice(&[0x45, 0, (ip_len >> 8) as u8, ip_len as u8, 0, 1, 0x40, 0]);
        frame.extend_from_slice(&[64, 6, 0, 0, 192, 0, 2, 2, 192, 0, 2, 1]);
        frame.extend_from_slice(&[0x30, 0x39, 0x13, 0x89, 0, 0, 0, 1, 0, 0, 0, 0]);
        frame.extend_from_slice(&[0x50, 0x18, 0xff, 0xff, 0, 0, 0, 0]);
        frame.extend((0..payload).map(|i| i as u8));
        let mut hdr = [0u8; VNET_HDR_LEN];
        hdr[0] = 1; // VIRTIO_NET_HDR_F_NEEDS_CSUM
        hdr[1] = 1; // VIRTIO_NET_HDR_GSO_TCPV4
        hdr[2..4].copy_from_slice(&54u16.to_le_bytes()); // hdr_len
        hdr[4..6].copy_from_slice(&1448u16.to_le_bytes()); // gso_size
        hdr[6..8].copy_from_slice(&34u16.to_le_bytes()); // csum_start: TCP header
        hdr[8..10].copy_from_slice(&16u16.to_le_bytes()); // csum_offset: TCP checksum
        let sniff = PacketSock::bind(&rig.tap_name);
        sniff.enable_vnet_hdr();
        rig.queue_tx(hdr, &frame);
        rig.kick(TX_KICK_EVENT);
        assert_eq!(get(&rig.metrics.tx_frames), 1);
        // The host sees one GSO packet carrying the guest's header, not 21 segments.
        let mut seen = [0u8; 10];
        let mut buf = vec![0u8; 128 << 10];
        loop {
            // SAFETY: the kernel writes at most buf.len() bytes into buf.
            let n =
                unsafe { libc::recv(sniff.0.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
            assert!(n > 0, "no GSO frame: {}", io::Error::last_os_error());
            if buf[10 + 12..10 + 14] == [0x08, 0x00] {
                seen.copy_from_slice(&buf[..10]);
                assert_eq!(n as usize, 10 + frame.len());
                assert_eq!(&buf[10..n as usize], &frame[..]);
                break;
            }
        }
        assert_eq!(seen[1], 1, "gso_type TCPV4 kept");
        assert_eq!(u16::from_le_bytes([seen[4], seen[5]]), 1448);
    });
}

#[test]
fn tx_malformed_chains_are_dropped_and_counted() {
    in_netns(|| {
        let mut rig = Rig::new(&tap_name("bad"), &[]);
        let mem = rig.mem.clone();
        // 1: shorter than a vnet header.
        let a = rig.alloc(8);
        rig.tx.add_chain(&mem, &[(a, 8, false)]);
        // 2: header and a descriptor pointing past the end of guest memory.
        let h = rig.alloc(12);
        rig.tx
            .add_chain(&mem, &[(h, 12, false), (MEM_SIZE as u64 - 16, 4096, false)]);
        // 3: larger than MAX_BUFFER_LEN.
        let big = rig.alloc(MAX_BUFFER_LEN as u32 + 1);
        rig.tx
            .add_chain(&mem, &[(big, MAX_BUFFER_LEN as u32 + 1, false)]);
        // 4: device-writable only: nothing to read.
        let w = rig.alloc(100);
        rig.tx.add_chain(&mem, &[(w, 100, true)]);
        // 5: header plus 2 bytes: no Ethernet header.
        let s = rig.alloc(14);
        rig.tx.add_chain(&mem, &[(s, 14, false)]);
        // 6: a good frame still goes through afterwards.
        let frame = test_frame(60, 9);
        rig.queue_tx([0; VNET_HDR_LEN], &frame);
        rig.kick(TX_KICK_EVENT);
        assert_eq!(rig.host.recv_test_frame(0), frame);
        let used = rig.tx.take_used(&mem);
        assert_eq!(used.len(), 6, "every chain is returned: {used:?}");
        assert!(used.iter().all(|&(_, len)| len == 0));
        assert_eq!(get(&rig.metrics.tx_malformed_chains), 4);
        assert_eq!(get(&rig.metrics.tx_oversized_frames), 1);
        assert_eq!(get(&rig.metrics.tx_frames), 1);
    });
}

#[test]
fn tx_bad_avail_index_stops_the_queue_without_panic() {
    in_netns(|| {
        let mut rig = Rig::new(&tap_name("idx"), &[]);
        // The driver claims 1000 new entries in a 64-entry ring (virtio 1.2 §2.7.6 violation).
        rig.mem
            .write_obj(1000u16.to_le(), rig.tx.avail.unchecked_add(2))
            .unwrap();
        rig.kick(TX_KICK_EVENT);
        rig.kick(TX_KICK_EVENT);
        assert_eq!(get(&rig.metrics.queue_errors), 1);
        assert!(rig.handler.tx.broken);
        // RX keeps working.
        let addrs = rig.post_rx(1, 2048);
        rig.kick(RX_KICK_EVENT);
        let frame = test_frame(100, 1);
        rig.host.send(&frame);
        rig.wait_tap_event();
        rig.handler.handle(TAP_EVENT);
        let used = rig.rx.take_used(&rig.mem);
        assert_eq!(used, vec![(0, (VNET_HDR_LEN + frame.len()) as u32)]);
        assert_eq!(rig.read_guest(addrs[0] + 12, frame.len()), frame);
    });
}

#[test]
fn tx_long_chain_takes_the_gather_path() {
    in_netns(|| {
        let mut rig = Rig::new(&tap_name("sg"), &[]);
        let mem = rig.mem.clone();
        // Header plus 40 pieces: more segments than the zero-copy path takes.
        let frame = test_frame(40 * 30 - 14, 4);
        const { assert!(40 > crate::virtio::net::tx::MAX_ZERO_COPY_SEGMENTS) };
        let mut descs = vec![];
        let h = rig.alloc(VNET_HDR_LEN as u32);
        mem.write_slice(&[0; VNET_HDR_LEN], GuestAddress(h))
            .unwrap();
        descs.push((h, VNET_HDR_LEN as u32, false));
        for piece in frame.chunks(30) {
            let at = rig.alloc(piece.len() as u32);
            mem.write_slice(piece, GuestAddress(at)).unwrap();
            descs.push((at, piece.len() as u32, false));
        }
        rig.tx.add_chain(&mem, &descs);
        rig.kick(TX_KICK_EVENT);
        assert_eq!(rig.host.recv_test_frame(0), frame);
        assert_eq!(get(&rig.metrics.tx_frames), 1);
        assert_eq!(rig.tx.take_used(&mem), vec![(0, 0)]);
    });
}
