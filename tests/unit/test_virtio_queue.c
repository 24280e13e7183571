/*
 * The split virtqueue, driven through the harness the way a guest drives it:
 * chains become the right iovecs, indirect tables, notification suppression
 * both ways (EVENT_IDX and the flags), and every hostile ring we could
 * think of. A malformed chain must be answered with 0 bytes and leave the
 * queue working; a broken ring must put the device in DEVICE_NEEDS_RESET.
 * None may crash or reach outside the fake RAM (run under ASan as well).
 *
 * The device under test is a probe: it pops everything, records what each
 * pop gave, touches every byte of every buffer (so ASan sees a bad iovec),
 * fills the writable ones and pushes them back whole.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <linux/virtio_config.h>
#include <linux/virtio_mmio.h>
#include <linux/virtio_ring.h>

#include "virtio/device.h"
#include "virtio/queue.h"
#include "virtio_harness.h"

#define PROBE_QUEUE_SIZE 256
#define PROBE_MAX_POPS 64
#define PROBE_MAX_IOV 16
#define PROBE_FILL 0xd5

#define F(bit) (1ULL << (bit))
#define BASE_FEATURES (F(VIRTIO_F_VERSION_1) | F(VIRTIO_RING_F_INDIRECT_DESC))

struct probe_pop {
	int rc;
	uint16_t head;
	unsigned int nr_readable, nr_writable;
	uint32_t readable_len, writable_len;
	struct iovec iov[PROBE_MAX_IOV]; /* readable first, then writable */
};

struct probe {
	struct virtio_device vdev;
	struct virtq_req req;
	struct iovec iov[VIRTQ_MAX_SIZE]; /* req's buffers: as many as a chain may have */
	unsigned int nr_pops;
	struct probe_pop pops[PROBE_MAX_POPS];
	unsigned int notifies;
	uint64_t checksum; /* of every readable byte: makes the reads real */
};

struct ctx {
	struct harness h;
	struct probe probe;
};

static void probe_record(struct probe *p, int rc)
{
	struct probe_pop *pop = &p->pops[p->nr_pops % PROBE_MAX_POPS];
	struct virtq_req *req = &p->req;

	p->nr_pops++;
	memset(pop, 0, sizeof(*pop));
	pop->rc = rc;
	if (rc != 1)
		return;
	pop->head = req->head;
	pop->nr_readable = req->nr_readable;
	pop->nr_writable = req->nr_writable;
	pop->readable_len = req->readable_len;
	pop->writable_len = req->writable_len;
	for (unsigned int i = 0; i < req->nr_readable + req->nr_writable && i < PROBE_MAX_IOV; i++)
		pop->iov[i] = req->iov[i];
}

/* Touches every byte the request hands the device. */
static void probe_serve(struct probe *p)
{
	struct virtq_req *req = &p->req;

	for (unsigned int i = 0; i < req->nr_readable; i++) {
		const uint8_t *b = req->readable[i].iov_base;

		for (size_t j = 0; j < req->readable[i].iov_len; j++)
			p->checksum += b[j];
	}
	for (unsigned int i = 0; i < req->nr_writable; i++)
		memset(req->writable[i].iov_base, PROBE_FILL, req->writable[i].iov_len);
}

/* The loop every device runs (see blk.c). */
static void probe_queue_notify(struct virtio_device *vdev, unsigned int q)
{
	struct probe *p = vdev->priv;
	struct virtq *vq = &vdev->queues[q];
	int rc;

	p->notifies++;
	while ((rc = virtq_pop_or_enable_notify(vq, &p->req)) != 0) {
		probe_record(p, rc);
		if (rc == -EINVAL)
			return;
		if (rc == 1) {
			probe_serve(p);
			virtq_push(vq, p->req.head, p->req.writable_len);
		}
	}
	virtio_queue_interrupt(vdev, q);
}

static void probe_config_read(struct virtio_device *vdev, uint32_t offset, void *data,
			      uint32_t size)
{
	memset(data, 0, size);
}

static const struct virtio_device_ops probe_ops = {
	.name = "probe",
	.device_id = 0x42,
	.nr_queues = 1,
	.queue_size = PROBE_QUEUE_SIZE,
	.config_size = 8,
	.config_read = probe_config_read,
	.queue_notify = probe_queue_notify,
};

static int setup(void **state)
{
	struct ctx *c = calloc(1, sizeof(*c));

	if (!c)
		return -1;
	harness_init(&c->h, 0);
	virtio_device_init(&c->probe.vdev, &probe_ops, &c->probe, &c->h.mem, 0);
	virtq_req_init(&c->probe.req, c->probe.iov, VIRTQ_MAX_SIZE);
	harness_attach(&c->h, &c->probe.vdev);
	*state = c;
	return 0;
}

static int teardown(void **state)
{
	struct ctx *c = *state;

	virtio_device_destroy(&c->probe.vdev);
	harness_destroy(&c->h);
	free(c);
	return 0;
}

/* Negotiates wanted, sets up queue 0 with size entries, DRIVER_OK; drops setup's interrupts. */
static void start(struct ctx *c, uint64_t wanted, uint16_t size)
{
	assert_int_equal(harness_start(&c->h, wanted, 1, size), 0);
	assert_false(harness_status(&c->h) & VIRTIO_CONFIG_S_NEEDS_RESET);
	harness_interrupts(&c->h);
}

