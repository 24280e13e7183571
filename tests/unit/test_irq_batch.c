/*
 * Interrupt batching (virtio/irq_batch.h): when a window holds the interrupt,
 * how long it stays open, and that a guest with one request at a time is
 * only ever held by the occasional probe. Times are made up and passed in.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "virtio/irq_batch.h"

#define US 1000ULL
#define MS 1000000ULL

/*
 * One request gap after *now; returns whether the device must hold its
 * interrupt. A window whose deadline comes first closes first, as the
 * device's timer would close it.
 */
static bool arrive(struct irq_batch *b, uint64_t *now, uint64_t gap)
{
	if (irq_batch_holding(b) && irq_batch_deadline(b) <= *now + gap)
		assert_true(irq_batch_expired(b, irq_batch_deadline(b)));
	*now += gap;
	irq_batch_arrived(b, 1, *now);
	return irq_batch_holding(b);
}

/* Closes the open window the way the device's timer does: at its deadline. */
static void expire(struct irq_batch *b, uint64_t *now)
{
	*now = irq_batch_deadline(b);
	assert_true(irq_batch_expired(b, *now));
	assert_false(irq_batch_holding(b));
}

/* A fresh device and a busy guest: requests every gap until a window shows batching pays. */
static void start_batching(struct irq_batch *b, uint64_t *now, uint64_t gap)
{
	irq_batch_init(b);
	for (int i = 0; i < 4 * IRQ_BATCH_PROBE_FIRST && !b->batching; i++)
		arrive(b, now, gap);
	if (irq_batch_holding(b))
		expire(b, now);
	assert_true(b->batching);
}

/*
 * QD1: each request waits for the last one's interrupt. Only probes hold
 * one, for about two gaps; each finds nothing more coming, so they grow
 * rarer, down to one in IRQ_BATCH_PROBE_LAST. Batching never starts.
 */
static void test_irq_batch_lone_requests_are_held_only_by_probes(void **state)
{
	struct irq_batch b;
	uint64_t now = MS;
	int last_probe = 0, probe_every = IRQ_BATCH_PROBE_FIRST;

	(void)state;
	irq_batch_init(&b);
	for (int i = 1; i <= 8 * IRQ_BATCH_PROBE_LAST; i++) {
		if (!arrive(&b, &now, 100 * US))
			continue;
		assert_int_equal(i - last_probe, probe_every);
		last_probe = i;
		if (probe_every < IRQ_BATCH_PROBE_LAST)
			probe_every *= 2;
		assert_true(irq_batch_deadline(&b) > now);
		assert_true(irq_batch_deadline(&b) <= now + 3 * b.gap_ns);
		expire(&b, &now);
		assert_false(b.batching);
	}
	assert_int_equal(probe_every, IRQ_BATCH_PROBE_LAST);
	assert_true(last_probe > 7 * IRQ_BATCH_PROBE_LAST);
}

/* Many threads: the probe's window fills, batching starts, later arrivals are held at once. */
static void test_irq_batch_steady_stream_starts_batching(void **state)
{
	struct irq_batch b;
	uint64_t now = MS;

	(void)state;
	start_batching(&b, &now, 10 * US);
	assert_true(arrive(&b, &now, 10 * US));
	for (int i = 1; i < IRQ_BATCH_MAX - 1; i++) {
		assert_true(arrive(&b, &now, 10 * US));
		assert_false(irq_batch_expired(&b, now + 10 * US)); /* still arriving */
	}
	/* The window that holds IRQ_BATCH_MAX interrupts at once: latency has a bound. */
	assert_false(arrive(&b, &now, 10 * US));
	assert_true(b.batching);
	assert_true(arrive(&b, &now, 10 * US));
}

/* The window closes four average gaps after the last arrival, not before. */
static void test_irq_batch_window_closes_when_arrivals_stop(void **state)
{
	struct irq_batch b;
	uint64_t now = MS, deadline;

	(void)state;
	start_batching(&b, &now, 10 * US);
	for (int i = 0; i < IRQ_BATCH_MIN; i++)
		assert_true(arrive(&b, &now, 10 * US));
	deadline = irq_batch_deadline(&b);
	assert_in_range(deadline - now, 39 * US, 41 * US);
	assert_false(irq_batch_expired(&b, deadline - 1));
	assert_true(irq_batch_holding(&b));
	/* One more arrival moves the deadline on. */
	assert_true(arrive(&b, &now, 10 * US));
	assert_true(irq_batch_deadline(&b) > deadline);
	expire(&b, &now);
	assert_true(b.batching);
}

/*
 * A guest with 8 threads: the first window waits for quiet and counts 8;
 * later ones close at the 8th request, without the wait, except the few
 * that count again.
 */
