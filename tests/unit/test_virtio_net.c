/*
 * virtio-net driven through virtio-mmio the way Linux's virtio_net driver
 * drives it, over a fake backend that records what the device sends and
 * delivers frames the test queues: TX and RX with and without mergeable
 * buffers, each offload's header, RX with no buffers, a full backend,
 * malformed headers and chains, a backend that dies.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cmocka.h>
#include <linux/virtio_config.h>
#include <linux/virtio_ids.h>
#include <linux/virtio_mmio.h>
#include <linux/virtio_net.h>

#include "net/net.h"
#include "virtio/net.h"
#include "virtio_harness.h"
#include "vmm/event_loop.h"

#define RXQ 0
#define TXQ 1
#define F(bit) (1ULL << (bit))
#define RING 256
#define MAX_FRAMES 160
#define FILL 0x5a

#define CORE (F(VIRTIO_F_VERSION_1) | F(VIRTIO_RING_F_EVENT_IDX) | F(VIRTIO_RING_F_INDIRECT_DESC))
#define BASE (CORE | F(VIRTIO_NET_F_MAC) | F(VIRTIO_NET_F_STATUS) | F(VIRTIO_NET_F_MTU))
#define MRG F(VIRTIO_NET_F_MRG_RXBUF)
#define TX_OFFLOADS                                                                      \
	(F(VIRTIO_NET_F_CSUM) | F(VIRTIO_NET_F_HOST_TSO4) | F(VIRTIO_NET_F_HOST_TSO6) |      \
	 F(VIRTIO_NET_F_HOST_ECN))
#define RX_OFFLOADS                                                                      \
	(F(VIRTIO_NET_F_GUEST_CSUM) | F(VIRTIO_NET_F_GUEST_TSO4) |                          \
	 F(VIRTIO_NET_F_GUEST_TSO6) | F(VIRTIO_NET_F_GUEST_ECN))

/* --- a fake backend -------------------------------------------------------------------- */

struct fake_frame {
	uint8_t *data;
	size_t len;
};

struct fake {
	struct net_backend be;
	struct fake_frame rx[MAX_FRAMES]; /* frames waiting for recv, header first */
	int rx_head, rx_tail;
	struct fake_frame sent[MAX_FRAMES];
	int nr_sent;
	int eagain;	/* answer -EAGAIN to this many sends */
	int dead;	/* recv and send fail with -EBADFD */
	int recv_calls;
	uint64_t offload; /* the last set_offload */
	int offload_calls;
};

static ssize_t fake_send(struct net_backend *be, const struct iovec *iov, int n)
{
	struct fake *f = (struct fake *)be;
	size_t len = 0, at = 0;
	uint8_t *copy;

	if (f->dead)
		return -EBADFD;
	if (f->eagain) {
		f->eagain--;
		return -EAGAIN;
	}
	for (int i = 0; i < n; i++)
		len += iov[i].iov_len;
	copy = malloc(len);
	assert_non_null(copy);
	for (int i = 0; i < n; i++) {
		memcpy(copy + at, iov[i].iov_base, iov[i].iov_len);
		at += iov[i].iov_len;
	}
	assert_true(f->nr_sent < MAX_FRAMES);
	f->sent[f->nr_sent++] = (struct fake_frame){ copy, len };
	return (ssize_t)len;
}

/* Like a TAP: copies what fits, returns the whole length. */
static ssize_t fake_recv(struct net_backend *be, const struct iovec *iov, int n)
{
	struct fake *f = (struct fake *)be;
	struct fake_frame *fr;
	size_t at = 0;
	uint64_t count;

	f->recv_calls++;
	if (f->dead)
		return -EBADFD;
	if (f->rx_head == f->rx_tail)
		return -EAGAIN;
	fr = &f->rx[f->rx_head++ % MAX_FRAMES];
	for (int i = 0; i < n && at < fr->len; i++) {
		size_t chunk = iov[i].iov_len < fr->len - at ? iov[i].iov_len : fr->len - at;

		memcpy(iov[i].iov_base, fr->data + at, chunk);
		at += chunk;
	}
	if (f->rx_head == f->rx_tail && read(be->fd, &count, sizeof(count)) < 0)
		fail();
	free(fr->data);
	return (ssize_t)fr->len;
}

static int fake_set_offload(struct net_backend *be, uint64_t features)
{
	struct fake *f = (struct fake *)be;

	f->offload = features & RX_OFFLOADS;
	f->offload_calls++;
	return 0;
}

static void fake_close(struct net_backend *be)
{
	struct fake *f = (struct fake *)be;

	for (int i = f->rx_head; i < f->rx_tail; i++)
		free(f->rx[i % MAX_FRAMES].data);
	for (int i = 0; i < f->nr_sent; i++)
		free(f->sent[i].data);
	close(be->fd);
	free(f);
}

static const struct net_ops fake_ops = {
	.send = fake_send,
	.recv = fake_recv,
	.set_offload = fake_set_offload,
	.close = fake_close,
};

