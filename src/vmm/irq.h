/*
 * An interrupt line as a device sees it: the board hands each device one of
 * these, so devices never know whether KVM, a test harness or anything else
 * delivers the interrupt.
 */
#ifndef VIREO_VMM_IRQ_H
#define VIREO_VMM_IRQ_H

#include <stdint.h>
#include <unistd.h>

struct irq_line {
	/* level 1 asserts, 0 deasserts; an edge is set(1) then set(0). */
	void (*set)(void *opaque, uint32_t gsi, int level);
	void *opaque;
	uint32_t gsi;
	int edge_fd; /* > 0: an eventfd whose every write is one edge (a KVM irqfd) */
};

static inline void irq_line_set(const struct irq_line *line, int level)
{
	if (line->set)
		line->set(line->opaque, line->gsi, level);
}

/* One edge-triggered interrupt: a single eventfd write when the board gave one. */
static inline void irq_line_pulse(const struct irq_line *line)
{
	uint64_t one = 1;

	if (line->edge_fd > 0) {
		if (write(line->edge_fd, &one, sizeof(one)) < 0) {
			/* The counter is saturated: an interrupt is pending anyway. */
		}
		return;
	}
	irq_line_set(line, 1);
	irq_line_set(line, 0);
}

#endif