static uint64_t buf(struct ctx *c, uint32_t len, uint8_t fill)
{
	uint64_t gpa = harness_alloc(&c->h, len, 8);

	memset(harness_ptr(&c->h, gpa), fill, len);
	return gpa;
}

static struct probe_pop *last_pop(struct ctx *c)
{
	assert_true(c->probe.nr_pops > 0);
	return &c->probe.pops[(c->probe.nr_pops - 1) % PROBE_MAX_POPS];
}

/* The one used entry the last kick produced: its id must be head; returns its length. */
static uint32_t take_used(struct ctx *c, uint16_t head)
{
	uint32_t id, len;

	assert_true(harness_get_used(&c->h, 0, &id, &len));
	assert_int_equal(id, head);
	assert_false(harness_get_used(&c->h, 0, &id, &len));
	return len;
}

/* A chain the device must refuse: answered with 0 bytes, and the queue still works. */
static void assert_chain_refused(struct ctx *c, uint16_t head)
{
	unsigned int pops = c->probe.nr_pops;
	struct harness_buf ok[] = { { buf(c, 4, 1), 4, false }, { buf(c, 4, 0), 4, true } };
	uint16_t next_head;

	assert_int_equal(c->probe.nr_pops, pops);
	harness_kick(&c->h, 0);
	assert_int_equal(c->probe.nr_pops, pops + 1);
	assert_int_equal(last_pop(c)->rc, -EBADMSG);
	assert_int_equal(take_used(c, head), 0);
	assert_false(harness_status(&c->h) & VIRTIO_CONFIG_S_NEEDS_RESET);

	/* The next well-formed request goes through. */
	next_head = harness_add(&c->h, 0, ok, 2);
	harness_kick(&c->h, 0);
	assert_int_equal(last_pop(c)->rc, 1);
	assert_int_equal(take_used(c, next_head), 4);
}

/* The ring is broken: NEEDS_RESET, a config interrupt, and nothing more is popped. */
static void assert_needs_reset(struct ctx *c)
{
	uint32_t status = harness_status(&c->h);

	assert_true(status & VIRTIO_CONFIG_S_NEEDS_RESET);
	assert_true(harness_interrupts(&c->h) >= 1);
	assert_true(harness_read_reg(&c->h, VIRTIO_MMIO_INTERRUPT_STATUS) & VIRTIO_MMIO_INT_CONFIG);
	assert_true(harness_read_reg(&c->h, VIRTIO_MMIO_CONFIG_GENERATION) > 0);
}

/* ---- well-formed rings ---- */

static void test_virtq_chain_becomes_readable_and_writable_iovecs(void **state)
{
	struct ctx *c = *state;
	uint64_t r0 = buf(c, 16, 0x11), r1 = buf(c, 100, 0x22);
	uint64_t w0 = buf(c, 7, 0), w1 = buf(c, 512, 0);
	struct harness_buf bufs[] = {
		{ r0, 16, false }, { r1, 100, false }, { w0, 7, true }, { w1, 512, true },
	};
	struct probe_pop *pop;
	uint16_t head;

	start(c, BASE_FEATURES, 16);
	head = harness_add(&c->h, 0, bufs, 4);
	harness_kick(&c->h, 0);

	assert_int_equal(c->probe.nr_pops, 1);
	pop = last_pop(c);
	assert_int_equal(pop->rc, 1);
	assert_int_equal(pop->head, head);
	assert_int_equal(pop->nr_readable, 2);
	assert_int_equal(pop->nr_writable, 2);
	assert_int_equal(pop->readable_len, 116);
	assert_int_equal(pop->writable_len, 519);
	for (unsigned int i = 0; i < 4; i++) {
		assert_ptr_equal(pop->iov[i].iov_base, harness_ptr(&c->h, bufs[i].gpa));
		assert_int_equal(pop->iov[i].iov_len, bufs[i].len);
	}
	assert_int_equal(c->probe.checksum, 16 * 0x11 + 100 * 0x22);
	assert_int_equal(take_used(c, head), 519);
	assert_int_equal(((uint8_t *)harness_ptr(&c->h, w1))[511], PROBE_FILL);
}

static void test_virtq_chain_may_wrap_around_the_descriptor_table(void **state)
{
	struct ctx *c = *state;
	struct harness_buf bufs[] = {
		{ buf(c, 8, 1), 8, false }, { buf(c, 8, 1), 8, false }, { buf(c, 8, 0), 8, true },
	};
	uint16_t head;

	start(c, BASE_FEATURES, 4);
	c->h.queues[0].next_desc = 3; /* descriptors 3, 0, 1 */
	head = harness_add(&c->h, 0, bufs, 3);
	assert_int_equal(head, 3);
	harness_kick(&c->h, 0);
	assert_int_equal(last_pop(c)->rc, 1);
	assert_int_equal(last_pop(c)->readable_len, 16);
	assert_int_equal(take_used(c, 3), 8);
}

