// SPDX-License-Identifier: GPL-2.0
/*
 * virtio-accel AEAD algorithms for the crypto API: gcm(aes) and rfc4106(gcm(aes)).
 * setkey creates a device session (control queue, may sleep like every setkey that talks to
 * hardware); requests go zero-copy: the request's own scatterlists are handed to the device.
 */
#include <crypto/aes.h>
#include <crypto/gcm.h>
#include <crypto/internal/aead.h>
#include <crypto/scatterwalk.h>
#include <linux/module.h>
#include <linux/slab.h>
#include "virtio_accel_drv.h"

#define RFC4106_SALT_LEN 4
#define RFC4106_IV_LEN 8

struct va_aead_ctx {
	struct va_dev *dev;
	struct mutex lock;	/* setkey vs setkey */
	u64 session;
	bool have_session;
	bool rfc4106;
	u8 salt[RFC4106_SALT_LEN];
};

struct va_aead_rctx {
	struct va_req vreq;
	struct aead_request *areq;
	struct va_dev *dev;
	bool encrypt;
	unsigned int out_len;
	unsigned int in_len;
	struct virtio_accel_data_hdr hdr;
	struct virtio_accel_data_resp resp;
	struct scatterlist hdr_sg, resp_sg;
	struct scatterlist *tbl;	/* inline_sg or allocated */
	struct scatterlist inline_sg[VA_INLINE_SG];
};

static int va_aead_init(struct crypto_aead *tfm)
{
	struct va_aead_ctx *ctx = crypto_aead_ctx(tfm);
	const char *name = crypto_tfm_alg_name(crypto_aead_tfm(tfm));

	ctx->dev = va_dev_get_any();
	if (!ctx->dev)
		return -ENODEV;
	mutex_init(&ctx->lock);
	ctx->rfc4106 = !strncmp(name, "rfc4106", 7);
	crypto_aead_set_reqsize(tfm, sizeof(struct va_aead_rctx));
	return 0;
}

static void va_aead_exit(struct crypto_aead *tfm)
{
	struct va_aead_ctx *ctx = crypto_aead_ctx(tfm);

	if (ctx->have_session)
		va_session_destroy(ctx->dev, ctx->session);
	va_dev_put(ctx->dev);
	memzero_explicit(ctx->salt, sizeof(ctx->salt));
}

static int va_aead_setkey(struct crypto_aead *tfm, const u8 *key, unsigned int keylen)
{
	struct va_aead_ctx *ctx = crypto_aead_ctx(tfm);
	u64 handle;
	int err;

	if (ctx->rfc4106) {
		if (keylen < RFC4106_SALT_LEN)
			return -EINVAL;
		keylen -= RFC4106_SALT_LEN;
	}
	err = aes_check_keylen(keylen);
	if (err)
		return err;
	if (keylen > ctx->dev->cfg.max_key_len)
		return -EINVAL;

	mutex_lock(&ctx->lock);
	if (ctx->have_session) {
		va_session_destroy(ctx->dev, ctx->session);
		ctx->have_session = false;
	}
	err = va_session_create(ctx->dev, key, keylen, &handle, false);
	if (!err) {
		if (ctx->rfc4106)
			memcpy(ctx->salt, key + keylen, RFC4106_SALT_LEN);
		ctx->session = handle;
		ctx->have_session = true;
	}
	mutex_unlock(&ctx->lock);
	/* The crypto API knows -EINVAL for keys it cannot use. */
	return err == -EOPNOTSUPP ? -EINVAL : err;
}

static int va_gcm_setauthsize(struct crypto_aead *tfm, unsigned int authsize)
{
	return crypto_gcm_check_authsize(authsize);
}

static int va_rfc4106_setauthsize(struct crypto_aead *tfm, unsigned int authsize)
{
	return crypto_rfc4106_check_authsize(authsize);
}

static void va_aead_free_tbl(struct va_aead_rctx *rctx)
{
	if (rctx->tbl != rctx->inline_sg)
		kfree(rctx->tbl);
	rctx->tbl = NULL;
}

/* Test hook (module parameter): make known-answer tests fail on purpose. */
static void va_aead_corrupt(struct aead_request *areq, unsigned int offset)
{
	u8 b;

	scatterwalk_map_and_copy(&b, areq->dst, offset, 1, 0);
	b ^= 0x01;
	scatterwalk_map_and_copy(&b, areq->dst, offset, 1, 1);
}