/* Queues a frame: a header (given) then len bytes of a pattern. */
static void fake_queue(struct fake *f, const struct virtio_net_hdr_mrg_rxbuf *hdr, size_t len)
{
	uint8_t *data = malloc(NET_HDR_LEN + len);

	assert_non_null(data);
	memcpy(data, hdr, NET_HDR_LEN);
	for (size_t i = 0; i < len; i++)
		data[NET_HDR_LEN + i] = (uint8_t)(i * 7 + f->rx_tail);
	f->rx[f->rx_tail++ % MAX_FRAMES] = (struct fake_frame){ data, NET_HDR_LEN + len };
	assert_int_equal(eventfd_write(f->be.fd, 1), 0);
}

/* --- fixture --------------------------------------------------------------------------- */

struct fixture {
	struct harness h;
	struct event_loop loop;
	struct fake *fake;
	struct virtio_net *net;
};

static const uint8_t test_mac[6] = { 0x52, 0x54, 0x00, 0x12, 0x34, 0x56 };

static struct fixture *fixture_new(uint64_t backend_features)
{
	struct fixture *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	f->fake = calloc(1, sizeof(*f->fake));
	assert_non_null(f->fake);
	f->fake->be = (struct net_backend){
		.ops = &fake_ops,
		.fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC),
		.features = backend_features,
		.mtu = 1500,
		.what = "fake backend",
	};
	assert_true(f->fake->be.fd >= 0);
	assert_int_equal(event_loop_init(&f->loop), 0);
	harness_init(&f->h, 8ULL << 20);
	f->net = virtio_net_create(&f->fake->be, test_mac, "net0", &f->h.mem, &f->loop);
	assert_non_null(f->net);
	harness_attach(&f->h, virtio_net_device(f->net));
	return f;
}

static int setup(void **state)
{
	*state = fixture_new(TX_OFFLOADS | RX_OFFLOADS);
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	virtio_net_destroy(f->net);
	net_close(&f->fake->be);
	harness_destroy(&f->h);
	event_loop_destroy(&f->loop);
	free(f);
	return 0;
}

static void start(struct fixture *f, uint64_t wanted)
{
	assert_int_equal(harness_start(&f->h, wanted, 2, RING), 0);
}

/* Runs the event loop's handlers until nothing is ready; returns how many ran. */
static int pump(struct fixture *f)
{
	struct epoll_event ev[8];
	int total = 0;

	for (int round = 0; round < 64; round++) {
		int n = epoll_wait(f->loop.epoll_fd, ev, 8, 0);

		if (n <= 0)
			break;
		for (int i = 0; i < n; i++) {
			struct event_handler *h = ev[i].data.ptr;

			h->fn(h->opaque, ev[i].events);
		}
		total += n;
	}
	return total;
}

static const struct virtio_net_stats *stats(struct fixture *f)
{
	return virtio_net_stats(f->net);
}

/* A device-readable TX request: header then a frame of len pattern bytes. */
static uint64_t tx_buffer(struct fixture *f, const struct virtio_net_hdr_mrg_rxbuf *hdr,
			  uint32_t len)
{
	uint64_t gpa = harness_alloc(&f->h, NET_HDR_LEN + len, 8);
	uint8_t *p = harness_ptr(&f->h, gpa);

	memcpy(p, hdr, NET_HDR_LEN);
	for (uint32_t i = 0; i < len; i++)
		p[NET_HDR_LEN + i] = (uint8_t)(i * 3);
	return gpa;
}

static uint16_t tx_add(struct fixture *f, const struct virtio_net_hdr_mrg_rxbuf *hdr,
		       uint32_t len)
{
	struct harness_buf buf = { tx_buffer(f, hdr, len), NET_HDR_LEN + len, false };

	return harness_add(&f->h, TXQ, &buf, 1);
}

/* n device-writable RX buffers of len bytes, one chain each; returns the first head. */
static uint16_t rx_post(struct fixture *f, unsigned int n, uint32_t len, uint64_t *gpas)
{
	uint16_t first = 0;

	for (unsigned int i = 0; i < n; i++) {
		uint64_t gpa = harness_alloc(&f->h, len, 16);
		struct harness_buf buf = { gpa, len, true };
		uint16_t head;

		memset(harness_ptr(&f->h, gpa), FILL, len);
		head = harness_add(&f->h, RXQ, &buf, 1);
		if (i == 0)
			first = head;
		if (gpas)
			gpas[i] = gpa;
	}
	return first;
}

static struct virtio_net_hdr_mrg_rxbuf hdr_none(void)
{
	return (struct virtio_net_hdr_mrg_rxbuf){ .hdr.gso_type = VIRTIO_NET_HDR_GSO_NONE };
}

static struct virtio_net_hdr_mrg_rxbuf hdr_tso(uint8_t type, uint16_t gso_size)
{
	return (struct virtio_net_hdr_mrg_rxbuf){
		.hdr = { .flags = VIRTIO_NET_HDR_F_NEEDS_CSUM, .gso_type = type, .hdr_len = 66,
			 .gso_size = gso_size, .csum_start = 34, .csum_offset = 16 },
	};
}

/* --- identity -------------------------------------------------------------------------- */

