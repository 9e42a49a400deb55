/* SPDX-License-Identifier: GPL-2.0 */
/* virtio-accel character device: per-open-file state shared by the ioctl handlers. */
#ifndef _VA_CHARDEV_H
#define _VA_CHARDEV_H

#include <linux/xarray.h>
#include "virtio_accel_drv.h"

/* An open /dev/virtio-accel<N>: the sessions and SAs it created die with it. */
struct va_file {
	struct va_dev *dev;
	struct mutex lock;	/* handle tables vs. concurrent create/destroy */
	struct xarray sessions;	/* device handle -> xa_mk_value(1) */
	struct xarray sas;
};

bool va_file_owns(struct va_file *f, u64 handle, bool sa);
long va_ioctl_batch(struct va_file *f, void __user *arg);

#endif /* _VA_CHARDEV_H */
