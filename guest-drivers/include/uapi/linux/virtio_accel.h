/* SPDX-License-Identifier: ((GPL-2.0 WITH Linux-syscall-note) OR BSD-3-Clause) */
/*
 * virtio-accel wire ABI: crypto (AES-GCM), compression (deflate, LZ4) and IPsec ESP offload.
 *
 * This header is the single source of truth for the device <-> driver ABI; the device mirrors
 * it in devices/src/virtio/accel/protocol.rs and a test compares sizes and offsets with gcc.
 * The normative description is docs/virtio-accel.md. All fields are little-endian; every
 * structure has a fixed size and no implicit padding.
 */
#ifndef _UAPI_LINUX_VIRTIO_ACCEL_H
#define _UAPI_LINUX_VIRTIO_ACCEL_H

#include <linux/types.h>

/* Experimental device ID: "use 65535 and work backwards" (virtio 1.2 section 5). */
#define VIRTIO_ID_ACCEL 0xFFFF

/* Feature bits (device-specific bits 0..23). */
#define VIRTIO_ACCEL_F_CRYPTO		0	/* AEAD crypto service and its data queues */
#define VIRTIO_ACCEL_F_COMPRESSION	1	/* compression service and its data queues */
#define VIRTIO_ACCEL_F_IPSEC		2	/* ESP encapsulation service and its data queues */
#define VIRTIO_ACCEL_F_STATELESS	3	/* crypto requests may carry their key */

/* Service bits in virtio_accel_config.services (same numbering as the feature bits). */
#define VIRTIO_ACCEL_SERVICE_CRYPTO	(1u << 0)
#define VIRTIO_ACCEL_SERVICE_COMPRESSION (1u << 1)
#define VIRTIO_ACCEL_SERVICE_IPSEC	(1u << 2)

/* Crypto algorithms (bit n of crypto_algos means algorithm n is offered). */
#define VIRTIO_ACCEL_CRYPTO_AES_GCM	1	/* key 16 or 32 bytes, IV 12 bytes */
/* Compression algorithms (bit n of comp_algos). */
#define VIRTIO_ACCEL_COMP_DEFLATE	1	/* raw deflate (RFC 1951), window <= 2 KiB */
#define VIRTIO_ACCEL_COMP_LZ4		2	/* LZ4 block format, no frame, no size prefix */
/* IPsec transforms (bit n of ipsec_algos). */
#define VIRTIO_ACCEL_IPSEC_ESP_AES_GCM	1	/* RFC 4303 ESP with RFC 4106 AES-GCM */

/* Device configuration layout (read-only for the driver). */
struct virtio_accel_config {
	__le32 services;		/* 0: VIRTIO_ACCEL_SERVICE_* offered */
	__le32 crypto_algos;		/* 4: bitmap of VIRTIO_ACCEL_CRYPTO_* */
	__le32 comp_algos;		/* 8: bitmap of VIRTIO_ACCEL_COMP_* */
	__le32 ipsec_algos;		/* 12: bitmap of VIRTIO_ACCEL_IPSEC_* */
	__le16 crypto_queues;		/* 16: number of crypto data queues */
	__le16 comp_queues;		/* 18: number of compression data queues */
	__le16 ipsec_queues;		/* 20: number of IPsec data queues */
	__le16 reserved0;		/* 22 */
	__le32 max_sessions;		/* 24: crypto sessions per device */
	__le32 max_sas;			/* 28: security associations per device */
	__le32 max_data_size;		/* 32: max aad_len + src_len, and max output, per request */
	__le32 max_key_len;		/* 36: longest crypto key in bytes */
};					/* 40 bytes */

/*
 * Queues: index 0 is the control queue; then crypto_queues crypto data queues, then
 * comp_queues compression data queues, then ipsec_queues IPsec data queues:
 *   crypto i (0-based)      -> 1 + i
 *   compression i           -> 1 + crypto_queues + i
 *   ipsec i                 -> 1 + crypto_queues + comp_queues + i
 */
#define VIRTIO_ACCEL_CTRL_QUEUE		0

/* Status codes (trailer of every request). */
#define VIRTIO_ACCEL_S_OK		0
#define VIRTIO_ACCEL_S_ERR		1	/* device-internal failure */
#define VIRTIO_ACCEL_S_BADMSG		2	/* malformed request */
#define VIRTIO_ACCEL_S_NOTSUPP		3	/* opcode/algorithm/parameter not offered */
#define VIRTIO_ACCEL_S_NO_SESSION	4	/* unknown session or SA handle */
#define VIRTIO_ACCEL_S_AUTH_FAILED	5	/* tag/ICV mismatch; no output released */
#define VIRTIO_ACCEL_S_OUTPUT_TOO_SMALL	6	/* len in the trailer = bytes needed, 0 if unknown */
#define VIRTIO_ACCEL_S_BUSY		7	/* quota exceeded; retry later */
#define VIRTIO_ACCEL_S_REPLAY		8	/* ESP sequence number replayed or too old */
#define VIRTIO_ACCEL_S_NOSPC		9	/* session or SA table full */
#define VIRTIO_ACCEL_S_DATA_ERROR	10	/* input data invalid (corrupt stream, bad ESP) */
#define VIRTIO_ACCEL_S_SA_EXPIRED	11	/* outbound SA out of sequence numbers: replace it */

/* ---- control queue ---- */
#define VIRTIO_ACCEL_CTRL_CREATE_SESSION	0x01
#define VIRTIO_ACCEL_CTRL_DESTROY_SESSION	0x02
#define VIRTIO_ACCEL_CTRL_ADD_SA		0x10
#define VIRTIO_ACCEL_CTRL_REMOVE_SA		0x11
#define VIRTIO_ACCEL_CTRL_QUERY_SA		0x12

