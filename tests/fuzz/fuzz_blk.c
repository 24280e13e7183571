/*
 * Fuzzes virtio-blk's request parsing: the input becomes requests a hostile
 * driver puts on the queue (any split into buffers, any header, any
 * payload), served by a blk device over a small raw image, through the
 * virtio-mmio transport and the driver harness of the unit tests. Then the
 * rest of the input is thrown at the device's registers.
 *
 * Checked on every answer: it is for a request in flight, it claims no more
 * bytes than the request could take, its status byte is a real status, and
 * every request is answered unless the device asked for a reset.
 *
 * Input layout (missing bytes read as zero):
 *   0      bit 0 read-only disk, bit 1 no EVENT_IDX, bit 2 no INDIRECT_DESC,
 *          bits 4-6 log2(queue size)
 *   then requests, each:
 *   1      bits 0-2 buffers, bit 3 through an indirect table, bit 4 kick now,
 *          bit 5 a 16-byte header buffer first, bit 6 a 1-byte status buffer last
 *   2 each buffer: bit 14 device-writable; bit 15 clear: bytes (bits 0-12),
 *          set: bits 0-5 count 16-byte ranges (bit 13) or 512-byte sectors
 *   ...    the readable buffers' contents, in order (header, data, ranges)
 *   and once RAM runs short or after MAX_REQUESTS, register accesses:
 *   7 each offset (2), bit 0 write / bits 1-2 log2(width) (1), value (4)
 */
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <linux/virtio_blk.h>
#include <linux/virtio_config.h>
#include <linux/virtio_mmio.h>
#include <linux/virtio_ring.h>

#include "disk/disk.h"
#include "virtio/blk.h"
#include "fuzz_disk.h"
#include "fuzz_input.h"
#include "virtio_harness.h"

#define RAM_SIZE (128u << 10)
#define DISK_SIZE (64u << 10)
#define MAX_REQUESTS 64
#define MAX_REGISTER_OPS 16
#define UNWRITTEN 0xee

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct disk *disks[2]; /* read-write, read-only */

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	disks[0] = fuzz_disk_open(false, DISK_SIZE);
	disks[1] = fuzz_disk_open(true, DISK_SIZE);
	return 0;
}

/* What the driver remembers of a request in flight, by head. */
struct in_flight {
	bool busy;
	uint32_t writable_len;
	uint64_t status_gpa; /* the last writable byte */
};

struct run {
	struct harness h;
	struct in_flight reqs[256];
	unsigned int descs_in_flight;
};

static void drain(struct run *r)
{
	uint32_t id, len;

	while (harness_get_used(&r->h, 0, &id, &len)) {
		struct in_flight *f = id < 256 ? &r->reqs[id] : NULL;

		if (!f || !f->busy || len > f->writable_len)
			abort();
		if (len > 0) {
			uint8_t status = *(uint8_t *)harness_ptr(&r->h, f->status_gpa);

			if (status != VIRTIO_BLK_S_OK && status != VIRTIO_BLK_S_IOERR &&
			    status != VIRTIO_BLK_S_UNSUPP)
				abort();
		}
		f->busy = false;
	}
	r->descs_in_flight = 0;
	for (unsigned int i = 0; i < 256; i++)
		if (r->reqs[i].busy)
			r->descs_in_flight = r->h.queues[0].size; /* unanswered: stop adding */
}

static void kick_and_drain(struct run *r)
{
	harness_kick(&r->h, 0);
	drain(r);
}

static uint64_t ram_left(const struct run *r)
{
	return HARNESS_RAM_GPA + r->h.ram_size - r->h.alloc_next;
}

/* A buffer length: bytes, 16-byte discard ranges or 512-byte sectors. */
static struct harness_buf buf_spec(struct input *in)
{
	uint16_t x = (uint16_t)get_n(in, 2);
	struct harness_buf b = { .writable = x & 0x4000 };

	if (!(x & 0x8000))
		b.len = x & 0x1fff;
	else if (x & 0x2000)
		b.len = (x & 0x3f) * 16u;
	else
		b.len = (x & 0x3f) * 512u;
	return b;
}

