// SPDX-License-Identifier: GPL-2.0
/*
 * virtio-accel character device: the mapped buffer area. A process mmap()s up to
 * VIRTIO_ACCEL_IOC_AREA_MAX bytes of its open file; batch ops flagged
 * VIRTIO_ACCEL_IOC_OP_F_MAPPED name offsets in that area instead of user pointers, and the
 * device reads and writes those pages directly: no copy in, no copy out. The pages come from
 * the largest allocations the page allocator grants, so a buffer inside one of them is
 * physically contiguous, one descriptor, which the device serves in place.
 */
#include <linux/mm.h>
#include <linux/overflow.h>
#include <linux/slab.h>
#include <linux/version.h>
#include "va_chardev.h"

/* 2 MiB chunks when memory allows; smaller ones when it is fragmented. */
#define VA_AREA_MAX_ORDER 9

struct va_area {
	struct kref ref;	/* the file + one per batch that uses it */
	unsigned long nr_pages;	/* pages[] entries that hold a page */
	struct page *pages[];
};

static void va_area_release(struct kref *ref)
{
	struct va_area *a = container_of(ref, struct va_area, ref);
	unsigned long i;

	for (i = 0; i < a->nr_pages; i++)
		__free_page(a->pages[i]);
	kvfree(a);
}

void va_area_put(struct va_area *a)
{
	if (a)
		kref_put(&a->ref, va_area_release);
}

/* The file's area with a reference for the caller, or NULL if nothing was mapped yet. */
struct va_area *va_area_get(struct va_file *f)
{
	struct va_area *a;

	mutex_lock(&f->area_lock);
	a = f->area;
	if (a)
		kref_get(&a->ref);
	mutex_unlock(&f->area_lock);
	return a;
}

/* Zeroed pages (a process must never see stale kernel data), charged to the caller's memcg. */
static struct va_area *va_area_alloc(unsigned long nr_pages)
{
	unsigned int order = VA_AREA_MAX_ORDER;
	struct va_area *a;

	a = kvzalloc(struct_size(a, pages, nr_pages), GFP_KERNEL);
	if (!a)
		return NULL;
	kref_init(&a->ref);
	while (a->nr_pages < nr_pages) {
		gfp_t gfp = GFP_KERNEL_ACCOUNT | __GFP_ZERO;
		struct page *p;
		unsigned int j;

		while (order && (1UL << order) > nr_pages - a->nr_pages)
			order--;
		if (order)
			gfp |= __GFP_NORETRY | __GFP_NOWARN;
		p = alloc_pages(gfp, order);
		if (!p && order) {
			order--;
			continue;
		}
		if (!p) {
			va_area_put(a);
			return NULL;
		}
		/* Each page its own reference count: mapped and freed one by one. */
		if (order)
			split_page(p, order);
		for (j = 0; j < (1U << order); j++)
			a->pages[a->nr_pages++] = p + j;
	}
	return a;
}

int va_area_mmap(struct va_file *f, struct vm_area_struct *vma)
{
	unsigned long len = vma->vm_end - vma->vm_start;
	struct va_area *a;
	int err = 0;

	/* One shared area per file, always mapped from its start. */
	if (vma->vm_pgoff || !(vma->vm_flags & VM_SHARED))
		return -EINVAL;
	if (len > VIRTIO_ACCEL_IOC_AREA_MAX)
		return -ENOMEM;
	mutex_lock(&f->area_lock);
	if (!f->area) {
		f->area = va_area_alloc(len >> PAGE_SHIFT);
		if (!f->area)
			err = -ENOMEM;
	} else if (len >> PAGE_SHIFT > f->area->nr_pages) {
		err = -EINVAL;	/* the area's size is fixed by the first mmap */
	}
	a = f->area;
	mutex_unlock(&f->area_lock);
	if (err)
		return err;
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 3, 0)
	vm_flags_set(vma, VM_DONTEXPAND | VM_DONTDUMP);
#else
	vma->vm_flags |= VM_DONTEXPAND | VM_DONTDUMP;
#endif
	/* The file outlives the mapping (the vma holds it), and so does f->area. */
	return vm_map_pages_zero(vma, a->pages, a->nr_pages);
}

/*
 * Appends [off, off + len) of the area to @tbl, one entry per physically contiguous run;
 * -EFAULT if the range is not inside the area.
 */
int va_area_sg(struct va_area *a, u64 off, u32 len, struct scatterlist *tbl, unsigned int *n,
	       unsigned int max)
{
	u64 size = (u64)a->nr_pages << PAGE_SHIFT;

	if (off > size || len > size - off)
		return -EFAULT;
	while (len) {
		unsigned long first = off >> PAGE_SHIFT, i = first;
		unsigned int poff = offset_in_page(off);
		u32 run = min_t(u64, PAGE_SIZE - poff, len);

		while (run < len && page_to_pfn(a->pages[i + 1]) == page_to_pfn(a->pages[i]) + 1) {
			i++;
			run += min_t(u32, PAGE_SIZE, len - run);
		}
		if (*n >= max)
			return -E2BIG;
		sg_set_page(&tbl[(*n)++], a->pages[first], run, poff);
		off += run;
		len -= run;
	}
	return 0;
}

/* Entries va_area_sg() may need for @len bytes at most. */
unsigned int va_area_sg_max(u32 len)
{
	return len / PAGE_SIZE + 2;
}
