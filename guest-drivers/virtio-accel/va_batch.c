// SPDX-License-Identifier: GPL-2.0
/*
 * virtio-accel character device: batched data operations (crypto, compression, ESP).
 * User buffers are copied into kernel bounce buffers, or (VIRTIO_ACCEL_IOC_OP_F_MAPPED) the
 * device works on the file's mmap()ed area directly. Both belong to a reference-counted batch:
 * a caller interrupted by a signal returns at once while the device may still be writing; the
 * last completion frees the buffers and drops the area.
 */
#include <linux/mm.h>
#include <linux/overflow.h>
#include <linux/slab.h>
#include <linux/uaccess.h>
#include <linux/wait.h>
#include "virtio_accel_drv.h"
#include "va_chardev.h"

#define VA_BATCH_SLACK 1024	/* output beyond max_data_size: tags, ESP headers, padding */

struct va_cop {
	struct va_req vreq;
	struct va_batch *b;
	void *in;		/* data header + aad + src */
	void *out;		/* dst + trailer (bounced ops only) */
	struct virtio_accel_data_resp *resp;	/* the device's trailer */
	unsigned int in_len, out_cap, data_in;
	bool mapped;		/* buffers in the file's area: nothing to copy back */
	unsigned int stat_op;
	struct scatterlist *tbl;
	u32 status, len;
	int error;
};

struct va_batch {
	struct kref ref;	/* the caller + one per op the device owns */
	atomic_t remaining;
	wait_queue_head_t wq;
	struct va_dev *dev;
	struct va_area *area;	/* the file's mmap()ed area, if it has one */
	unsigned int count;
	struct va_cop ops[];
};

static void va_batch_release(struct kref *ref)
{
	struct va_batch *b = container_of(ref, struct va_batch, ref);
	unsigned int i;

	for (i = 0; i < b->count; i++) {
		kvfree(b->ops[i].in);
		kvfree(b->ops[i].out);
		kfree(b->ops[i].tbl);
	}
	va_area_put(b->area);
	va_dev_put(b->dev);
	kvfree(b);
}

static void va_cop_done(struct va_req *vreq, int err)
{
	struct va_cop *op = container_of(vreq, struct va_cop, vreq);
	struct va_batch *b = op->b;
	struct virtio_accel_data_resp *resp = op->resp;

	if (err) {
		op->status = VIRTIO_ACCEL_S_ERR;
		op->error = err;
	} else {
		op->status = le32_to_cpu(resp->status);
		op->len = le32_to_cpu(resp->len);
		op->error = va_status_errno(op->status);
		if (op->status == VIRTIO_ACCEL_S_OK && op->len > op->out_cap) {
			op->status = VIRTIO_ACCEL_S_ERR;
			op->error = -EIO;
		}
	}
	va_stats_account(b->dev, op->stat_op, op->status, op->data_in,
			 op->status == VIRTIO_ACCEL_S_OK ? op->len : 0);
	if (atomic_dec_and_test(&b->remaining))
		wake_up(&b->wq);
	kref_put(&b->ref, va_batch_release);
}

static void va_cop_progress(struct va_req *vreq)
{
}

/* The device-readable header of one op. */
static void va_cop_hdr(struct virtio_accel_data_hdr *hdr, const struct virtio_accel_ioc_op *u,
		       unsigned int service)
{
	memset(hdr, 0, sizeof(*hdr));
	hdr->opcode = cpu_to_le32(u->opcode);
	hdr->handle = cpu_to_le64(u->handle);
	hdr->src_len = cpu_to_le32(u->src_len);
	if (service == VIRTIO_ACCEL_SERVICE_CRYPTO) {
		hdr->aad_len = cpu_to_le32(u->aad_len);
		hdr->tag_len = cpu_to_le32(u->tag_len);
		hdr->iv_len = cpu_to_le32(VIRTIO_ACCEL_IV_LEN);
		memcpy(hdr->iv, u->iv, VIRTIO_ACCEL_IV_LEN);
	} else if (service == VIRTIO_ACCEL_SERVICE_COMPRESSION) {
		hdr->algo = cpu_to_le32(u->algo);
		hdr->level = cpu_to_le32(u->level);
	}
}