static void test_irq_batch_window_closes_when_every_thread_has_sent(void **state)
{
	struct irq_batch b;
	uint64_t now = MS;
	int waited = 0;

	(void)state;
	start_batching(&b, &now, 10 * US);
	for (int i = 0; i < 8; i++)
		assert_true(arrive(&b, &now, 10 * US));
	expire(&b, &now);
	for (int window = 0; window < 16; window++) {
		arrive(&b, &now, 50 * US); /* the threads woke by the last interrupt */
		for (int i = 1; i < 7; i++)
			assert_true(arrive(&b, &now, 10 * US));
		if (!arrive(&b, &now, 10 * US))
			continue;
		waited++;
		expire(&b, &now);
		assert_true(b.batching);
	}
	assert_int_equal(waited, 2);
}

/* A window that gathers fewer than IRQ_BATCH_MIN ends batching: the next request is not held. */
static void test_irq_batch_small_window_stops_batching(void **state)
{
	struct irq_batch b;
	uint64_t now = MS;

	(void)state;
	start_batching(&b, &now, 10 * US);
	assert_true(arrive(&b, &now, 10 * US));
	assert_true(arrive(&b, &now, 10 * US));
	expire(&b, &now);
	assert_false(b.batching);
	assert_false(arrive(&b, &now, 10 * US));
}

/* A request after the guest idled is not probed with: it would wait for nothing. */
static void test_irq_batch_no_probe_after_idling(void **state)
{
	struct irq_batch b;
	uint64_t now = MS;

	(void)state;
	irq_batch_init(&b);
	for (int i = 0; i < IRQ_BATCH_PROBE_FIRST - 1; i++)
		assert_false(arrive(&b, &now, 10 * US));
	assert_false(arrive(&b, &now, 1000 * MS));
	/* The next one in a steady stream again is. */
	assert_true(arrive(&b, &now, 10 * US));
}

/* No fixed time: the window follows the pace, microseconds or milliseconds. */
static void test_irq_batch_window_follows_the_pace(void **state)
{
	uint64_t gaps[] = { 1 * US, 1 * MS };

	(void)state;
	for (size_t i = 0; i < 2; i++) {
		struct irq_batch b;
		uint64_t now = MS;

		start_batching(&b, &now, gaps[i]);
		assert_true(arrive(&b, &now, gaps[i]));
		assert_in_range(irq_batch_deadline(&b) - now, 4 * gaps[i] - gaps[i] / 10,
				4 * gaps[i] + gaps[i] / 10);
	}
}

/*
 * A guest that idled for seconds between bursts: the idle spell is not its
 * pace, and no window waits longer than 10 ms for the next arrival.
 */
static void test_irq_batch_idle_spells_do_not_stretch_windows(void **state)
{
	struct irq_batch b;
	uint64_t now = MS;

	(void)state;
	irq_batch_init(&b);
	arrive(&b, &now, 0);
	for (int i = 0; i < 8; i++)
		arrive(&b, &now, 10 * US);
	for (int i = 0; i < 3; i++) {
		assert_false(arrive(&b, &now, 5000 * MS));
		assert_true(b.gap_ns <= 20 * US);
	}
	/* Nor does a long first gap hold for long: a faster pace is taken up at once. */
	irq_batch_init(&b);
	arrive(&b, &now, 0);
	arrive(&b, &now, 5000 * MS);
	for (int i = 0; i < 20; i++)
		arrive(&b, &now, 10 * US);
	assert_true(b.gap_ns <= 20 * US);

	/* A slow guest, 8 ms between requests: four gaps would be 32 ms, the wait is 10. */
	start_batching(&b, &now, 8 * MS);
	assert_true(arrive(&b, &now, 8 * MS));
	assert_int_equal(irq_batch_deadline(&b) - now, 10 * MS);
}

/* Several requests in one pass count as several arrivals, and no gap divides by zero. */
static void test_irq_batch_counts_requests_popped_together(void **state)
{
	struct irq_batch b;
	uint64_t now = MS;

	(void)state;
	start_batching(&b, &now, 10 * US);
	irq_batch_arrived(&b, 0, now + US);
	assert_false(irq_batch_holding(&b));
	irq_batch_arrived(&b, IRQ_BATCH_MAX - 1, now + 10 * US);
	assert_true(irq_batch_holding(&b));
	irq_batch_arrived(&b, 1, now + 10 * US); /* same instant: a gap of 0 */
	assert_false(irq_batch_holding(&b));
	assert_true(b.batching);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_irq_batch_lone_requests_are_held_only_by_probes),
		cmocka_unit_test(test_irq_batch_steady_stream_starts_batching),
		cmocka_unit_test(test_irq_batch_window_closes_when_arrivals_stop),
		cmocka_unit_test(test_irq_batch_window_closes_when_every_thread_has_sent),
		cmocka_unit_test(test_irq_batch_small_window_stops_batching),
		cmocka_unit_test(test_irq_batch_no_probe_after_idling),
		cmocka_unit_test(test_irq_batch_window_follows_the_pace),
		cmocka_unit_test(test_irq_batch_idle_spells_do_not_stretch_windows),
		cmocka_unit_test(test_irq_batch_counts_requests_popped_together),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
