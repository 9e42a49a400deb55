// SPDX-License-Identifier: GPL-2.0
/*
 * virtio-accel core: probe/remove, feature negotiation, the control queue and every data
 * queue, request submission with our own pending list and backlog (the cloud kernel has no
 * crypto_engine), completion in a tasklet, and the device list the crypto API users pick from.
 */
#include <linux/module.h>
#include <linux/idr.h>
#include <linux/mm.h>
#include <linux/slab.h>
#include <linux/virtio_config.h>
#include "virtio_accel_drv.h"

static LIST_HEAD(va_devices);
static DEFINE_MUTEX(va_devices_lock);
static DEFINE_IDA(va_ida);
/* Serialises algorithm registration (which runs the self-tests against the probing device). */
static DEFINE_MUTEX(va_algs_lock);
static bool va_algs_registered;
static atomic_t va_rr = ATOMIC_INIT(0);

/* ---- scatterlist helpers ---- */

/* Number of entries va_sg_append() needs for @len bytes of @sg starting at @skip. */
int va_sg_count(struct scatterlist *sg, unsigned int skip, unsigned int len)
{
	int n = 0;

	for (; sg && len; sg = sg_next(sg)) {
		if (skip >= sg->length) {
			skip -= sg->length;
			continue;
		}
		len -= min(sg->length - skip, len);
		skip = 0;
		n++;
	}
	return len ? -EINVAL : n;
}

/* Appends the byte range [@skip, @skip + @len) of @sg to @tbl, sharing the pages (zero copy). */
int va_sg_append(struct scatterlist *tbl, unsigned int *n, unsigned int max,
		 struct scatterlist *sg, unsigned int skip, unsigned int len)
{
	for (; sg && len; sg = sg_next(sg)) {
		unsigned int chunk;

		if (skip >= sg->length) {
			skip -= sg->length;
			continue;
		}
		if (*n >= max)
			return -E2BIG;
		chunk = min(sg->length - skip, len);
		sg_set_page(&tbl[(*n)++], sg_page(sg), chunk, sg->offset + skip);
		len -= chunk;
		skip = 0;
	}
	return len ? -EINVAL : 0;
}

/*
 * Appends a kernel buffer: kmalloc memory is physically contiguous (one entry), vmalloc memory
 * (kvmalloc fallback for large char-device buffers) takes one entry per page.
 */
int va_sg_from_buf(struct scatterlist *tbl, unsigned int *n, unsigned int max,
		   void *buf, unsigned int len)
{
	if (!len)
		return 0;
	if (!is_vmalloc_addr(buf)) {
		if (*n >= max)
			return -E2BIG;
		sg_set_buf(&tbl[(*n)++], buf, len);
		return 0;
	}
	while (len) {
		unsigned int off = offset_in_page(buf);
		unsigned int chunk = min_t(unsigned int, PAGE_SIZE - off, len);

		if (*n >= max)
			return -E2BIG;
		sg_set_page(&tbl[(*n)++], vmalloc_to_page(buf), chunk, off);
		buf += chunk;
		len -= chunk;
	}
	return 0;
}

/* Terminates the list that ends at entry @n - 1 of @tbl. */
void va_sg_end(struct scatterlist *tbl, unsigned int n)
{
	if (n)
		sg_mark_end(&tbl[n - 1]);
}

int va_status_errno(u32 status)
{
	switch (status) {
	case VIRTIO_ACCEL_S_OK:
		return 0;
	case VIRTIO_ACCEL_S_AUTH_FAILED:
		return -EBADMSG;
	case VIRTIO_ACCEL_S_BADMSG:
		return -EINVAL;
	case VIRTIO_ACCEL_S_NOTSUPP:
		return -EOPNOTSUPP;
	case VIRTIO_ACCEL_S_NO_SESSION:
		return -ENOKEY;
	case VIRTIO_ACCEL_S_OUTPUT_TOO_SMALL:
	case VIRTIO_ACCEL_S_NOSPC:
		return -ENOSPC;
	case VIRTIO_ACCEL_S_BUSY:
		return -EAGAIN;
	case VIRTIO_ACCEL_S_REPLAY:
		return -EBADMSG;
	case VIRTIO_ACCEL_S_DATA_ERROR:
		return -EINVAL;
	default:
		return -EIO;
	}
}

/* ---- devices ---- */