static void test_virtq_indirect_table_becomes_iovecs(void **state)
{
	struct ctx *c = *state;
	struct harness_buf bufs[] = {
		{ buf(c, 16, 3), 16, false }, { buf(c, 4096, 0), 4096, true },
		{ buf(c, 1, 0), 1, true },
	};
	struct probe_pop *pop;
	uint16_t head;

	start(c, BASE_FEATURES, 16);
	head = harness_add_indirect(&c->h, 0, bufs, 3);
	harness_kick(&c->h, 0);
	pop = last_pop(c);
	assert_int_equal(pop->rc, 1);
	assert_int_equal(pop->nr_readable, 1);
	assert_int_equal(pop->nr_writable, 2);
	assert_int_equal(pop->readable_len, 16);
	assert_int_equal(pop->writable_len, 4097);
	for (unsigned int i = 0; i < 3; i++)
		assert_ptr_equal(pop->iov[i].iov_base, harness_ptr(&c->h, bufs[i].gpa));
	assert_int_equal(take_used(c, head), 4097);
}

static void test_virtq_indirect_table_may_follow_direct_descriptors(void **state)
{
	struct ctx *c = *state;
	uint64_t r = buf(c, 16, 1), w = buf(c, 32, 0);
	uint64_t table = harness_alloc(&c->h, 16, 16);

	start(c, BASE_FEATURES, 8);
	*(struct vring_desc *)harness_ptr(&c->h, table) =
		(struct vring_desc){ .addr = w, .len = 32, .flags = VRING_DESC_F_WRITE };
	harness_set_desc(&c->h, 0, 0, r, 16, VRING_DESC_F_NEXT, 1);
	harness_set_desc(&c->h, 0, 1, table, 16, VRING_DESC_F_INDIRECT, 0);
	harness_publish(&c->h, 0, 0);
	harness_kick(&c->h, 0);
	assert_int_equal(last_pop(c)->rc, 1);
	assert_int_equal(last_pop(c)->readable_len, 16);
	assert_int_equal(last_pop(c)->writable_len, 32);
	assert_int_equal(take_used(c, 0), 32);
}

static void test_virtq_chain_of_exactly_queue_size_is_accepted(void **state)
{
	struct ctx *c = *state;
	struct harness_buf bufs[8];

	start(c, BASE_FEATURES, 8);
	for (unsigned int i = 0; i < 8; i++)
		bufs[i] = (struct harness_buf){ buf(c, 4, 0), 4, i >= 4 };
	harness_add(&c->h, 0, bufs, 8);
	harness_kick(&c->h, 0);
	assert_int_equal(last_pop(c)->rc, 1);
	assert_int_equal(last_pop(c)->nr_readable, 4);
	assert_int_equal(last_pop(c)->nr_writable, 4);
	assert_int_equal(take_used(c, 0), 16);
}

static void test_virtq_serves_every_request_of_one_kick_in_order(void **state)
{
	struct ctx *c = *state;
	uint16_t heads[5];

	start(c, BASE_FEATURES, 8);
	for (unsigned int i = 0; i < 5; i++) {
		struct harness_buf b[] = { { buf(c, 4, 0), 4, true } };

		heads[i] = harness_add(&c->h, 0, b, 1);
	}
	harness_kick(&c->h, 0);
	assert_int_equal(c->probe.nr_pops, 5);
	for (unsigned int i = 0; i < 5; i++) {
		uint32_t id, len;

		assert_true(harness_get_used(&c->h, 0, &id, &len));
		assert_int_equal(id, heads[i]);
		assert_int_equal(len, 4);
	}
}

/* avail->idx and used->idx are free-running 16-bit counters (§2.7.6, §2.7.8). */
static void test_virtq_indices_wrap_at_65536(void **state)
{
	struct ctx *c = *state;
	uint64_t w = buf(c, 4, 0);

	start(c, BASE_FEATURES, 8);
	for (unsigned int round = 0; round < 65536 / 8 + 2; round++) {
		for (unsigned int i = 0; i < 8; i++) {
			struct harness_buf b[] = { { w, 4, true } };

			harness_add(&c->h, 0, b, 1);
		}
		harness_kick(&c->h, 0);
		for (unsigned int i = 0; i < 8; i++) {
			uint32_t id, len;

			if (!harness_get_used(&c->h, 0, &id, &len))
				fail_msg("round %u: used entry %u missing", round, i);
			assert_int_equal(len, 4);
		}
	}
	assert_int_equal(c->probe.nr_pops, (65536 / 8 + 2) * 8);
	assert_false(harness_status(&c->h) & VIRTIO_CONFIG_S_NEEDS_RESET);
	assert_int_equal(harness_used(&c->h, 0)->idx, (uint16_t)((65536 / 8 + 2) * 8));
}

static void test_virtq_skips_zero_length_descriptors(void **state)
{
	struct ctx *c = *state;
	/* A zero-length buffer's address is never used: even one outside RAM is harmless. */
	struct harness_buf bufs[] = {
		{ 0, 0, false }, { buf(c, 8, 1), 8, false }, { buf(c, 8, 0), 0, true },
		{ buf(c, 8, 0), 8, true }, { 0xffffffffffffff00ULL, 0, true },
	};
	uint16_t head;

	start(c, BASE_FEATURES, 8);
	head = harness_add(&c->h, 0, bufs, 5);
	harness_kick(&c->h, 0);
	assert_int_equal(last_pop(c)->rc, 1);
	assert_int_equal(last_pop(c)->nr_readable, 1);
	assert_int_equal(last_pop(c)->nr_writable, 1);
	assert_ptr_equal(last_pop(c)->iov[0].iov_base, harness_ptr(&c->h, bufs[1].gpa));
	assert_ptr_equal(last_pop(c)->iov[1].iov_base, harness_ptr(&c->h, bufs[3].gpa));
	assert_int_equal(take_used(c, head), 8);
}

