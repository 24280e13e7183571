/*
 * Fuzzes the split virtqueue: the input is a hostile driver's whole world,
 * a ring layout and the bytes of guest RAM. The target pops everything
 * poppable, checks each request it gets against the rules in queue.h,
 * touches every byte of every buffer (so ASan sees any iovec that leaves
 * RAM) and pushes it back, then does it again after the "driver" publishes
 * more. Nothing may crash, read or write outside the fake RAM, or loop.
 *
 * Input layout (little endian; missing bytes read as zero):
 *   0      flags: bit 0 EVENT_IDX, bit 1 INDIRECT_DESC, bits 4-7 log2(size) % 9
 *   1-2    descriptor table offset   \
 *   3-4    avail ring offset          > from RAM_GPA; RAM ends at RAM_GPA + 40 KiB,
 *   5-6    used ring offset          /  so some layouts reach past it
 *   7-8    starting last_avail_idx / used_idx (a queue that has run a while)
 *   9-10   how far avail->idx moves before the second round
 *   11     written: 0xff pushes the writable length, else this many bytes
 *   12..   guest RAM contents: region A (32 KiB), then region B (8 KiB)
 *
 * Region B sits right after region A in guest addresses but is a separate
 * allocation, so a buffer straddling them must be refused.
 */
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "virtio/queue.h"
#include "vmm/guest_mem.h"

#define RAM_GPA 0x10000ULL
#define REGION_A_SIZE (32u << 10)
#define REGION_B_SIZE (8u << 10)
#define HEADER_SIZE 12

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct world {
	uint8_t *a, *b;
	struct guest_mem mem;
	struct virtq vq;
	struct virtq_req req;
	struct iovec iov[VIRTQ_MAX_SIZE];
	uint64_t checksum;
};

static struct world *world_get(void)
{
	static struct world *w;

	if (!w) {
		w = calloc(1, sizeof(*w));
		if (!w)
			abort();
		/* Exactly sized allocations: ASan's redzones sit right at the ends of RAM. */
		w->a = malloc(REGION_A_SIZE);
		w->b = malloc(REGION_B_SIZE);
		if (!w->a || !w->b)
			abort();
		virtq_req_init(&w->req, w->iov, VIRTQ_MAX_SIZE);
	}
	return w;
}

static uint16_t get16(const uint8_t *data, size_t size, size_t at)
{
	uint16_t v = 0;

	if (at < size)
		v = data[at];
	if (at + 1 < size)
		v |= (uint16_t)(data[at + 1] << 8);
	return v;
}

/* The one thing a host pointer from the queue may be: inside region A or B. */
static bool in_region(const struct world *w, const void *p, size_t len)
{
	const uint8_t *q = p;

	return (q >= w->a && len <= REGION_A_SIZE && q - w->a <= (ptrdiff_t)(REGION_A_SIZE - len)) ||
	       (q >= w->b && len <= REGION_B_SIZE && q - w->b <= (ptrdiff_t)(REGION_B_SIZE - len));
}

static void check_request(struct world *w)
{
	struct virtq_req *req = &w->req;
	uint64_t readable = 0, writable = 0;
	uint8_t scratch[64];
	struct iovec slice[8];

	if (req->nr_readable + req->nr_writable > req->iov_cap || req->head >= w->vq.size ||
	    req->readable != req->iov || req->writable != req->iov + req->nr_readable)
		abort();
	for (unsigned int i = 0; i < req->nr_readable; i++) {
		const uint8_t *p = req->readable[i].iov_base;

		if (req->readable[i].iov_len == 0 || !in_region(w, p, req->readable[i].iov_len))
			abort();
		for (size_t j = 0; j < req->readable[i].iov_len; j++)
			w->checksum += p[j];
		readable += req->readable[i].iov_len;
	}
	for (unsigned int i = 0; i < req->nr_writable; i++) {
		if (req->writable[i].iov_len == 0 ||
		    !in_region(w, req->writable[i].iov_base, req->writable[i].iov_len))
			abort();
		memset(req->writable[i].iov_base, 0xa5, req->writable[i].iov_len);
		writable += req->writable[i].iov_len;
	}
	if (readable != req->readable_len || writable != req->writable_len)
		abort();
	/* The byte-wise helpers, at offsets inside and past the ends. */
	iov_read(req->readable, req->nr_readable, req->readable_len / 2, scratch, sizeof(scratch));
	iov_write(req->writable, req->nr_writable, req->writable_len - req->writable_len / 3,
		  scratch, sizeof(scratch));
	iov_read(req->readable, req->nr_readable, (size_t)req->readable_len + 1, scratch, 1);
	if (iov_slice(req->writable, req->nr_writable, 1, req->writable_len, slice, 8) > 8)
		abort();
}

