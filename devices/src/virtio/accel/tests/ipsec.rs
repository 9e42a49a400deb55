//! IPsec through the device: SAs over the control queue, ESP packets captured from Linux xfrm
//! (esp/testdata/linux-xfrm.txt) decapsulated on the IPsec queue, replay and tamper checks.

use super::*;

const XFRM: &str = include_str!("../esp/testdata/linux-xfrm.txt");

struct Case {
    spi: u32,
    tunnel: bool,
    keymat: Vec<u8>,
    icv: u8,
    esp: Vec<Vec<u8>>,
    payloads: Vec<Vec<u8>>,
}

fn case(name: &str) -> Case {
    let field = |line: &str, k: &str| -> String {
        line.split_whitespace()
            .find_map(|f| f.strip_prefix(&format!("{k}=")))
            .unwrap()
            .to_string()
    };
    let cl = XFRM
        .lines()
        .find(|l| l.starts_with(&format!("CASE {name} ")))
        .unwrap();
    let lines = |tag: &str| -> Vec<Vec<u8>> {
        XFRM.lines()
            .filter(|l| l.starts_with(&format!("{tag} {name} ")))
            .map(|l| hex(l.split_whitespace().nth(2).unwrap()))
            .collect()
    };
    Case {
        spi: u32::from_str_radix(field(cl, "spi").trim_start_matches("0x"), 16).unwrap(),
        tunnel: field(cl, "mode") == "tunnel",
        keymat: hex(field(cl, "key").trim_start_matches("0x")),
        icv: (field(cl, "icv").parse::<u32>().unwrap() / 8) as u8,
        esp: lines("ESPCAP"),
        payloads: lines("RECV"),
    }
}

fn sa_para(c: &Case, inbound: bool) -> SaPara {
    let key_len = c.keymat.len() - 4;
    let mut p = SaPara {
        spi: Le32::from(c.spi),
        algo: Le32::from(IPSEC_ESP_AES_GCM),
        direction: if inbound {
            SA_DIR_INBOUND
        } else {
            SA_DIR_OUTBOUND
        },
        mode: if c.tunnel {
            SA_MODE_TUNNEL
        } else {
            SA_MODE_TRANSPORT
        },
        family: SA_FAMILY_IPV4,
        icv_len: c.icv,
        key_len: Le32::from(key_len as u32),
        replay_window: Le32::from(64),
        ..Default::default()
    };
    p.salt.copy_from_slice(&c.keymat[key_len..]);
    p.key[..key_len].copy_from_slice(&c.keymat[..key_len]);
    p.tunnel_src[..4].copy_from_slice(&[192, 0, 2, 1]);
    p.tunnel_dst[..4].copy_from_slice(&[192, 0, 2, 2]);
    p
}

fn esp_req(op: u32, sa: u64, pkt: &[u8]) -> Vec<u8> {
    let hdr = DataHdr {
        opcode: Le32::from(op),
        handle: Le64::from(sa),
        src_len: Le32::from(pkt.len() as u32),
        ..Default::default()
    };
    [hdr.as_slice(), pkt].concat()
}

fn stats(h: &mut Harness, sa: u64) -> SaStats {
    let (s, _, out) = h.ctrl(
        CTRL_QUERY_SA,
        handle_body(sa).as_slice(),
        size_of::<SaStats>(),
    );
    assert_eq!(s, Status::Ok as u32);
    SaStats::from_slice(&out).copied().unwrap()
}

/// The UDP payload of an IPv4 packet.
fn udp_payload(ip: &[u8]) -> &[u8] {
    let ihl = (ip[0] & 15) as usize * 4;
    &ip[ihl + 8..]
}

#[test]
fn decapsulates_linux_xfrm_packets_and_rejects_replay_and_tampering() {
    for name in ["tunnel4", "tunnel4-icv8", "transport4"] {
        let c = case(name);
        let mut h = Harness::new(1);
        let (s, sa, _) = h.ctrl(CTRL_ADD_SA, sa_para(&c, true).as_slice(), 0);
        assert_eq!(s, Status::Ok as u32, "{name}");
        // Tampered packet (a ciphertext byte flipped): refused, and it does not consume its
        // sequence number — the genuine packet is accepted afterwards.
        let mut bad = c.esp[3].clone();
        let n = bad.len();
        bad[n - 20] ^= 1;
        let d = h.data(QueueKind::Ipsec, &esp_req(OP_ESP_DECAP, sa, &bad), 2048);
        assert_eq!(d.status, Status::AuthFailed as u32, "{name}");
        assert!(d.out.iter().all(|b| *b == POISON));
        for (pkt, payload) in c.esp.iter().zip(&c.payloads) {
            let d = h.data(QueueKind::Ipsec, &esp_req(OP_ESP_DECAP, sa, pkt), 2048);
            assert_eq!(d.status, Status::Ok as u32, "{name}");
            let inner = &d.out[..d.len as usize];
            assert_eq!(
                udp_payload(inner),
                &payload[..],
                "{name}: what Linux delivered"
            );
        }
        // Replayed packet.
        let d = h.data(
            QueueKind::Ipsec,
            &esp_req(OP_ESP_DECAP, sa, &c.esp[0]),
            2048,
        );
        assert_eq!((d.status, d.used_len), (Status::Replay as u32, 8), "{name}");
        let st = stats(&mut h, sa);
        assert_eq!(
            (
                st.packets.to_native(),
                st.replay_drops.to_native(),
                st.auth_failures.to_native(),
                st.last_seq.to_native()
            ),
            (4, 1, 1, 4),
            "{name}"
        );
    }
}

