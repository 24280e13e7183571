/*
 * Fuzzes virtio-net: the input becomes what a hostile driver and a hostile
 * peer do, interleaved: TX requests (any header, any frame length, any
 * split into buffers), RX buffers (any chain layout), frames the backend
 * delivers (any length, any header), a backend that is full or dies,
 * kicks and turns of the event loop. The device runs over the virtio-mmio
 * transport and the unit tests' driver harness, with a fake backend in
 * memory.
 *
 * Checked on every answer: it is for a chain in flight on that queue (no
 * double completion, no invented head); a TX answer says 0 bytes; an RX
 * answer fits the chain's writable bytes; the first buffer of an RX frame
 * carries num_buffers >= 1 (exactly 1 without MRG_RXBUF) and all the frame's
 * buffers are visible together; every header the backend is handed asks
 * only for what was negotiated.
 *
 * Input layout (missing bytes read as zero):
 *   0    bit 0 MRG_RXBUF, bit 1 CSUM + HOST_TSO4/6, bit 2 GUEST_CSUM + GUEST_TSO4/6,
 *        bit 3 HOST_ECN + GUEST_ECN, bit 4 no EVENT_IDX, bit 5 no INDIRECT_DESC,
 *        bits 6-7 queue size 16 << n
 *   then operations, an opcode byte each (bits 0-1 which):
 *   0 TX     bits 2-4 buffers - 1, bit 5 indirect; 12 header bytes; 3 bytes frame length
 *   1 RX     bits 2-4 buffers - 1, bit 5 indirect, bit 6 a readable buffer first; 2 bytes
 *            length per buffer
 *   2 peer   3 bytes frame length; 12 header bytes (the frame is a pattern)
 *   3 misc   bit 2 kick RX, bit 3 kick TX, bit 4 turn the loop, bit 5 the next send is
 *            refused with -EAGAIN, bit 6 the backend dies
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <linux/virtio_config.h>
#include <linux/virtio_mmio.h>
#include <linux/virtio_net.h>
#include <linux/virtio_ring.h>

#include "net/net.h"
#include "virtio/net.h"
#include "fake_net.h"
#include "fuzz_input.h"
#include "fuzz_support.h"
#include "virtio_harness.h"
#include "vmm/event_loop.h"

#define RAM_SIZE (1u << 20)
#define MAX_OPS 256
#define RXQ 0
#define TXQ 1
#define F(bit) (1ULL << (bit))

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* --- the driver's bookkeeping ------------------------------------------------------ */

struct chain {
	uint8_t in_flight;
	uint32_t writable;
	uint64_t gpa[8];
	uint32_t len[8];
	bool writable_buf[8];
	unsigned int n;
};

struct state {
	struct harness h;
	struct event_loop loop;
	struct fake_net fake;
	struct virtio_net *net;
	uint16_t size;
	unsigned int descs_used[2]; /* descriptors handed out: never reused */
	struct chain chains[2][128];
	uint64_t features;
};

static bool room_for(struct state *s, uint64_t len)
{
	return s->h.alloc_next + len + 64 <= HARNESS_RAM_GPA + s->h.ram_size;
}

/* Adds a chain; false when descriptors or RAM ran out. */
static bool add_chain(struct state *s, unsigned int q, struct harness_buf *bufs, unsigned int n,
		      bool indirect)
{
	unsigned int need = indirect ? 1 : n;
	struct chain *c;
	uint16_t head;

	if (s->descs_used[q] + need > s->size)
		return false;
	if (indirect && !room_for(s, 16ULL * n))
		return false;
	s->descs_used[q] += need;
	head = indirect ? harness_add_indirect(&s->h, q, bufs, n) : harness_add(&s->h, q, bufs, n);
	c = &s->chains[q][head];
	*c = (struct chain){ .in_flight = 1, .n = n };
	for (unsigned int i = 0; i < n; i++) {
		c->gpa[i] = bufs[i].gpa;
		c->len[i] = bufs[i].len;
		c->writable_buf[i] = bufs[i].writable;
		if (bufs[i].writable)
			c->writable += bufs[i].len;
	}
	return true;
}

static void op_tx(struct state *s, struct input *in, uint8_t op)
{
	unsigned int n = ((op >> 2) & 7) + 1;
	uint8_t hdr[NET_HDR_LEN];
	uint32_t frame = get_n(in, 3) % (NET_MAX_FRAME + 100), total, at = 0;
	struct harness_buf bufs[8];
	uint64_t gpa;

	for (int i = 0; i < NET_HDR_LEN; i++)
		hdr[i] = get8(in);
	total = NET_HDR_LEN + frame;
	if (!room_for(s, total))
		return;
	gpa = harness_alloc(&s->h, total, 8);
	memcpy(harness_ptr(&s->h, gpa), hdr, NET_HDR_LEN);
	for (unsigned int i = 0; i < n; i++) {
		uint32_t len = i + 1 < n ? (total - at) / (n - i) : total - at;

		bufs[i] = (struct harness_buf){ gpa + at, len, false };
		at += len;
	}
	add_chain(s, TXQ, bufs, n, (op & 0x20) != 0);
}

static void op_rx(struct state *s, struct input *in, uint8_t op)
{
	unsigned int n = ((op >> 2) & 7) + 1;
	struct harness_buf bufs[8];

	for (unsigned int i = 0; i < n; i++) {
		uint32_t len = get_n(in, 2) % 4097;

		if (!room_for(s, len))
			return;
		bufs[i] = (struct harness_buf){ harness_alloc(&s->h, len, 8), len,
						!(i == 0 && (op & 0x40)) };
	}
	add_chain(s, RXQ, bufs, n, (op & 0x20) != 0);
}