/* Every control request starts with this header (device-readable). */
struct virtio_accel_ctrl_hdr {
	__le32 opcode;			/* 0 */
	__le32 reserved;		/* 4: MUST be 0 */
};					/* 8 bytes */

/* A crypto key: CREATE_SESSION body, and the key block of a stateless crypto request. */
#define VIRTIO_ACCEL_MAX_KEY_LEN 32
struct virtio_accel_crypto_key {
	__le32 algo;			/* 0: VIRTIO_ACCEL_CRYPTO_* */
	__le32 key_len;			/* 4: 16 or 32 for AES-GCM */
	__u8 key[VIRTIO_ACCEL_MAX_KEY_LEN];	/* 8: first key_len bytes used, rest MUST be 0 */
};					/* 40 bytes */

/* DESTROY_SESSION, REMOVE_SA and QUERY_SA body. */
struct virtio_accel_ctrl_handle {
	__le64 handle;			/* 0 */
};					/* 8 bytes */

#define VIRTIO_ACCEL_SA_DIR_OUTBOUND	0
#define VIRTIO_ACCEL_SA_DIR_INBOUND	1
#define VIRTIO_ACCEL_SA_MODE_TUNNEL	0
#define VIRTIO_ACCEL_SA_MODE_TRANSPORT	1
#define VIRTIO_ACCEL_SA_FAMILY_IPV4	4
#define VIRTIO_ACCEL_SA_FAMILY_IPV6	6

/* ADD_SA body. */
struct virtio_accel_sa_para {
	__le32 spi;			/* 0: SPI as a number (sent big-endian on the wire) */
	__le32 algo;			/* 4: VIRTIO_ACCEL_IPSEC_ESP_AES_GCM */
	__u8 direction;			/* 8: VIRTIO_ACCEL_SA_DIR_* */
	__u8 mode;			/* 9: VIRTIO_ACCEL_SA_MODE_* */
	__u8 family;			/* 10: VIRTIO_ACCEL_SA_FAMILY_*: outer family in tunnel mode */
	__u8 icv_len;			/* 11: 8, 12 or 16 */
	__le32 key_len;			/* 12: AES key bytes, 16 or 32 (salt not included) */
	__u8 salt[4];			/* 16: RFC 4106 salt */
	__le32 replay_window;		/* 20: inbound anti-replay window, 32..4096 packets */
	__u8 tunnel_src[16];		/* 24: outer source (IPv4 in the first 4 bytes) */
	__u8 tunnel_dst[16];		/* 40: outer destination */
	__u8 key[VIRTIO_ACCEL_MAX_KEY_LEN];	/* 56 */
};					/* 88 bytes */

/* QUERY_SA output (device-writable, before the trailer). */
struct virtio_accel_sa_stats {
	__le64 packets;			/* 0: packets processed successfully */
	__le64 bytes;			/* 8: payload bytes processed successfully */
	__le64 auth_failures;		/* 16 */
	__le64 replay_drops;		/* 24 */
	__le64 malformed;		/* 32 */
	__le64 last_seq;		/* 40: outbound: last sequence sent; inbound: highest seen */
};					/* 48 bytes */

/* Control trailer: the last 16 device-writable bytes of every control request. */
struct virtio_accel_ctrl_resp {
	__le64 handle;			/* 0: new session/SA handle on CREATE_SESSION/ADD_SA */
	__le32 status;			/* 8: VIRTIO_ACCEL_S_* */
	__le32 reserved;		/* 12 */
};					/* 16 bytes */

/* ---- data queues ---- */
#define VIRTIO_ACCEL_OP_ENCRYPT		0x100	/* crypto queues */
#define VIRTIO_ACCEL_OP_DECRYPT		0x101
#define VIRTIO_ACCEL_OP_COMPRESS	0x200	/* compression queues */
#define VIRTIO_ACCEL_OP_DECOMPRESS	0x201
#define VIRTIO_ACCEL_OP_ESP_ENCAP	0x300	/* IPsec queues */
#define VIRTIO_ACCEL_OP_ESP_DECAP	0x301

/* Request flags. */
#define VIRTIO_ACCEL_REQ_F_STATELESS	(1u << 0)	/* a virtio_accel_crypto_key follows the header */

#define VIRTIO_ACCEL_IV_LEN 12

/*
 * Every data request: device-readable header [+ key block] + aad + src, then device-writable
 * dst + trailer.
 */
struct virtio_accel_data_hdr {
	__le32 opcode;			/* 0: VIRTIO_ACCEL_OP_* */
	__le32 flags;			/* 4: VIRTIO_ACCEL_REQ_F_* */
	__le64 handle;			/* 8: session (crypto) or SA (IPsec); 0 otherwise */
	__le32 algo;			/* 16: compression algorithm; 0 for crypto and IPsec */
	__le32 src_len;			/* 20: source bytes after the aad */
	__le32 aad_len;			/* 24: crypto: associated data bytes; else 0 */
	__le32 tag_len;			/* 28: crypto: 4, 8, 12..16; else 0 */
	__le32 iv_len;			/* 32: crypto: 12; else 0 */
	__le32 level;			/* 36: compression level, 0 = algorithm default */
	__le32 reserved[2];		/* 40: MUST be 0 */
	__u8 iv[16];			/* 48: first iv_len bytes used */
};					/* 64 bytes */

/* Data trailer: the last 8 device-writable bytes of every data request. */
struct virtio_accel_data_resp {
	__le32 status;			/* 0: VIRTIO_ACCEL_S_* */
	__le32 len;			/* 4: bytes written to dst (or needed, see OUTPUT_TOO_SMALL) */
};					/* 8 bytes */

#endif /* _UAPI_LINUX_VIRTIO_ACCEL_H */
