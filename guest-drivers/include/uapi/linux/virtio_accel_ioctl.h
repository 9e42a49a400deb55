/* SPDX-License-Identifier: ((GPL-2.0 WITH Linux-syscall-note) OR BSD-3-Clause) */
/*
 * virtio-accel character device (/dev/virtio-accel<N>) ioctl ABI.
 *
 * User space reaches the device's services directly through this interface: device information,
 * crypto sessions, batched crypto / compression / ESP operations, IPsec security associations and
 * statistics. Pointers are passed as __u64 so that the layout is the same for 32- and 64-bit
 * callers; every structure has a fixed size and no implicit padding. Described in
 * docs/virtio-accel-chardev.md. Status codes are the device's VIRTIO_ACCEL_S_* (virtio_accel.h).
 */
#ifndef _UAPI_LINUX_VIRTIO_ACCEL_IOCTL_H
#define _UAPI_LINUX_VIRTIO_ACCEL_IOCTL_H

#include <linux/ioctl.h>
#include <linux/types.h>

#define VIRTIO_ACCEL_IOC_MAGIC 0xAC
#define VIRTIO_ACCEL_IOC_VERSION 1

/* Most operations one VIRTIO_ACCEL_IOC_BATCH call may carry. */
#define VIRTIO_ACCEL_IOC_MAX_BATCH 256

/*
 * The buffer area: mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0) with len up to
 * this gives the open file one zeroed area (its size is fixed by the first mmap). Ops flagged
 * VIRTIO_ACCEL_IOC_OP_F_MAPPED name byte offsets in it, and the device reads and writes it
 * directly: no copies (see docs/virtio-accel-chardev.md).
 */
#define VIRTIO_ACCEL_IOC_AREA_MAX (64u << 20)

/* VIRTIO_ACCEL_IOC_INFO: what the device offers (from its configuration space). */
struct virtio_accel_ioc_info {
	__u32 version;		/* VIRTIO_ACCEL_IOC_VERSION */
	__u32 services;		/* VIRTIO_ACCEL_SERVICE_* */
	__u32 crypto_algos;
	__u32 comp_algos;
	__u32 ipsec_algos;
	__u16 crypto_queues;
	__u16 comp_queues;
	__u16 ipsec_queues;
	__u16 index;		/* N of /dev/virtio-accel<N> */
	__u32 max_sessions;
	__u32 max_sas;
	__u32 max_data_size;	/* max aad + src bytes per operation */
	__u32 max_key_len;
	__u32 reserved;
	__u64 features;		/* negotiated virtio feature bits */
};				/* 56 bytes */

/* VIRTIO_ACCEL_IOC_SESSION_CREATE: a crypto session owned by the open file. */
struct virtio_accel_ioc_session {
	__u32 algo;		/* in: VIRTIO_ACCEL_CRYPTO_AES_GCM */
	__u32 key_len;		/* in: 16, 24 or 32 */
	__u64 key;		/* in: user pointer to key_len bytes */
	__u64 handle;		/* out (create) / in (destroy) */
};				/* 24 bytes */

/* VIRTIO_ACCEL_IOC_SA_ADD: an IPsec SA owned by the open file. */
struct virtio_accel_ioc_sa {
	__u32 spi;
	__u32 algo;		/* VIRTIO_ACCEL_IPSEC_ESP_AES_GCM */
	__u8 direction;		/* VIRTIO_ACCEL_SA_DIR_* */
	__u8 mode;		/* VIRTIO_ACCEL_SA_MODE_* */
	__u8 family;		/* VIRTIO_ACCEL_SA_FAMILY_* */
	__u8 icv_len;		/* 8, 12 or 16 */
	__u32 key_len;		/* 16 or 32 (salt not included) */
	__u8 salt[4];
	__u32 replay_window;
	__u8 tunnel_src[16];
	__u8 tunnel_dst[16];
	__u8 key[32];
	__u64 handle;		/* out */
};				/* 96 bytes */

/* VIRTIO_ACCEL_IOC_SA_REMOVE / SESSION_DESTROY (handle only) and SA_QUERY (handle + stats). */
struct virtio_accel_ioc_sa_query {
	__u64 handle;		/* in */
	__u64 packets;		/* out: the device's per-SA counters */
	__u64 bytes;
	__u64 auth_failures;
	__u64 replay_drops;
	__u64 malformed;
	__u64 last_seq;
};				/* 56 bytes */

/* One operation of a batch. */
struct virtio_accel_ioc_op {
	__u32 opcode;		/* in: VIRTIO_ACCEL_OP_* */
	__u32 flags;		/* in: VIRTIO_ACCEL_IOC_OP_F_* */
	__u64 handle;		/* in: session (crypto) or SA (ESP); 0 for compression */
	__u32 algo;		/* in: compression: VIRTIO_ACCEL_COMP_* */
	__u32 level;		/* in: compression level, 0 = default */
	__u32 tag_len;		/* in: crypto: 4, 8, 12..16 */
	__u32 aad_len;		/* in: crypto: associated data bytes */
	__u64 aad;		/* in: user pointer (area offset if F_MAPPED) */
	__u64 src;		/* in: user pointer (area offset if F_MAPPED) */
	__u64 dst;		/* in: user pointer (area offset if F_MAPPED) */
	__u32 src_len;		/* in */
	__u32 dst_len;		/* in: capacity of dst; out: bytes written (or needed) */
	__u8 iv[16];		/* in: crypto: first 12 bytes */
	__u32 status;		/* out: VIRTIO_ACCEL_S_*, or VIRTIO_ACCEL_IOC_S_* below */
	__s32 error;		/* out: 0 or a negative errno (what the kernel API would return) */
};				/* 88 bytes */

