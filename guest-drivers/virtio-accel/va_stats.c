// SPDX-License-Identifier: GPL-2.0
/*
 * virtio-accel driver statistics: per device, per operation class; read through the
 * VIRTIO_ACCEL_IOC_STATS ioctl and /sys/class/misc/virtio-accel<N>/stats. They count what the
 * device completed, so tests can prove the device (not a software fallback) did the work.
 */
#include <linux/device.h>
#include <linux/sysfs.h>
#include "virtio_accel_drv.h"

void va_stats_account(struct va_dev *dev, unsigned int op, u32 status, u64 in, u64 out)
{
	struct va_stats *s = &dev->stats;

	if (op >= VIRTIO_ACCEL_STAT_NR)
		return;
	if (status == VIRTIO_ACCEL_S_OK) {
		atomic64_inc(&s->ops[op]);
		atomic64_add(in, &s->bytes_in[op]);
		atomic64_add(out, &s->bytes_out[op]);
	} else {
		atomic64_inc(&s->errors[op]);
		if (status == VIRTIO_ACCEL_S_AUTH_FAILED)
			atomic64_inc(&s->auth_failures);
	}
}

void va_stats_read(struct va_dev *dev, struct virtio_accel_ioc_stats *out)
{
	struct va_stats *s = &dev->stats;
	unsigned int i;

	memset(out, 0, sizeof(*out));
	for (i = 0; i < VIRTIO_ACCEL_STAT_NR; i++) {
		out->ops[i] = atomic64_read(&s->ops[i]);
		out->errors[i] = atomic64_read(&s->errors[i]);
		out->bytes_in[i] = atomic64_read(&s->bytes_in[i]);
		out->bytes_out[i] = atomic64_read(&s->bytes_out[i]);
	}
	out->api_ops = atomic64_read(&s->api_ops);
	out->chardev_ops = atomic64_read(&s->chardev_ops);
	out->auth_failures = atomic64_read(&s->auth_failures);
	out->backlogged = atomic64_read(&s->backlogged);
	out->rejected_busy = atomic64_read(&s->rejected_busy);
	out->ctrl_ops = atomic64_read(&s->ctrl_ops);
	out->sessions_live = atomic64_read(&s->sessions_live);
	out->sas_live = atomic64_read(&s->sas_live);
}

static const char * const va_op_names[VIRTIO_ACCEL_STAT_NR] = {
	"encrypt", "decrypt", "compress", "decompress", "esp_encap", "esp_decap",
};

/* One "name value" pair per line, for shell scripts. */
static ssize_t stats_show(struct device *d, struct device_attribute *attr, char *buf)
{
	struct miscdevice *misc = dev_get_drvdata(d);
	struct va_dev *dev = container_of(misc, struct va_dev, misc);
	struct virtio_accel_ioc_stats st;
	unsigned int i;
	int len = 0;

	va_stats_read(dev, &st);
	for (i = 0; i < VIRTIO_ACCEL_STAT_NR; i++)
		len += sysfs_emit_at(buf, len, "%s_ops %llu\n%s_errors %llu\n%s_bytes_in %llu\n%s_bytes_out %llu\n",
				     va_op_names[i], st.ops[i], va_op_names[i], st.errors[i],
				     va_op_names[i], st.bytes_in[i], va_op_names[i], st.bytes_out[i]);
	len += sysfs_emit_at(buf, len,
			     "api_ops %llu\nchardev_ops %llu\nauth_failures %llu\nbacklogged %llu\nrejected_busy %llu\nctrl_ops %llu\nsessions_live %llu\nsas_live %llu\n",
			     st.api_ops, st.chardev_ops, st.auth_failures, st.backlogged,
			     st.rejected_busy, st.ctrl_ops, st.sessions_live, st.sas_live);
	return len;
}
static DEVICE_ATTR_RO(stats);

static struct attribute *va_stats_attrs[] = {
	&dev_attr_stats.attr,
	NULL,
};

static const struct attribute_group va_stats_group = {
	.attrs = va_stats_attrs,
};

const struct attribute_group *va_stats_groups[] = {
	&va_stats_group,
	NULL,
};
