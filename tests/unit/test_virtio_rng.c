/*
 * virtio-rng driven through virtio-mmio the way Linux's virtio-rng driver
 * drives it (one device-writable buffer per request), plus hostile chains,
 * and the rate limit run on a real event loop.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <cmocka.h>
#include <linux/virtio_config.h>
#include <linux/virtio_ids.h>
#include <linux/virtio_mmio.h>

#include "virtio/rng.h"
#include "virtio_harness.h"
#include "vmm/event_loop.h"

#define FILL 0xa5 /* what fake RAM holds where the device must not write */

struct fixture {
	struct harness h;
	struct event_loop loop;
	struct virtio_rng *rng;
};

static struct fixture *fixture_new(uint64_t rate)
{
	struct fixture *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	assert_int_equal(event_loop_init(&f->loop), 0);
	harness_init(&f->h, 0);
	f->rng = virtio_rng_create(&f->h.mem, &f->loop, rate);
	assert_non_null(f->rng);
	harness_attach(&f->h, virtio_rng_device(f->rng));
	assert_int_equal(harness_start(&f->h, ~0ULL, 1, 64), 0);
	return f;
}

static int setup(void **state)
{
	*state = fixture_new(VIRTIO_RNG_DEFAULT_RATE);
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	virtio_rng_destroy(f->rng);
	harness_destroy(&f->h);
	event_loop_destroy(&f->loop);
	free(f);
	return 0;
}

/* A buffer of len bytes of FILL, with FILL guard bytes after it. */
static uint64_t buffer(struct harness *h, uint32_t len)
{
	uint64_t gpa = harness_alloc(h, len + 64, 8);

	memset(harness_ptr(h, gpa), FILL, len + 64);
	return gpa;
}

static bool all_fill(const uint8_t *p, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (p[i] != FILL)
			return false;
	return true;
}

static void test_rng_identifies_itself_with_no_config(void **state)
{
	struct fixture *f = *state;
	uint32_t config = 0xdeadbeef;

	assert_int_equal(harness_read_reg(&f->h, VIRTIO_MMIO_DEVICE_ID), VIRTIO_ID_RNG);
	harness_write_reg(&f->h, VIRTIO_MMIO_QUEUE_SEL, 1);
	assert_int_equal(harness_read_reg(&f->h, VIRTIO_MMIO_QUEUE_NUM_MAX), 0);
	harness_config_read(&f->h, 0, &config, 4);
	assert_int_equal(config, 0);
	assert_true(harness_status(&f->h) & VIRTIO_CONFIG_S_DRIVER_OK);
}

static void test_rng_fills_exactly_the_posted_bytes(void **state)
{
	struct fixture *f = *state;
	uint64_t a = buffer(&f->h, 100), b = buffer(&f->h, 28);
	struct harness_buf bufs[] = { { a, 100, true }, { b, 28, true } };
	uint16_t head = harness_add(&f->h, 0, bufs, 2);
	uint32_t id, len;

	harness_kick(&f->h, 0);
	assert_true(harness_get_used(&f->h, 0, &id, &len));
	assert_int_equal(id, head);
	assert_int_equal(len, 128);
	/* Random bytes (64 of them all FILL is a 2^-512 chance), nothing past the buffers. */
	assert_false(all_fill(harness_ptr(&f->h, a), 64));
	assert_true(all_fill((uint8_t *)harness_ptr(&f->h, a) + 100, 64));
	assert_true(all_fill((uint8_t *)harness_ptr(&f->h, b) + 28, 64));
	assert_true(harness_interrupts(&f->h) >= 1);
	assert_true(harness_ack_interrupt(&f->h) & VIRTIO_MMIO_INT_VRING);
}

static void test_rng_serves_an_indirect_chain(void **state)
{
	struct fixture *f = *state;
	uint64_t a = buffer(&f->h, 16), b = buffer(&f->h, 48);
	struct harness_buf bufs[] = { { a, 16, true }, { b, 48, true } };
	uint16_t head = harness_add_indirect(&f->h, 0, bufs, 2);
	uint32_t id, len;

	harness_kick(&f->h, 0);
	assert_true(harness_get_used(&f->h, 0, &id, &len));
	assert_int_equal(id, head);
	assert_int_equal(len, 64);
	assert_false(all_fill(harness_ptr(&f->h, b), 48));
}

