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
	struct mutex area_lock;	/* area vs. concurrent mmap (taken under mmap_lock) */
	struct va_area *area;	/* mmap()ed buffer area, NULL until the first mmap */
};

bool va_file_owns(struct va_file *f, u64 handle, bool sa);
long va_ioctl_batch(struct va_file *f, void __user *arg);

struct va_area;
int va_area_mmap(struct va_file *f, struct vm_area_struct *vma);
struct va_area *va_area_get(struct va_file *f);
void va_area_put(struct va_area *a);
int va_area_sg(struct va_area *a, u64 off, u32 len, struct scatterlist *tbl, unsigned int *n,
	       unsigned int max);
unsigned int va_area_sg_max(u32 len);

#endif /* _VA_CHARDEV_H */