static void test_virtq_buffer_may_end_at_last_byte_of_ram(void **state)
{
	struct ctx *c = *state;
	uint64_t end = HARNESS_RAM_GPA + c->h.ram_size;
	struct harness_buf bufs[] = { { end - 64, 64, true } };
	uint16_t head;

	start(c, BASE_FEATURES, 8);
	head = harness_add(&c->h, 0, bufs, 1);
	harness_kick(&c->h, 0);
	assert_int_equal(last_pop(c)->rc, 1);
	assert_int_equal(take_used(c, head), 64);
}

/* ---- notification suppression ---- */

static void test_virtq_event_idx_publishes_avail_event(void **state)
{
	struct ctx *c = *state;

	start(c, BASE_FEATURES | F(VIRTIO_RING_F_EVENT_IDX), 8);
	for (unsigned int i = 0; i < 3; i++) {
		struct harness_buf b[] = { { buf(c, 4, 0), 4, true } };

		harness_add(&c->h, 0, b, 1);
	}
	harness_kick(&c->h, 0);
	assert_int_equal(c->probe.nr_pops, 3);
	/* "Kick me when you add the entry after the 3 I have seen." */
	assert_int_equal(*harness_avail_event(&c->h, 0), 3);
	/* With EVENT_IDX the device leaves the flag alone (§2.7.10). */
	assert_int_equal(harness_used(&c->h, 0)->flags, 0);
}

static void add_one_and_kick(struct ctx *c)
{
	struct harness_buf b[] = { { buf(c, 4, 0), 4, true } };

	harness_add(&c->h, 0, b, 1);
	harness_kick(&c->h, 0);
}

static void test_virtq_event_idx_interrupts_only_when_used_event_passed(void **state)
{
	struct ctx *c = *state;
	uint16_t *used_event;

	start(c, BASE_FEATURES | F(VIRTIO_RING_F_EVENT_IDX), 16);
	used_event = harness_used_event(&c->h, 0);

	/* used_event 0: interrupt once used entry 0 is there. */
	add_one_and_kick(c);
	assert_int_equal(harness_interrupts(&c->h), 1);

	/* "Interrupt me after used entry 4": entries 1..3 come silently. */
	*used_event = 4;
	for (unsigned int i = 1; i <= 3; i++) {
		add_one_and_kick(c);
		assert_int_equal(harness_interrupts(&c->h), 0);
	}
	add_one_and_kick(c); /* entry 4 */
	assert_int_equal(harness_interrupts(&c->h), 1);
	add_one_and_kick(c); /* entry 5: used_event is behind, no interrupt */
	assert_int_equal(harness_interrupts(&c->h), 0);

	/* A batch that crosses used_event gives exactly one interrupt. */
	*used_event = 7;
	for (unsigned int i = 0; i < 3; i++) {
		struct harness_buf b[] = { { buf(c, 4, 0), 4, true } };

		harness_add(&c->h, 0, b, 1);
	}
	harness_kick(&c->h, 0);
	assert_int_equal(harness_pending_used(&c->h, 0), 9);
	assert_int_equal(harness_interrupts(&c->h), 1);
	assert_true(harness_ack_interrupt(&c->h) & VIRTIO_MMIO_INT_VRING);
}

static void test_virtq_no_interrupt_flag_suppresses_interrupts(void **state)
{
	struct ctx *c = *state;
	struct vring_avail *avail;

	start(c, BASE_FEATURES, 8);
	avail = harness_avail(&c->h, 0);

	add_one_and_kick(c);
	assert_int_equal(harness_interrupts(&c->h), 1);

	avail->flags = VRING_AVAIL_F_NO_INTERRUPT;
	add_one_and_kick(c);
	add_one_and_kick(c);
	assert_int_equal(harness_interrupts(&c->h), 0);
	assert_int_equal(harness_pending_used(&c->h, 0), 3);

	avail->flags = 0;
	add_one_and_kick(c);
	assert_int_equal(harness_interrupts(&c->h), 1);
	/* Idle again: the device wants to hear about new buffers. */
	assert_int_equal(harness_used(&c->h, 0)->flags & VRING_USED_F_NO_NOTIFY, 0);
}

/* ---- hostile chains: refused one at a time, the queue keeps working ---- */

static void test_virtq_rejects_descriptor_loop(void **state)
{
	struct ctx *c = *state;
	uint64_t b = buf(c, 8, 0);

	start(c, BASE_FEATURES, 16);
	harness_set_desc(&c->h, 0, 0, b, 8, VRING_DESC_F_NEXT, 1);
	harness_set_desc(&c->h, 0, 1, b, 8, VRING_DESC_F_NEXT, 0); /* back to 0 */
	harness_publish(&c->h, 0, 0);
	assert_chain_refused(c, 0);
}

static void test_virtq_rejects_descriptor_pointing_at_itself(void **state)
{
	struct ctx *c = *state;

	start(c, BASE_FEATURES, 16);
	harness_set_desc(&c->h, 0, 5, buf(c, 8, 0), 8, VRING_DESC_F_NEXT | VRING_DESC_F_WRITE, 5);
	harness_publish(&c->h, 0, 5);
	assert_chain_refused(c, 5);
}

