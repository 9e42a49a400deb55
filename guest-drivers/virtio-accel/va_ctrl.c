// SPDX-License-Identifier: GPL-2.0
/*
 * virtio-accel control queue: sessions and security associations. A control message is
 * reference counted between the waiter and the completion, so a waiter interrupted by a signal
 * (or a timeout) can leave while the device still owns the buffers; a session the device
 * created for a waiter that left is destroyed again, fire and forget.
 */
#include <linux/completion.h>
#include <linux/refcount.h>
#include <linux/slab.h>
#include <linux/string.h>
#include "virtio_accel_drv.h"

#define VA_CTRL_MAX_BODY sizeof(struct virtio_accel_sa_para)
#define VA_CTRL_MAX_OUT sizeof(struct virtio_accel_sa_stats)

enum { VA_CTRL_WAITING, VA_CTRL_COMPLETED, VA_CTRL_ABANDONED };

struct va_ctrl {
	struct va_req vreq;
	struct va_dev *dev;
	refcount_t ref;
	struct completion done;
	int err;
	atomic_t state;		/* VA_CTRL_WAITING -> COMPLETED or ABANDONED, exactly once */
	struct virtio_accel_ctrl_hdr hdr;
	u8 body[VA_CTRL_MAX_BODY];
	u8 out[VA_CTRL_MAX_OUT];
	struct virtio_accel_ctrl_resp resp;
	struct scatterlist sg_out[2], sg_in[2];
	size_t body_len, out_len;
};

static void va_ctrl_free(struct va_ctrl *c)
{
	/* The body may hold key material. */
	memzero_explicit(c->body, sizeof(c->body));
	va_dev_put(c->dev);
	kfree(c);
}

static void va_ctrl_put(struct va_ctrl *c)
{
	if (refcount_dec_and_test(&c->ref))
		va_ctrl_free(c);
}

static struct va_ctrl *va_ctrl_alloc(struct va_dev *dev, u32 opcode, const void *body,
				     size_t body_len, size_t out_len, gfp_t gfp);
static int va_ctrl_submit(struct va_ctrl *c);

static void va_ctrl_done(struct va_req *req, int err)
{
	struct va_ctrl *c = container_of(req, struct va_ctrl, vreq);
	u32 opcode = le32_to_cpu(c->hdr.opcode);

	c->err = err;
	atomic64_inc(&c->dev->stats.ctrl_ops);
	if (atomic_cmpxchg(&c->state, VA_CTRL_WAITING, VA_CTRL_COMPLETED) == VA_CTRL_ABANDONED &&
	    !err && opcode == VIRTIO_ACCEL_CTRL_CREATE_SESSION &&
	    le32_to_cpu(c->resp.status) == VIRTIO_ACCEL_S_OK) {
		/* Nobody will ever destroy this session: do it now (atomic context is fine). */
		struct virtio_accel_ctrl_handle h = { .handle = c->resp.handle };
		struct va_ctrl *d = va_ctrl_alloc(c->dev, VIRTIO_ACCEL_CTRL_DESTROY_SESSION, &h,
						  sizeof(h), 0, GFP_ATOMIC);

		if (d) {
			refcount_set(&d->ref, 1);
			if (va_ctrl_submit(d))
				va_ctrl_put(d);
		}
	}
	complete(&c->done);
	va_ctrl_put(c);
}

static struct va_ctrl *va_ctrl_alloc(struct va_dev *dev, u32 opcode, const void *body,
				     size_t body_len, size_t out_len, gfp_t gfp)
{
	struct va_ctrl *c;

	if (body_len > VA_CTRL_MAX_BODY || out_len > VA_CTRL_MAX_OUT)
		return NULL;
	c = kzalloc(sizeof(*c), gfp);
	if (!c)
		return NULL;
	kref_get(&dev->ref);
	c->dev = dev;
	refcount_set(&c->ref, 2);	/* waiter + completion */
	init_completion(&c->done);
	c->hdr.opcode = cpu_to_le32(opcode);
	memcpy(c->body, body, body_len);
	c->body_len = body_len;
	c->out_len = out_len;

	sg_init_table(c->sg_out, 2);
	sg_set_buf(&c->sg_out[0], &c->hdr, sizeof(c->hdr));
	sg_set_buf(&c->sg_out[1], c->body, body_len);
	sg_init_table(c->sg_in, 2);
	if (out_len) {
		sg_set_buf(&c->sg_in[0], c->out, out_len);
		sg_set_buf(&c->sg_in[1], &c->resp, sizeof(c->resp));
		c->vreq.sgs[1] = c->sg_in;
	} else {
		sg_init_one(&c->sg_in[0], &c->resp, sizeof(c->resp));
		c->vreq.sgs[1] = c->sg_in;
	}
	c->vreq.sgs[0] = c->sg_out;
	c->vreq.n_out = 1;
	c->vreq.n_in = 1;
	c->vreq.done = va_ctrl_done;
	return c;
}

