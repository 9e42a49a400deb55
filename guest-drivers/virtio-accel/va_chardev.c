// SPDX-License-Identifier: GPL-2.0
/*
 * virtio-accel character device /dev/virtio-accel<N>: device info, sessions, IPsec SAs,
 * statistics and an in-kernel acomp round trip (AF_ALG has no compression interface).
 * Batched data operations live in va_batch.c. Every user value is checked; handles are
 * private to the open file that created them.
 */
#include <crypto/acompress.h>
#include <linux/fs.h>
#include <linux/module.h>
#include <linux/sched/signal.h>
#include <linux/slab.h>
#include <linux/timekeeping.h>
#include <linux/uaccess.h>
#include "virtio_accel_drv.h"
#include "va_chardev.h"

/* Largest in-kernel acomp round trip (linear kmalloc buffers for sg_init_one). */
#define VA_KCOMP_MAX (128 * 1024)
#define VA_KCOMP_MAX_ITER 1000000

bool va_file_owns(struct va_file *f, u64 handle, bool sa)
{
	return handle && xa_load(sa ? &f->sas : &f->sessions, handle);
}

static int va_open(struct inode *inode, struct file *file)
{
	/* misc_open() holds misc_mtx here, so the device cannot be unregistered under us. */
	struct miscdevice *misc = file->private_data;
	struct va_dev *dev = container_of(misc, struct va_dev, misc);
	struct va_file *f;

	f = kzalloc(sizeof(*f), GFP_KERNEL);
	if (!f)
		return -ENOMEM;
	kref_get(&dev->ref);
	f->dev = dev;
	mutex_init(&f->lock);
	mutex_init(&f->area_lock);
	xa_init(&f->sessions);
	xa_init(&f->sas);
	file->private_data = f;
	return 0;
}

static int va_sa_remove(struct va_dev *dev, u64 handle)
{
	struct virtio_accel_ctrl_handle h = { .handle = cpu_to_le64(handle) };
	int err;

	err = va_ctrl_exec(dev, VIRTIO_ACCEL_CTRL_REMOVE_SA, &h, sizeof(h), NULL, 0, NULL, NULL,
			   false);
	if (!err)
		atomic64_dec(&dev->stats.sas_live);
	return err;
}

static int va_release(struct inode *inode, struct file *file)
{
	struct va_file *f = file->private_data;
	unsigned long idx;
	void *entry;

	if (!READ_ONCE(f->dev->dead)) {
		xa_for_each(&f->sessions, idx, entry)
			va_session_destroy(f->dev, idx);
		xa_for_each(&f->sas, idx, entry)
			va_sa_remove(f->dev, idx);
	}
	xa_destroy(&f->sessions);
	xa_destroy(&f->sas);
	va_area_put(f->area);	/* batches the device still owns hold their own reference */
	va_dev_put(f->dev);
	kfree(f);
	return 0;
}

static long va_ioctl_info(struct va_file *f, void __user *arg)
{
	struct va_dev *dev = f->dev;
	struct virtio_accel_ioc_info info = {
		.version = VIRTIO_ACCEL_IOC_VERSION,
		.services = dev->cfg.services,
		.crypto_algos = dev->cfg.crypto_algos,
		.comp_algos = dev->cfg.comp_algos,
		.ipsec_algos = dev->cfg.ipsec_algos,
		.crypto_queues = dev->ncrypto,
		.comp_queues = dev->ncomp,
		.ipsec_queues = dev->nipsec,
		.index = dev->index,
		.max_sessions = dev->cfg.max_sessions,
		.max_sas = dev->cfg.max_sas,
		.max_data_size = dev->cfg.max_data_size,
		.max_key_len = dev->cfg.max_key_len,
		.features = dev->features,
	};

	return copy_to_user(arg, &info, sizeof(info)) ? -EFAULT : 0;
}

static long va_ioctl_session_create(struct va_file *f, void __user *arg)
{
	struct virtio_accel_ioc_session s;
	u8 key[VIRTIO_ACCEL_MAX_KEY_LEN];
	u64 handle;
	int err;

	if (copy_from_user(&s, arg, sizeof(s)))
		return -EFAULT;
	if (s.algo != VIRTIO_ACCEL_CRYPTO_AES_GCM)
		return -EOPNOTSUPP;
	if (s.key_len != 16 && s.key_len != 24 && s.key_len != 32)
		return -EINVAL;
	if (!va_dev_has(f->dev, VIRTIO_ACCEL_SERVICE_CRYPTO))
		return -EOPNOTSUPP;
	if (copy_from_user(key, u64_to_user_ptr(s.key), s.key_len))
		return -EFAULT;
	mutex_lock(&f->lock);
	err = va_session_create(f->dev, key, s.key_len, &handle, true);
	memzero_explicit(key, sizeof(key));
	if (!err) {
		err = xa_insert(&f->sessions, handle, xa_mk_value(1), GFP_KERNEL);
		if (err)
			va_session_destroy(f->dev, handle);
	}
	mutex_unlock(&f->lock);
	if (err)
		return err;
	s.handle = handle;
	return copy_to_user(arg, &s, sizeof(s)) ? -EFAULT : 0;
}

