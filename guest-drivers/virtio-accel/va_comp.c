// SPDX-License-Identifier: GPL-2.0
/*
 * virtio-accel compression algorithms for the crypto API: deflate (raw, Linux's 2 KiB window
 * format) and lz4 (block format), as asynchronous acomp algorithms (6.1 acomp_alg API). The
 * request's scatterlists go to the device as they are (zero copy).
 */
#include <crypto/internal/acompress.h>
#include <linux/module.h>
#include <linux/slab.h>
#include "virtio_accel_drv.h"

/* What the device may write beyond max_data_size (header growth of incompressible data). */
#define VA_COMP_OUT_SLACK 1024

struct va_comp_ctx {
	struct va_dev *dev;
	u32 algo;
};

struct va_comp_rctx {
	struct va_req vreq;
	struct acomp_req *areq;
	struct va_dev *dev;
	bool compress;
	unsigned int dst_cap;
	struct virtio_accel_data_hdr hdr;
	struct virtio_accel_data_resp resp;
	struct scatterlist hdr_sg, resp_sg;
	struct scatterlist *tbl;
	struct scatterlist inline_sg[VA_INLINE_SG];
};

static u32 va_comp_algo(struct crypto_acomp *tfm)
{
	const char *name = crypto_tfm_alg_name(crypto_acomp_tfm(tfm));

	return strcmp(name, "lz4") ? VIRTIO_ACCEL_COMP_DEFLATE : VIRTIO_ACCEL_COMP_LZ4;
}

static int va_comp_init(struct crypto_acomp *tfm)
{
	struct va_comp_ctx *ctx = acomp_tfm_ctx(tfm);

	ctx->dev = va_dev_get_any();
	if (!ctx->dev)
		return -ENODEV;
	ctx->algo = va_comp_algo(tfm);
	return 0;
}

static void va_comp_exit(struct crypto_acomp *tfm)
{
	struct va_comp_ctx *ctx = acomp_tfm_ctx(tfm);

	va_dev_put(ctx->dev);
}

static void va_comp_free_tbl(struct va_comp_rctx *rctx)
{
	if (rctx->tbl != rctx->inline_sg)
		kfree(rctx->tbl);
	rctx->tbl = NULL;
}

static void va_comp_done(struct va_req *vreq, int err)
{
	struct va_comp_rctx *rctx = container_of(vreq, struct va_comp_rctx, vreq);
	struct acomp_req *areq = rctx->areq;
	unsigned int op = rctx->compress ? VIRTIO_ACCEL_STAT_COMPRESS : VIRTIO_ACCEL_STAT_DECOMPRESS;
	u32 status = VIRTIO_ACCEL_S_ERR, len = 0;

	va_comp_free_tbl(rctx);
	if (!err) {
		status = le32_to_cpu(rctx->resp.status);
		len = le32_to_cpu(rctx->resp.len);
		err = va_status_errno(status);
		if (!err && len > rctx->dst_cap) {
			status = VIRTIO_ACCEL_S_ERR;
			err = -EIO;
		}
	}
	va_stats_account(rctx->dev, op, status, areq->slen, err ? 0 : len);
	if (!err)
		areq->dlen = len;
	acomp_request_complete(areq, err);
}

static void va_comp_progress(struct va_req *vreq)
{
	struct va_comp_rctx *rctx = container_of(vreq, struct va_comp_rctx, vreq);

	acomp_request_complete(rctx->areq, -EINPROGRESS);
}

