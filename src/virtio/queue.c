/*
 * The split virtqueue: see queue.h. Section numbers are virtio 1.2's.
 *
 * Memory ordering, with the driver running on another CPU:
 * - avail->idx is read with acquire before the ring entries it covers;
 * - used ring entries are written before used->idx, which is stored with
 *   release;
 * - between publishing something the driver reads (used->idx, avail_event)
 *   and reading what the driver publishes (used_event, avail->idx) there
 *   is a full fence, else both sides may sleep (§2.7.7.2, §2.7.10).
 */
#include "virtio/queue.h"

#include <errno.h>
#include <string.h>

#include "vmm/guest_mem.h"

#define DESC_SIZE sizeof(struct vring_desc)

static uint16_t load_acquire16(const void *p)
{
	return __atomic_load_n((const uint16_t *)p, __ATOMIC_ACQUIRE);
}

static void store_release16(void *p, uint16_t v)
{
	__atomic_store_n((uint16_t *)p, v, __ATOMIC_RELEASE);
}

static void full_fence(void)
{
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
}

/* used_event sits after the avail ring, avail_event after the used ring (§2.7.10). */
static uint16_t *used_event(struct virtq *vq)
{
	return &vq->avail->ring[vq->size];
}

static uint16_t *avail_event(struct virtq *vq)
{
	return (uint16_t *)&vq->used->ring[vq->size];
}

int virtq_start(struct virtq *vq, const struct guest_mem *mem)
{
	uint64_t n = vq->size;

	if (n == 0 || n > VIRTQ_MAX_SIZE || (n & (n - 1)))
		return -EINVAL;
	/* §2.7: alignment 16 for descriptors, 2 for avail, 4 for used; we access them typed. */
	if ((vq->desc_gpa & 15) || (vq->avail_gpa & 1) || (vq->used_gpa & 3))
		return -EINVAL;
	vq->mem = mem;
	vq->desc = guest_mem_ptr(mem, vq->desc_gpa, DESC_SIZE * n);
	vq->avail = guest_mem_ptr(mem, vq->avail_gpa, sizeof(struct vring_avail) + 2 * n + 2);
	vq->used = guest_mem_ptr(mem, vq->used_gpa,
				 sizeof(struct vring_used) + sizeof(struct vring_used_elem) * n + 2);
	if (!vq->desc || !vq->avail || !vq->used)
		return -EFAULT;
	vq->last_avail_idx = vq->used_idx = vq->signalled_used = 0;
	vq->signalled_used_valid = false;
	vq->broken = false;
	vq->notify_off = false;
	return 0;
}

void virtq_get_rings(const struct virtq *vq, struct virtq_rings *rings)
{
	*rings = (struct virtq_rings){
		.size = vq->size, .next_avail = vq->last_avail_idx,
		.desc = vq->desc, .avail = vq->avail, .used = vq->used,
	};
}

void virtq_reset(struct virtq *vq)
{
	memset(vq, 0, sizeof(*vq));
}

/* The chain walker's position: which table, how far, how many descriptors seen. */
struct chain_walk {
	const struct vring_desc *table;
	uint32_t table_size;
	uint32_t budget; /* descriptors left before the chain is too long */
	bool in_indirect;
};

static int add_buffer(struct virtq *vq, struct virtq_req *req, const struct vring_desc *d)
{
	unsigned int used = req->nr_readable + req->nr_writable;
	bool writable = d->flags & VRING_DESC_F_WRITE;
	uint32_t *total = writable ? &req->writable_len : &req->readable_len;
	void *host;

	/* Readable buffers come first in a chain (§2.7.4.2). */
	if (!writable && req->nr_writable)
		return -EBADMSG;
	if (d->len == 0)
		return 0;
	if (used == req->iov_cap || *total + d->len < *total)
		return -EBADMSG;
	host = guest_mem_ptr(vq->mem, d->addr, d->len);
	if (!host)
		return -EBADMSG;
	req->iov[used] = (struct iovec){ .iov_base = host, .iov_len = d->len };
	*total += d->len;
	if (writable)
		req->nr_writable++;
	else
		req->nr_readable++;
	return 0;
}

/* Switches the walk into an indirect table (§2.7.5.3): one level only. */
static int enter_indirect(struct virtq *vq, struct chain_walk *w, const struct vring_desc *d)
{
	if (!vq->indirect || w->in_indirect || (d->flags & VRING_DESC_F_NEXT) ||
	    d->len == 0 || d->len % DESC_SIZE || d->len / DESC_SIZE > VIRTQ_MAX_SIZE)
		return -EBADMSG;
	w->table = guest_mem_ptr(vq->mem, d->addr, d->len);
	if (!w->table)
		return -EBADMSG;
	w->table_size = d->len / DESC_SIZE;
	w->budget = w->table_size;
	w->in_indirect = true;
	return 0;
}