static int va_ctrl_submit(struct va_ctrl *c)
{
	int ret = va_queue_submit(&c->dev->queues[VIRTIO_ACCEL_CTRL_QUEUE], &c->vreq, false);

	return ret == -EINPROGRESS ? 0 : ret;
}

/*
 * Runs one control request and waits for it. @status receives the device status (the return
 * value is its errno, or a driver error). @interruptible: a signal ends the wait with -EINTR
 * (user callers); kernel callers wait uninterruptibly but never longer than VA_CTRL_TIMEOUT.
 */
int va_ctrl_exec(struct va_dev *dev, u32 opcode, const void *body, size_t body_len,
		 void *out, size_t out_len, u64 *handle, u32 *status, bool interruptible)
{
	struct va_ctrl *c;
	long left;
	u32 st;
	int err;

	if (READ_ONCE(dev->dead))
		return -ENODEV;
	c = va_ctrl_alloc(dev, opcode, body, body_len, out_len, GFP_KERNEL);
	if (!c)
		return -ENOMEM;
	err = va_ctrl_submit(c);
	if (err) {
		/* Never queued: both references are ours. */
		refcount_set(&c->ref, 1);
		va_ctrl_put(c);
		return err;
	}
	if (interruptible)
		left = wait_for_completion_interruptible_timeout(&c->done, VA_CTRL_TIMEOUT);
	else
		left = wait_for_completion_timeout(&c->done, VA_CTRL_TIMEOUT);
	if (left <= 0) {
		if (atomic_cmpxchg(&c->state, VA_CTRL_WAITING, VA_CTRL_ABANDONED) ==
		    VA_CTRL_WAITING) {
			/* The completion now owns the message (and undoes a session it creates). */
			va_ctrl_put(c);
			return left ? -EINTR : -ETIMEDOUT;
		}
		/* It completed while the wait ended: complete() follows at once. */
		wait_for_completion(&c->done);
	}
	err = c->err;
	st = le32_to_cpu(c->resp.status);
	if (!err) {
		if (status)
			*status = st;
		err = va_status_errno(st);
	}
	if (!err) {
		if (handle)
			*handle = le64_to_cpu(c->resp.handle);
		if (out)
			memcpy(out, c->out, out_len);
	}
	va_ctrl_put(c);
	return err;
}

int va_session_create(struct va_dev *dev, const u8 *key, unsigned int key_len, u64 *handle,
		      bool interruptible)
{
	struct virtio_accel_crypto_key k = {};
	int err;

	if (key_len > VIRTIO_ACCEL_MAX_KEY_LEN)
		return -EINVAL;
	k.algo = cpu_to_le32(VIRTIO_ACCEL_CRYPTO_AES_GCM);
	k.key_len = cpu_to_le32(key_len);
	memcpy(k.key, key, key_len);
	err = va_ctrl_exec(dev, VIRTIO_ACCEL_CTRL_CREATE_SESSION, &k, sizeof(k), NULL, 0, handle,
			   NULL, interruptible);
	memzero_explicit(&k, sizeof(k));
	if (!err)
		atomic64_inc(&dev->stats.sessions_live);
	return err;
}

/* Best effort: after a device reset the session is gone anyway. */
void va_session_destroy(struct va_dev *dev, u64 handle)
{
	struct virtio_accel_ctrl_handle h = { .handle = cpu_to_le64(handle) };

	if (!va_ctrl_exec(dev, VIRTIO_ACCEL_CTRL_DESTROY_SESSION, &h, sizeof(h), NULL, 0, NULL,
			  NULL, false))
		atomic64_dec(&dev->stats.sessions_live);
}
