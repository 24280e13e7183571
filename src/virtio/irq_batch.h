/*
 * Interrupt batching for a queue the driver keeps busy from many threads.
 *
 * A device that finishes requests within microseconds (reads from the host's
 * page cache) interrupts once per request: the guest takes the interrupt,
 * wakes one thread, and that thread's next request arrives alone. When the
 * guest's CPU is what limits it (many threads, few vCPUs), each interrupt
 * costs it exits and handler time that a slower device would have shared
 * among several requests. So while the driver shows it has more requests
 * coming, the device holds its interrupt in a window that stays open as long
 * as requests keep arriving about as fast as they have been, and interrupts
 * once when they stop, or as soon as as many have come as the last window
 * that waited for them to stop counted (the guest's threads are all waiting
 * then: nothing more can come).
 *
 * No fixed time but a ceiling (10 ms of waiting for the next arrival): the
 * window follows the measured gap between arrivals, so it fits a guest on
 * bare metal and one nested under emulation alike. A lone request is never
 * held, except for a probe now and then (only in a steady stream) that finds
 * out whether batching would pay; each probe that finds it would not doubles
 * the wait for the next, from one in IRQ_BATCH_PROBE_FIRST arrivals to one in
 * IRQ_BATCH_PROBE_LAST. Batching stops as soon as a window gathers too few
 * requests to be worth its wait.
 *
 * Pure bookkeeping on times the caller passes in; the device owns the timer.
 */
#ifndef VIREO_VIRTIO_IRQ_BATCH_H
#define VIREO_VIRTIO_IRQ_BATCH_H

#include <stdbool.h>
#include <stdint.h>

#define IRQ_BATCH_PROBE_FIRST 32	/* arrivals before the first probe */
#define IRQ_BATCH_PROBE_LAST 256	/* the most arrivals between probes */
#define IRQ_BATCH_MIN 4		 /* a window gathering fewer ends batching */
#define IRQ_BATCH_MAX 64	 /* a window holding this many interrupts at once */

struct irq_batch {
	uint64_t gap_ns;	  /* moving average of the time between arrivals */
	uint64_t last_arrival_ns; /* 0: none yet */
	uint64_t opened_ns;	  /* when the open window began */
	unsigned int held;	  /* requests that arrived in the open window */
	unsigned int expect;	  /* how many the last window that ran quiet held */
	unsigned int windows;	  /* windows closed so far */
	unsigned int until_probe; /* arrivals before the next probe */
	unsigned int probe_every; /* arrivals between probes, doubled by each miss */
	bool batching;		  /* recent windows gathered IRQ_BATCH_MIN or more */
	bool open;		  /* a window is open: interrupts wait for it to close */
};

void irq_batch_init(struct irq_batch *b);

/*
 * n requests arrived (popped) at now_ns. May open a window, or close one
 * that holds IRQ_BATCH_MAX requests.
 */
void irq_batch_arrived(struct irq_batch *b, unsigned int n, uint64_t now_ns);

/* Must the device hold its interrupt? */
static inline bool irq_batch_holding(const struct irq_batch *b)
{
	return b->open;
}

/* When the open window closes unless more requests arrive before. */
uint64_t irq_batch_deadline(const struct irq_batch *b);

/*
 * The timer fired at now_ns: true when the window closed (interrupt now),
 * false when arrivals moved its deadline (wait again).
 */
bool irq_batch_expired(struct irq_batch *b, uint64_t now_ns);

#endif
