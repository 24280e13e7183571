/*
 * The virtio-mmio transport (virtio 1.2 §4.2) as a driver sees it through
 * the bus: identification registers, feature negotiation, queue setup and
 * when it is frozen, reset, interrupt status, config space at any width,
 * and the accesses the spec forbids, which must be ignored.
 *
 * The device behind the transport is a fake with two queues and a config
 * space of CONFIG_SIZE bytes holding 0x10, 0x11, 0x12, ...
 */
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
#include "virtio/mmio.h"
#include "virtio_harness.h"

#define FAKE_DEVICE_ID 0x2a
#define FAKE_QUEUE_MAX 64
#define CONFIG_SIZE 24
#define F(bit) (1ULL << (bit))
/* Two device bits, one in each feature word. */
#define FAKE_FEATURES (F(3) | F(40))
#define TRANSPORT_FEATURES                                                             \
	(F(VIRTIO_F_VERSION_1) | F(VIRTIO_RING_F_EVENT_IDX) | F(VIRTIO_RING_F_INDIRECT_DESC))

struct fake {
	struct virtio_device vdev;
	uint8_t config[CONFIG_SIZE];
	unsigned int notifies[2];
	unsigned int activations, resets, config_writes;
	uint32_t last_write_offset, last_write_size;
};

struct ctx {
	struct harness h;
	struct fake fake;
};

static void fake_config_read(struct virtio_device *vdev, uint32_t offset, void *data,
			     uint32_t size)
{
	struct fake *f = vdev->priv;

	assert_true(offset + size <= CONFIG_SIZE);
	memcpy(data, f->config + offset, size);
}

static void fake_config_write(struct virtio_device *vdev, uint32_t offset, const void *data,
			      uint32_t size)
{
	struct fake *f = vdev->priv;

	assert_true(offset + size <= CONFIG_SIZE);
	f->config_writes++;
	f->last_write_offset = offset;
	f->last_write_size = size;
	memcpy(f->config + offset, data, size);
}

static void fake_queue_notify(struct virtio_device *vdev, unsigned int q)
{
	struct fake *f = vdev->priv;

	assert_true(q < 2);
	f->notifies[q]++;
}

static int fake_activate(struct virtio_device *vdev)
{
	((struct fake *)vdev->priv)->activations++;
	return 0;
}

static void fake_reset(struct virtio_device *vdev)
{
	((struct fake *)vdev->priv)->resets++;
}

static const struct virtio_device_ops fake_ops = {
	.name = "fake",
	.device_id = FAKE_DEVICE_ID,
	.nr_queues = 2,
	.queue_size = FAKE_QUEUE_MAX,
	.config_size = CONFIG_SIZE,
	.config_read = fake_config_read,
	.config_write = fake_config_write,
	.queue_notify = fake_queue_notify,
	.activate = fake_activate,
	.reset = fake_reset,
};

static int setup(void **state)
{
	struct ctx *c = calloc(1, sizeof(*c));

	if (!c)
		return -1;
	for (unsigned int i = 0; i < CONFIG_SIZE; i++)
		c->fake.config[i] = (uint8_t)(0x10 + i);
	harness_init(&c->h, 1 << 20);
	virtio_device_init(&c->fake.vdev, &fake_ops, &c->fake, &c->h.mem, FAKE_FEATURES);
	harness_attach(&c->h, &c->fake.vdev);
	*state = c;
	return 0;
}

static int teardown(void **state)
{
	struct ctx *c = *state;

	virtio_device_destroy(&c->fake.vdev);
	harness_destroy(&c->h);
	free(c);
	return 0;
}

static uint32_t reg(struct ctx *c, uint64_t offset)
{
	return harness_read_reg(&c->h, offset);
}

static void set_reg(struct ctx *c, uint64_t offset, uint32_t value)
{
	harness_write_reg(&c->h, offset, value);
}

static void test_mmio_identifies_as_virtio_mmio_version_2(void **state)
{
	struct ctx *c = *state;

	assert_int_equal(reg(c, VIRTIO_MMIO_MAGIC_VALUE), 0x74726976); /* "virt" */
	assert_int_equal(reg(c, VIRTIO_MMIO_VERSION), 2);
	assert_int_equal(reg(c, VIRTIO_MMIO_DEVICE_ID), FAKE_DEVICE_ID);
	assert_int_equal(reg(c, VIRTIO_MMIO_VENDOR_ID), VIRTIO_MMIO_VENDOR);
	/* No shared memory regions: length reads as all ones (§4.2.2). */
	assert_int_equal(reg(c, VIRTIO_MMIO_SHM_LEN_LOW), UINT32_MAX);
	assert_int_equal(reg(c, VIRTIO_MMIO_SHM_LEN_HIGH), UINT32_MAX);
}