/* aad, src and dst are byte offsets in the file's mmap()ed area, not user pointers. */
#define VIRTIO_ACCEL_IOC_OP_F_MAPPED	(1u << 0)

/* Driver-side status values (never sent by the device). */
#define VIRTIO_ACCEL_IOC_S_NOT_RUN	0xffffffffu	/* batch aborted before this op ran */

/* VIRTIO_ACCEL_IOC_BATCH: runs count ops concurrently over the data queues, waits for all. */
struct virtio_accel_ioc_batch {
	__u32 count;		/* in: 1..VIRTIO_ACCEL_IOC_MAX_BATCH */
	__u32 completed_ok;	/* out: ops with status VIRTIO_ACCEL_S_OK */
	__u64 ops;		/* in: user pointer to count struct virtio_accel_ioc_op */
};				/* 16 bytes */

/* Operation classes of the statistics arrays. */
#define VIRTIO_ACCEL_STAT_ENCRYPT	0
#define VIRTIO_ACCEL_STAT_DECRYPT	1
#define VIRTIO_ACCEL_STAT_COMPRESS	2
#define VIRTIO_ACCEL_STAT_DECOMPRESS	3
#define VIRTIO_ACCEL_STAT_ESP_ENCAP	4
#define VIRTIO_ACCEL_STAT_ESP_DECAP	5
#define VIRTIO_ACCEL_STAT_NR		6

/* VIRTIO_ACCEL_IOC_STATS: the driver's counters for this device since probe. */
struct virtio_accel_ioc_stats {
	__u64 ops[VIRTIO_ACCEL_STAT_NR];	/* completed with VIRTIO_ACCEL_S_OK */
	__u64 errors[VIRTIO_ACCEL_STAT_NR];	/* completed with another status */
	__u64 bytes_in[VIRTIO_ACCEL_STAT_NR];	/* aad + src bytes of OK ops */
	__u64 bytes_out[VIRTIO_ACCEL_STAT_NR];	/* bytes the device wrote for OK ops */
	__u64 api_ops;		/* submitted by the kernel crypto API */
	__u64 chardev_ops;	/* submitted through this character device */
	__u64 auth_failures;	/* VIRTIO_ACCEL_S_AUTH_FAILED */
	__u64 backlogged;	/* requests queued with -EBUSY (CRYPTO_TFM_REQ_MAY_BACKLOG) */
	__u64 rejected_busy;	/* requests refused with -ENOSPC (queue full, no backlog) */
	__u64 ctrl_ops;		/* control-queue requests */
	__u64 sessions_live;
	__u64 sas_live;
	__u64 reserved[4];
};				/* 288 bytes */

/*
 * VIRTIO_ACCEL_IOC_KCOMP: (de)compression through the in-kernel crypto API (acomp), by algorithm
 * name ("deflate": the highest priority implementation) or driver name ("deflate-scomp": the
 * kernel's software one). Runs the same operation @iterations times on one tfm (for benchmarks).
 */
struct virtio_accel_ioc_kcomp {
	char alg[64];		/* in: algorithm or driver name */
	__u32 decompress;	/* in: 0 compress, 1 decompress */
	__u32 src_len;		/* in */
	__u64 src;		/* in: user pointer */
	__u64 dst;		/* in: user pointer */
	__u32 dst_len;		/* in: capacity; out: bytes produced */
	__s32 error;		/* out: what crypto_acomp_(de)compress returned */
	__u32 iterations;	/* in: 0 or 1 = once */
	__u32 reserved;
	__u64 elapsed_ns;	/* out: time for all iterations */
	char driver[64];	/* out: cra_driver_name of the implementation used */
};				/* 176 bytes */

#define VIRTIO_ACCEL_IOC_INFO		_IOR(VIRTIO_ACCEL_IOC_MAGIC, 0x00, struct virtio_accel_ioc_info)
#define VIRTIO_ACCEL_IOC_SESSION_CREATE	_IOWR(VIRTIO_ACCEL_IOC_MAGIC, 0x01, struct virtio_accel_ioc_session)
#define VIRTIO_ACCEL_IOC_SESSION_DESTROY _IOW(VIRTIO_ACCEL_IOC_MAGIC, 0x02, struct virtio_accel_ioc_session)
#define VIRTIO_ACCEL_IOC_BATCH		_IOWR(VIRTIO_ACCEL_IOC_MAGIC, 0x03, struct virtio_accel_ioc_batch)
#define VIRTIO_ACCEL_IOC_SA_ADD		_IOWR(VIRTIO_ACCEL_IOC_MAGIC, 0x10, struct virtio_accel_ioc_sa)
#define VIRTIO_ACCEL_IOC_SA_REMOVE	_IOW(VIRTIO_ACCEL_IOC_MAGIC, 0x11, struct virtio_accel_ioc_sa_query)
#define VIRTIO_ACCEL_IOC_SA_QUERY	_IOWR(VIRTIO_ACCEL_IOC_MAGIC, 0x12, struct virtio_accel_ioc_sa_query)
#define VIRTIO_ACCEL_IOC_STATS		_IOR(VIRTIO_ACCEL_IOC_MAGIC, 0x20, struct virtio_accel_ioc_stats)
#define VIRTIO_ACCEL_IOC_KCOMP		_IOWR(VIRTIO_ACCEL_IOC_MAGIC, 0x30, struct virtio_accel_ioc_kcomp)

#endif /* _UAPI_LINUX_VIRTIO_ACCEL_IOCTL_H */
