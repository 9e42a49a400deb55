//! TAP ownership and the device model (config space, activation errors).

use super::*;

#[test]
fn tap_created_here_is_removed_and_existing_one_kept() {
    in_netns(|| {
        let name = tap_name("own");
        assert_eq!(ifindex(&name), 0);
        let tap = Tap::open(&name).expect("create TAP");
        assert!(tap.created());
        assert_ne!(ifindex(&name), 0);
        drop(tap);
        assert_eq!(ifindex(&name), 0, "created TAP removed on drop");

        quiet_persistent_tap(&name);
        let tap = Tap::open(&name).expect("open existing TAP");
        assert!(!tap.created());
        drop(tap);
        assert_ne!(ifindex(&name), 0, "existing TAP kept");

        // A second open of a TAP in use fails cleanly.
        let held = Tap::open(&name).unwrap();
        assert!(matches!(Tap::open(&name), Err(TapError::SetIff { .. })));
        drop(held);
    });
}

#[test]
fn device_model_config_and_activation_errors() {
    in_netns(|| {
        let name = tap_name("dev");
        let mut dev = Net::new(&name, Some("52:54:00:12:34:56".parse().unwrap())).unwrap();
        let d: &mut dyn VirtioDevice<Mem> = &mut dev;
        assert_eq!(d.device_type(), VIRTIO_ID_NET);
        assert_eq!(d.queue_max_sizes(), &[QUEUE_MAX_SIZE, QUEUE_MAX_SIZE]);
        let mut cfg = [0xaa; 10];
        d.read_config(0, &mut cfg);
        assert_eq!(cfg, [0x52, 0x54, 0, 0x12, 0x34, 0x56, 1, 0, 0, 0]);
        let mut tail = [0xaa; 4];
        d.read_config(u64::MAX - 1, &mut tail);
        assert_eq!(tail, [0; 4]);
        d.write_config(0, &[0; 6]);
        d.read_config(0, &mut cfg[..6]);
        assert_eq!(
            cfg[..6],
            [0x52, 0x54, 0, 0x12, 0x34, 0x56],
            "mac is read-only"
        );

        let mem: Mem = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), MEM_SIZE)]).unwrap();
        let ctx = |queues: Vec<u16>, features: u64| ActivationContext {
            mem: mem.clone(),
            acked_features: features,
            queues: queues
                .into_iter()
                .map(|i| {
                    let (queue, _) = make_queue(&mem, GuestAddress(0x4000 * i as u64), false);
                    (
                        i,
                        ActivatedQueue {
                            queue,
                            kick: EventFd::new(EFD_NONBLOCK).unwrap(),
                        },
                    )
                })
                .collect(),
            interrupt: Arc::new(CountIrq::default()),
        };
        let v1 = 1u64 << VIRTIO_F_VERSION_1;
        assert!(matches!(
            dev.activate_handler(ctx(vec![0], v1)),
            Err(ActivateError::QueueNotReady(1))
        ));
        let bad = v1 | (1 << f::GUEST_TSO4);
        assert!(matches!(
            dev.activate_handler(ctx(vec![0, 1], bad)),
            Err(ActivateError::BadFeatures(b)) if b == bad
        ));
        let h = dev.activate_handler(ctx(vec![0, 1], v1)).expect("activate");
        assert_eq!(h.fds().len(), 3);
        VirtioDevice::<Mem>::reset(&mut dev);
    });
}