static void test_mmio_offers_device_and_transport_features(void **state)
{
	struct ctx *c = *state;

	assert_int_equal(harness_device_features(&c->h), FAKE_FEATURES | TRANSPORT_FEATURES);
	set_reg(c, VIRTIO_MMIO_DEVICE_FEATURES_SEL, 2);
	assert_int_equal(reg(c, VIRTIO_MMIO_DEVICE_FEATURES), 0);
	set_reg(c, VIRTIO_MMIO_DEVICE_FEATURES_SEL, UINT32_MAX);
	assert_int_equal(reg(c, VIRTIO_MMIO_DEVICE_FEATURES), 0);
}

static void test_mmio_negotiation_accepts_offered_subset_with_version_1(void **state)
{
	struct ctx *c = *state;
	uint64_t wanted = F(VIRTIO_F_VERSION_1) | F(40) | F(VIRTIO_RING_F_EVENT_IDX);

	assert_int_equal(harness_negotiate(&c->h, wanted), 0);
	assert_int_equal(c->fake.vdev.driver_features, wanted);
	assert_true(harness_status(&c->h) & VIRTIO_CONFIG_S_FEATURES_OK);
}

/* Plays the probe by hand with exactly these driver features; returns the status after FEATURES_OK. */
static uint32_t try_features(struct ctx *c, uint64_t features)
{
	set_reg(c, VIRTIO_MMIO_STATUS, 0);
	harness_add_status(&c->h, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER);
	harness_write_driver_features(&c->h, features);
	harness_add_status(&c->h, VIRTIO_CONFIG_S_FEATURES_OK);
	return harness_status(&c->h);
}

static void test_mmio_refuses_features_ok_for_bit_not_offered(void **state)
{
	struct ctx *c = *state;

	assert_false(try_features(c, F(VIRTIO_F_VERSION_1) | F(4)) & VIRTIO_CONFIG_S_FEATURES_OK);
	assert_false(try_features(c, F(VIRTIO_F_VERSION_1) | F(63)) & VIRTIO_CONFIG_S_FEATURES_OK);
	assert_false(try_features(c, F(VIRTIO_F_VERSION_1) | F(VIRTIO_F_RING_PACKED)) &
		     VIRTIO_CONFIG_S_FEATURES_OK);
	/* The other bits the driver wrote stay. */
	assert_true(try_features(c, F(VIRTIO_F_VERSION_1) | F(4)) & VIRTIO_CONFIG_S_DRIVER);
}

static void test_mmio_refuses_features_ok_without_version_1(void **state)
{
	struct ctx *c = *state;

	assert_false(try_features(c, 0) & VIRTIO_CONFIG_S_FEATURES_OK);
	assert_false(try_features(c, F(3) | F(VIRTIO_RING_F_EVENT_IDX)) &
		     VIRTIO_CONFIG_S_FEATURES_OK);
	assert_true(try_features(c, F(VIRTIO_F_VERSION_1)) & VIRTIO_CONFIG_S_FEATURES_OK);
}

static void test_mmio_driver_features_frozen_after_features_ok(void **state)
{
	struct ctx *c = *state;

	assert_int_equal(harness_negotiate(&c->h, F(VIRTIO_F_VERSION_1)), 0);
	harness_write_driver_features(&c->h, F(VIRTIO_F_VERSION_1) | F(3) | F(4));
	assert_int_equal(c->fake.vdev.driver_features, F(VIRTIO_F_VERSION_1));
	/* A selector past the two words is ignored too. */
	set_reg(c, VIRTIO_MMIO_STATUS, 0);
	harness_add_status(&c->h, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER);
	set_reg(c, VIRTIO_MMIO_DRIVER_FEATURES_SEL, 2);
	set_reg(c, VIRTIO_MMIO_DRIVER_FEATURES, UINT32_MAX);
	assert_int_equal(c->fake.vdev.driver_features, 0);
}