static void va_aead_done(struct va_req *vreq, int err)
{
	struct va_aead_rctx *rctx = container_of(vreq, struct va_aead_rctx, vreq);
	struct aead_request *areq = rctx->areq;
	unsigned int op = rctx->encrypt ? VIRTIO_ACCEL_STAT_ENCRYPT : VIRTIO_ACCEL_STAT_DECRYPT;
	u32 status = VIRTIO_ACCEL_S_ERR;

	va_aead_free_tbl(rctx);
	if (!err) {
		status = le32_to_cpu(rctx->resp.status);
		err = va_status_errno(status);
		/* A device that claims success must have produced exactly the expected output. */
		if (!err && le32_to_cpu(rctx->resp.len) != rctx->out_len) {
			status = VIRTIO_ACCEL_S_ERR;
			err = -EIO;
		}
	}
	va_stats_account(rctx->dev, op, status, rctx->in_len, rctx->out_len);
	if (!err && rctx->encrypt && va_corrupt_encrypt && rctx->out_len)
		va_aead_corrupt(areq, areq->assoclen);
	aead_request_complete(areq, err);
}

static void va_aead_progress(struct va_req *vreq)
{
	struct va_aead_rctx *rctx = container_of(vreq, struct va_aead_rctx, vreq);

	aead_request_complete(rctx->areq, -EINPROGRESS);
}

static int va_aead_crypt(struct aead_request *areq, bool encrypt)
{
	struct crypto_aead *tfm = crypto_aead_reqtfm(areq);
	struct va_aead_ctx *ctx = crypto_aead_ctx(tfm);
	struct va_aead_rctx *rctx = aead_request_ctx(areq);
	struct va_dev *dev = ctx->dev;
	unsigned int authsize = crypto_aead_authsize(tfm);
	unsigned int aad_len, src_len, n = 0, ndata, max;
	gfp_t gfp = areq->base.flags & CRYPTO_TFM_REQ_MAY_SLEEP ? GFP_KERNEL : GFP_ATOMIC;
	struct va_queue *q;
	int na, ns, nd, err;

	if (!ctx->have_session)
		return -ENOKEY;
	if (READ_ONCE(dev->dead))
		return -ENODEV;
	/* The device reads our header by physical address: it must be in the linear map. */
	if (WARN_ON_ONCE(!virt_addr_valid(&rctx->hdr)))
		return -EINVAL;

	aad_len = areq->assoclen;
	if (ctx->rfc4106) {
		/* xfrm's layout: AAD (SPI, seq[, ESN]) + 8-byte IV, which GCM must not authenticate. */
		if (aad_len != 16 && aad_len != 20)
			return -EINVAL;
		aad_len -= RFC4106_IV_LEN;
	}
	if (!encrypt && areq->cryptlen < authsize)
		return -EINVAL;
	src_len = areq->cryptlen;
	rctx->out_len = encrypt ? src_len + authsize : src_len - authsize;
	rctx->in_len = aad_len + src_len;
	if (rctx->in_len > dev->cfg.max_data_size)
		return -E2BIG;

	na = va_sg_count(areq->src, 0, aad_len);
	ns = va_sg_count(areq->src, areq->assoclen, src_len);
	nd = va_sg_count(areq->dst, areq->assoclen, rctx->out_len);
	if (na < 0 || ns < 0 || nd < 0)
		return -EINVAL;
	max = na + ns + nd;
	rctx->tbl = rctx->inline_sg;
	if (max > VA_INLINE_SG) {
		rctx->tbl = kmalloc_array(max, sizeof(*rctx->tbl), gfp);
		if (!rctx->tbl)
			return -ENOMEM;
	}
	if (max)
		sg_init_table(rctx->tbl, max);
	err = va_sg_append(rctx->tbl, &n, max, areq->src, 0, aad_len);
	if (!err)
		err = va_sg_append(rctx->tbl, &n, max, areq->src, areq->assoclen, src_len);
	ndata = n;
	if (!err)
		err = va_sg_append(rctx->tbl, &n, max, areq->dst, areq->assoclen, rctx->out_len);
	if (err) {
		va_aead_free_tbl(rctx);
		return err;
	}
	va_sg_end(rctx->tbl, ndata);
	va_sg_end(rctx->tbl, n);

	memset(&rctx->hdr, 0, sizeof(rctx->hdr));
	rctx->hdr.opcode = cpu_to_le32(encrypt ? VIRTIO_ACCEL_OP_ENCRYPT : VIRTIO_ACCEL_OP_DECRYPT);
	rctx->hdr.handle = cpu_to_le64(ctx->session);
	rctx->hdr.src_len = cpu_to_le32(src_len);
	rctx->hdr.aad_len = cpu_to_le32(aad_len);
	rctx->hdr.tag_len = cpu_to_le32(authsize);
	rctx->hdr.iv_len = cpu_to_le32(GCM_AES_IV_SIZE);
	if (ctx->rfc4106) {
		memcpy(rctx->hdr.iv, ctx->salt, RFC4106_SALT_LEN);
		memcpy(rctx->hdr.iv + RFC4106_SALT_LEN, areq->iv, RFC4106_IV_LEN);
	} else {
		memcpy(rctx->hdr.iv, areq->iv, GCM_AES_IV_SIZE);
	}

	sg_init_one(&rctx->hdr_sg, &rctx->hdr, sizeof(rctx->hdr));
	sg_init_one(&rctx->resp_sg, &rctx->resp, sizeof(rctx->resp));
	rctx->vreq.n_out = 0;
	rctx->vreq.n_in = 0;
	rctx->vreq.sgs[rctx->vreq.n_out++] = &rctx->hdr_sg;
	if (ndata)
		rctx->vreq.sgs[rctx->vreq.n_out++] = rctx->tbl;
	if (n > ndata)
		rctx->vreq.sgs[rctx->vreq.n_out + rctx->vreq.n_in++] = &rctx->tbl[ndata];
	rctx->vreq.sgs[rctx->vreq.n_out + rctx->vreq.n_in++] = &rctx->resp_sg;
	rctx->vreq.done = va_aead_done;
	rctx->vreq.progress = va_aead_progress;
	rctx->areq = areq;
	rctx->dev = dev;
	rctx->encrypt = encrypt;
	rctx->resp.status = cpu_to_le32(VIRTIO_ACCEL_S_ERR);

	q = va_pick_queue(dev, VIRTIO_ACCEL_SERVICE_CRYPTO);
	if (!q) {
		va_aead_free_tbl(rctx);
		return -ENODEV;
	}
	atomic64_inc(&dev->stats.api_ops);
	err = va_queue_submit(q, &rctx->vreq,
			      areq->base.flags & CRYPTO_TFM_REQ_MAY_BACKLOG);
	if (err != -EINPROGRESS && err != -EBUSY)
		va_aead_free_tbl(rctx);
	return err;
}