static void va_dev_release(struct kref *ref)
{
	struct va_dev *dev = container_of(ref, struct va_dev, ref);

	ida_free(&va_ida, dev->index);
	kfree(dev->queues);
	kfree(dev);
}

void va_dev_put(struct va_dev *dev)
{
	kref_put(&dev->ref, va_dev_release);
}

/* A live device, round robin over all of them; the caller owns a reference. */
struct va_dev *va_dev_get_any(void)
{
	struct va_dev *dev, *pick = NULL;
	unsigned int n = 0, want;

	mutex_lock(&va_devices_lock);
	list_for_each_entry(dev, &va_devices, list)
		n++;
	if (n) {
		want = (unsigned int)atomic_inc_return(&va_rr) % n;
		list_for_each_entry(dev, &va_devices, list) {
			if (want-- == 0) {
				pick = dev;
				kref_get(&pick->ref);
				break;
			}
		}
	}
	mutex_unlock(&va_devices_lock);
	return pick;
}

bool va_dev_has(struct va_dev *dev, unsigned int service)
{
	switch (service) {
	case VIRTIO_ACCEL_SERVICE_CRYPTO:
		return dev->ncrypto && (dev->features & BIT_ULL(VIRTIO_ACCEL_F_CRYPTO));
	case VIRTIO_ACCEL_SERVICE_COMPRESSION:
		return dev->ncomp && (dev->features & BIT_ULL(VIRTIO_ACCEL_F_COMPRESSION));
	case VIRTIO_ACCEL_SERVICE_IPSEC:
		return dev->nipsec && (dev->features & BIT_ULL(VIRTIO_ACCEL_F_IPSEC));
	}
	return false;
}

/* Spreads requests over a service's data queues by the submitting CPU. */
struct va_queue *va_pick_queue(struct va_dev *dev, unsigned int service)
{
	unsigned int cpu = raw_smp_processor_id();

	switch (service) {
	case VIRTIO_ACCEL_SERVICE_CRYPTO:
		return dev->ncrypto ? &dev->crypto_q[cpu % dev->ncrypto] : NULL;
	case VIRTIO_ACCEL_SERVICE_COMPRESSION:
		return dev->ncomp ? &dev->comp_q[cpu % dev->ncomp] : NULL;
	case VIRTIO_ACCEL_SERVICE_IPSEC:
		return dev->nipsec ? &dev->ipsec_q[cpu % dev->nipsec] : NULL;
	}
	return NULL;
}

/* ---- queues ---- */

static int va_queue_add(struct va_queue *q, struct va_req *req)
{
	int err = virtqueue_add_sgs(q->vq, req->sgs, req->n_out, req->n_in, req, GFP_ATOMIC);

	/* An empty ring that still has no room will never have room: the request is too big. */
	if (err == -ENOSPC && q->vq->num_free == virtqueue_get_vring_size(q->vq))
		err = -E2BIG;
	return err;
}

/*
 * Queues @req on @q. Returns -EINPROGRESS when accepted (in the ring or on the bounded pending
 * list), -EBUSY when backlogged (only with @may_backlog; a progress callback with -EINPROGRESS
 * follows once the ring takes it), -ENOSPC when full, or another error. @req->done runs iff
 * the return value is -EINPROGRESS or -EBUSY.
 */
int va_queue_submit(struct va_queue *q, struct va_req *req, bool may_backlog)
{
	unsigned long flags;
	bool kick = false;
	int ret;

	req->backlogged = false;
	spin_lock_irqsave(&q->lock, flags);
	if (q->dead) {
		ret = -ENODEV;
	} else if (list_empty(&q->pending) && (ret = va_queue_add(q, req)) != -ENOSPC) {
		if (!ret) {
			kick = virtqueue_kick_prepare(q->vq);
			ret = -EINPROGRESS;
		}
	} else if (q->npending < VA_MAX_PENDING) {
		list_add_tail(&req->node, &q->pending);
		q->npending++;
		ret = -EINPROGRESS;
	} else if (may_backlog) {
		req->backlogged = true;
		list_add_tail(&req->node, &q->pending);
		q->npending++;
		atomic64_inc(&q->dev->stats.backlogged);
		ret = -EBUSY;
	} else {
		atomic64_inc(&q->dev->stats.rejected_busy);
		ret = -ENOSPC;
	}
	spin_unlock_irqrestore(&q->lock, flags);
	if (kick)
		virtqueue_notify(q->vq);
	return ret;
}