static void test_mmio_queue_num_max_only_for_existing_queues(void **state)
{
	struct ctx *c = *state;

	set_reg(c, VIRTIO_MMIO_QUEUE_SEL, 0);
	assert_int_equal(reg(c, VIRTIO_MMIO_QUEUE_NUM_MAX), FAKE_QUEUE_MAX);
	set_reg(c, VIRTIO_MMIO_QUEUE_SEL, 1);
	assert_int_equal(reg(c, VIRTIO_MMIO_QUEUE_NUM_MAX), FAKE_QUEUE_MAX);
	set_reg(c, VIRTIO_MMIO_QUEUE_SEL, 2);
	assert_int_equal(reg(c, VIRTIO_MMIO_QUEUE_NUM_MAX), 0);
	set_reg(c, VIRTIO_MMIO_QUEUE_SEL, UINT32_MAX);
	assert_int_equal(reg(c, VIRTIO_MMIO_QUEUE_NUM_MAX), 0);
	/* Writes to a queue that does not exist go nowhere. */
	set_reg(c, VIRTIO_MMIO_QUEUE_NUM, 8);
	set_reg(c, VIRTIO_MMIO_QUEUE_READY, 1);
	assert_int_equal(reg(c, VIRTIO_MMIO_QUEUE_READY), 0);
	for (unsigned int q = 0; q < VIRTIO_MAX_QUEUES; q++)
		assert_false(c->fake.vdev.queues[q].ready);
}

static void test_mmio_queue_registers_read_back(void **state)
{
	struct ctx *c = *state;

	harness_negotiate(&c->h, F(VIRTIO_F_VERSION_1));
	set_reg(c, VIRTIO_MMIO_QUEUE_SEL, 1);
	set_reg(c, VIRTIO_MMIO_QUEUE_NUM, 32);
	set_reg(c, VIRTIO_MMIO_QUEUE_DESC_LOW, 0x11110000);
	set_reg(c, VIRTIO_MMIO_QUEUE_DESC_HIGH, 0x1);
	set_reg(c, VIRTIO_MMIO_QUEUE_AVAIL_LOW, 0x22220000);
	set_reg(c, VIRTIO_MMIO_QUEUE_AVAIL_HIGH, 0x2);
	set_reg(c, VIRTIO_MMIO_QUEUE_USED_LOW, 0x33330000);
	set_reg(c, VIRTIO_MMIO_QUEUE_USED_HIGH, 0x3);
	assert_int_equal(reg(c, VIRTIO_MMIO_QUEUE_NUM), 32);
	assert_int_equal(reg(c, VIRTIO_MMIO_QUEUE_DESC_LOW), 0x11110000);
	assert_int_equal(reg(c, VIRTIO_MMIO_QUEUE_DESC_HIGH), 1);
	assert_int_equal(c->fake.vdev.queues[1].desc_gpa, 0x111110000ULL);
	assert_int_equal(c->fake.vdev.queues[1].avail_gpa, 0x222220000ULL);
	assert_int_equal(c->fake.vdev.queues[1].used_gpa, 0x333330000ULL);
	/* Queue 0 was not touched. */
	assert_int_equal(c->fake.vdev.queues[0].desc_gpa, 0);
	set_reg(c, VIRTIO_MMIO_QUEUE_SEL, 0);
	assert_int_equal(reg(c, VIRTIO_MMIO_QUEUE_NUM), 0);
}

static void test_mmio_queue_num_must_be_power_of_two_within_max(void **state)
{
	struct ctx *c = *state;

	harness_negotiate(&c->h, F(VIRTIO_F_VERSION_1));
	set_reg(c, VIRTIO_MMIO_QUEUE_SEL, 0);
	set_reg(c, VIRTIO_MMIO_QUEUE_NUM, 16);
	set_reg(c, VIRTIO_MMIO_QUEUE_NUM, 24);
	assert_int_equal(reg(c, VIRTIO_MMIO_QUEUE_NUM), 16);
	set_reg(c, VIRTIO_MMIO_QUEUE_NUM, FAKE_QUEUE_MAX * 2);
	assert_int_equal(reg(c, VIRTIO_MMIO_QUEUE_NUM), 16);
	set_reg(c, VIRTIO_MMIO_QUEUE_NUM, 0);
	assert_int_equal(reg(c, VIRTIO_MMIO_QUEUE_NUM), 16);
	set_reg(c, VIRTIO_MMIO_QUEUE_NUM, 0x10010); /* would truncate to 16 bits */
	assert_int_equal(reg(c, VIRTIO_MMIO_QUEUE_NUM), 16);
	set_reg(c, VIRTIO_MMIO_QUEUE_NUM, FAKE_QUEUE_MAX);
	assert_int_equal(reg(c, VIRTIO_MMIO_QUEUE_NUM), FAKE_QUEUE_MAX);
	set_reg(c, VIRTIO_MMIO_QUEUE_NUM, 1);
	assert_int_equal(reg(c, VIRTIO_MMIO_QUEUE_NUM), 1);
}