static void test_net_identifies_itself_with_mac_status_and_mtu(void **state)
{
	struct fixture *f = *state;
	uint64_t offered = harness_device_features(&f->h);
	uint8_t mac[6];
	uint16_t status, mtu;

	assert_int_equal(harness_read_reg(&f->h, VIRTIO_MMIO_DEVICE_ID), VIRTIO_ID_NET);
	assert_int_equal(offered & (BASE | MRG | TX_OFFLOADS | RX_OFFLOADS),
			 BASE | MRG | TX_OFFLOADS | RX_OFFLOADS);
	assert_false(offered & F(VIRTIO_NET_F_CTRL_VQ));
	assert_false(offered & F(VIRTIO_NET_F_MQ));
	assert_false(offered & (F(VIRTIO_NET_F_HOST_UFO) | F(VIRTIO_NET_F_GUEST_UFO)));
	for (int i = 0; i < 6; i++)
		harness_config_read(&f->h, offsetof(struct virtio_net_config, mac) + i, &mac[i], 1);
	assert_memory_equal(mac, test_mac, 6);
	harness_config_read(&f->h, offsetof(struct virtio_net_config, status), &status, 2);
	assert_int_equal(status, VIRTIO_NET_S_LINK_UP);
	harness_config_read(&f->h, offsetof(struct virtio_net_config, mtu), &mtu, 2);
	assert_int_equal(mtu, 1500);
	harness_write_reg(&f->h, VIRTIO_MMIO_QUEUE_SEL, 2);
	assert_int_equal(harness_read_reg(&f->h, VIRTIO_MMIO_QUEUE_NUM_MAX), 0);
}

static void test_net_offers_no_offload_the_backend_cannot_take(void **state)
{
	struct fixture *f = fixture_new(0);
	uint64_t offered = harness_device_features(&f->h);

	(void)state;
	assert_int_equal(offered & (TX_OFFLOADS | RX_OFFLOADS), 0);
	assert_int_equal(offered & (BASE | MRG), BASE | MRG);
	teardown((void **)&f);
}

/* --- TX -------------------------------------------------------------------------------- */

static void test_net_tx_sends_header_and_frame_as_one(void **state)
{
	struct fixture *f = *state;
	struct virtio_net_hdr_mrg_rxbuf hdr = hdr_none();
	uint64_t gpa;
	uint16_t head;
	uint32_t id, len;

	start(f, BASE | MRG);
	gpa = tx_buffer(f, &hdr, 60);
	/* The header split over two descriptors and the frame over two more. */
	struct harness_buf bufs[] = {
		{ gpa, 5, false }, { gpa + 5, 7, false }, { gpa + 12, 20, false },
		{ gpa + 32, 40, false },
	};
	head = harness_add(&f->h, TXQ, bufs, 4);
	harness_kick(&f->h, TXQ);
	assert_int_equal(f->fake->nr_sent, 1);
	assert_int_equal(f->fake->sent[0].len, NET_HDR_LEN + 60);
	assert_memory_equal(f->fake->sent[0].data, harness_ptr(&f->h, gpa), NET_HDR_LEN + 60);
	assert_true(harness_get_used(&f->h, TXQ, &id, &len));
	assert_int_equal(id, head);
	assert_int_equal(len, 0);
	assert_true(harness_interrupts(&f->h) >= 1);
	assert_int_equal(stats(f)->tx_frames, 1);
}

static void test_net_tx_passes_a_64k_tso_segment_with_its_header(void **state)
{
	struct fixture *f = *state;
	struct virtio_net_hdr_mrg_rxbuf h4 = hdr_tso(VIRTIO_NET_HDR_GSO_TCPV4, 1448);
	struct virtio_net_hdr_mrg_rxbuf h6 = hdr_tso(VIRTIO_NET_HDR_GSO_TCPV6, 1428);
	struct virtio_net_hdr_mrg_rxbuf ecn =
		hdr_tso(VIRTIO_NET_HDR_GSO_TCPV4 | VIRTIO_NET_HDR_GSO_ECN, 1448);
	struct virtio_net_hdr_mrg_rxbuf csum = hdr_none();

	csum.hdr.flags = VIRTIO_NET_HDR_F_NEEDS_CSUM;
	csum.hdr.csum_start = 34;
	csum.hdr.csum_offset = 6;
	start(f, BASE | MRG | TX_OFFLOADS);
	tx_add(f, &h4, NET_MAX_GSO_LEN);
	tx_add(f, &h6, 30000);
	tx_add(f, &ecn, 20000);
	tx_add(f, &csum, 100);
	harness_kick(&f->h, TXQ);
	assert_int_equal(f->fake->nr_sent, 4);
	assert_int_equal(f->fake->sent[0].len, NET_HDR_LEN + NET_MAX_GSO_LEN);
	assert_memory_equal(f->fake->sent[0].data, &h4, NET_HDR_LEN);
	assert_memory_equal(f->fake->sent[1].data, &h6, NET_HDR_LEN);
	assert_memory_equal(f->fake->sent[2].data, &ecn, NET_HDR_LEN);
	assert_memory_equal(f->fake->sent[3].data, &csum, NET_HDR_LEN);
	assert_int_equal(stats(f)->tx_malformed, 0);
}