static void test_virtq_rejects_chain_longer_than_queue_size(void **state)
{
	struct ctx *c = *state;
	uint64_t b = buf(c, 8, 0);

	/* 0 -> 1 -> ... -> 7 -> 0: every descriptor once, then one more. */
	start(c, BASE_FEATURES, 8);
	for (uint16_t i = 0; i < 8; i++)
		harness_set_desc(&c->h, 0, i, b, 8, VRING_DESC_F_NEXT, (uint16_t)((i + 1) % 8));
	harness_publish(&c->h, 0, 0);
	assert_chain_refused(c, 0);
}

static void test_virtq_rejects_next_index_past_table(void **state)
{
	struct ctx *c = *state;

	start(c, BASE_FEATURES, 8);
	harness_set_desc(&c->h, 0, 0, buf(c, 8, 0), 8, VRING_DESC_F_NEXT, 8);
	harness_publish(&c->h, 0, 0);
	assert_chain_refused(c, 0);
}

static void test_virtq_rejects_readable_after_writable(void **state)
{
	struct ctx *c = *state;
	struct harness_buf bufs[] = { { buf(c, 8, 0), 8, true }, { buf(c, 8, 0), 8, false } };

	start(c, BASE_FEATURES, 8);
	assert_chain_refused(c, harness_add(&c->h, 0, bufs, 2));
}

static void test_virtq_rejects_buffer_below_ram(void **state)
{
	struct ctx *c = *state;
	struct harness_buf bufs[] = { { HARNESS_RAM_GPA - 8, 8, false } };

	start(c, BASE_FEATURES, 8);
	assert_chain_refused(c, harness_add(&c->h, 0, bufs, 1));
}

static void test_virtq_rejects_buffer_past_end_of_ram(void **state)
{
	struct ctx *c = *state;
	uint64_t end = HARNESS_RAM_GPA + c->h.ram_size;
	struct harness_buf straddles[] = { { end - 8, 9, true } };
	struct harness_buf after[] = { { end, 1, true } };
	struct harness_buf far[] = { { 1ULL << 40, 4096, true } };

	start(c, BASE_FEATURES, 8);
	assert_chain_refused(c, harness_add(&c->h, 0, straddles, 1));
	assert_chain_refused(c, harness_add(&c->h, 0, after, 1));
	assert_chain_refused(c, harness_add(&c->h, 0, far, 1));
}

static void test_virtq_rejects_buffer_whose_end_wraps(void **state)
{
	struct ctx *c = *state;
	/* addr + len wraps to a small number, which would look like RAM. */
	struct harness_buf bufs[] = { { UINT64_MAX - 15, 0x200000, true } };
	struct harness_buf wraps_into_ram[] = {
		{ UINT64_MAX - 0xfff, 0x1000 + HARNESS_RAM_GPA + 16, true },
	};

	start(c, BASE_FEATURES, 8);
	assert_chain_refused(c, harness_add(&c->h, 0, bufs, 1));
	assert_chain_refused(c, harness_add(&c->h, 0, wraps_into_ram, 1));
}

static void test_virtq_rejects_buffer_spanning_two_regions(void **state)
{
	struct ctx *c = *state;
	uint64_t end = HARNESS_RAM_GPA + c->h.ram_size;
	uint8_t *second = calloc(1, 4096);
	struct harness_buf bufs[] = { { end - 8, 16, true } };
	struct harness_buf inside_second[] = { { end, 16, true } };
	uint16_t head;

	assert_non_null(second);
	/* Adjacent in guest addresses, not in host memory. */
	assert_int_equal(guest_mem_add_region(&c->h.mem, end, 4096, second), 0);
	start(c, BASE_FEATURES, 8);
	assert_chain_refused(c, harness_add(&c->h, 0, bufs, 1));
	head = harness_add(&c->h, 0, inside_second, 1);
	harness_kick(&c->h, 0);
	assert_int_equal(take_used(c, head), 16);
	assert_int_equal(second[15], PROBE_FILL);
	free(second);
}

/* The 32-bit totals of a request cannot wrap: 1024 x 4 MiB is 2^32. */
static void test_virtq_rejects_chain_whose_total_length_overflows(void **state)
{
	struct ctx *c = *state;
	uint64_t table = harness_alloc(&c->h, 16 * VIRTQ_MAX_SIZE, 16);
	struct vring_desc *t = harness_ptr(&c->h, table);

	assert_int_equal(c->h.ram_size, 4u << 20);
	start(c, BASE_FEATURES, 8);
	for (unsigned int i = 0; i < VIRTQ_MAX_SIZE; i++)
		t[i] = (struct vring_desc){ HARNESS_RAM_GPA, 4u << 20, VRING_DESC_F_NEXT,
					    (uint16_t)(i + 1) };
	t[VIRTQ_MAX_SIZE - 1].flags = 0;
	harness_set_desc(&c->h, 0, 0, table, 16 * VIRTQ_MAX_SIZE, VRING_DESC_F_INDIRECT, 0);
	harness_publish(&c->h, 0, 0);
	assert_chain_refused(c, 0);
}