static void test_mmio_queue_registers_ignored_after_queue_ready(void **state)
{
	struct ctx *c = *state;
	struct virtq *vq = &c->fake.vdev.queues[0];

	harness_negotiate(&c->h, F(VIRTIO_F_VERSION_1));
	harness_setup_queue(&c->h, 0, 16);
	set_reg(c, VIRTIO_MMIO_QUEUE_SEL, 0);
	assert_int_equal(reg(c, VIRTIO_MMIO_QUEUE_READY), 1);
	set_reg(c, VIRTIO_MMIO_QUEUE_NUM, 32);
	set_reg(c, VIRTIO_MMIO_QUEUE_DESC_LOW, 0x1000);
	set_reg(c, VIRTIO_MMIO_QUEUE_AVAIL_HIGH, 0x1);
	set_reg(c, VIRTIO_MMIO_QUEUE_USED_LOW, 0x1000);
	assert_int_equal(vq->size, 16);
	assert_int_equal(vq->desc_gpa, c->h.queues[0].desc_gpa);
	assert_int_equal(vq->avail_gpa, c->h.queues[0].avail_gpa);
	assert_int_equal(vq->used_gpa, c->h.queues[0].used_gpa);
}

static void test_mmio_queue_registers_ignored_after_driver_ok(void **state)
{
	struct ctx *c = *state;
	struct virtq *vq = &c->fake.vdev.queues[0];

	assert_int_equal(harness_start(&c->h, F(VIRTIO_F_VERSION_1), 1, 16), 0);
	assert_int_equal(c->fake.activations, 1);
	set_reg(c, VIRTIO_MMIO_QUEUE_SEL, 0);
	set_reg(c, VIRTIO_MMIO_QUEUE_READY, 0);
	assert_true(vq->ready);
	set_reg(c, VIRTIO_MMIO_QUEUE_NUM, 32);
	set_reg(c, VIRTIO_MMIO_QUEUE_DESC_LOW, 0x1000);
	assert_int_equal(vq->size, 16);
	assert_int_equal(vq->desc_gpa, c->h.queues[0].desc_gpa);
	/* Queue 1 was never set up; it cannot be now. */
	set_reg(c, VIRTIO_MMIO_QUEUE_SEL, 1);
	set_reg(c, VIRTIO_MMIO_QUEUE_NUM, 16);
	set_reg(c, VIRTIO_MMIO_QUEUE_READY, 1);
	assert_false(c->fake.vdev.queues[1].ready);
	assert_int_equal(c->fake.vdev.queues[1].size, 0);
}

static void test_mmio_notify_reaches_device_only_when_running(void **state)
{
	struct ctx *c = *state;

	harness_negotiate(&c->h, F(VIRTIO_F_VERSION_1));
	harness_setup_queue(&c->h, 0, 16);
	harness_kick(&c->h, 0); /* before DRIVER_OK */
	assert_int_equal(c->fake.notifies[0], 0);
	harness_driver_ok(&c->h);
	harness_kick(&c->h, 0);
	assert_int_equal(c->fake.notifies[0], 1);
	harness_kick(&c->h, 1); /* queue 1 is not ready */
	harness_kick(&c->h, 2); /* no such queue */
	harness_kick(&c->h, UINT32_MAX);
	assert_int_equal(c->fake.notifies[1], 0);
	assert_int_equal(c->fake.notifies[0], 1);
}