/* The first 12 bytes of an RX chain's writable buffers: the header the device wrote. */
static uint16_t chain_num_buffers(struct state *s, const struct chain *c)
{
	uint8_t hdr[NET_HDR_LEN];
	unsigned int got = 0;

	for (unsigned int i = 0; i < c->n && got < NET_HDR_LEN; i++) {
		const uint8_t *p = harness_ptr(&s->h, c->gpa[i]);

		for (uint32_t j = 0; c->writable_buf[i] && j < c->len[i] && got < NET_HDR_LEN; j++)
			hdr[got++] = p[j];
	}
	if (got < NET_HDR_LEN)
		fuzz_fail("an RX answer with bytes in a chain too small for a header");
	return (uint16_t)(hdr[10] | hdr[11] << 8);
}

static void check_used(struct state *s, unsigned int q)
{
	bool mrg = s->features & F(VIRTIO_NET_F_MRG_RXBUF);
	unsigned int frame_left = 0;
	uint32_t id, len;

	while (harness_get_used(&s->h, q, &id, &len)) {
		struct chain *c;

		if (id >= s->size || !s->chains[q][id].in_flight)
			fuzz_fail("an answer for a chain not in flight");
		c = &s->chains[q][id];
		c->in_flight = 0;
		if (q == TXQ && len != 0)
			fuzz_fail("a TX answer claims bytes written");
		if (q == TXQ || len == 0) {
			if (frame_left)
				fuzz_fail("an RX frame's buffers were interleaved with other answers");
			continue;
		}
		if (len > c->writable)
			fuzz_fail("an RX answer claims more bytes than the chain holds");
		if (frame_left) {
			frame_left--;
			continue;
		}
		frame_left = chain_num_buffers(s, c);
		if (frame_left == 0 || (!mrg && frame_left != 1))
			fuzz_fail("an RX frame with a wrong num_buffers");
		if (harness_pending_used(&s->h, q) < frame_left - 1)
			fuzz_fail("an RX frame's buffers were not published together");
		frame_left--;
	}
	if (frame_left)
		fuzz_fail("an RX frame's buffers are missing");
}

static uint64_t wanted_features(uint8_t b)
{
	uint64_t f = F(VIRTIO_F_VERSION_1) | F(VIRTIO_NET_F_MAC) | F(VIRTIO_NET_F_STATUS) |
		     F(VIRTIO_NET_F_MTU);

	if (b & 1)
		f |= F(VIRTIO_NET_F_MRG_RXBUF);
	if (b & 2)
		f |= F(VIRTIO_NET_F_CSUM) | F(VIRTIO_NET_F_HOST_TSO4) | F(VIRTIO_NET_F_HOST_TSO6);
	if (b & 4)
		f |= F(VIRTIO_NET_F_GUEST_CSUM) | F(VIRTIO_NET_F_GUEST_TSO4) |
		     F(VIRTIO_NET_F_GUEST_TSO6);
	/* ECN only with the TSO it depends on: the device refuses it alone. */
	if ((b & 8) && (b & 2))
		f |= F(VIRTIO_NET_F_HOST_ECN);
	if ((b & 8) && (b & 4))
		f |= F(VIRTIO_NET_F_GUEST_ECN);
	if (!(b & 16))
		f |= F(VIRTIO_RING_F_EVENT_IDX);
	if (!(b & 32))
		f |= F(VIRTIO_RING_F_INDIRECT_DESC);
	return f;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const uint8_t mac[6] = { 0x52, 0x54, 0x00, 0x12, 0x34, 0x56 };
	struct input in = { data, size };
	struct state *s = calloc(1, sizeof(*s));
	uint8_t b = get8(&in);

	if (!s || event_loop_init(&s->loop) < 0)
		fuzz_fail("setup");
	fake_net_init(&s->fake);
	s->size = (uint16_t)(16u << (b >> 6));
	harness_init(&s->h, RAM_SIZE);
	s->net = virtio_net_create(&s->fake.be, mac, "net0", &s->h.mem, &s->loop);
	if (!s->net)
		fuzz_fail("virtio_net_create");
	harness_attach(&s->h, virtio_net_device(s->net));
	if (harness_start(&s->h, wanted_features(b), 2, s->size) < 0)
		fuzz_fail("the device refused a consistent feature set");
	s->features = s->h.features;
	s->fake.features = s->features;
	for (int ops = 0; ops < MAX_OPS && in.left; ops++) {
		uint8_t op = get8(&in);

		switch (op & 3) {
		case 0: op_tx(s, &in, op); break;
		case 1: op_rx(s, &in, op); break;
		case 2: fake_net_deliver(&s->fake, &in); break;
		case 3:
			s->fake.eagain |= (op & 0x20) != 0;
			s->fake.dead |= (op & 0x40) != 0;
			if (op & 4)
				harness_kick(&s->h, RXQ);
			if (op & 8)
				harness_kick(&s->h, TXQ);
			if (op & 16)
				fuzz_pump(&s->loop, 0);
			break;
		}
		check_used(s, RXQ);
		check_used(s, TXQ);
	}
	fuzz_pump(&s->loop, 0);
	check_used(s, RXQ);
	check_used(s, TXQ);
	virtio_net_destroy(s->net);
	fake_net_destroy(&s->fake);
	harness_destroy(&s->h);
	event_loop_destroy(&s->loop);
	free(s);
	return 0;
}