/* Each header asks for something not negotiated, or is nonsense: dropped, counted, used. */
static void test_net_tx_drops_headers_that_break_the_rules(void **state)
{
	struct fixture *f = *state;
	struct virtio_net_hdr_mrg_rxbuf bad[9];
	unsigned int n = 0;
	uint32_t id, len;

	/* CSUM and TSO4 agreed; TSO6 and ECN not. */
	start(f, BASE | MRG | F(VIRTIO_NET_F_CSUM) | F(VIRTIO_NET_F_HOST_TSO4));
	bad[n++] = hdr_tso(VIRTIO_NET_HDR_GSO_TCPV6, 1428); /* TSO6 not agreed */
	bad[n++] = hdr_tso(VIRTIO_NET_HDR_GSO_TCPV4 | VIRTIO_NET_HDR_GSO_ECN, 1448); /* no ECN */
	bad[n++] = hdr_tso(VIRTIO_NET_HDR_GSO_UDP, 1448);   /* UFO */
	bad[n++] = hdr_tso(VIRTIO_NET_HDR_GSO_TCPV4, 0);    /* gso_size 0 */
	bad[n++] = hdr_tso(0x33, 1448);			    /* unknown type */
	bad[n] = hdr_tso(VIRTIO_NET_HDR_GSO_TCPV4, 1448);
	bad[n++].hdr.flags = 0;				    /* GSO without a partial csum */
	bad[n] = hdr_none();
	bad[n++].hdr.flags = VIRTIO_NET_HDR_F_DATA_VALID;   /* the device's flag */
	bad[n] = hdr_tso(VIRTIO_NET_HDR_GSO_TCPV4, 1448);
	bad[n++].hdr.csum_start = 1000;			    /* past the end */
	bad[n] = hdr_tso(VIRTIO_NET_HDR_GSO_TCPV4, 1448);
	bad[n++].hdr.hdr_len = 2000;			    /* past the end */
	for (unsigned int i = 0; i < n; i++)
		tx_add(f, &bad[i], 500);
	harness_kick(&f->h, TXQ);
	assert_int_equal(f->fake->nr_sent, 0);
	assert_int_equal(stats(f)->tx_malformed, n);
	for (unsigned int i = 0; i < n; i++) {
		assert_true(harness_get_used(&f->h, TXQ, &id, &len));
		assert_int_equal(len, 0);
	}
	assert_false(harness_status(&f->h) & VIRTIO_CONFIG_S_NEEDS_RESET);
}

static void test_net_tx_refuses_checksum_offload_not_agreed(void **state)
{
	struct fixture *f = *state;
	struct virtio_net_hdr_mrg_rxbuf csum = hdr_none(), ok = hdr_none();

	csum.hdr.flags = VIRTIO_NET_HDR_F_NEEDS_CSUM;
	csum.hdr.csum_start = 34;
	csum.hdr.csum_offset = 6;
	/* Neither CSUM nor HOST_TSO4 agreed: both headers ask for what the device never gave. */
	start(f, BASE);
	tx_add(f, &csum, 100);
	struct virtio_net_hdr_mrg_rxbuf tso = hdr_tso(VIRTIO_NET_HDR_GSO_TCPV4, 1448);
	tx_add(f, &tso, 3000);
	tx_add(f, &ok, 100);
	harness_kick(&f->h, TXQ);
	assert_int_equal(f->fake->nr_sent, 1);
	assert_int_equal(stats(f)->tx_malformed, 2);
}

static void test_net_tx_drops_frames_too_short_or_too_long(void **state)
{
	struct fixture *f = *state;
	struct virtio_net_hdr_mrg_rxbuf hdr = hdr_tso(VIRTIO_NET_HDR_GSO_TCPV4, 1448);
	struct virtio_net_hdr_mrg_rxbuf none = hdr_none();
	uint64_t gpa = tx_buffer(f, &none, 8);
	struct harness_buf only_hdr = { gpa, NET_HDR_LEN - 2, false };
	struct harness_buf tiny = { gpa, NET_HDR_LEN + 8, false };
	struct harness_buf writable = { gpa, 64, true };

	start(f, BASE | MRG | TX_OFFLOADS);
	harness_add(&f->h, TXQ, &only_hdr, 1);
	harness_add(&f->h, TXQ, &tiny, 1);
	harness_add(&f->h, TXQ, &writable, 1); /* nothing readable at all */
	tx_add(f, &hdr, NET_MAX_GSO_LEN + NET_ETH_HLEN + NET_VLAN_HLEN + 1);
	tx_add(f, &hdr, NET_MAX_GSO_LEN + NET_ETH_HLEN + NET_VLAN_HLEN); /* the largest */
	harness_kick(&f->h, TXQ);
	assert_int_equal(stats(f)->tx_malformed, 4);
	assert_int_equal(f->fake->nr_sent, 1);
	assert_int_equal(harness_pending_used(&f->h, TXQ), 5);
}

static void test_net_tx_waits_for_room_instead_of_dropping(void **state)
{
	struct fixture *f = *state;
	struct virtio_net_hdr_mrg_rxbuf hdr = hdr_none();

	start(f, BASE | MRG);
	f->fake->eagain = 1;
	tx_add(f, &hdr, 100);
	tx_add(f, &hdr, 200);
	harness_kick(&f->h, TXQ);
	assert_int_equal(f->fake->nr_sent, 0);
	assert_int_equal(harness_pending_used(&f->h, TXQ), 0);
	pump(f); /* EPOLLOUT: room again */
	assert_int_equal(f->fake->nr_sent, 2);
	assert_int_equal(f->fake->sent[0].len, NET_HDR_LEN + 100);
	assert_int_equal(harness_pending_used(&f->h, TXQ), 2);
	assert_int_equal(stats(f)->tx_dropped, 0);
	assert_int_equal(pump(f), 0); /* and EPOLLOUT is no longer watched */
}