/* Pops until the ring is empty or broken; returns how many entries it consumed. */
static unsigned int pop_all(struct world *w, uint8_t written)
{
	struct virtq *vq = &w->vq;
	uint16_t used_before = vq->used_idx;
	unsigned int consumed = 0;
	int rc;

	/*
	 * At most size entries are outstanding at once, but buffers and rings
	 * may alias avail->idx, so what we write can publish more: bound the
	 * loop rather than insist that it ends by itself.
	 */
	for (unsigned int i = 0; i < 4u * vq->size + 8; i++) {
		rc = virtq_pop_or_enable_notify(vq, &w->req);
		if (rc == 0)
			break;
		if (rc == -EINVAL) {
			if (!vq->broken)
				abort();
			return consumed;
		}
		consumed++;
		if (rc == 1) {
			check_request(w);
			virtq_push(vq, w->req.head,
				   written == 0xff ? w->req.writable_len : written);
		} else if (rc != -EBADMSG) {
			abort();
		}
	}
	/* Every consumed entry was answered, good or bad. */
	if ((uint16_t)(vq->used_idx - used_before) != consumed)
		abort();
	virtq_prepare_interrupt(vq);
	return consumed;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct world *w = world_get();
	struct virtq *vq = &w->vq;
	uint8_t flags = size ? data[0] : 0;
	const uint8_t *ram = size > HEADER_SIZE ? data + HEADER_SIZE : NULL;
	size_t ram_len = size > HEADER_SIZE ? size - HEADER_SIZE : 0;
	uint16_t start = get16(data, size, 7);
	uint8_t written = size > 11 ? data[11] : 0xff;

	memset(w->a, 0, REGION_A_SIZE);
	memset(w->b, 0, REGION_B_SIZE);
	if (ram) {
		memcpy(w->a, ram, ram_len < REGION_A_SIZE ? ram_len : REGION_A_SIZE);
		if (ram_len > REGION_A_SIZE)
			memcpy(w->b, ram + REGION_A_SIZE,
			       ram_len - REGION_A_SIZE < REGION_B_SIZE ? ram_len - REGION_A_SIZE
								       : REGION_B_SIZE);
	}
	guest_mem_init_empty(&w->mem);
	guest_mem_add_region(&w->mem, RAM_GPA, REGION_A_SIZE, w->a);
	guest_mem_add_region(&w->mem, RAM_GPA + REGION_A_SIZE, REGION_B_SIZE, w->b);

	virtq_reset(vq);
	vq->size = (uint16_t)(1u << ((flags >> 4) % 9));
	vq->ready = true;
	vq->event_idx = flags & 1;
	vq->indirect = flags & 2;
	/*
	 * Rounded to the alignment §2.7 requires: virtq_start() does not refuse
	 * misaligned rings yet, and using them is undefined behaviour that UBSan
	 * stops on at once (see test_virtq_misaligned_rings_need_reset_at_driver_ok).
	 * Drop the rounding once virtq_start() checks alignment.
	 */
	vq->desc_gpa = RAM_GPA + (get16(data, size, 1) & ~15u);
	vq->avail_gpa = RAM_GPA + (get16(data, size, 3) & ~1u);
	vq->used_gpa = RAM_GPA + (get16(data, size, 5) & ~3u);
	if (virtq_start(vq, &w->mem) < 0)
		return 0;
	vq->last_avail_idx = vq->used_idx = start;

	pop_all(w, written);
	if (!vq->broken) {
		/* The driver publishes more, by moving avail->idx (the entries are in RAM already). */
		vq->avail->idx = (uint16_t)(vq->avail->idx + get16(data, size, 9));
		pop_all(w, written);
	}
	return 0;
}