/* A request holds at most VIRTQ_MAX_SIZE buffers, direct and indirect together. */
static void test_virtq_caps_buffers_per_request(void **state)
{
	struct ctx *c = *state;
	uint64_t b = buf(c, 1, 0);
	uint64_t table = harness_alloc(&c->h, 16 * VIRTQ_MAX_SIZE, 16);
	struct vring_desc *t = harness_ptr(&c->h, table);

	start(c, BASE_FEATURES, 8);
	for (unsigned int i = 0; i < VIRTQ_MAX_SIZE; i++)
		t[i] = (struct vring_desc){ b, 1, VRING_DESC_F_NEXT, (uint16_t)(i + 1) };
	t[VIRTQ_MAX_SIZE - 1].flags = 0;
	harness_set_desc(&c->h, 0, 0, b, 1, VRING_DESC_F_NEXT, 1);
	harness_set_desc(&c->h, 0, 1, table, 16 * VIRTQ_MAX_SIZE, VRING_DESC_F_INDIRECT, 0);
	harness_publish(&c->h, 0, 0);
	assert_chain_refused(c, 0);

	/* The full table alone is fine. */
	harness_set_desc(&c->h, 0, 4, table, 16 * VIRTQ_MAX_SIZE, VRING_DESC_F_INDIRECT, 0);
	harness_publish(&c->h, 0, 4);
	harness_kick(&c->h, 0);
	assert_int_equal(last_pop(c)->rc, 1);
	assert_int_equal(last_pop(c)->readable_len, VIRTQ_MAX_SIZE);
	assert_int_equal(take_used(c, 4), 0);
}

/* ---- hostile indirect tables ---- */

/* Publishes head 0 as an indirect descriptor with these fields. */
static void publish_indirect(struct ctx *c, uint64_t table, uint32_t len, uint16_t flags)
{
	harness_set_desc(&c->h, 0, 0, table, len, VRING_DESC_F_INDIRECT | flags, 1);
	harness_set_desc(&c->h, 0, 1, buf(c, 8, 0), 8, VRING_DESC_F_WRITE, 0);
	harness_publish(&c->h, 0, 0);
}

/* A valid table of two descriptors: readable 8 bytes, writable 8 bytes. */
static uint64_t small_table(struct ctx *c)
{
	uint64_t table = harness_alloc(&c->h, 32, 16);
	struct vring_desc *t = harness_ptr(&c->h, table);

	t[0] = (struct vring_desc){ buf(c, 8, 1), 8, VRING_DESC_F_NEXT, 1 };
	t[1] = (struct vring_desc){ buf(c, 8, 0), 8, VRING_DESC_F_WRITE, 0 };
	return table;
}

static void test_virtq_rejects_indirect_when_not_negotiated(void **state)
{
	struct ctx *c = *state;

	start(c, F(VIRTIO_F_VERSION_1), 8);
	publish_indirect(c, small_table(c), 32, 0);
	assert_chain_refused(c, 0);
}

static void test_virtq_rejects_nested_indirect_table(void **state)
{
	struct ctx *c = *state;
	uint64_t inner = small_table(c);
	uint64_t outer = harness_alloc(&c->h, 16, 16);

	*(struct vring_desc *)harness_ptr(&c->h, outer) =
		(struct vring_desc){ inner, 32, VRING_DESC_F_INDIRECT, 0 };
	start(c, BASE_FEATURES, 8);
	publish_indirect(c, outer, 16, 0);
	assert_chain_refused(c, 0);
}

static void test_virtq_rejects_indirect_with_next_flag(void **state)
{
	struct ctx *c = *state;

	start(c, BASE_FEATURES, 8);
	publish_indirect(c, small_table(c), 32, VRING_DESC_F_NEXT);
	assert_chain_refused(c, 0);
}

static void test_virtq_rejects_indirect_length_not_multiple_of_16(void **state)
{
	struct ctx *c = *state;

	start(c, BASE_FEATURES, 8);
	publish_indirect(c, small_table(c), 24, 0);
	assert_chain_refused(c, 0);
	publish_indirect(c, small_table(c), 0, 0);
	assert_chain_refused(c, 0);
}

static void test_virtq_rejects_indirect_table_outside_ram(void **state)
{
	struct ctx *c = *state;
	uint64_t end = HARNESS_RAM_GPA + c->h.ram_size;

	start(c, BASE_FEATURES, 8);
	publish_indirect(c, end - 16, 32, 0); /* second entry past the end */
	assert_chain_refused(c, 0);
	publish_indirect(c, 0, 32, 0);
	assert_chain_refused(c, 0);
	publish_indirect(c, UINT64_MAX - 15, 32, 0);
	assert_chain_refused(c, 0);
}

static void test_virtq_rejects_indirect_table_larger_than_max(void **state)
{
	struct ctx *c = *state;
	uint64_t table = harness_alloc(&c->h, 16 * (VIRTQ_MAX_SIZE + 1), 16);
	struct vring_desc *t = harness_ptr(&c->h, table);

	t[0] = (struct vring_desc){ buf(c, 8, 0), 8, VRING_DESC_F_WRITE, 0 };
	start(c, BASE_FEATURES, 8);
	publish_indirect(c, table, 16 * (VIRTQ_MAX_SIZE + 1), 0);
	assert_chain_refused(c, 0);
}

static void test_virtq_rejects_loop_inside_indirect_table(void **state)
{
	struct ctx *c = *state;
	uint64_t table = small_table(c);
	struct vring_desc *t = harness_ptr(&c->h, table);

	t[1].flags |= VRING_DESC_F_NEXT;
	t[1].next = 0;
	start(c, BASE_FEATURES, 8);
	publish_indirect(c, table, 32, 0);
	assert_chain_refused(c, 0);
}