static void test_net_tx_yields_after_its_budget(void **state)
{
	struct fixture *f = *state;
	struct virtio_net_hdr_mrg_rxbuf hdr = hdr_none();
	unsigned int total = VIRTIO_NET_TX_BUDGET * 2 + 10;

	start(f, BASE | MRG);
	for (unsigned int i = 0; i < total; i++)
		tx_add(f, &hdr, 60);
	harness_kick(&f->h, TXQ);
	assert_int_equal(f->fake->nr_sent, VIRTIO_NET_TX_BUDGET);
	pump(f);
	assert_int_equal(f->fake->nr_sent, total);
	assert_int_equal(harness_pending_used(&f->h, TXQ), total);
}

/* --- RX -------------------------------------------------------------------------------- */

static uint16_t used_num_buffers(struct fixture *f, uint64_t gpa)
{
	struct virtio_net_hdr_mrg_rxbuf *h = harness_ptr(&f->h, gpa);

	return h->num_buffers;
}

static void test_net_rx_without_mergeable_buffers_uses_one_chain_per_frame(void **state)
{
	struct fixture *f = *state;
	struct virtio_net_hdr_mrg_rxbuf hdr = hdr_none();
	uint64_t a = harness_alloc(&f->h, NET_HDR_LEN, 16), b = harness_alloc(&f->h, 1514, 16);
	struct harness_buf bufs[] = { { a, NET_HDR_LEN, true }, { b, 1514, true } };
	uint16_t head;
	uint32_t id, len;

	start(f, BASE);
	head = harness_add(&f->h, RXQ, bufs, 2);
	harness_kick(&f->h, RXQ);
	fake_queue(f->fake, &hdr, 1514);
	fake_queue(f->fake, &hdr, 60);
	pump(f);
	assert_true(harness_get_used(&f->h, RXQ, &id, &len));
	assert_int_equal(id, head);
	assert_int_equal(len, NET_HDR_LEN + 1514);
	assert_int_equal(used_num_buffers(f, a), 1);
	assert_int_equal(((uint8_t *)harness_ptr(&f->h, b))[1513], (uint8_t)(1513 * 7));
	/* The second frame waits for a buffer: nothing lost. */
	assert_int_equal(harness_pending_used(&f->h, RXQ), 0);
	assert_int_equal(stats(f)->rx_dropped, 0);
	rx_post(f, 1, NET_HDR_LEN + 1514, NULL);
	harness_kick(&f->h, RXQ);
	assert_true(harness_get_used(&f->h, RXQ, &id, &len));
	assert_int_equal(len, NET_HDR_LEN + 60);
	assert_int_equal(stats(f)->rx_frames, 2);
}

static void test_net_rx_mergeable_spreads_a_64k_frame_and_returns_the_rest(void **state)
{
	struct fixture *f = *state;
	struct virtio_net_hdr_mrg_rxbuf hdr = hdr_tso(VIRTIO_NET_HDR_GSO_TCPV4, 1448);
	uint32_t frame = NET_MAX_GSO_LEN + NET_ETH_HLEN, total = NET_HDR_LEN + frame;
	unsigned int need = (total + 1535) / 1536;
	uint64_t gpas[100];
	uint16_t first;
	uint32_t id, len, sum = 0;

	hdr.hdr.flags |= VIRTIO_NET_HDR_F_DATA_VALID;
	start(f, BASE | MRG | RX_OFFLOADS);
	assert_int_equal(f->fake->offload, RX_OFFLOADS);
	first = rx_post(f, 100, 1536, gpas); /* room for two of the largest frames */
	harness_kick(&f->h, RXQ);
	fake_queue(f->fake, &hdr, frame);
	pump(f);
	assert_int_equal(harness_pending_used(&f->h, RXQ), need);
	for (unsigned int i = 0; i < need; i++) {
		assert_true(harness_get_used(&f->h, RXQ, &id, &len));
		assert_int_equal(id, first + i);
		assert_int_equal(len, i + 1 < need ? 1536 : total - 1536 * (need - 1));
		sum += len;
	}
	assert_int_equal(sum, total);
	assert_int_equal(used_num_buffers(f, gpas[0]), need);
	/* The GSO header arrives as the backend wrote it. */
	assert_memory_equal(harness_ptr(&f->h, gpas[0]), &hdr, 10);
	/* The buffers not used went back: the next frame takes the next one in order. */
	struct virtio_net_hdr_mrg_rxbuf small = hdr_none();
	fake_queue(f->fake, &small, 60);
	pump(f);
	assert_true(harness_get_used(&f->h, RXQ, &id, &len));
	assert_int_equal(id, first + need);
	assert_int_equal(len, NET_HDR_LEN + 60);
	assert_int_equal(used_num_buffers(f, gpas[need]), 1);
	assert_int_equal(stats(f)->rx_dropped, 0);
}