static int va_aead_encrypt(struct aead_request *areq)
{
	return va_aead_crypt(areq, true);
}

static int va_aead_decrypt(struct aead_request *areq)
{
	return va_aead_crypt(areq, false);
}

/* gcm(aes) and rfc4106(gcm(aes)) share every operation; they differ in names, IV and tag sizes. */
#define VA_AEAD(name, drv, set_authsize, iv_size)				\
	{								\
		.setkey = va_aead_setkey,				\
		.setauthsize = set_authsize,				\
		.encrypt = va_aead_encrypt,				\
		.decrypt = va_aead_decrypt,				\
		.init = va_aead_init,					\
		.exit = va_aead_exit,					\
		.ivsize = iv_size,					\
		.maxauthsize = AES_BLOCK_SIZE,				\
		.base = {						\
			.cra_name = name,				\
			.cra_driver_name = drv,				\
			.cra_priority = VA_AEAD_PRIORITY,		\
			.cra_flags = CRYPTO_ALG_ASYNC | CRYPTO_ALG_KERN_DRIVER_ONLY, \
			.cra_blocksize = 1,				\
			.cra_ctxsize = sizeof(struct va_aead_ctx),	\
			.cra_module = THIS_MODULE,			\
		},							\
	}

static struct aead_alg va_aead_algs[] = {
	VA_AEAD("gcm(aes)", "virtio_accel-gcm-aes", va_gcm_setauthsize, GCM_AES_IV_SIZE),
	VA_AEAD("rfc4106(gcm(aes))", "virtio_accel-rfc4106-gcm-aes", va_rfc4106_setauthsize,
		GCM_RFC4106_IV_SIZE),
};

static bool va_aead_registered[ARRAY_SIZE(va_aead_algs)];

int va_aead_register(struct va_dev *dev)
{
	unsigned int i;
	int err;

	if (!va_dev_has(dev, VIRTIO_ACCEL_SERVICE_CRYPTO) ||
	    !(dev->cfg.crypto_algos & BIT(VIRTIO_ACCEL_CRYPTO_AES_GCM)))
		return 0;
	for (i = 0; i < ARRAY_SIZE(va_aead_algs); i++) {
		err = crypto_register_aead(&va_aead_algs[i]);
		if (err) {
			pr_err(VA_NAME ": registering %s failed: %d\n",
			       va_aead_algs[i].base.cra_driver_name, err);
			return err;
		}
		va_aead_registered[i] = true;
	}
	return 0;
}

void va_aead_unregister(void)
{
	unsigned int i;

	for (i = 0; i < ARRAY_SIZE(va_aead_algs); i++) {
		if (va_aead_registered[i])
			crypto_unregister_aead(&va_aead_algs[i]);
		va_aead_registered[i] = false;
	}
}