static void test_rng_caps_one_request(void **state)
{
	struct fixture *f = *state;
	uint32_t size = VIRTIO_RNG_MAX_REQUEST + 4096;
	uint64_t a = buffer(&f->h, size);
	struct harness_buf buf = { a, size, true };
	uint32_t id, len;

	harness_add(&f->h, 0, &buf, 1);
	harness_kick(&f->h, 0);
	assert_true(harness_get_used(&f->h, 0, &id, &len));
	assert_int_equal(len, VIRTIO_RNG_MAX_REQUEST);
	assert_true(all_fill((uint8_t *)harness_ptr(&f->h, a) + VIRTIO_RNG_MAX_REQUEST, 4096));
}

static void test_rng_answers_a_chain_without_writable_buffers_with_zero(void **state)
{
	struct fixture *f = *state;
	uint64_t a = buffer(&f->h, 32);
	struct harness_buf buf = { a, 32, false };
	uint32_t id, len;

	harness_add(&f->h, 0, &buf, 1);
	harness_kick(&f->h, 0);
	assert_true(harness_get_used(&f->h, 0, &id, &len));
	assert_int_equal(len, 0);
	assert_true(all_fill(harness_ptr(&f->h, a), 32));
}

static void test_rng_survives_malformed_chains(void **state)
{
	struct fixture *f = *state;
	uint64_t good = buffer(&f->h, 32);
	struct harness_buf outside = { 0x1000, 64, true }; /* below fake RAM */
	struct harness_buf ok = { good, 32, true };
	uint32_t id, len;
	uint16_t loop_head;

	harness_add(&f->h, 0, &outside, 1);
	/* Two descriptors chained to each other forever. */
	loop_head = 40;
	harness_set_desc(&f->h, 0, 40, good, 8, VRING_DESC_F_WRITE | VRING_DESC_F_NEXT, 41);
	harness_set_desc(&f->h, 0, 41, good, 8, VRING_DESC_F_WRITE | VRING_DESC_F_NEXT, 40);
	harness_publish(&f->h, 0, loop_head);
	harness_add(&f->h, 0, &ok, 1);
	harness_kick(&f->h, 0);

	assert_true(harness_get_used(&f->h, 0, &id, &len));
	assert_int_equal(len, 0);
	assert_true(harness_get_used(&f->h, 0, &id, &len));
	assert_int_equal(id, loop_head);
	assert_int_equal(len, 0);
	assert_true(harness_get_used(&f->h, 0, &id, &len));
	assert_int_equal(len, 32);
	assert_false(harness_status(&f->h) & VIRTIO_CONFIG_S_NEEDS_RESET);
}

static void test_rng_needs_reset_when_the_ring_is_broken(void **state)
{
	struct fixture *f = *state;

	/* avail->idx runs more than a queue size ahead of what the device has seen. */
	harness_avail(&f->h, 0)->idx = 200;
	harness_kick(&f->h, 0);
	assert_int_equal(harness_pending_used(&f->h, 0), 0);
	assert_true(harness_status(&f->h) & VIRTIO_CONFIG_S_NEEDS_RESET);
}

static void test_rng_refuses_a_rate_out_of_range(void **state)
{
	struct event_loop loop;
	struct guest_mem mem;

	(void)state;
	guest_mem_init_empty(&mem);
	assert_int_equal(event_loop_init(&loop), 0);
	errno = 0;
	assert_null(virtio_rng_create(&mem, &loop, 0));
	assert_int_equal(errno, EINVAL);
	assert_null(virtio_rng_create(&mem, &loop, VIRTIO_RNG_MAX_RATE + 1));
	event_loop_destroy(&loop);
}

struct loop_watch {
	struct event_loop *loop;
	int fd;
	bool fired;
	struct event_handler handler;
};

static void on_watch(void *opaque, uint32_t events)
{
	struct loop_watch *w = opaque;
	uint64_t count;

	(void)events;
	if (read(w->fd, &count, sizeof(count)) > 0)
		w->fired = true;
	w->loop->stop = true;
}

static void watch(struct loop_watch *w, struct event_loop *loop, int fd)
{
	*w = (struct loop_watch){ loop, fd, false, { on_watch, w } };
	assert_int_equal(event_loop_add(loop, fd, EPOLLIN, &w->handler), 0);
}

/*
 * A 1000 bytes/s bucket holds 1000 bytes. The first request takes 1100:
 * served whole, it leaves a debt of 100 bytes, so the second waits in the
 * ring, unserved, until the device's timer has refilled the bucket on the
 * event loop (a tenth of a second after the second kick, which comes well
 * before); then it too is served whole, never short. No timing is
 * asserted: a 10 s guard only ends a hang.
 */
