/*
 * An interrupt line as a device sees it: the board hands each device one of
 * these, so devices never know whether KVM, a test harness or anything else
 * delivers the interrupt.
 */
#ifndef VIREO_VMM_IRQ_H
#define VIREO_VMM_IRQ_H

#include <stdint.h>

struct irq_line {
	/* level 1 asserts, 0 deasserts; an edge is set(1) then set(0). */
	void (*set)(void *opaque, uint32_t gsi, int level);
	void *opaque;
	uint32_t gsi;
};

static inline void irq_line_set(const struct irq_line *line, int level)
{
	if (line->set)
		line->set(line->opaque, line->gsi, level);
}

#endif