static void test_mmio_reset_clears_features_queues_and_interrupts(void **state)
{
	struct ctx *c = *state;
	struct virtio_device *vdev = &c->fake.vdev;

	unsigned int resets;

	assert_int_equal(harness_start(&c->h, F(VIRTIO_F_VERSION_1) | F(3), 2, 16), 0);
	resets = c->fake.resets;
	virtio_config_changed(vdev);
	virtio_queue_interrupt(vdev, 0);
	assert_int_not_equal(reg(c, VIRTIO_MMIO_INTERRUPT_STATUS), 0);

	set_reg(c, VIRTIO_MMIO_STATUS, 0);
	assert_int_equal(c->fake.resets, resets + 1);
	assert_int_equal(reg(c, VIRTIO_MMIO_STATUS), 0);
	assert_int_equal(reg(c, VIRTIO_MMIO_INTERRUPT_STATUS), 0);
	assert_int_equal(vdev->driver_features, 0);
	for (unsigned int q = 0; q < 2; q++) {
		set_reg(c, VIRTIO_MMIO_QUEUE_SEL, q);
		assert_int_equal(reg(c, VIRTIO_MMIO_QUEUE_READY), 0);
		assert_int_equal(reg(c, VIRTIO_MMIO_QUEUE_NUM), 0);
		assert_int_equal(reg(c, VIRTIO_MMIO_QUEUE_DESC_LOW), 0);
		assert_int_equal(reg(c, VIRTIO_MMIO_QUEUE_USED_LOW), 0);
	}
	/* Features can be negotiated again, and a kick reaches nobody until DRIVER_OK. */
	harness_kick(&c->h, 0);
	assert_int_equal(c->fake.notifies[0], 0);
	assert_int_equal(harness_negotiate(&c->h, F(VIRTIO_F_VERSION_1)), 0);
	assert_int_equal(vdev->driver_features, F(VIRTIO_F_VERSION_1));
}

static void test_mmio_interrupt_ack_clears_only_acknowledged_bits(void **state)
{
	struct ctx *c = *state;
	struct virtio_device *vdev = &c->fake.vdev;

	assert_int_equal(harness_start(&c->h, F(VIRTIO_F_VERSION_1), 1, 16), 0);
	harness_interrupts(&c->h);
	virtio_config_changed(vdev);
	virtio_queue_interrupt(vdev, 0);
	assert_int_equal(harness_interrupts(&c->h), 2);
	assert_int_equal(reg(c, VIRTIO_MMIO_INTERRUPT_STATUS),
			 VIRTIO_MMIO_INT_VRING | VIRTIO_MMIO_INT_CONFIG);
	set_reg(c, VIRTIO_MMIO_INTERRUPT_ACK, VIRTIO_MMIO_INT_VRING);
	assert_int_equal(reg(c, VIRTIO_MMIO_INTERRUPT_STATUS), VIRTIO_MMIO_INT_CONFIG);
	set_reg(c, VIRTIO_MMIO_INTERRUPT_ACK, VIRTIO_MMIO_INT_CONFIG);
	assert_int_equal(reg(c, VIRTIO_MMIO_INTERRUPT_STATUS), 0);
	assert_int_equal(reg(c, VIRTIO_MMIO_CONFIG_GENERATION), 1);
}

static void test_mmio_driver_cannot_clear_needs_reset(void **state)
{
	struct ctx *c = *state;

	assert_int_equal(harness_start(&c->h, F(VIRTIO_F_VERSION_1), 1, 16), 0);
	virtio_set_needs_reset(&c->fake.vdev, "did something wrong");
	set_reg(c, VIRTIO_MMIO_STATUS, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER |
					       VIRTIO_CONFIG_S_FEATURES_OK |
					       VIRTIO_CONFIG_S_DRIVER_OK);
	assert_true(reg(c, VIRTIO_MMIO_STATUS) & VIRTIO_CONFIG_S_NEEDS_RESET);
	harness_kick(&c->h, 0);
	assert_int_equal(c->fake.notifies[0], 0);
	/* Only a reset clears it. */
	set_reg(c, VIRTIO_MMIO_STATUS, 0);
	assert_int_equal(reg(c, VIRTIO_MMIO_STATUS), 0);
}