/* Builds one request from the input; false when the input or RAM ran out. */
static bool add_request(struct run *r, struct input *in)
{
	uint8_t op = get8(in);
	bool indirect = op & 8;
	struct harness_buf bufs[9];
	unsigned int n = 0, extra = op & 7;
	uint16_t size = r->h.queues[0].size;
	struct in_flight f = { .busy = true };
	uint64_t need = 0;
	uint16_t head;

	if (!in->left)
		return false;
	if (op & 32) /* Linux's layout: a header buffer of its own */
		bufs[n++] = (struct harness_buf){ .len = sizeof(struct virtio_blk_outhdr) };
	for (unsigned int i = 0; i < extra; i++)
		bufs[n++] = buf_spec(in);
	if (op & 64) /* and a status byte of its own */
		bufs[n++] = (struct harness_buf){ .len = 1, .writable = true };
	if (n == 0)
		return true;
	if (!indirect && n > size)
		n = size;
	for (unsigned int i = 0; i < n; i++)
		need += bufs[i].len + 1;
	if (need + 16 * n + 16 > ram_left(r))
		return false;
	for (unsigned int i = 0; i < n; i++) {
		uint8_t *p;

		/* Byte-aligned on purpose: the device must not care. */
		bufs[i].gpa = harness_alloc(&r->h, bufs[i].len ? bufs[i].len : 1, 1);
		p = harness_ptr(&r->h, bufs[i].gpa);
		if (bufs[i].writable) {
			memset(p, UNWRITTEN, bufs[i].len);
			f.writable_len += bufs[i].len;
			if (bufs[i].len)
				f.status_gpa = bufs[i].gpa + bufs[i].len - 1;
		} else {
			for (uint32_t j = 0; j < bufs[i].len; j++)
				p[j] = get8(in);
		}
	}
	if (r->descs_in_flight + (indirect ? 1 : n) > size) {
		kick_and_drain(r);
		if (r->descs_in_flight)
			return false;
	}
	/*
	 * Some of these are malformed on purpose (indirect without the feature,
	 * a readable buffer after a writable one): answered with 0 bytes.
	 */
	head = indirect ? harness_add_indirect(&r->h, 0, bufs, n) : harness_add(&r->h, 0, bufs, n);
	r->reqs[head] = f;
	r->descs_in_flight += indirect ? 1 : n;
	if (op & 16)
		kick_and_drain(r);
	return true;
}

/* Register accesses anywhere in the window, at any width. */
static void poke_registers(struct run *r, struct input *in)
{
	for (unsigned int i = 0; i < MAX_REGISTER_OPS && in->left; i++) {
		uint64_t offset = get_n(in, 2) % VIRTIO_MMIO_WINDOW;
		uint8_t how = get8(in);
		uint32_t width = 1u << ((how >> 1) & 3);
		uint64_t value = get_n(in, 4);

		if (offset + width > VIRTIO_MMIO_WINDOW)
			continue;
		/*
		 * Queue addresses keep the alignment §2.7 requires: virtio_start_queues()
		 * does not refuse misaligned rings yet, and using them is undefined
		 * behaviour (see test_virtq_misaligned_rings_need_reset_at_driver_ok).
		 * Drop this once the device refuses them.
		 */
		if (offset == VIRTIO_MMIO_QUEUE_DESC_LOW)
			value &= ~15ULL;
		else if (offset == VIRTIO_MMIO_QUEUE_AVAIL_LOW)
			value &= ~1ULL;
		else if (offset == VIRTIO_MMIO_QUEUE_USED_LOW)
			value &= ~3ULL;
		if (how & 1)
			bus_write(&r->h.bus, HARNESS_MMIO_BASE + offset, &value, width);
		else
			bus_read(&r->h.bus, HARNESS_MMIO_BASE + offset, &value, width);
	}
	/* Whatever state that left, a kick must be harmless. */
	harness_write_reg(&r->h, VIRTIO_MMIO_QUEUE_NOTIFY, 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct input in = { data, size };
	uint8_t cfg = get8(&in);
	static struct run run;
	struct run *r = &run;
	struct virtio_blk *blk;
	uint64_t wanted = ~0ULL;

	memset(r, 0, sizeof(*r));
	harness_init(&r->h, RAM_SIZE);
	blk = virtio_blk_create(disks[cfg & 1], "fuzz-serial-0123456789", &r->h.mem, NULL);
	if (!blk)
		abort();
	harness_attach(&r->h, virtio_blk_device(blk));
	if (cfg & 2)
		wanted &= ~(1ULL << VIRTIO_RING_F_EVENT_IDX);
	if (cfg & 4)
		wanted &= ~(1ULL << VIRTIO_RING_F_INDIRECT_DESC);
	if (harness_start(&r->h, wanted, 1, (uint16_t)(1u << ((cfg >> 4) & 7))) < 0)
		abort();

	for (unsigned int i = 0; i < MAX_REQUESTS; i++)
		if (!add_request(r, &in))
			break;
	kick_and_drain(r);
	if (r->descs_in_flight && !(harness_status(&r->h) & VIRTIO_CONFIG_S_NEEDS_RESET))
		abort(); /* a request was never answered */
	poke_registers(r, &in);

	virtio_blk_destroy(blk);
	harness_destroy(&r->h);
	return 0;
}