/* Bounces the op's user buffers through kernel memory: header + aad + src in, dst + trailer out. */
static int va_cop_bounce(struct va_cop *op, const struct virtio_accel_ioc_op *u,
			 unsigned int service)
{
	struct virtio_accel_data_hdr *hdr;
	unsigned int n = 0, max;
	int err;

	op->in_len = sizeof(*hdr) + op->data_in;
	op->in = kvmalloc(op->in_len, GFP_KERNEL);
	/*
	 * Not zeroed: only the op->len bytes the device reports go back to user space, and a
	 * device that lied about them could read and write all of guest memory anyway. Zeroing
	 * 64 KiB per request was a visible share of the char device's cost in the nested test
	 * host.
	 */
	op->out = kvmalloc(op->out_cap + sizeof(*op->resp), GFP_KERNEL);
	if (!op->in || !op->out)
		return -ENOMEM;
	op->resp = op->out + op->out_cap;
	hdr = op->in;
	va_cop_hdr(hdr, u, service);
	if (copy_from_user(op->in + sizeof(*hdr), u64_to_user_ptr(u->aad), u->aad_len) ||
	    copy_from_user(op->in + sizeof(*hdr) + u->aad_len, u64_to_user_ptr(u->src),
			   u->src_len))
		return -EFAULT;

	/* kmalloc'd: one entry; vmalloc'd: one per page (+1 for an unaligned start). */
	max = 2 * (op->in_len / PAGE_SIZE + 2) + (op->out_cap + 8) / PAGE_SIZE + 2;
	op->tbl = kmalloc_array(max, sizeof(*op->tbl), GFP_KERNEL);
	if (!op->tbl)
		return -ENOMEM;
	sg_init_table(op->tbl, max);
	err = va_sg_from_buf(op->tbl, &n, max, op->in, op->in_len);
	if (err)
		return err;
	va_sg_end(op->tbl, n);
	op->vreq.sgs[0] = op->tbl;
	op->vreq.sgs[1] = &op->tbl[n];
	err = va_sg_from_buf(op->tbl, &n, max, op->out, op->out_cap + sizeof(*op->resp));
	if (err)
		return err;
	va_sg_end(op->tbl, n);
	return 0;
}

/*
 * Points the device at the op's buffers in the mapped area: header, aad, src readable; dst,
 * then a separate trailer, writable. A src and dst that are each one contiguous run are one
 * descriptor each, which the device serves in place.
 */
static int va_cop_map(struct va_cop *op, const struct virtio_accel_ioc_op *u,
		      unsigned int service, struct va_area *area)
{
	struct virtio_accel_data_hdr *hdr;
	unsigned int n = 0, max;
	int err;

	if (!area)
		return -ENXIO;
	/* Header and trailer share one small buffer: readable and writable parts. */
	op->in = kmalloc(sizeof(*hdr) + sizeof(*op->resp), GFP_KERNEL);
	if (!op->in)
		return -ENOMEM;
	hdr = op->in;
	op->resp = op->in + sizeof(*hdr);
	va_cop_hdr(hdr, u, service);

	max = 1 + va_area_sg_max(u->aad_len) + va_area_sg_max(u->src_len) +
	      va_area_sg_max(op->out_cap) + 1;
	op->tbl = kmalloc_array(max, sizeof(*op->tbl), GFP_KERNEL);
	if (!op->tbl)
		return -ENOMEM;
	sg_init_table(op->tbl, max);
	sg_set_buf(&op->tbl[n++], hdr, sizeof(*hdr));
	err = va_area_sg(area, u->aad, u->aad_len, op->tbl, &n, max);
	if (!err)
		err = va_area_sg(area, u->src, u->src_len, op->tbl, &n, max);
	if (err)
		return err;
	va_sg_end(op->tbl, n);
	op->vreq.sgs[0] = op->tbl;
	op->vreq.sgs[1] = &op->tbl[n];
	err = va_area_sg(area, u->dst, op->out_cap, op->tbl, &n, max);
	if (err)
		return err;
	if (n >= max)
		return -E2BIG;
	sg_set_buf(&op->tbl[n++], op->resp, sizeof(*op->resp));
	va_sg_end(op->tbl, n);
	op->mapped = true;
	return 0;
}

/* Checks one op against the device and the file's handles, sets up its buffers. */
static int va_cop_prepare(struct va_file *f, struct va_cop *op,
			  const struct virtio_accel_ioc_op *u, struct va_area *area,
			  struct va_queue **q)
{
	struct va_dev *dev = f->dev;
	unsigned int service, data;
	int err;

	switch (u->opcode) {
	case VIRTIO_ACCEL_OP_ENCRYPT:
	case VIRTIO_ACCEL_OP_DECRYPT:
		service = VIRTIO_ACCEL_SERVICE_CRYPTO;
		op->stat_op = u->opcode == VIRTIO_ACCEL_OP_ENCRYPT ? VIRTIO_ACCEL_STAT_ENCRYPT :
			      VIRTIO_ACCEL_STAT_DECRYPT;
		/* foreign_handles (test only) lets the device's isolation be tested. */
		if (!va_file_owns(f, u->handle, false) && !va_foreign_handles)
			return -ENOKEY;
		break;
	case VIRTIO_ACCEL_OP_COMPRESS:
	case VIRTIO_ACCEL_OP_DECOMPRESS:
		service = VIRTIO_ACCEL_SERVICE_COMPRESSION;
		op->stat_op = u->opcode == VIRTIO_ACCEL_OP_COMPRESS ? VIRTIO_ACCEL_STAT_COMPRESS :
			      VIRTIO_ACCEL_STAT_DECOMPRESS;
		if (u->handle || u->aad_len || u->tag_len)
			return -EINVAL;
		break;
	case VIRTIO_ACCEL_OP_ESP_ENCAP:
	case VIRTIO_ACCEL_OP_ESP_DECAP:
		service = VIRTIO_ACCEL_SERVICE_IPSEC;
		op->stat_op = u->opcode == VIRTIO_ACCEL_OP_ESP_ENCAP ? VIRTIO_ACCEL_STAT_ESP_ENCAP :
			      VIRTIO_ACCEL_STAT_ESP_DECAP;
		if (!va_file_owns(f, u->handle, true))
			return -ENOKEY;
		if (u->aad_len || u->tag_len || u->algo || u->level)
			return -EINVAL;
		break;
	default:
		return -EOPNOTSUPP;
	}
	if (u->flags & ~VIRTIO_ACCEL_IOC_OP_F_MAPPED)
		return -EINVAL;
	if (!va_dev_has(dev, service))
		return -EOPNOTSUPP;
	if (check_add_overflow(u->aad_len, u->src_len, &data) || data > dev->cfg.max_data_size)
		return -E2BIG;
	if (u->dst_len > dev->cfg.max_data_size + VA_BATCH_SLACK)
		return -E2BIG;