static void test_mmio_config_reads_at_every_width(void **state)
{
	struct ctx *c = *state;
	uint8_t b;
	uint16_t w;
	uint32_t l;
	uint64_t q;

	harness_config_read(&c->h, 5, &b, 1);
	assert_int_equal(b, 0x15);
	harness_config_read(&c->h, 2, &w, 2);
	assert_int_equal(w, 0x1312);
	harness_config_read(&c->h, 4, &l, 4);
	assert_int_equal(l, 0x17161514);
	harness_config_read(&c->h, 16, &q, 8);
	assert_int_equal(q, 0x2726252423222120ULL);
	/* Unaligned but inside: served as asked. */
	harness_config_read(&c->h, 3, &l, 4);
	assert_int_equal(l, 0x16151413);
	harness_config_read(&c->h, CONFIG_SIZE - 1, &b, 1);
	assert_int_equal(b, 0x10 + CONFIG_SIZE - 1);
}

static void test_mmio_config_reads_out_of_range_return_zeroes(void **state)
{
	struct ctx *c = *state;
	uint8_t b = 0xff;
	uint32_t l = 0xffffffff;
	uint64_t q = UINT64_MAX;

	harness_config_read(&c->h, CONFIG_SIZE, &b, 1);
	assert_int_equal(b, 0);
	harness_config_read(&c->h, CONFIG_SIZE - 2, &l, 4); /* straddles the end */
	assert_int_equal(l, 0);
	harness_config_read(&c->h, CONFIG_SIZE - 4, &q, 8);
	assert_int_equal(q, 0);
	q = UINT64_MAX;
	harness_config_read(&c->h, VIRTIO_MMIO_WINDOW - VIRTIO_MMIO_CONFIG - 8, &q, 8);
	assert_int_equal(q, 0);
}

static void test_mmio_config_writes_reach_device_only_in_range(void **state)
{
	struct ctx *c = *state;
	uint16_t w = 0xabcd;
	uint32_t l = 0x01020304;
	uint64_t base = HARNESS_MMIO_BASE + VIRTIO_MMIO_CONFIG;

	assert_true(bus_write(&c->h.bus, base + 6, &w, 2));
	assert_int_equal(c->fake.config_writes, 1);
	assert_int_equal(c->fake.last_write_offset, 6);
	assert_int_equal(c->fake.last_write_size, 2);
	assert_int_equal(c->fake.config[6], 0xcd);
	assert_true(bus_write(&c->h.bus, base + CONFIG_SIZE - 2, &l, 4));
	assert_true(bus_write(&c->h.bus, base + CONFIG_SIZE, &l, 4));
	assert_int_equal(c->fake.config_writes, 1);
}

static void test_mmio_ignores_non_32_bit_register_accesses(void **state)
{
	struct ctx *c = *state;
	uint64_t base = HARNESS_MMIO_BASE;
	uint8_t b = 0xff;
	uint16_t w = 0xffff;
	uint64_t q = UINT64_MAX;
	uint32_t l = 0xffffffff;
	uint8_t status = VIRTIO_CONFIG_S_ACKNOWLEDGE;

	/* Reads at other widths, or misaligned, read as zeroes. */
	assert_true(bus_read(&c->h.bus, base + VIRTIO_MMIO_MAGIC_VALUE, &b, 1));
	assert_int_equal(b, 0);
	assert_true(bus_read(&c->h.bus, base + VIRTIO_MMIO_MAGIC_VALUE, &w, 2));
	assert_int_equal(w, 0);
	assert_true(bus_read(&c->h.bus, base + VIRTIO_MMIO_MAGIC_VALUE, &q, 8));
	assert_int_equal(q, 0);
	assert_true(bus_read(&c->h.bus, base + VIRTIO_MMIO_MAGIC_VALUE + 1, &l, 4));
	assert_int_equal(l, 0);

	/* Writes at other widths, or misaligned, change nothing. */
	assert_true(bus_write(&c->h.bus, base + VIRTIO_MMIO_STATUS, &status, 1));
	assert_int_equal(reg(c, VIRTIO_MMIO_STATUS), 0);
	w = VIRTIO_CONFIG_S_ACKNOWLEDGE;
	assert_true(bus_write(&c->h.bus, base + VIRTIO_MMIO_STATUS, &w, 2));
	assert_int_equal(reg(c, VIRTIO_MMIO_STATUS), 0);
	q = VIRTIO_CONFIG_S_ACKNOWLEDGE;
	assert_true(bus_write(&c->h.bus, base + VIRTIO_MMIO_STATUS, &q, 8));
	assert_int_equal(reg(c, VIRTIO_MMIO_STATUS), 0);
	l = VIRTIO_CONFIG_S_ACKNOWLEDGE << 8;
	assert_true(bus_write(&c->h.bus, base + VIRTIO_MMIO_STATUS - 1, &l, 4));
	assert_int_equal(reg(c, VIRTIO_MMIO_STATUS), 0);

	/* A 16-bit QueueNotify is no kick either. */
	assert_int_equal(harness_start(&c->h, F(VIRTIO_F_VERSION_1), 1, 16), 0);
	w = 0;
	assert_true(bus_write(&c->h.bus, base + VIRTIO_MMIO_QUEUE_NOTIFY, &w, 2));
	assert_int_equal(c->fake.notifies[0], 0);
}

