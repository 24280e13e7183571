/*
 * virtio-console driven through virtio-mmio the way Linux's virtio_console
 * driver drives one port: receive buffers posted on queue 0, output chains
 * on queue 1. Output goes to a pipe; input comes through
 * virtio_console_receive() and through the host console (vmm/console.c).
 * The device's event loop is turned by hand (loop_turn).
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <linux/virtio_config.h>
#include <linux/virtio_ids.h>
#include <linux/virtio_mmio.h>

#include "virtio/console.h"
#include "virtio_harness.h"
#include "vmm/console.h"
#include "vmm/event_loop.h"

#define RX 0
#define TX 1

#define PIPE_ROOM 4096 /* an output pipe shrunk to its smallest: a page fills it */

struct fixture {
	struct harness h;
	struct event_loop loop;
	struct virtio_console *vcon;
	int out[2];    /* out[1]: the device's output; out[0]: where the test reads it */
	int out_flags; /* out[1]'s flags before the device was created */
	size_t printed; /* bytes the guest has queued for output (print_requests) */
};

/* The device writing to out[1], attached, not yet started by the driver. */
static struct fixture *fixture_create(const int out[2])
{
	struct fixture *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	f->out[0] = out[0];
	f->out[1] = out[1];
	f->out_flags = fcntl(f->out[1], F_GETFL);
	assert_int_equal(event_loop_init(&f->loop), 0);
	harness_init(&f->h, 0);
	f->vcon = virtio_console_create(&f->h.mem, &f->loop, f->out[1]);
	assert_non_null(f->vcon);
	harness_attach(&f->h, virtio_console_device(f->vcon));
	return f;
}

/* Output to a pipe, as to a terminal: out[0] is its read end. */
static int setup_device(void **state)
{
	int out[2];

	assert_int_equal(pipe2(out, O_CLOEXEC), 0);
	*state = fixture_create(out);
	return 0;
}

static int setup(void **state)
{
	struct fixture *f;

	setup_device(state);
	f = *state;
	assert_int_equal(harness_start(&f->h, ~0ULL, 2, 16), 0);
	return 0;
}