static void test_net_rx_small_frames_take_one_mergeable_buffer_each(void **state)
{
	struct fixture *f = *state;
	struct virtio_net_hdr_mrg_rxbuf hdr = hdr_none();
	uint64_t gpas[4];
	uint32_t id, len;

	start(f, BASE | MRG);
	rx_post(f, 4, 2048, gpas);
	harness_kick(&f->h, RXQ);
	for (int i = 0; i < 3; i++)
		fake_queue(f->fake, &hdr, 100 + (size_t)i);
	pump(f);
	for (int i = 0; i < 3; i++) {
		assert_true(harness_get_used(&f->h, RXQ, &id, &len));
		assert_int_equal(len, NET_HDR_LEN + 100 + i);
		assert_int_equal(used_num_buffers(f, gpas[i]), 1);
	}
	/* The fourth buffer went back to the ring untouched. */
	assert_int_equal(((uint8_t *)harness_ptr(&f->h, gpas[3]))[0], FILL);
	assert_int_equal(harness_pending_used(&f->h, RXQ), 0);
}

static void test_net_rx_with_no_buffers_waits_without_spinning_or_dropping(void **state)
{
	struct fixture *f = *state;
	struct virtio_net_hdr_mrg_rxbuf hdr = hdr_none();
	int calls;

	start(f, BASE | MRG);
	for (int i = 0; i < 5; i++)
		fake_queue(f->fake, &hdr, 500);
	pump(f);
	assert_int_equal(stats(f)->rx_stalls, 1);
	calls = f->fake->recv_calls;
	assert_int_equal(pump(f), 0); /* the backend is no longer polled */
	assert_int_equal(f->fake->recv_calls, calls);
	rx_post(f, 8, 1536, NULL);
	harness_kick(&f->h, RXQ);
	pump(f);
	assert_int_equal(harness_pending_used(&f->h, RXQ), 5);
	assert_int_equal(stats(f)->rx_frames, 5);
	assert_int_equal(stats(f)->rx_dropped, 0);
}

static void test_net_rx_mergeable_waits_for_room_for_the_largest_frame(void **state)
{
	struct fixture *f = *state;
	struct virtio_net_hdr_mrg_rxbuf hdr = hdr_none();

	start(f, BASE | MRG | RX_OFFLOADS); /* GSO frames of 64 KiB may come */
	rx_post(f, 4, 1536, NULL);
	harness_kick(&f->h, RXQ);
	fake_queue(f->fake, &hdr, 60);
	pump(f);
	assert_int_equal(harness_pending_used(&f->h, RXQ), 0);
	assert_int_equal(f->fake->recv_calls, 0);
	rx_post(f, 50, 1536, NULL);
	harness_kick(&f->h, RXQ);
	pump(f);
	assert_int_equal(harness_pending_used(&f->h, RXQ), 1);
}

static void test_net_rx_flags_reach_only_a_driver_that_agreed_guest_csum(void **state)
{
	struct fixture *f = *state;
	struct virtio_net_hdr_mrg_rxbuf hdr = hdr_none();
	uint64_t gpas[2];
	uint32_t id, len;

	hdr.hdr.flags = VIRTIO_NET_HDR_F_DATA_VALID;
	start(f, BASE | MRG);
	assert_int_equal(f->fake->offload, 0);
	rx_post(f, 2, 2048, gpas);
	harness_kick(&f->h, RXQ);
	fake_queue(f->fake, &hdr, 80);
	pump(f);
	assert_true(harness_get_used(&f->h, RXQ, &id, &len));
	assert_int_equal(((struct virtio_net_hdr *)harness_ptr(&f->h, gpas[0]))->flags, 0);

	start(f, BASE | MRG | F(VIRTIO_NET_F_GUEST_CSUM));
	assert_int_equal(f->fake->offload, F(VIRTIO_NET_F_GUEST_CSUM));
	rx_post(f, 2, 2048, gpas);
	harness_kick(&f->h, RXQ);
	fake_queue(f->fake, &hdr, 80);
	pump(f);
	assert_true(harness_get_used(&f->h, RXQ, &id, &len));
	assert_int_equal(((struct virtio_net_hdr *)harness_ptr(&f->h, gpas[0]))->flags,
			 VIRTIO_NET_HDR_F_DATA_VALID);
}

static void test_net_refuses_offloads_without_their_prerequisites(void **state)
{
	struct fixture *f = *state;
	const uint64_t lone[] = {
		F(VIRTIO_NET_F_GUEST_TSO4), /* without GUEST_CSUM */
		F(VIRTIO_NET_F_GUEST_CSUM) | F(VIRTIO_NET_F_GUEST_ECN), /* ECN without TSO */
		F(VIRTIO_NET_F_HOST_TSO6), /* without CSUM */
		F(VIRTIO_NET_F_CSUM) | F(VIRTIO_NET_F_HOST_ECN),
	};

	for (size_t i = 0; i < sizeof(lone) / sizeof(lone[0]); i++) {
		assert_int_equal(harness_negotiate(&f->h, BASE | lone[i]), -1);
		assert_int_equal(harness_status(&f->h) & VIRTIO_CONFIG_S_FEATURES_OK, 0);
	}
	start(f, BASE | F(VIRTIO_NET_F_GUEST_CSUM) | F(VIRTIO_NET_F_GUEST_TSO6) |
			 F(VIRTIO_NET_F_GUEST_ECN));
	assert_int_equal(f->fake->offload, F(VIRTIO_NET_F_GUEST_CSUM) |
					   F(VIRTIO_NET_F_GUEST_TSO6) | F(VIRTIO_NET_F_GUEST_ECN));
}