/* Completion: drain the used ring, refill from the pending list, then run callbacks unlocked. */
static void va_queue_tasklet(unsigned long data)
{
	struct va_queue *q = (struct va_queue *)data;
	struct va_req *req, *tmp;
	LIST_HEAD(done);
	LIST_HEAD(progress);
	LIST_HEAD(failed);
	unsigned long flags;
	unsigned int len;
	bool kick = false;
	int err;

	spin_lock_irqsave(&q->lock, flags);
	if (q->dead) {
		spin_unlock_irqrestore(&q->lock, flags);
		return;
	}
	do {
		virtqueue_disable_cb(q->vq);
		while ((req = virtqueue_get_buf(q->vq, &len))) {
			req->used_len = len;
			list_add_tail(&req->node, &done);
		}
	} while (!virtqueue_enable_cb(q->vq) && !virtqueue_is_broken(q->vq));

	list_for_each_entry_safe(req, tmp, &q->pending, node) {
		err = va_queue_add(q, req);
		if (err == -ENOSPC)
			break;
		list_del(&req->node);
		q->npending--;
		if (err) {
			list_add_tail(&req->pnode, &failed);
			continue;
		}
		kick = true;
		if (req->backlogged)
			list_add_tail(&req->pnode, &progress);
	}
	if (kick)
		kick = virtqueue_kick_prepare(q->vq);
	spin_unlock_irqrestore(&q->lock, flags);
	if (kick)
		virtqueue_notify(q->vq);

	/*
	 * -EINPROGRESS first: the request cannot complete before this runs because only this
	 * tasklet (serialised with itself) or removal (after tasklet_kill) completes requests.
	 */
	list_for_each_entry_safe(req, tmp, &progress, pnode)
		req->progress(req);
	list_for_each_entry_safe(req, tmp, &failed, pnode)
		req->done(req, -EIO);
	/* Spec §5: used len 0 means the device could not answer the chain (no trailer). */
	list_for_each_entry_safe(req, tmp, &done, node)
		req->done(req, req->used_len ? 0 : -EIO);
}

static void va_vq_callback(struct virtqueue *vq)
{
	struct va_dev *dev = vq->vdev->priv;

	/* Hard interrupt context: defer to softirq, where crypto completions (ESP) may run. */
	virtqueue_disable_cb(vq);
	tasklet_schedule(&dev->queues[vq->index].tasklet);
}

/* Marks every queue dead so no new request enters; must precede the device reset. */
static void va_queues_kill(struct va_dev *dev)
{
	unsigned int i;
	unsigned long flags;

	for (i = 0; i < dev->nqueues; i++) {
		spin_lock_irqsave(&dev->queues[i].lock, flags);
		dev->queues[i].dead = true;
		spin_unlock_irqrestore(&dev->queues[i].lock, flags);
	}
	WRITE_ONCE(dev->dead, true);
}

/*
 * After the reset the device owns no buffer any more: finish what it completed, fail what it
 * did not and what never reached the ring.
 */
static void va_queues_drain(struct va_dev *dev)
{
	struct va_req *req, *tmp;
	unsigned int i, len;

	for (i = 0; i < dev->nqueues; i++) {
		struct va_queue *q = &dev->queues[i];

		tasklet_kill(&q->tasklet);
		while ((req = virtqueue_get_buf(q->vq, &len)))
			req->done(req, len ? 0 : -EIO);
		while ((req = virtqueue_detach_unused_buf(q->vq)))
			req->done(req, -ENODEV);
		list_for_each_entry_safe(req, tmp, &q->pending, node) {
			list_del(&req->node);
			req->done(req, -ENODEV);
		}
		q->npending = 0;
	}
}