static int va_comp_run(struct acomp_req *areq, bool compress)
{
	struct crypto_acomp *tfm = crypto_acomp_reqtfm(areq);
	struct va_comp_ctx *ctx = acomp_tfm_ctx(tfm);
	struct va_comp_rctx *rctx = acomp_request_ctx(areq);
	struct va_dev *dev = ctx->dev;
	gfp_t gfp = areq->base.flags & CRYPTO_TFM_REQ_MAY_SLEEP ? GFP_KERNEL : GFP_ATOMIC;
	unsigned int n = 0, ndata, max;
	struct va_queue *q;
	int ns, nd, err;

	if (READ_ONCE(dev->dead))
		return -ENODEV;
	/* Output allocation by the driver (CRYPTO_ACOMP_ALLOC_OUTPUT) is scomp-only in 6.1. */
	if (!areq->src || !areq->dst || !areq->slen || !areq->dlen)
		return -EINVAL;
	if (areq->slen > dev->cfg.max_data_size)
		return -E2BIG;
	if (WARN_ON_ONCE(!virt_addr_valid(&rctx->hdr)))
		return -EINVAL;
	rctx->dst_cap = min(areq->dlen, dev->cfg.max_data_size + VA_COMP_OUT_SLACK);

	ns = va_sg_count(areq->src, 0, areq->slen);
	nd = va_sg_count(areq->dst, 0, rctx->dst_cap);
	if (ns < 0 || nd < 0)
		return -EINVAL;
	max = ns + nd;
	rctx->tbl = rctx->inline_sg;
	if (max > VA_INLINE_SG) {
		rctx->tbl = kmalloc_array(max, sizeof(*rctx->tbl), gfp);
		if (!rctx->tbl)
			return -ENOMEM;
	}
	sg_init_table(rctx->tbl, max);
	err = va_sg_append(rctx->tbl, &n, max, areq->src, 0, areq->slen);
	ndata = n;
	if (!err)
		err = va_sg_append(rctx->tbl, &n, max, areq->dst, 0, rctx->dst_cap);
	if (err) {
		va_comp_free_tbl(rctx);
		return err;
	}
	va_sg_end(rctx->tbl, ndata);
	va_sg_end(rctx->tbl, n);

	memset(&rctx->hdr, 0, sizeof(rctx->hdr));
	rctx->hdr.opcode = cpu_to_le32(compress ? VIRTIO_ACCEL_OP_COMPRESS :
				       VIRTIO_ACCEL_OP_DECOMPRESS);
	rctx->hdr.algo = cpu_to_le32(ctx->algo);
	rctx->hdr.src_len = cpu_to_le32(areq->slen);
	rctx->resp.status = cpu_to_le32(VIRTIO_ACCEL_S_ERR);
	sg_init_one(&rctx->hdr_sg, &rctx->hdr, sizeof(rctx->hdr));
	sg_init_one(&rctx->resp_sg, &rctx->resp, sizeof(rctx->resp));
	rctx->vreq.sgs[0] = &rctx->hdr_sg;
	rctx->vreq.sgs[1] = rctx->tbl;
	rctx->vreq.sgs[2] = &rctx->tbl[ndata];
	rctx->vreq.sgs[3] = &rctx->resp_sg;
	rctx->vreq.n_out = 2;
	rctx->vreq.n_in = 2;
	rctx->vreq.done = va_comp_done;
	rctx->vreq.progress = va_comp_progress;
	rctx->areq = areq;
	rctx->dev = dev;
	rctx->compress = compress;

	q = va_pick_queue(dev, VIRTIO_ACCEL_SERVICE_COMPRESSION);
	if (!q) {
		va_comp_free_tbl(rctx);
		return -ENODEV;
	}
	atomic64_inc(&dev->stats.api_ops);
	err = va_queue_submit(q, &rctx->vreq, areq->base.flags & CRYPTO_TFM_REQ_MAY_BACKLOG);
	if (err != -EINPROGRESS && err != -EBUSY)
		va_comp_free_tbl(rctx);
	return err;
}

static int va_comp_compress(struct acomp_req *areq)
{
	return va_comp_run(areq, true);
}

static int va_comp_decompress(struct acomp_req *areq)
{
	return va_comp_run(areq, false);
}

#define VA_ACOMP(name, drv)						\
	{								\
		.compress = va_comp_compress,				\
		.decompress = va_comp_decompress,			\
		.init = va_comp_init,					\
		.exit = va_comp_exit,					\
		.reqsize = sizeof(struct va_comp_rctx),			\
		.base = {						\
			.cra_name = name,				\
			.cra_driver_name = drv,				\
			.cra_priority = VA_COMP_PRIORITY,		\
			.cra_flags = CRYPTO_ALG_ASYNC | CRYPTO_ALG_KERN_DRIVER_ONLY, \
			.cra_ctxsize = sizeof(struct va_comp_ctx),	\
			.cra_module = THIS_MODULE,			\
		},							\
	}

static struct acomp_alg va_comp_algs[] = {
	VA_ACOMP("deflate", "virtio_accel-deflate"),
	VA_ACOMP("lz4", "virtio_accel-lz4"),
};

static const u32 va_comp_ids[] = { VIRTIO_ACCEL_COMP_DEFLATE, VIRTIO_ACCEL_COMP_LZ4 };
static bool va_comp_registered[ARRAY_SIZE(va_comp_algs)];

int va_comp_register(struct va_dev *dev)
{
	unsigned int i;
	int err;

	if (!va_dev_has(dev, VIRTIO_ACCEL_SERVICE_COMPRESSION))
		return 0;
	for (i = 0; i < ARRAY_SIZE(va_comp_algs); i++) {
		if (!(dev->cfg.comp_algos & BIT(va_comp_ids[i])))
			continue;
		err = crypto_register_acomp(&va_comp_algs[i]);
		if (err) {
			pr_err(VA_NAME ": registering %s failed: %d\n",
			       va_comp_algs[i].base.cra_driver_name, err);
			return err;
		}
		va_comp_registered[i] = true;
	}
	return 0;
}

void va_comp_unregister(void)
{
	unsigned int i;

	for (i = 0; i < ARRAY_SIZE(va_comp_algs); i++) {
		if (va_comp_registered[i])
			crypto_unregister_acomp(&va_comp_algs[i]);
		va_comp_registered[i] = false;
	}
}