/* Output to a regular file (stdout redirected to one): out[0] reads it back with pread(). */
static int setup_file(void **state)
{
	int out[2];
	struct fixture *f;

	out[1] = memfd_create("console-output", MFD_CLOEXEC);
	assert_true(out[1] >= 0);
	out[0] = dup(out[1]);
	f = fixture_create(out);
	assert_int_equal(harness_start(&f->h, ~0ULL, 2, 16), 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	virtio_console_destroy(f->vcon);
	harness_destroy(&f->h);
	event_loop_destroy(&f->loop);
	close(f->out[0]);
	close(f->out[1]);
	free(f);
	return 0;
}

static uint64_t put(struct harness *h, const char *text)
{
	uint64_t gpa = harness_alloc(h, strlen(text), 1);

	memcpy(harness_ptr(h, gpa), text, strlen(text));
	return gpa;
}

static bool room_signalled(struct fixture *f)
{
	struct pollfd p = { .fd = virtio_console_room_fd(f->vcon), .events = POLLIN };
	uint64_t count;

	if (poll(&p, 1, 0) != 1)
		return false;
	assert_int_equal(read(p.fd, &count, sizeof(count)), sizeof(count));
	return true;
}

/* Posts one receive buffer of len bytes; returns its gpa. */
static uint64_t post_rx(struct fixture *f, uint32_t len, bool kick)
{
	uint64_t gpa = harness_alloc(&f->h, len, 1);
	struct harness_buf buf = { gpa, len, true };

	harness_add(&f->h, RX, &buf, 1);
	if (kick)
		harness_kick(&f->h, RX);
	return gpa;
}

static void test_console_identifies_itself(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(harness_read_reg(&f->h, VIRTIO_MMIO_DEVICE_ID), VIRTIO_ID_CONSOLE);
	/* No size, no multiport, no emergency write: only the transport's bits. */
	assert_int_equal(harness_device_features(&f->h) & 0xffffff, 0);
	harness_write_reg(&f->h, VIRTIO_MMIO_QUEUE_SEL, 2);
	assert_int_equal(harness_read_reg(&f->h, VIRTIO_MMIO_QUEUE_NUM_MAX), 0);
}

static void test_console_tx_reaches_the_output_fd(void **state)
{
	struct fixture *f = *state;
	struct harness_buf bufs[] = {
		{ put(&f->h, "hello, "), 7, false },
		{ put(&f->h, "hvc0\n"), 5, false },
	};
	char got[32] = { 0 };
	uint32_t id, len;
	uint16_t head = harness_add(&f->h, TX, bufs, 2);

	harness_kick(&f->h, TX);
	assert_true(harness_get_used(&f->h, TX, &id, &len));
	assert_int_equal(id, head);
	assert_int_equal(len, 0);
	assert_int_equal(read(f->out[0], got, sizeof(got)), 12);
	assert_string_equal(got, "hello, hvc0\n");
	assert_true(harness_interrupts(&f->h) >= 1);
}

/* Runs the handlers of what is ready on the loop, without waiting; returns how many. */
static int loop_turn(struct fixture *f)
{
	struct epoll_event ev[8];
	int n = epoll_wait(f->loop.epoll_fd, ev, 8, 0);

	for (int i = 0; i < n; i++) {
		struct event_handler *h = ev[i].data.ptr;

		h->fn(h->opaque, ev[i].events);
	}
	return n > 0 ? n : 0;
}

/*
 * The guest prints nr requests of len bytes, each in nbufs (1 or 2)
 * buffers. Byte k of everything it printed is k % 251, so a byte out of
 * place or missing shows (251: no request size is a multiple of it).
 */
static void print_requests(struct fixture *f, unsigned int nr, uint32_t len, unsigned int nbufs)
{
	for (unsigned int r = 0; r < nr; r++) {
		uint64_t gpa = harness_alloc(&f->h, len, 1);
		uint8_t *p = harness_ptr(&f->h, gpa);
		uint32_t first = nbufs == 2 ? len / 2 : len;
		struct harness_buf bufs[] = {
			{ gpa, first, false },
			{ gpa + first, len - first, false },
		};

		for (uint32_t i = 0; i < len; i++)
			p[i] = (uint8_t)((f->printed + i) % 251);
		f->printed += len;
		harness_add(&f->h, TX, bufs, nbufs);
	}
}

static void assert_printed_in_order(const uint8_t *got, size_t len)
{
	for (size_t k = 0; k < len; k++) {
		if (got[k] != (uint8_t)(k % 251))
			fail_msg("output byte %zu is %u, not %zu", k, got[k], k % 251);
	}
}

/* The host's terminal catching up: reads out[0] and turns the loop until neither has more. */
static size_t read_while_the_loop_runs(struct fixture *f, uint8_t *got, size_t cap)
{
	size_t total = 0;

	for (;;) {
		ssize_t n = read(f->out[0], got + total, cap - total);

		if (n > 0)
			total += (size_t)n;
		if (loop_turn(f) == 0 && n <= 0)
			return total;
	}
}

/* A reader that stopped reading: out[1] holds a page, out[0] reads without waiting. */
static void stall_the_output(struct fixture *f)
{
	assert_int_equal(fcntl(f->out[1], F_SETPIPE_SZ, PIPE_ROOM), PIPE_ROOM);
	assert_int_equal(fcntl(f->out[0], F_SETFL, O_NONBLOCK), 0);
}

/*
 * Runs scenario in a child process that SIGALRM ends if the device hangs
 * there: a blocked I/O thread fails the test instead of hanging the run.
 * CMOCKA_TEST_ABORT makes a failed assert abort the child rather than
 * return into its copy of the test runner.
 */
static void run_in_child(void (*scenario)(struct fixture *f), struct fixture *f)
{
	pid_t child = fork();
	int status;

	assert_true(child >= 0);
	if (child == 0) {
		setenv("CMOCKA_TEST_ABORT", "1", 1);
		alarm(10);
		scenario(f);
		_exit(0);
	}
	assert_int_equal(waitpid(child, &status, 0), child);
	if (WIFSIGNALED(status) && WTERMSIG(status) == SIGALRM)
		fail_msg("the child hung: the device blocked or spun on a full output");
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
}

/*
 * More than the output holds: the kick returns with the request unused,
 * and the output goes on where it stopped, in order, as the reader
 * catches up and the loop runs (requests larger than the pipe, each in
 * two buffers, so a write stops inside a buffer and between them).
 */
static void full_output_waits_then_resumes(struct fixture *f)
{
	static uint8_t got[3 * 10000];

	stall_the_output(f);
	print_requests(f, 3, 10000, 2);
	harness_kick(&f->h, TX);
	assert_int_equal(harness_pending_used(&f->h, TX), 0);
	assert_int_equal(read_while_the_loop_runs(f, got, sizeof(got)), sizeof(got));
	assert_printed_in_order(got, sizeof(got));
	assert_int_equal(harness_pending_used(&f->h, TX), 3);
	assert_true(harness_interrupts(&f->h) >= 1);
}

static void test_console_tx_waits_for_a_full_output_without_blocking(void **state)
{
	run_in_child(full_output_waits_then_resumes, *state);
}

/* A reset drops the waiting request and stops watching out_fd; the next driver starts clean. */
static void reset_while_waiting(struct fixture *f)
{
	uint8_t junk[PIPE_ROOM];
	char got[32] = { 0 };
	struct harness_buf buf;
	uint32_t id, len;

	stall_the_output(f);
	print_requests(f, 1, 10000, 1);
	harness_kick(&f->h, TX);
	assert_int_equal(harness_pending_used(&f->h, TX), 0);
	harness_write_reg(&f->h, VIRTIO_MMIO_STATUS, 0);
	assert_int_equal(read(f->out[0], junk, sizeof(junk)), PIPE_ROOM);
	assert_int_equal(loop_turn(f), 0);
	assert_int_equal(read(f->out[0], junk, sizeof(junk)), -1); /* nothing more went out */

	assert_int_equal(harness_start(&f->h, ~0ULL, 2, 16), 0);
	buf = (struct harness_buf){ put(&f->h, "after reset\n"), 12, false };
	harness_add(&f->h, TX, &buf, 1);
	harness_kick(&f->h, TX);
	assert_int_equal(read(f->out[0], got, sizeof(got)), 12);
	assert_string_equal(got, "after reset\n");
	assert_true(harness_get_used(&f->h, TX, &id, &len));
}

static void test_console_reset_drops_the_waiting_output(void **state)
{
	run_in_child(reset_while_waiting, *state);
}

/* Destroyed while a request waits: out_fd has its flags back, and nothing is left on the loop. */
static void destroy_while_waiting(struct fixture *f)
{
	uint8_t junk[PIPE_ROOM];

	stall_the_output(f);
	print_requests(f, 1, 10000, 1);
	harness_kick(&f->h, TX);
	assert_true(fcntl(f->out[1], F_GETFL) & O_NONBLOCK); /* the device's doing */
	virtio_console_destroy(f->vcon);
	assert_int_equal(fcntl(f->out[1], F_GETFL), f->out_flags);
	assert_int_equal(read(f->out[0], junk, sizeof(junk)), PIPE_ROOM);
	assert_int_equal(loop_turn(f), 0);
}

static void test_console_destroy_restores_the_output_flags(void **state)
{
	run_in_child(destroy_while_waiting, *state);
}

/* Turns the loop until nothing is ready; returns how many turns ran something. */
static int run_the_loop(struct fixture *f)
{
	int turns = 0;

	while (loop_turn(f) > 0)
		turns++;
	return turns;
}

static void assert_file_holds_what_was_printed(struct fixture *f)
{
	uint8_t *got = malloc(f->printed + 1);

	assert_non_null(got);
	assert_int_equal(pread(f->out[0], got, f->printed + 1, 0), f->printed);
	assert_printed_in_order(got, f->printed);
	free(got);
}

/*
 * A burst to a fast output is served a budget at a time, the loop's other
 * handlers running in between: a kick, then each turn, takes its share.
 */
static void test_console_tx_burst_takes_several_turns_of_the_loop(void **state)
{
	struct fixture *f = *state;
	const uint32_t len = VIRTIO_CONSOLE_TX_BYTES / 2;
	const unsigned int nr = 8; /* four budgets, each request in two buffers */

	assert_int_equal(fcntl(f->out[1], F_GETFL), f->out_flags); /* a file is left as it is */
	print_requests(f, nr, len, 2);
	harness_kick(&f->h, TX);
	assert_int_equal(harness_pending_used(&f->h, TX), 2);
	assert_int_equal(loop_turn(f), 1);
	assert_int_equal(harness_pending_used(&f->h, TX), 4);
	assert_true(run_the_loop(f) >= 2);
	assert_int_equal(harness_pending_used(&f->h, TX), nr);
	assert_file_holds_what_was_printed(f);
}

/* Requests of a byte each are bounded by their number, not their bytes. */
static void test_console_tx_many_small_requests_take_several_turns(void **state)
{
	struct fixture *f = *state;
	const unsigned int nr = VIRTIO_CONSOLE_TX_REQUESTS + 36;

	assert_int_equal(harness_start(&f->h, ~0ULL, 2, 128), 0);
	print_requests(f, nr, 1, 1);
	harness_kick(&f->h, TX);
	assert_int_equal(harness_pending_used(&f->h, TX), VIRTIO_CONSOLE_TX_REQUESTS);
	assert_true(run_the_loop(f) >= 1);
	assert_int_equal(harness_pending_used(&f->h, TX), nr);
	assert_file_holds_what_was_printed(f);
}

static void test_console_rx_without_buffers_takes_nothing_then_signals_room(void **state)
{
	struct fixture *f = *state;
	uint64_t gpa;
	uint32_t id, len;

	assert_int_equal(virtio_console_receive(f->vcon, (const uint8_t *)"abc", 3), 0);
	assert_false(room_signalled(f));
	assert_int_equal(harness_interrupts(&f->h), 0);

	gpa = post_rx(f, 16, true);
	assert_true(room_signalled(f));
	assert_int_equal(virtio_console_receive(f->vcon, (const uint8_t *)"abc", 3), 3);
	assert_true(harness_get_used(&f->h, RX, &id, &len));
	assert_int_equal(len, 3);
	assert_memory_equal(harness_ptr(&f->h, gpa), "abc", 3);
	assert_true(harness_interrupts(&f->h) >= 1);
	assert_true(harness_ack_interrupt(&f->h) & VIRTIO_MMIO_INT_VRING);
	/* Room was wanted once and given once. */
	post_rx(f, 16, true);
	assert_false(room_signalled(f));
}

static void test_console_rx_spreads_input_over_buffers(void **state)
{
	struct fixture *f = *state;
	uint64_t a = post_rx(f, 4, false), b = post_rx(f, 4, true);
	uint32_t id, len;

	assert_int_equal(virtio_console_receive(f->vcon, (const uint8_t *)"0123456789", 10), 8);
	assert_true(harness_get_used(&f->h, RX, &id, &len));
	assert_int_equal(len, 4);
	assert_true(harness_get_used(&f->h, RX, &id, &len));
	assert_int_equal(len, 4);
	assert_memory_equal(harness_ptr(&f->h, a), "0123", 4);
	assert_memory_equal(harness_ptr(&f->h, b), "4567", 4);

	/* Short: the driver's next buffer is wanted, and it kicks for it (EVENT_IDX). */
	assert_int_equal(*harness_avail_event(&f->h, RX), harness_avail(&f->h, RX)->idx);
	post_rx(f, 4, true);
	assert_true(room_signalled(f));
	assert_int_equal(virtio_console_receive(f->vcon, (const uint8_t *)"89", 2), 2);
}

static void test_console_rx_before_driver_ok_waits_for_it(void **state)
{
	struct fixture *f = *state;
	uint64_t gpa;

	assert_int_equal(harness_negotiate(&f->h, ~0ULL), 0);
	harness_setup_queue(&f->h, RX, 16);
	harness_setup_queue(&f->h, TX, 16);
	gpa = post_rx(f, 8, true); /* Linux fills the receiveq after DRIVER_OK; be ready for both */
	assert_int_equal(virtio_console_receive(f->vcon, (const uint8_t *)"x", 1), 0);
	assert_false(room_signalled(f));
	harness_driver_ok(&f->h);
	assert_true(room_signalled(f));
	assert_int_equal(virtio_console_receive(f->vcon, (const uint8_t *)"x", 1), 1);
	assert_memory_equal(harness_ptr(&f->h, gpa), "x", 1);
}

static void test_console_survives_malformed_chains(void **state)
{
	struct fixture *f = *state;
	struct harness_buf outside = { 0x1000, 64, false }; /* below fake RAM */
	struct harness_buf out_ok = { put(&f->h, "ok"), 2, false };
	struct harness_buf readonly_rx = { put(&f->h, "zz"), 2, false };
	uint64_t rx;
	char got[8] = { 0 };
	uint32_t id, len;

	harness_add(&f->h, TX, &outside, 1);
	harness_add(&f->h, TX, &out_ok, 1);
	harness_kick(&f->h, TX);
	assert_int_equal(harness_pending_used(&f->h, TX), 2);
	assert_int_equal(read(f->out[0], got, sizeof(got)), 2);
	assert_string_equal(got, "ok");

	/* A receive "buffer" the device may not write, then a real one. */
	harness_add(&f->h, RX, &readonly_rx, 1);
	rx = post_rx(f, 4, true);
	assert_int_equal(virtio_console_receive(f->vcon, (const uint8_t *)"in", 2), 2);
	assert_true(harness_get_used(&f->h, RX, &id, &len));
	assert_int_equal(len, 0);
	assert_memory_equal(harness_ptr(&f->h, readonly_rx.gpa), "zz", 2);
	assert_true(harness_get_used(&f->h, RX, &id, &len));
	assert_int_equal(len, 2);
	assert_memory_equal(harness_ptr(&f->h, rx), "in", 2);
	assert_false(harness_status(&f->h) & VIRTIO_CONFIG_S_NEEDS_RESET);
}

static void test_console_rx_on_a_broken_ring_needs_reset(void **state)
{
	struct fixture *f = *state;

	harness_avail(&f->h, RX)->idx = 100; /* more than a queue size ahead */
	assert_int_equal(virtio_console_receive(f->vcon, (const uint8_t *)"a", 1), 0);
	assert_true(harness_status(&f->h) & VIRTIO_CONFIG_S_NEEDS_RESET);
	assert_int_equal(virtio_console_receive(f->vcon, (const uint8_t *)"a", 1), 0);
}

/* Zero-length receive buffers cannot keep the I/O thread in one receive call. */
static void test_console_rx_bounds_work_per_call(void **state)
{
	struct fixture *f = *state;
	struct harness_buf empty = { put(&f->h, "e"), 0, true };

	for (int i = 0; i < 16; i++)
		harness_add(&f->h, RX, &empty, 1);
	assert_int_equal(virtio_console_receive(f->vcon, (const uint8_t *)"a", 1), 0);
	assert_true(room_signalled(f)); /* try again later */
	post_rx(f, 4, true);
	assert_int_equal(virtio_console_receive(f->vcon, (const uint8_t *)"a", 1), 1);
}

/* The host console (vmm/console.c) feeding the virtio console, its handlers called by hand. */
static void test_host_console_holds_input_until_the_guest_posts_buffers(void **state)
{
	struct fixture *f = *state;
	struct console_input input = console_input_virtio(f->vcon);
	struct event_loop loop;
	struct console c;
	uint8_t junk[300];
	uint64_t gpa;
	int in[2];

	assert_int_equal(pipe2(in, O_CLOEXEC | O_NONBLOCK), 0);
	assert_int_equal(event_loop_init(&loop), 0);
	assert_int_equal(console_start(&c, &loop, in[0], -1, &input, NULL, NULL), 0);

	assert_int_equal(write(in[1], "ls\n", 3), 3);
	c.input_handler.fn(c.input_handler.opaque, POLLIN);
	assert_int_equal(c.pending_len, 3);
	assert_true(c.room_watched);
	assert_true(c.input_watched); /* still read: Ctrl-A x keeps working */

	gpa = post_rx(f, 16, true);
	c.room_handler.fn(c.room_handler.opaque, POLLIN);
	assert_int_equal(c.pending_len, 0);
	assert_false(c.room_watched);
	assert_memory_equal(harness_ptr(&f->h, gpa), "ls\n", 3);

	/* Input beyond what fits here stays in the pipe, unread. */
	memset(junk, 'j', sizeof(junk));
	assert_int_equal(write(in[1], junk, sizeof(junk)), sizeof(junk));
	c.input_handler.fn(c.input_handler.opaque, POLLIN); /* no buffer posted: all held */
	assert_int_equal(c.pending_len, CONSOLE_CHUNK);
	assert_false(c.input_watched);
	assert_true(c.room_watched);

	close(in[0]);
	close(in[1]);
	event_loop_destroy(&loop);
}

#define CONSOLE_TEST(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		CONSOLE_TEST(test_console_identifies_itself),
		CONSOLE_TEST(test_console_tx_reaches_the_output_fd),
		CONSOLE_TEST(test_console_tx_waits_for_a_full_output_without_blocking),
		CONSOLE_TEST(test_console_reset_drops_the_waiting_output),
		CONSOLE_TEST(test_console_destroy_restores_the_output_flags),
		cmocka_unit_test_setup_teardown(test_console_tx_burst_takes_several_turns_of_the_loop,
						setup_file, teardown),
		cmocka_unit_test_setup_teardown(test_console_tx_many_small_requests_take_several_turns,
						setup_file, teardown),
		CONSOLE_TEST(test_console_rx_without_buffers_takes_nothing_then_signals_room),
		CONSOLE_TEST(test_console_rx_spreads_input_over_buffers),
		cmocka_unit_test_setup_teardown(test_console_rx_before_driver_ok_waits_for_it,
						setup_device, teardown),
		CONSOLE_TEST(test_console_survives_malformed_chains),
		CONSOLE_TEST(test_console_rx_on_a_broken_ring_needs_reset),
		CONSOLE_TEST(test_console_rx_bounds_work_per_call),
		CONSOLE_TEST(test_host_console_holds_input_until_the_guest_posts_buffers),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