static long va_ioctl_session_destroy(struct va_file *f, void __user *arg)
{
	struct virtio_accel_ioc_session s;

	if (copy_from_user(&s, arg, sizeof(s)))
		return -EFAULT;
	if (!s.handle || !xa_erase(&f->sessions, s.handle))
		return -ENOENT;
	va_session_destroy(f->dev, s.handle);
	return 0;
}

static long va_ioctl_sa_add(struct va_file *f, void __user *arg)
{
	struct virtio_accel_ioc_sa u;
	struct virtio_accel_sa_para p = {};
	u64 handle;
	int err;

	if (copy_from_user(&u, arg, sizeof(u)))
		return -EFAULT;
	if (!va_dev_has(f->dev, VIRTIO_ACCEL_SERVICE_IPSEC)) {
		err = -EOPNOTSUPP;
		goto out;
	}
	if (u.key_len > sizeof(u.key)) {
		err = -EINVAL;
		goto out;
	}
	p.spi = cpu_to_le32(u.spi);
	p.algo = cpu_to_le32(u.algo);
	p.direction = u.direction;
	p.mode = u.mode;
	p.family = u.family;
	p.icv_len = u.icv_len;
	p.key_len = cpu_to_le32(u.key_len);
	memcpy(p.salt, u.salt, sizeof(p.salt));
	p.replay_window = cpu_to_le32(u.replay_window);
	memcpy(p.tunnel_src, u.tunnel_src, sizeof(p.tunnel_src));
	memcpy(p.tunnel_dst, u.tunnel_dst, sizeof(p.tunnel_dst));
	memcpy(p.key, u.key, u.key_len);

	mutex_lock(&f->lock);
	/* The device validates the parameters and answers BADMSG/NOTSUPP (-> errno). */
	err = va_ctrl_exec(f->dev, VIRTIO_ACCEL_CTRL_ADD_SA, &p, sizeof(p), NULL, 0, &handle, NULL,
			   true);
	if (!err) {
		atomic64_inc(&f->dev->stats.sas_live);
		err = xa_insert(&f->sas, handle, xa_mk_value(1), GFP_KERNEL);
		if (err)
			va_sa_remove(f->dev, handle);
	}
	mutex_unlock(&f->lock);
	if (!err) {
		memzero_explicit(u.key, sizeof(u.key));
		u.handle = handle;
		if (copy_to_user(arg, &u, sizeof(u)))
			err = -EFAULT;
	}
out:
	memzero_explicit(&p, sizeof(p));
	memzero_explicit(&u, sizeof(u));
	return err;
}

static long va_ioctl_sa_remove(struct va_file *f, void __user *arg)
{
	struct virtio_accel_ioc_sa_query q;

	if (copy_from_user(&q, arg, sizeof(q)))
		return -EFAULT;
	if (!q.handle || !xa_erase(&f->sas, q.handle))
		return -ENOENT;
	return va_sa_remove(f->dev, q.handle);
}

static long va_ioctl_sa_query(struct va_file *f, void __user *arg)
{
	struct virtio_accel_ioc_sa_query q;
	struct virtio_accel_ctrl_handle h;
	struct virtio_accel_sa_stats st;
	int err;

	if (copy_from_user(&q, arg, sizeof(q)))
		return -EFAULT;
	if (!va_file_owns(f, q.handle, true))
		return -ENOENT;
	h.handle = cpu_to_le64(q.handle);
	err = va_ctrl_exec(f->dev, VIRTIO_ACCEL_CTRL_QUERY_SA, &h, sizeof(h), &st, sizeof(st), NULL,
			   NULL, true);
	if (err)
		return err;
	q.packets = le64_to_cpu(st.packets);
	q.bytes = le64_to_cpu(st.bytes);
	q.auth_failures = le64_to_cpu(st.auth_failures);
	q.replay_drops = le64_to_cpu(st.replay_drops);
	q.malformed = le64_to_cpu(st.malformed);
	q.last_seq = le64_to_cpu(st.last_seq);
	return copy_to_user(arg, &q, sizeof(q)) ? -EFAULT : 0;
}

static long va_ioctl_stats(struct va_file *f, void __user *arg)
{
	struct virtio_accel_ioc_stats st;

	va_stats_read(f->dev, &st);
	return copy_to_user(arg, &st, sizeof(st)) ? -EFAULT : 0;
}

/*
 * Runs one (de)compression through the crypto API by algorithm name, exactly as an in-kernel
 * user would (highest priority implementation), and reports which driver did it.
 */