static int walk_chain(struct virtq *vq, struct virtq_req *req)
{
	struct chain_walk w = { .table = vq->desc, .table_size = vq->size, .budget = vq->size };
	uint32_t idx = req->head;

	for (;;) {
		struct vring_desc d;
		int err;

		if (w.budget-- == 0)
			return -EBADMSG; /* longer than allowed: a loop, or a lie */
		/* One copy: the driver may change the descriptor while we look. */
		memcpy(&d, &w.table[idx], sizeof(d));
		if (d.flags & VRING_DESC_F_INDIRECT) {
			err = enter_indirect(vq, &w, &d);
			if (err)
				return err;
			idx = 0;
			continue;
		}
		err = add_buffer(vq, req, &d);
		if (err)
			return err;
		if (!(d.flags & VRING_DESC_F_NEXT))
			return 0;
		idx = d.next;
		if (idx >= w.table_size)
			return -EBADMSG;
	}
}

int virtq_pop(struct virtq *vq, struct virtq_req *req)
{
	uint16_t avail_idx, pending, head;
	int err;

	if (vq->broken || !vq->ready)
		return vq->broken ? -EINVAL : 0;
	avail_idx = load_acquire16(&vq->avail->idx);
	pending = (uint16_t)(avail_idx - vq->last_avail_idx);
	if (pending == 0)
		return 0;
	if (pending > vq->size) {
		vq->broken = true; /* §2.7.13.3: never more than size outstanding */
		return -EINVAL;
	}
	head = vq->avail->ring[vq->last_avail_idx & (vq->size - 1)];
	if (head >= vq->size) {
		vq->broken = true;
		return -EINVAL;
	}
	vq->last_avail_idx++;
	req->head = head;
	req->nr_readable = req->nr_writable = 0;
	req->readable_len = req->writable_len = 0;
	err = walk_chain(vq, req);
	if (err) {
		virtq_push(vq, head, 0);
		return err;
	}
	req->readable = req->iov;
	req->writable = req->iov + req->nr_readable;
	return 1;
}

void virtq_push(struct virtq *vq, uint16_t head, uint32_t written)
{
	virtq_fill(vq, 0, head, written);
	virtq_flush(vq, 1);
}

void virtq_fill(struct virtq *vq, unsigned int offset, uint16_t head, uint32_t written)
{
	struct vring_used_elem *elem =
		&vq->used->ring[(uint16_t)(vq->used_idx + offset) & (vq->size - 1)];

	elem->id = head;
	elem->len = written;
}

void virtq_flush(struct virtq *vq, unsigned int n)
{
	vq->used_idx = (uint16_t)(vq->used_idx + n);
	store_release16(&vq->used->idx, vq->used_idx); /* the entries before the index */
}

void virtq_unpop(struct virtq *vq, uint16_t n)
{
	vq->last_avail_idx = (uint16_t)(vq->last_avail_idx - n);
}

bool virtq_prepare_interrupt(struct virtq *vq)
{
	uint16_t old = vq->signalled_used, new = vq->used_idx;
	bool valid = vq->signalled_used_valid;

	full_fence(); /* used->idx is visible before we read the driver's wishes */
	if (!vq->event_idx)
		return !(load_acquire16(&vq->avail->flags) & VRING_AVAIL_F_NO_INTERRUPT);
	vq->signalled_used = new;
	vq->signalled_used_valid = true;
	return !valid || vring_need_event(load_acquire16(used_event(vq)), new, old);
}

/* Asks for notifications of new buffers; true if some arrived before the driver could see that. */
static bool enable_notify(struct virtq *vq)
{
	vq->notify_off = false;
	if (vq->event_idx)
		store_release16(avail_event(vq), vq->last_avail_idx);
	else
		store_release16(&vq->used->flags, 0);
	full_fence(); /* publish before re-reading avail->idx, or a kick is lost */
	return load_acquire16(&vq->avail->idx) != vq->last_avail_idx;
}

/*
 * With EVENT_IDX the driver notifies only when avail->idx passes
 * avail_event, which moves only in enable_notify(): nothing to write.
 */
static void disable_notify(struct virtq *vq)
{
	vq->notify_off = true;
	if (!vq->event_idx)
		store_release16(&vq->used->flags, VRING_USED_F_NO_NOTIFY);
}

/* Bounds the re-checks when the driver keeps moving avail->idx under us. */
#define POP_RECHECKS 4

int virtq_pop_or_enable_notify(struct virtq *vq, struct virtq_req *req)
{
	for (unsigned int i = 0; i < POP_RECHECKS; i++) {
		int rc = virtq_pop(vq, req);

		if (rc != 0) {
			if (rc != -EINVAL && !vq->notify_off)
				disable_notify(vq);
			return rc;
		}
		if (!vq->ready || !enable_notify(vq))
			return 0;
	}
	return 0; /* only a driver that moves avail->idx back and forth gets here */
}