static int va_read_config(struct va_dev *dev)
{
	struct virtio_device *vdev = dev->vdev;
	struct va_cfg *c = &dev->cfg;

	virtio_cread_le(vdev, struct virtio_accel_config, services, &c->services);
	virtio_cread_le(vdev, struct virtio_accel_config, crypto_algos, &c->crypto_algos);
	virtio_cread_le(vdev, struct virtio_accel_config, comp_algos, &c->comp_algos);
	virtio_cread_le(vdev, struct virtio_accel_config, ipsec_algos, &c->ipsec_algos);
	virtio_cread_le(vdev, struct virtio_accel_config, crypto_queues, &c->crypto_queues);
	virtio_cread_le(vdev, struct virtio_accel_config, comp_queues, &c->comp_queues);
	virtio_cread_le(vdev, struct virtio_accel_config, ipsec_queues, &c->ipsec_queues);
	virtio_cread_le(vdev, struct virtio_accel_config, max_sessions, &c->max_sessions);
	virtio_cread_le(vdev, struct virtio_accel_config, max_sas, &c->max_sas);
	virtio_cread_le(vdev, struct virtio_accel_config, max_data_size, &c->max_data_size);
	virtio_cread_le(vdev, struct virtio_accel_config, max_key_len, &c->max_key_len);

	dev->ncrypto = c->crypto_queues;
	dev->ncomp = c->comp_queues;
	dev->nipsec = c->ipsec_queues;
	if (dev->ncrypto + dev->ncomp + dev->nipsec == 0 ||
	    dev->ncrypto > 64 || dev->ncomp > 64 || dev->nipsec > 64) {
		dev_err(&vdev->dev, "bad queue counts %u/%u/%u\n",
			dev->ncrypto, dev->ncomp, dev->nipsec);
		return -EINVAL;
	}
	if (!c->max_data_size) {
		dev_err(&vdev->dev, "max_data_size is 0\n");
		return -EINVAL;
	}
	dev->nqueues = 1 + dev->ncrypto + dev->ncomp + dev->nipsec;
	return 0;
}

static int va_find_vqs(struct va_dev *dev)
{
	struct virtqueue **vqs;
	vq_callback_t **cbs;
	const char **names;
	unsigned int i;
	int err = -ENOMEM;

	dev->queues = kcalloc(dev->nqueues, sizeof(*dev->queues), GFP_KERNEL);
	vqs = kcalloc(dev->nqueues, sizeof(*vqs), GFP_KERNEL);
	cbs = kcalloc(dev->nqueues, sizeof(*cbs), GFP_KERNEL);
	names = kcalloc(dev->nqueues, sizeof(*names), GFP_KERNEL);
	if (!dev->queues || !vqs || !cbs || !names)
		goto out;
	for (i = 0; i < dev->nqueues; i++) {
		struct va_queue *q = &dev->queues[i];

		if (i == 0)
			snprintf(q->name, sizeof(q->name), "control");
		else if (i <= dev->ncrypto)
			snprintf(q->name, sizeof(q->name), "crypto.%u", i - 1);
		else if (i <= dev->ncrypto + dev->ncomp)
			snprintf(q->name, sizeof(q->name), "comp.%u", i - 1 - dev->ncrypto);
		else
			snprintf(q->name, sizeof(q->name), "ipsec.%u",
				 i - 1 - dev->ncrypto - dev->ncomp);
		names[i] = q->name;
		cbs[i] = va_vq_callback;
		q->dev = dev;
		spin_lock_init(&q->lock);
		INIT_LIST_HEAD(&q->pending);
		tasklet_init(&q->tasklet, va_queue_tasklet, (unsigned long)q);
	}
	err = virtio_find_vqs(dev->vdev, dev->nqueues, vqs, cbs, names, NULL);
	if (err)
		goto out;
	for (i = 0; i < dev->nqueues; i++)
		dev->queues[i].vq = vqs[i];
	dev->crypto_q = &dev->queues[1];
	dev->comp_q = &dev->queues[1 + dev->ncrypto];
	dev->ipsec_q = &dev->queues[1 + dev->ncrypto + dev->ncomp];
out:
	kfree(vqs);
	kfree(cbs);
	kfree(names);
	return err;
}

/*
 * Undoes a probe that got as far as the device list: takes @dev off it, resets the device
 * (which drops every session and SA on it), fails what it still held and drops the probe's
 * reference. Users still holding a reference see -ENODEV from now on.
 */
static void va_unplug(struct va_dev *dev)
{
	struct virtio_device *vdev = dev->vdev;

	mutex_lock(&va_devices_lock);
	list_del_init(&dev->list);
	mutex_unlock(&va_devices_lock);
	va_dev_put(dev);

	va_queues_kill(dev);
	virtio_reset_device(vdev);
	va_queues_drain(dev);
	vdev->config->del_vqs(vdev);
	dev->vdev = NULL;
	vdev->priv = NULL;
	va_dev_put(dev);
}