static void test_net_rx_frame_bigger_than_the_chain_is_a_counted_drop(void **state)
{
	struct fixture *f = *state;
	struct virtio_net_hdr_mrg_rxbuf hdr = hdr_none();
	uint32_t id, len;

	start(f, BASE);
	rx_post(f, 1, 200, NULL);
	harness_kick(&f->h, RXQ);
	fake_queue(f->fake, &hdr, 400);
	fake_queue(f->fake, &hdr, 100);
	pump(f);
	assert_int_equal(stats(f)->rx_dropped, 1);
	assert_true(harness_get_used(&f->h, RXQ, &id, &len));
	assert_int_equal(len, NET_HDR_LEN + 100); /* the same buffer took the next frame */
	assert_false(harness_get_used(&f->h, RXQ, &id, &len));
}

/*
 * A: 600, B: 600, a chain outside RAM, C: 600. Without GSO the device holds
 * A, B and C (1530 bytes) for a frame; the frame fills A; B can no longer be
 * unpopped (the bad chain after it was consumed) and goes back empty, C is
 * unpopped and takes the next frame.
 */
static void test_net_rx_survives_malformed_chains_among_its_buffers(void **state)
{
	struct fixture *f = *state;
	struct virtio_net_hdr_mrg_rxbuf hdr = hdr_none();
	struct harness_buf outside = { 0x1000, 1536, true }; /* not RAM */
	uint16_t a, b, bad, c;
	uint32_t id, len, got_a = 0, got_b = 1, got_bad = 1;
	unsigned int n = 0;

	start(f, BASE | MRG);
	a = rx_post(f, 1, 600, NULL);
	b = rx_post(f, 1, 600, NULL);
	bad = harness_add(&f->h, RXQ, &outside, 1);
	c = rx_post(f, 1, 600, NULL);
	harness_kick(&f->h, RXQ);
	fake_queue(f->fake, &hdr, 100);
	pump(f);
	while (harness_get_used(&f->h, RXQ, &id, &len)) {
		n++;
		if (id == a)
			got_a = len;
		else if (id == b)
			got_b = len;
		else if (id == bad)
			got_bad = len;
	}
	assert_int_equal(n, 3);
	assert_int_equal(got_a, NET_HDR_LEN + 100);
	assert_int_equal(got_b, 0);
	assert_int_equal(got_bad, 0);
	assert_int_equal(stats(f)->bad_chains, 1);
	/* C was returned, and with one more buffer there is room for the next frame. */
	rx_post(f, 1, 1536, NULL);
	harness_kick(&f->h, RXQ);
	fake_queue(f->fake, &hdr, 70);
	pump(f);
	assert_true(harness_get_used(&f->h, RXQ, &id, &len));
	assert_int_equal(id, c);
	assert_int_equal(len, NET_HDR_LEN + 70);
	assert_false(harness_status(&f->h) & VIRTIO_CONFIG_S_NEEDS_RESET);
}

static void test_net_broken_ring_needs_reset(void **state)
{
	struct fixture *f = *state;

	start(f, BASE | MRG);
	harness_avail(&f->h, TXQ)->idx = 1000;
	harness_kick(&f->h, TXQ);
	assert_true(harness_status(&f->h) & VIRTIO_CONFIG_S_NEEDS_RESET);
}

/* --- lifecycle ------------------------------------------------------------------------- */

static void test_net_reset_stops_reading_the_backend(void **state)
{
	struct fixture *f = *state;
	struct virtio_net_hdr_mrg_rxbuf hdr = hdr_none();

	start(f, BASE | MRG);
	rx_post(f, 4, 1536, NULL);
	harness_kick(&f->h, RXQ);
	harness_write_reg(&f->h, VIRTIO_MMIO_STATUS, 0);
	fake_queue(f->fake, &hdr, 60);
	assert_int_equal(pump(f), 0);
	assert_int_equal(f->fake->recv_calls, 0);
	/* A new driver gets the frame. */
	start(f, BASE | MRG);
	rx_post(f, 4, 1536, NULL);
	harness_kick(&f->h, RXQ);
	pump(f);
	assert_int_equal(harness_pending_used(&f->h, RXQ), 1);
}

static void test_net_dead_backend_downs_the_link_and_drains_tx(void **state)
{
	struct fixture *f = *state;
	struct virtio_net_hdr_mrg_rxbuf hdr = hdr_none();
	uint16_t status = 0xffff;

	start(f, BASE | MRG);
	rx_post(f, 4, 1536, NULL);
	harness_kick(&f->h, RXQ);
	harness_interrupts(&f->h);
	f->fake->dead = 1;
	fake_queue(f->fake, &hdr, 60);
	pump(f);
	harness_config_read(&f->h, offsetof(struct virtio_net_config, status), &status, 2);
	assert_int_equal(status, 0);
	assert_true(harness_ack_interrupt(&f->h) & VIRTIO_MMIO_INT_CONFIG);
	assert_int_equal(pump(f), 0);
	tx_add(f, &hdr, 60);
	tx_add(f, &hdr, 60);
	harness_kick(&f->h, TXQ);
	assert_int_equal(harness_pending_used(&f->h, TXQ), 2);
	assert_int_equal(stats(f)->tx_dropped, 2);
	assert_false(harness_status(&f->h) & VIRTIO_CONFIG_S_NEEDS_RESET);
}