static void test_mmio_unknown_and_write_only_registers_read_zero(void **state)
{
	struct ctx *c = *state;

	assert_int_equal(reg(c, VIRTIO_MMIO_QUEUE_NOTIFY), 0);
	assert_int_equal(reg(c, VIRTIO_MMIO_INTERRUPT_ACK), 0);
	assert_int_equal(reg(c, VIRTIO_MMIO_DRIVER_FEATURES_SEL), 0);
	assert_int_equal(reg(c, 0x0fc), 0);
	set_reg(c, 0x0fc, 0x12345678); /* an unknown register takes writes silently */
	assert_int_equal(reg(c, VIRTIO_MMIO_STATUS), 0);
}

static void test_mmio_rings_outside_ram_at_driver_ok_need_reset(void **state)
{
	struct ctx *c = *state;

	assert_int_equal(harness_negotiate(&c->h, F(VIRTIO_F_VERSION_1)), 0);
	harness_setup_queue_at(&c->h, 0, 16, 0, 0, 0); /* guest address 0 is not RAM here */
	harness_driver_ok(&c->h);
	assert_true(reg(c, VIRTIO_MMIO_STATUS) & VIRTIO_CONFIG_S_NEEDS_RESET);
	assert_true(reg(c, VIRTIO_MMIO_INTERRUPT_STATUS) & VIRTIO_MMIO_INT_CONFIG);
	harness_kick(&c->h, 0);
	assert_int_equal(c->fake.notifies[0], 0);
}

static void test_mmio_ready_queue_without_size_needs_reset(void **state)
{
	struct ctx *c = *state;

	assert_int_equal(harness_negotiate(&c->h, F(VIRTIO_F_VERSION_1)), 0);
	set_reg(c, VIRTIO_MMIO_QUEUE_SEL, 0);
	set_reg(c, VIRTIO_MMIO_QUEUE_READY, 1); /* QueueNum never written: size 0 */
	harness_driver_ok(&c->h);
	assert_true(reg(c, VIRTIO_MMIO_STATUS) & VIRTIO_CONFIG_S_NEEDS_RESET);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_mmio_identifies_as_virtio_mmio_version_2),
		T(test_mmio_offers_device_and_transport_features),
		T(test_mmio_negotiation_accepts_offered_subset_with_version_1),
		T(test_mmio_refuses_features_ok_for_bit_not_offered),
		T(test_mmio_refuses_features_ok_without_version_1),
		T(test_mmio_driver_features_frozen_after_features_ok),
		T(test_mmio_queue_num_max_only_for_existing_queues),
		T(test_mmio_queue_registers_read_back),
		T(test_mmio_queue_num_must_be_power_of_two_within_max),
		T(test_mmio_queue_registers_ignored_after_queue_ready),
		T(test_mmio_queue_registers_ignored_after_driver_ok),
		T(test_mmio_notify_reaches_device_only_when_running),
		T(test_mmio_reset_clears_features_queues_and_interrupts),
		T(test_mmio_interrupt_ack_clears_only_acknowledged_bits),
		T(test_mmio_driver_cannot_clear_needs_reset),
		T(test_mmio_config_reads_at_every_width),
		T(test_mmio_config_reads_out_of_range_return_zeroes),
		T(test_mmio_config_writes_reach_device_only_in_range),
		T(test_mmio_ignores_non_32_bit_register_accesses),
		T(test_mmio_unknown_and_write_only_registers_read_zero),
		T(test_mmio_rings_outside_ram_at_driver_ok_need_reset),
		T(test_mmio_ready_queue_without_size_needs_reset),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
