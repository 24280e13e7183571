/*
 * Interrupt batching: see irq_batch.h.
 */
#include "virtio/irq_batch.h"

#define GAP_RISE 8	/* a longer gap moves the average 1/8 of the way to it */
#define GAP_FALL 2	/* a shorter one half the way: a faster pace is taken up at once */
#define IDLE_GAPS 2	/* a longer gap counts as this many averages: idling is not a pace */
#define QUIET_MAX_NS 10000000ULL /* 10 ms: the longest wait for the next arrival */
#define QUIET_GAPS 4	/* a window closes after this many average gaps without arrivals */
#define PROBE_QUIET_GAPS 2 /* a probe's: it holds a lone request, maybe for nothing */
#define STEADY_GAPS 2	/* a probe needs a gap under this many averages: not after idling */
#define RECOUNT_EVERY 8 /* every 8th window waits for quiet, to count the guest's threads again */

void irq_batch_init(struct irq_batch *b)
{
	*b = (struct irq_batch){ .until_probe = IRQ_BATCH_PROBE_FIRST,
				 .probe_every = IRQ_BATCH_PROBE_FIRST };
}

/*
 * The average follows the pace, never an idle spell: a guest that stopped
 * for seconds must not make the next window wait seconds.
 */
static void record_gap(struct irq_batch *b, uint64_t gap)
{
	if (b->gap_ns == 0) {
		b->gap_ns = gap;
	} else if (gap > b->gap_ns) {
		if (gap > IDLE_GAPS * b->gap_ns)
			gap = IDLE_GAPS * b->gap_ns;
		b->gap_ns += (gap - b->gap_ns) / GAP_RISE;
	} else {
		b->gap_ns -= (b->gap_ns - gap) / GAP_FALL;
	}
}

static void open_window(struct irq_batch *b, uint64_t now)
{
	b->open = true;
	b->opened_ns = now;
	b->held = 0;
}

/* quiet: no request came for a while, so held is all the guest had to send. */
static void close_window(struct irq_batch *b, bool quiet)
{
	b->open = false;
	b->windows++;
	if (quiet)
		b->expect = b->held;
	b->batching = b->held >= IRQ_BATCH_MIN;
	if (b->batching)
		b->probe_every = IRQ_BATCH_PROBE_FIRST;
	else if (b->probe_every < IRQ_BATCH_PROBE_LAST)
		b->probe_every *= 2;
	b->until_probe = b->probe_every;
}

/* Not batching: is this arrival the one to probe with? */
static bool probe_now(struct irq_batch *b, uint64_t gap, bool have_gap)
{
	if (b->until_probe > 0)
		b->until_probe--;
	return b->until_probe == 0 && have_gap && gap <= STEADY_GAPS * b->gap_ns;
}

/*
 * Has every thread the last quiet window counted sent its request? Then
 * none is left to send one: waiting for quiet would only idle the guest.
 */
static bool all_expected_arrived(const struct irq_batch *b)
{
	return b->batching && b->expect >= IRQ_BATCH_MIN && b->held >= b->expect &&
	       b->windows % RECOUNT_EVERY != 0;
}

void irq_batch_arrived(struct irq_batch *b, unsigned int n, uint64_t now_ns)
{
	bool have_gap = b->last_arrival_ns != 0 && now_ns >= b->last_arrival_ns;
	uint64_t gap;

	if (n == 0)
		return;
	gap = have_gap ? (now_ns - b->last_arrival_ns) / n : 0;
	b->last_arrival_ns = now_ns;
	/*
	 * The gap before a batching window opens is the guest waiting for the last
	 * window's interrupt: left out, or each window's quiet end would lengthen
	 * the next.
	 */
	if (have_gap && (b->open || !b->batching))
		record_gap(b, gap);
	if (!b->open && (b->batching || probe_now(b, gap, have_gap)))
		open_window(b, now_ns);
	if (!b->open)
		return;
	b->held += n;
	if (b->held >= IRQ_BATCH_MAX || all_expected_arrived(b))
		close_window(b, false);
}

uint64_t irq_batch_deadline(const struct irq_batch *b)
{
	uint64_t quiet = (b->batching ? QUIET_GAPS : PROBE_QUIET_GAPS) * b->gap_ns + 1;
	uint64_t deadline, latest;

	if (quiet > QUIET_MAX_NS)
		quiet = QUIET_MAX_NS;
	deadline = b->last_arrival_ns + quiet;
	latest = b->opened_ns + IRQ_BATCH_MAX * quiet;
	return deadline < latest ? deadline : latest;
}

bool irq_batch_expired(struct irq_batch *b, uint64_t now_ns)
{
	if (!b->open)
		return true;
	if (now_ns < irq_batch_deadline(b))
		return false;
	close_window(b, true);
	return true;
}