static void test_virtq_rejects_next_past_indirect_table(void **state)
{
	struct ctx *c = *state;
	uint64_t table = small_table(c);
	struct vring_desc *t = harness_ptr(&c->h, table);

	/* Index 2 would be inside the queue's table but past this one's end. */
	t[1].flags |= VRING_DESC_F_NEXT;
	t[1].next = 2;
	start(c, BASE_FEATURES, 8);
	publish_indirect(c, table, 32, 0);
	assert_chain_refused(c, 0);
}

static void test_virtq_rejects_buffer_outside_ram_in_indirect_table(void **state)
{
	struct ctx *c = *state;
	uint64_t table = small_table(c);
	struct vring_desc *t = harness_ptr(&c->h, table);

	t[1].addr = HARNESS_RAM_GPA + c->h.ram_size - 4;
	start(c, BASE_FEATURES, 8);
	publish_indirect(c, table, 32, 0);
	assert_chain_refused(c, 0);
}

/* ---- broken rings: the device needs a reset ---- */

static void test_virtq_head_past_queue_size_needs_reset(void **state)
{
	struct ctx *c = *state;

	start(c, BASE_FEATURES, 8);
	harness_set_desc(&c->h, 0, 0, buf(c, 8, 0), 8, VRING_DESC_F_WRITE, 0);
	harness_publish(&c->h, 0, 8);
	harness_kick(&c->h, 0);
	assert_int_equal(last_pop(c)->rc, -EINVAL);
	assert_int_equal(harness_pending_used(&c->h, 0), 0);
	assert_needs_reset(c);
}

static void test_virtq_avail_idx_jump_needs_reset_and_stops_popping(void **state)
{
	struct ctx *c = *state;
	struct harness_buf b[] = { { buf(c, 8, 0), 8, true } };
	struct vring_avail *avail;

	start(c, BASE_FEATURES, 8);
	avail = harness_avail(&c->h, 0);
	harness_set_desc(&c->h, 0, 0, b[0].gpa, 8, VRING_DESC_F_WRITE, 0);
	avail->idx = 9; /* 9 outstanding in a queue of 8 */
	harness_kick(&c->h, 0);
	assert_int_equal(c->probe.nr_pops, 1);
	assert_int_equal(last_pop(c)->rc, -EINVAL);
	assert_int_equal(harness_pending_used(&c->h, 0), 0);
	assert_needs_reset(c);

	/* Even with a sane index again, nothing is popped until a reset. */
	avail->idx = 1;
	harness_kick(&c->h, 0);
	assert_int_equal(c->probe.nr_pops, 1);
	assert_int_equal(harness_pending_used(&c->h, 0), 0);
	assert_true(harness_status(&c->h) & VIRTIO_CONFIG_S_NEEDS_RESET);

	/* A reset and a fresh setup bring it back. */
	start(c, BASE_FEATURES, 8);
	harness_add(&c->h, 0, b, 1);
	harness_kick(&c->h, 0);
	assert_int_equal(last_pop(c)->rc, 1);
	assert_int_equal(take_used(c, 0), 8);
}

static void test_virtq_avail_idx_exactly_queue_size_ahead_is_fine(void **state)
{
	struct ctx *c = *state;

	start(c, BASE_FEATURES, 4);
	for (unsigned int i = 0; i < 4; i++) {
		struct harness_buf b[] = { { buf(c, 4, 0), 4, true } };

		harness_add(&c->h, 0, b, 1);
	}
	harness_kick(&c->h, 0);
	assert_int_equal(harness_pending_used(&c->h, 0), 4);
	assert_false(harness_status(&c->h) & VIRTIO_CONFIG_S_NEEDS_RESET);
}

static bool in_ram(struct ctx *c, uint64_t gpa, uint64_t len)
{
	return gpa >= HARNESS_RAM_GPA && gpa - HARNESS_RAM_GPA <= c->h.ram_size &&
	       len <= c->h.ram_size - (gpa - HARNESS_RAM_GPA);
}

/* Sets up queue 0 at these addresses and sets DRIVER_OK: the device must refuse to run. */
static void assert_layout_needs_reset(struct ctx *c, uint64_t desc, uint64_t avail, uint64_t used)
{
	struct harness_buf b[] = { { buf(c, 8, 0), 8, true } };

	assert_int_equal(harness_negotiate(&c->h, BASE_FEATURES), 0);
	harness_interrupts(&c->h);
	harness_setup_queue_at(&c->h, 0, 8, desc, avail, used);
	harness_driver_ok(&c->h);
	assert_needs_reset(c);
	/* A kick does nothing, even with a request on the rings that are in RAM. */
	if (in_ram(c, avail, 22) && in_ram(c, desc, 128))
		harness_add(&c->h, 0, b, 1);
	harness_kick(&c->h, 0);
	assert_int_equal(c->probe.nr_pops, 0);
}