#[test]
fn encapsulation_round_trip_and_sa_lifecycle() {
    let c = case("tunnel4");
    let mut h = Harness::new(0);
    let (_, out_sa, _) = h.ctrl(CTRL_ADD_SA, sa_para(&c, false).as_slice(), 0);
    let (_, in_sa, _) = h.ctrl(CTRL_ADD_SA, sa_para(&c, true).as_slice(), 0);
    assert_ne!(out_sa, in_sa);
    // An inner IPv4/UDP packet built by hand (checksums are not verified by ESP).
    let payload = b"through the device tunnel";
    let total = 20 + 8 + payload.len();
    let mut inner = vec![
        0x45,
        0,
        (total >> 8) as u8,
        total as u8,
        0,
        1,
        0x40,
        0,
        64,
        17,
        0,
        0,
        192,
        0,
        2,
        1,
        192,
        0,
        2,
        2,
    ];
    inner.extend_from_slice(&[0x30, 0x39, 0x30, 0x39, 0, (8 + payload.len()) as u8, 0, 0]);
    inner.extend_from_slice(payload);
    let d = h.data(
        QueueKind::Ipsec,
        &esp_req(OP_ESP_ENCAP, out_sa, &inner),
        2048,
    );
    assert_eq!(d.status, Status::Ok as u32);
    let esp = d.out[..d.len as usize].to_vec();
    assert_eq!(
        (esp[9], &esp[12..20]),
        (50, &[192, 0, 2, 1, 192, 0, 2, 2][..]),
        "outer IPv4 header, protocol ESP"
    );
    assert_eq!(&esp[20..24], &c.spi.to_be_bytes(), "SPI");
    assert_eq!(&esp[24..28], &1u32.to_be_bytes(), "first sequence number");
    let d = h.data(QueueKind::Ipsec, &esp_req(OP_ESP_DECAP, in_sa, &esp), 2048);
    assert_eq!(d.status, Status::Ok as u32);
    assert_eq!(&d.out[..d.len as usize], &inner[..]);
    // Too small an output area: nothing consumed, needed size reported.
    let d = h.data(QueueKind::Ipsec, &esp_req(OP_ESP_ENCAP, out_sa, &inner), 40);
    assert_eq!(d.status, Status::OutputTooSmall as u32);
    assert!(d.len as usize > inner.len());
    let d = h.data(
        QueueKind::Ipsec,
        &esp_req(OP_ESP_ENCAP, out_sa, &inner),
        2048,
    );
    assert_eq!(d.status, Status::Ok as u32);
    assert_eq!(
        &d.out[24..28],
        &2u32.to_be_bytes(),
        "the refused request used no sequence number"
    );
    // Direction mismatch, a session handle as SA, an unknown SA.
    assert_eq!(
        h.data(
            QueueKind::Ipsec,
            &esp_req(OP_ESP_ENCAP, in_sa, &inner),
            2048
        )
        .status,
        Status::BadMsg as u32
    );
    let (_, sess) = h.create_session(&[1; 16]);
    assert_eq!(
        h.data(QueueKind::Ipsec, &esp_req(OP_ESP_ENCAP, sess, &inner), 2048)
            .status,
        Status::NoSession as u32
    );
    // Garbage is DATA_ERROR, not a crash.
    assert_eq!(
        h.data(
            QueueKind::Ipsec,
            &esp_req(OP_ESP_DECAP, in_sa, &[0x45; 30]),
            2048
        )
        .status,
        Status::DataError as u32
    );
    // Remove: further use is NO_SESSION.
    let (s, _, _) = h.ctrl(CTRL_REMOVE_SA, handle_body(out_sa).as_slice(), 0);
    assert_eq!(s, Status::Ok as u32);
    assert_eq!(
        h.data(
            QueueKind::Ipsec,
            &esp_req(OP_ESP_ENCAP, out_sa, &inner),
            2048
        )
        .status,
        Status::NoSession as u32
    );
    let (s, _, _) = h.ctrl(CTRL_REMOVE_SA, handle_body(out_sa).as_slice(), 0);
    assert_eq!(s, Status::NoSession as u32);
    assert_eq!(h.dev.session_counts(), (1, 1));
}

#[test]
fn sa_parameters_are_validated() {
    let c = case("tunnel4");
    let mut h = Harness::new(0);
    let mut p = sa_para(&c, true);
    p.replay_window = Le32::from(8);
    assert_eq!(
        h.ctrl(CTRL_ADD_SA, p.as_slice(), 0).0,
        Status::NotSupp as u32
    );
    let mut p = sa_para(&c, true);
    p.icv_len = 10;
    assert_eq!(
        h.ctrl(CTRL_ADD_SA, p.as_slice(), 0).0,
        Status::NotSupp as u32
    );
    let mut p = sa_para(&c, true);
    p.direction = 7;
    assert_eq!(
        h.ctrl(CTRL_ADD_SA, p.as_slice(), 0).0,
        Status::BadMsg as u32
    );
    let mut p = sa_para(&c, true);
    p.spi = Le32::from(5);
    assert_eq!(
        h.ctrl(CTRL_ADD_SA, p.as_slice(), 0).0,
        Status::BadMsg as u32
    );
    let mut p = sa_para(&c, true);
    p.algo = Le32::from(2);
    assert_eq!(
        h.ctrl(CTRL_ADD_SA, p.as_slice(), 0).0,
        Status::NotSupp as u32
    );
    // QUERY_SA without room for the counters.
    let (_, sa, _) = h.ctrl(CTRL_ADD_SA, sa_para(&c, true).as_slice(), 0);
    assert_eq!(
        h.ctrl(CTRL_QUERY_SA, handle_body(sa).as_slice(), 0).0,
        Status::OutputTooSmall as u32
    );
}