/* --- the status state machine (issue 10, defects 1 and 2) -------------------------------- */

/*
 * A hostile driver resizes an RX ring the device is using: rings of size 2
 * end exactly where RAM ends (a guard page follows), two frames arrive,
 * then it clears DRIVER_OK without a reset and programs QueueNum 256. The
 * next frame used to be written by the old rings' pointers with the new
 * size, past the end of RAM. Now the status write is refused (NEEDS_RESET),
 * the layout stays, and nothing more touches the ring until a reset.
 */
static void test_net_status_cleared_without_reset_cannot_resize_rings_in_use(void **state)
{
	struct fixture *f = *state;
	uint64_t ram_end = HARNESS_RAM_GPA + f->h.ram_size;
	uint64_t used = ram_end - 24, avail = used - 16, desc = ram_end - 80;
	struct virtio_net_hdr_mrg_rxbuf hdr = hdr_none();
	uint32_t queue_num;

	assert_int_equal(harness_negotiate(&f->h, BASE), 0);
	harness_setup_queue_at(&f->h, RXQ, 2, desc, avail, used);
	harness_setup_queue(&f->h, TXQ, RING);
	harness_driver_ok(&f->h);
	rx_post(f, 2, 2048, NULL);
	harness_kick(&f->h, RXQ);
	fake_queue(f->fake, &hdr, 60);
	fake_queue(f->fake, &hdr, 60);
	pump(f);
	assert_int_equal(harness_pending_used(&f->h, RXQ), 2);
	rx_post(f, 1, 2048, NULL);
	harness_kick(&f->h, RXQ);

	harness_write_reg(&f->h, VIRTIO_MMIO_STATUS, 0xb); /* DRIVER_OK cleared, no reset */
	harness_write_reg(&f->h, VIRTIO_MMIO_QUEUE_SEL, RXQ);
	harness_write_reg(&f->h, VIRTIO_MMIO_QUEUE_READY, 0);
	harness_write_reg(&f->h, VIRTIO_MMIO_QUEUE_NUM, 256);
	harness_write_reg(&f->h, VIRTIO_MMIO_QUEUE_READY, 1);
	fake_queue(f->fake, &hdr, 60);
	pump(f);

	assert_true(harness_status(&f->h) & VIRTIO_CONFIG_S_NEEDS_RESET);
	assert_true(harness_status(&f->h) & VIRTIO_CONFIG_S_DRIVER_OK);
	queue_num = harness_read_reg(&f->h, VIRTIO_MMIO_QUEUE_NUM);
	assert_int_equal(queue_num, 2);
	assert_int_equal(harness_used(&f->h, RXQ)->idx, 2); /* nothing more delivered */
}

/*
 * DRIVER_OK, cleared, set again: the device was activated twice, and with
 * vhost-net the second start failed half-way and left the device pointing
 * at a closed vhost. Activation now happens once per reset.
 */
static void test_net_activates_once_per_reset(void **state)
{
	struct fixture *f = *state;

	start(f, BASE | RX_OFFLOADS);
	assert_int_equal(f->fake->offload_calls, 1);
	harness_write_reg(&f->h, VIRTIO_MMIO_STATUS, 0xb);
	harness_write_reg(&f->h, VIRTIO_MMIO_STATUS, 0xf);
	assert_int_equal(f->fake->offload_calls, 1);
	harness_write_reg(&f->h, VIRTIO_MMIO_STATUS, 0);
	start(f, BASE | RX_OFFLOADS);
	assert_int_equal(f->fake->offload_calls, 2);
	assert_false(harness_status(&f->h) & VIRTIO_CONFIG_S_NEEDS_RESET);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_net_identifies_itself_with_mac_status_and_mtu),
		T(test_net_offers_no_offload_the_backend_cannot_take),
		T(test_net_tx_sends_header_and_frame_as_one),
		T(test_net_tx_passes_a_64k_tso_segment_with_its_header),
		T(test_net_tx_drops_headers_that_break_the_rules),
		T(test_net_tx_refuses_checksum_offload_not_agreed),
		T(test_net_tx_drops_frames_too_short_or_too_long),
		T(test_net_tx_waits_for_room_instead_of_dropping),
		T(test_net_tx_yields_after_its_budget),
		T(test_net_rx_without_mergeable_buffers_uses_one_chain_per_frame),
		T(test_net_rx_mergeable_spreads_a_64k_frame_and_returns_the_rest),
		T(test_net_rx_small_frames_take_one_mergeable_buffer_each),
		T(test_net_rx_with_no_buffers_waits_without_spinning_or_dropping),
		T(test_net_rx_mergeable_waits_for_room_for_the_largest_frame),
		T(test_net_rx_flags_reach_only_a_driver_that_agreed_guest_csum),
		T(test_net_refuses_offloads_without_their_prerequisites),
		T(test_net_rx_frame_bigger_than_the_chain_is_a_counted_drop),
		T(test_net_rx_survives_malformed_chains_among_its_buffers),
		T(test_net_broken_ring_needs_reset),
		T(test_net_reset_stops_reading_the_backend),
		T(test_net_dead_backend_downs_the_link_and_drains_tx),
		T(test_net_status_cleared_without_reset_cannot_resize_rings_in_use),
		T(test_net_activates_once_per_reset),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