	op->data_in = data;
	op->out_cap = u->dst_len;
	if (u->flags & VIRTIO_ACCEL_IOC_OP_F_MAPPED)
		err = va_cop_map(op, u, service, area);
	else
		err = va_cop_bounce(op, u, service);
	if (err)
		return err;
	/* A trailer the device never writes must read as an error. */
	op->resp->status = cpu_to_le32(VIRTIO_ACCEL_S_ERR);
	op->resp->len = 0;
	op->vreq.n_out = 1;
	op->vreq.n_in = 1;
	op->vreq.done = va_cop_done;
	op->vreq.progress = va_cop_progress;
	*q = va_pick_queue(dev, service);
	return *q ? 0 : -ENODEV;
}

long va_ioctl_batch(struct va_file *f, void __user *arg)
{
	struct virtio_accel_ioc_batch ub;
	struct virtio_accel_ioc_op *uops;
	struct va_batch *b;
	unsigned int i, ok = 0;
	long ret = 0;

	if (copy_from_user(&ub, arg, sizeof(ub)))
		return -EFAULT;
	if (!ub.count || ub.count > VIRTIO_ACCEL_IOC_MAX_BATCH)
		return -EINVAL;
	uops = memdup_user(u64_to_user_ptr(ub.ops), array_size(ub.count, sizeof(*uops)));
	if (IS_ERR(uops))
		return PTR_ERR(uops);
	b = kvzalloc(struct_size(b, ops, ub.count), GFP_KERNEL);
	if (!b) {
		kfree(uops);
		return -ENOMEM;
	}
	kref_init(&b->ref);
	init_waitqueue_head(&b->wq);
	kref_get(&f->dev->ref);
	b->dev = f->dev;
	b->count = ub.count;
	b->area = va_area_get(f);

	atomic_set(&b->remaining, 1);	/* dropped after the submit loop */
	for (i = 0; i < ub.count; i++) {
		struct va_cop *op = &b->ops[i];
		struct va_queue *q = NULL;
		int err;

		op->b = b;
		op->status = VIRTIO_ACCEL_IOC_S_NOT_RUN;
		err = va_cop_prepare(f, op, &uops[i], b->area, &q);
		if (!err) {
			atomic_inc(&b->remaining);
			kref_get(&b->ref);
			atomic64_inc(&f->dev->stats.chardev_ops);
			/* The caller can sleep: a full queue backlogs rather than failing. */
			err = va_queue_submit(q, &op->vreq, true);
			/*
			 * Submitted: the op may already have completed on another CPU, and its
			 * completion owns op->error (writing 0 here lost -EBADMSG under load).
			 */
			if (err == -EINPROGRESS || err == -EBUSY)
				continue;
			atomic_dec(&b->remaining);
			kref_put(&b->ref, va_batch_release);
		}
		op->error = err;
	}
	if (!atomic_dec_and_test(&b->remaining) &&
	    wait_event_interruptible(b->wq, atomic_read(&b->remaining) == 0)) {
		/* The device still owns some buffers: the last completion frees them. */
		ret = -EINTR;
		goto out;
	}

	for (i = 0; i < ub.count; i++) {
		struct va_cop *op = &b->ops[i];
		struct virtio_accel_ioc_op *u = &uops[i];

		u->status = op->status;
		u->error = op->error;
		if (op->status == VIRTIO_ACCEL_S_OK) {
			if (!op->mapped && copy_to_user(u64_to_user_ptr(u->dst), op->out, op->len)) {
				ret = -EFAULT;
				goto out;
			}
			u->dst_len = op->len;
			ok++;
		} else if (op->status == VIRTIO_ACCEL_S_OUTPUT_TOO_SMALL) {
			u->dst_len = op->len;
		}
	}
	ub.completed_ok = ok;
	if (copy_to_user(u64_to_user_ptr(ub.ops), uops, array_size(ub.count, sizeof(*uops))) ||
	    copy_to_user(arg, &ub, sizeof(ub)))
		ret = -EFAULT;
out:
	kref_put(&b->ref, va_batch_release);
	kfree(uops);
	return ret;
}