static int va_probe(struct virtio_device *vdev)
{
	struct va_dev *dev;
	int err;

	if (!virtio_has_feature(vdev, VIRTIO_F_VERSION_1))
		return -ENODEV;
	dev = kzalloc(sizeof(*dev), GFP_KERNEL);
	if (!dev)
		return -ENOMEM;
	kref_init(&dev->ref);
	INIT_LIST_HEAD(&dev->list);
	dev->vdev = vdev;
	dev->features = vdev->features;
	dev->index = ida_alloc(&va_ida, GFP_KERNEL);
	if (dev->index < 0) {
		kfree(dev);
		return -ENOMEM;
	}
	vdev->priv = dev;

	err = va_read_config(dev);
	if (err)
		goto err_put;
	err = va_find_vqs(dev);
	if (err)
		goto err_put;
	virtio_device_ready(vdev);

	mutex_lock(&va_devices_lock);
	list_add_tail(&dev->list, &va_devices);
	kref_get(&dev->ref);
	mutex_unlock(&va_devices_lock);
	/*
	 * The algorithms are registered once, by the first device, and stay registered until the
	 * module goes: crypto_unregister_alg() must not run while a tfm (an xfrm state, an AF_ALG
	 * socket) still uses them, and every tfm holds a module reference. The self-tests run now,
	 * against this device.
	 */
	mutex_lock(&va_algs_lock);
	if (!va_algs_registered) {
		err = va_aead_register(dev);
		if (!err)
			err = va_comp_register(dev);
		if (err) {
			va_aead_unregister();
			va_comp_unregister();
		} else {
			va_algs_registered = true;
		}
	}
	mutex_unlock(&va_algs_lock);
	if (err)
		goto err_list;

	err = va_chardev_register(dev);
	if (err)
		goto err_list;
	dev_info(&vdev->dev, "virtio-accel%d: %u crypto, %u compression, %u ipsec queues, features %#llx\n",
		 dev->index, dev->ncrypto, dev->ncomp, dev->nipsec, dev->features);
	return 0;

err_list:
	va_unplug(dev);
	return err;
err_put:
	dev->vdev = NULL;
	vdev->priv = NULL;
	va_dev_put(dev);
	return err;
}

static void va_remove(struct virtio_device *vdev)
{
	struct va_dev *dev = vdev->priv;

	va_chardev_unregister(dev);
	va_unplug(dev);
}

static const unsigned int va_features[] = {
	VIRTIO_ACCEL_F_CRYPTO,
	VIRTIO_ACCEL_F_COMPRESSION,
	VIRTIO_ACCEL_F_IPSEC,
	VIRTIO_ACCEL_F_STATELESS,
};

static const struct virtio_device_id va_id_table[] = {
	{ VIRTIO_ID_ACCEL, VIRTIO_DEV_ANY_ID },
	{ 0 },
};
MODULE_DEVICE_TABLE(virtio, va_id_table);

static struct virtio_driver va_driver = {
	.driver.name = KBUILD_MODNAME,
	.driver.owner = THIS_MODULE,
	.feature_table = va_features,
	.feature_table_size = ARRAY_SIZE(va_features),
	.id_table = va_id_table,
	.probe = va_probe,
	.remove = va_remove,
};

bool va_corrupt_encrypt;
module_param_named(corrupt_encrypt, va_corrupt_encrypt, bool, 0444);
MODULE_PARM_DESC(corrupt_encrypt,
		 "Test only: flip one byte of every AEAD encryption result, so the crypto self-tests must fail");

bool va_foreign_handles;
module_param_named(foreign_handles, va_foreign_handles, bool, 0444);
MODULE_PARM_DESC(foreign_handles,
		 "Test only: pass char-device crypto ops naming a session this file did not create to the device, as a hostile guest would, so the device's own isolation can be tested");

static int __init va_init(void)
{
	return register_virtio_driver(&va_driver);
}

static void __exit va_exit(void)
{
	unregister_virtio_driver(&va_driver);
	/* No tfm can exist here: each holds a module reference. */
	if (va_algs_registered) {
		va_aead_unregister();
		va_comp_unregister();
	}
}

module_init(va_init);
module_exit(va_exit);
MODULE_DESCRIPTION("virtio-accel: AES-GCM, deflate/LZ4 and IPsec ESP offload");
MODULE_LICENSE("GPL");