static void test_virtq_rings_outside_ram_need_reset_at_driver_ok(void **state)
{
	struct ctx *c = *state;
	uint64_t end = HARNESS_RAM_GPA + c->h.ram_size;
	uint64_t desc = harness_alloc(&c->h, 128, 16);
	uint64_t avail = harness_alloc(&c->h, 22, 2);
	uint64_t used = harness_alloc(&c->h, 70, 4);

	assert_layout_needs_reset(c, 0x1000, avail, used);	   /* desc below RAM */
	assert_layout_needs_reset(c, desc, end - 20, used);	   /* avail runs past the end */
	assert_layout_needs_reset(c, desc, avail, end - 68);	   /* avail_event past the end */
	assert_layout_needs_reset(c, desc, avail, 1ULL << 40);	   /* used far away */
	assert_layout_needs_reset(c, UINT64_MAX - 63, avail, used); /* desc end wraps */
}

static void test_virtq_ring_layout_exactly_filling_ram_is_fine(void **state)
{
	struct ctx *c = *state;
	uint64_t end = HARNESS_RAM_GPA + c->h.ram_size;

	struct harness_buf b[] = { { buf(c, 8, 0), 8, true } };
	uint16_t head;

	/* The avail ring with used_event ends on the last byte of RAM. */
	assert_int_equal(harness_negotiate(&c->h, BASE_FEATURES | F(VIRTIO_RING_F_EVENT_IDX)), 0);
	harness_setup_queue_at(&c->h, 0, 8, harness_alloc(&c->h, 128, 16), end - 22,
			       harness_alloc(&c->h, 70, 4));
	harness_driver_ok(&c->h);
	assert_false(harness_status(&c->h) & VIRTIO_CONFIG_S_NEEDS_RESET);
	*harness_used_event(&c->h, 0) = 0;
	head = harness_add(&c->h, 0, b, 1);
	harness_kick(&c->h, 0);
	assert_int_equal(take_used(c, head), 8);
	assert_int_equal(harness_interrupts(&c->h), 1);
}

/*
 * §2.7 requires the descriptor table 16-byte, the avail ring 2-byte and
 * the used ring 4-byte aligned. A driver that ignores it must not make the
 * device do misaligned 16- and 32-bit accesses (undefined behaviour; split
 * locks for the atomics): refusing such a layout at DRIVER_OK is the
 * simple answer, as Firecracker does.
 */
static void test_virtq_misaligned_rings_need_reset_at_driver_ok(void **state)
{
	struct ctx *c = *state;
	uint64_t desc = harness_alloc(&c->h, 128 + 16, 16);
	uint64_t avail = harness_alloc(&c->h, 22 + 2, 2);
	uint64_t used = harness_alloc(&c->h, 70 + 4, 4);

	assert_layout_needs_reset(c, desc + 8, avail, used);
	assert_layout_needs_reset(c, desc, avail + 1, used);
	assert_layout_needs_reset(c, desc, avail, used + 2);
}

#define Q(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		Q(test_virtq_chain_becomes_readable_and_writable_iovecs),
		Q(test_virtq_chain_may_wrap_around_the_descriptor_table),
		Q(test_virtq_indirect_table_becomes_iovecs),
		Q(test_virtq_indirect_table_may_follow_direct_descriptors),
		Q(test_virtq_chain_of_exactly_queue_size_is_accepted),
		Q(test_virtq_serves_every_request_of_one_kick_in_order),
		Q(test_virtq_indices_wrap_at_65536),
		Q(test_virtq_skips_zero_length_descriptors),
		Q(test_virtq_buffer_may_end_at_last_byte_of_ram),
		Q(test_virtq_event_idx_publishes_avail_event),
		Q(test_virtq_event_idx_interrupts_only_when_used_event_passed),
		Q(test_virtq_no_interrupt_flag_suppresses_interrupts),
		Q(test_virtq_rejects_descriptor_loop),
		Q(test_virtq_rejects_descriptor_pointing_at_itself),
		Q(test_virtq_rejects_chain_longer_than_queue_size),
		Q(test_virtq_rejects_next_index_past_table),
		Q(test_virtq_rejects_readable_after_writable),
		Q(test_virtq_rejects_buffer_below_ram),
		Q(test_virtq_rejects_buffer_past_end_of_ram),
		Q(test_virtq_rejects_buffer_whose_end_wraps),
		Q(test_virtq_rejects_buffer_spanning_two_regions),
		Q(test_virtq_rejects_chain_whose_total_length_overflows),
		Q(test_virtq_caps_buffers_per_request),
		Q(test_virtq_rejects_indirect_when_not_negotiated),
		Q(test_virtq_rejects_nested_indirect_table),
		Q(test_virtq_rejects_indirect_with_next_flag),
		Q(test_virtq_rejects_indirect_length_not_multiple_of_16),
		Q(test_virtq_rejects_indirect_table_outside_ram),
		Q(test_virtq_rejects_indirect_table_larger_than_max),
		Q(test_virtq_rejects_loop_inside_indirect_table),
		Q(test_virtq_rejects_next_past_indirect_table),
		Q(test_virtq_rejects_buffer_outside_ram_in_indirect_table),
		Q(test_virtq_head_past_queue_size_needs_reset),
		Q(test_virtq_avail_idx_jump_needs_reset_and_stops_popping),
		Q(test_virtq_avail_idx_exactly_queue_size_ahead_is_fine),
		Q(test_virtq_rings_outside_ram_need_reset_at_driver_ok),
		Q(test_virtq_ring_layout_exactly_filling_ram_is_fine),
		Q(test_virtq_misaligned_rings_need_reset_at_driver_ok),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