static void test_rng_rate_limit_defers_and_resumes(void **state)
{
	struct fixture *f = fixture_new(1000);
	uint64_t a = buffer(&f->h, 1100), b = buffer(&f->h, 512);
	struct harness_buf first = { a, 1100, true }, second = { b, 512, true };
	struct itimerspec ten_seconds = { .it_value = { .tv_sec = 10 } };
	struct loop_watch irq, guard;
	int guard_fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
	uint32_t id, len;
	uint16_t head;

	(void)state;
	harness_add(&f->h, 0, &first, 1);
	harness_kick(&f->h, 0);
	assert_true(harness_get_used(&f->h, 0, &id, &len));
	assert_int_equal(len, 1100);
	harness_interrupts(&f->h);
	*harness_used_event(&f->h, 0) = 1; /* interrupt me for the next one (EVENT_IDX) */

	head = harness_add(&f->h, 0, &second, 1);
	harness_kick(&f->h, 0);
	assert_int_equal(harness_pending_used(&f->h, 0), 0); /* deferred, not dropped */
	assert_int_equal(harness_interrupts(&f->h), 0);

	assert_true(guard_fd >= 0);
	assert_int_equal(timerfd_settime(guard_fd, 0, &ten_seconds, NULL), 0);
	watch(&guard, &f->loop, guard_fd);
	watch(&irq, &f->loop, f->h.irq_fd);
	assert_int_equal(event_loop_run(&f->loop), 0);
	assert_false(guard.fired);
	assert_true(irq.fired);

	assert_true(harness_get_used(&f->h, 0, &id, &len));
	assert_int_equal(id, head);
	assert_int_equal(len, 512);
	assert_false(all_fill(harness_ptr(&f->h, b), 64));
	assert_true(all_fill((uint8_t *)harness_ptr(&f->h, b) + 512, 64));

	event_loop_remove(&f->loop, guard_fd);
	event_loop_remove(&f->loop, f->h.irq_fd);
	close(guard_fd);
	teardown((void **)&f);
}

/*
 * An asynchronous path re-checks that the device runs: a request deferred
 * by the rate limit stays unserved when the driver gives up (FAILED)
 * before the refill timer fires. The loop runs until a 1 s guard, ten
 * times the timer's delay.
 */
static void test_rng_timer_after_the_driver_failed_serves_nothing(void **state)
{
	struct fixture *f = fixture_new(1000);
	struct harness_buf first = { buffer(&f->h, 1100), 1100, true };
	struct harness_buf second = { buffer(&f->h, 512), 512, true };
	struct itimerspec one_second = { .it_value = { .tv_sec = 1 } };
	int guard_fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
	struct loop_watch guard;
	uint32_t id, len;

	(void)state;
	harness_add(&f->h, 0, &first, 1);
	harness_kick(&f->h, 0);
	assert_true(harness_get_used(&f->h, 0, &id, &len));
	harness_add(&f->h, 0, &second, 1);
	harness_kick(&f->h, 0); /* deferred: the refill timer is armed */
	harness_add_status(&f->h, VIRTIO_CONFIG_S_FAILED);

	assert_true(guard_fd >= 0);
	assert_int_equal(timerfd_settime(guard_fd, 0, &one_second, NULL), 0);
	watch(&guard, &f->loop, guard_fd);
	assert_int_equal(event_loop_run(&f->loop), 0);
	assert_true(guard.fired);
	assert_int_equal(harness_pending_used(&f->h, 0), 0);

	event_loop_remove(&f->loop, guard_fd);
	close(guard_fd);
	teardown((void **)&f);
}

#define RNG_TEST(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		RNG_TEST(test_rng_identifies_itself_with_no_config),
		RNG_TEST(test_rng_fills_exactly_the_posted_bytes),
		RNG_TEST(test_rng_serves_an_indirect_chain),
		RNG_TEST(test_rng_caps_one_request),
		RNG_TEST(test_rng_answers_a_chain_without_writable_buffers_with_zero),
		RNG_TEST(test_rng_survives_malformed_chains),
		RNG_TEST(test_rng_needs_reset_when_the_ring_is_broken),
		cmocka_unit_test(test_rng_refuses_a_rate_out_of_range),
		cmocka_unit_test(test_rng_rate_limit_defers_and_resumes),
		cmocka_unit_test(test_rng_timer_after_the_driver_failed_serves_nothing),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
