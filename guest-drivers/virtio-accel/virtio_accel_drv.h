/* SPDX-License-Identifier: GPL-2.0 */
/*
 * virtio-accel guest driver: shared definitions of the core (queues, requests, devices), the
 * crypto API algorithms, the character device and the statistics.
 */
#ifndef _VIRTIO_ACCEL_DRV_H
#define _VIRTIO_ACCEL_DRV_H

#include <linux/atomic.h>
#include <linux/interrupt.h>
#include <linux/kref.h>
#include <linux/list.h>
#include <linux/miscdevice.h>
#include <linux/mutex.h>
#include <linux/scatterlist.h>
#include <linux/spinlock.h>
#include <linux/virtio.h>
#include <uapi/linux/virtio_accel.h>
#include <uapi/linux/virtio_accel_ioctl.h>

#define VA_NAME "virtio_accel"
/* Above AES-NI (rfc4106-gcm-aesni and generic-gcm-aesni are 400) so xfrm and AF_ALG pick us. */
#define VA_AEAD_PRIORITY 500
/* Above the software deflate/lz4 (scomp, priority 0). */
#define VA_COMP_PRIORITY 300
/* Requests accepted beyond the ring per queue before -ENOSPC / backlog. */
#define VA_MAX_PENDING 512
/* Scatterlist entries a request carries inline before allocating. */
#define VA_INLINE_SG 8
/* Longest a control request may take before the driver gives up waiting (device is wedged). */
#define VA_CTRL_TIMEOUT (10 * HZ)

struct va_dev;
struct va_queue;

/*
 * One request on a virtqueue. Embedded in a crypto request context, a control message or a
 * char-device operation. @done runs exactly once: in softirq context (tasklet) when the device
 * returns the buffer, or with -ENODEV when the device goes away.
 */
struct va_req {
	struct list_head node;		/* on va_queue.pending while waiting for ring space */
	struct list_head pnode;		/* backlog notification list */
	struct scatterlist *sgs[4];
	unsigned int n_out, n_in;
	bool backlogged;
	unsigned int used_len;		/* from the used ring; 0 = the device wrote no trailer */
	void (*done)(struct va_req *req, int err);
	/* A backlogged request (-EBUSY) was accepted into the ring: report -EINPROGRESS. */
	void (*progress)(struct va_req *req);
};

struct va_queue {
	struct virtqueue *vq;
	struct va_dev *dev;
	spinlock_t lock;		/* ring, pending list, dead flag */
	struct list_head pending;
	unsigned int npending;
	bool dead;
	struct tasklet_struct tasklet;
	char name[24];
};

struct va_stats {
	atomic64_t ops[VIRTIO_ACCEL_STAT_NR];
	atomic64_t errors[VIRTIO_ACCEL_STAT_NR];
	atomic64_t bytes_in[VIRTIO_ACCEL_STAT_NR];
	atomic64_t bytes_out[VIRTIO_ACCEL_STAT_NR];
	atomic64_t api_ops;
	atomic64_t chardev_ops;
	atomic64_t auth_failures;
	atomic64_t backlogged;
	atomic64_t rejected_busy;
	atomic64_t ctrl_ops;
	atomic64_t sessions_live;
	atomic64_t sas_live;
};

/* The device configuration, CPU-endian. */
struct va_cfg {
	u32 services, crypto_algos, comp_algos, ipsec_algos;
	u16 crypto_queues, comp_queues, ipsec_queues;
	u32 max_sessions, max_sas, max_data_size, max_key_len;
};

struct va_dev {
	struct kref ref;		/* device list, tfms and open files hold references */
	struct list_head list;		/* on va_devices */
	struct virtio_device *vdev;	/* NULL once removed */
	bool dead;			/* set (under every queue lock) before reset on removal */
	int index;
	struct va_cfg cfg;
	u64 features;
	struct va_queue *queues;	/* all queues; queues[0] is the control queue */
	unsigned int nqueues;
	struct va_queue *crypto_q, *comp_q, *ipsec_q;	/* first data queue of each service */
	unsigned int ncrypto, ncomp, nipsec;
	struct va_stats stats;
	struct miscdevice misc;
	char misc_name[32];
	bool misc_registered;
};

/* core */
struct va_dev *va_dev_get_any(void);
void va_dev_put(struct va_dev *dev);
bool va_dev_has(struct va_dev *dev, unsigned int service);
struct va_queue *va_pick_queue(struct va_dev *dev, unsigned int service);
int va_queue_submit(struct va_queue *q, struct va_req *req, bool may_backlog);
int va_status_errno(u32 status);
int va_sg_append(struct scatterlist *tbl, unsigned int *n, unsigned int max,
		 struct scatterlist *sg, unsigned int skip, unsigned int len);
int va_sg_count(struct scatterlist *sg, unsigned int skip, unsigned int len);
int va_sg_from_buf(struct scatterlist *tbl, unsigned int *n, unsigned int max,
		   void *buf, unsigned int len);
void va_sg_end(struct scatterlist *tbl, unsigned int n);

/* control queue */
int va_ctrl_exec(struct va_dev *dev, u32 opcode, const void *body, size_t body_len,
		 void *out, size_t out_len, u64 *handle, u32 *status, bool interruptible);
int va_session_create(struct va_dev *dev, const u8 *key, unsigned int key_len, u64 *handle,
		      bool interruptible);
void va_session_destroy(struct va_dev *dev, u64 handle);

/* crypto API algorithms */
int va_aead_register(struct va_dev *dev);
void va_aead_unregister(void);
int va_comp_register(struct va_dev *dev);
void va_comp_unregister(void);
extern bool va_corrupt_encrypt;
extern bool va_foreign_handles;

/* character device */
int va_chardev_register(struct va_dev *dev);
void va_chardev_unregister(struct va_dev *dev);

/* statistics */
void va_stats_account(struct va_dev *dev, unsigned int op, u32 status, u64 in, u64 out);
void va_stats_read(struct va_dev *dev, struct virtio_accel_ioc_stats *out);
extern const struct attribute_group *va_stats_groups[];

#endif /* _VIRTIO_ACCEL_DRV_H */