static long va_ioctl_kcomp(struct va_file *f, void __user *arg)
{
	struct virtio_accel_ioc_kcomp k;
	struct scatterlist src, dst;
	struct crypto_acomp *tfm;
	struct acomp_req *req;
	DECLARE_CRYPTO_WAIT(wait);
	void *in = NULL, *out = NULL;
	unsigned int i;
	u64 start;
	int err;

	if (copy_from_user(&k, arg, sizeof(k)))
		return -EFAULT;
	k.alg[sizeof(k.alg) - 1] = '\0';
	if (k.decompress > 1 || !k.src_len || !k.dst_len || k.src_len > VA_KCOMP_MAX ||
	    k.dst_len > VA_KCOMP_MAX || k.iterations > VA_KCOMP_MAX_ITER || k.reserved)
		return -EINVAL;
	tfm = crypto_alloc_acomp(k.alg, 0, 0);
	if (IS_ERR(tfm))
		return PTR_ERR(tfm);
	strscpy(k.driver, crypto_tfm_alg_driver_name(crypto_acomp_tfm(tfm)), sizeof(k.driver));
	err = -ENOMEM;
	in = kmalloc(k.src_len, GFP_KERNEL);
	out = kmalloc(k.dst_len, GFP_KERNEL);
	req = acomp_request_alloc(tfm);
	if (!in || !out || !req)
		goto out;
	err = -EFAULT;
	if (copy_from_user(in, u64_to_user_ptr(k.src), k.src_len))
		goto out;
	sg_init_one(&src, in, k.src_len);
	sg_init_one(&dst, out, k.dst_len);
	start = ktime_get_ns();
	for (i = 0; i < max(k.iterations, 1U); i++) {
		acomp_request_set_params(req, &src, &dst, k.src_len, k.dst_len);
		acomp_request_set_callback(req, CRYPTO_TFM_REQ_MAY_BACKLOG |
					   CRYPTO_TFM_REQ_MAY_SLEEP, crypto_req_done, &wait);
		crypto_init_wait(&wait);
		k.error = crypto_wait_req(k.decompress ? crypto_acomp_decompress(req) :
					  crypto_acomp_compress(req), &wait);
		if (k.error)
			break;
		if (fatal_signal_pending(current)) {
			k.error = -EINTR;
			break;
		}
		cond_resched();
	}
	k.elapsed_ns = ktime_get_ns() - start;
	k.dst_len = k.error ? 0 : req->dlen;
	err = 0;
	if (k.dst_len && copy_to_user(u64_to_user_ptr(k.dst), out, k.dst_len))
		err = -EFAULT;
	if (!err && copy_to_user(arg, &k, sizeof(k)))
		err = -EFAULT;
out:
	if (req)
		acomp_request_free(req);
	kfree(in);
	kfree(out);
	crypto_free_acomp(tfm);
	return err;
}

static long va_ioctl(struct file *file, unsigned int cmd, unsigned long arg)
{
	struct va_file *f = file->private_data;
	void __user *uarg = (void __user *)arg;

	if (cmd != VIRTIO_ACCEL_IOC_INFO && cmd != VIRTIO_ACCEL_IOC_STATS &&
	    READ_ONCE(f->dev->dead))
		return -ENODEV;
	switch (cmd) {
	case VIRTIO_ACCEL_IOC_INFO:
		return va_ioctl_info(f, uarg);
	case VIRTIO_ACCEL_IOC_SESSION_CREATE:
		return va_ioctl_session_create(f, uarg);
	case VIRTIO_ACCEL_IOC_SESSION_DESTROY:
		return va_ioctl_session_destroy(f, uarg);
	case VIRTIO_ACCEL_IOC_BATCH:
		return va_ioctl_batch(f, uarg);
	case VIRTIO_ACCEL_IOC_SA_ADD:
		return va_ioctl_sa_add(f, uarg);
	case VIRTIO_ACCEL_IOC_SA_REMOVE:
		return va_ioctl_sa_remove(f, uarg);
	case VIRTIO_ACCEL_IOC_SA_QUERY:
		return va_ioctl_sa_query(f, uarg);
	case VIRTIO_ACCEL_IOC_STATS:
		return va_ioctl_stats(f, uarg);
	case VIRTIO_ACCEL_IOC_KCOMP:
		return va_ioctl_kcomp(f, uarg);
	}
	return -ENOTTY;
}

static int va_mmap(struct file *file, struct vm_area_struct *vma)
{
	return va_area_mmap(file->private_data, vma);
}

static const struct file_operations va_fops = {
	.owner = THIS_MODULE,	/* an open file pins the module: rmmod is refused */
	.open = va_open,
	.release = va_release,
	.unlocked_ioctl = va_ioctl,
	.mmap = va_mmap,
	.compat_ioctl = compat_ptr_ioctl,
	.llseek = noop_llseek,
};

int va_chardev_register(struct va_dev *dev)
{
	int err;

	snprintf(dev->misc_name, sizeof(dev->misc_name), "virtio-accel%d", dev->index);
	dev->misc.minor = MISC_DYNAMIC_MINOR;
	dev->misc.name = dev->misc_name;
	dev->misc.fops = &va_fops;
	dev->misc.groups = va_stats_groups;
	dev->misc.mode = 0600;
	dev->misc.parent = &dev->vdev->dev;
	err = misc_register(&dev->misc);
	if (!err)
		dev->misc_registered = true;
	return err;
}

void va_chardev_unregister(struct va_dev *dev)
{
	if (dev->misc_registered)
		misc_deregister(&dev->misc);
	dev->misc_registered = false;
}
