/*
 * Address buses: one for port I/O and one for MMIO. Devices register ranges
 * with read/write callbacks; the vCPU exit handler dispatches by address.
 * Callbacks run on vCPU threads: a device protects its own state.
 * Registration happens before any vCPU runs, so lookups need no lock.
 */
#ifndef VIREO_VMM_BUS_H
#define VIREO_VMM_BUS_H

#include <stdbool.h>
#include <stdint.h>

struct bus_ops {
	/* offset is relative to the range's base; size is 1, 2, 4 or 8. */
	void (*read)(void *opaque, uint64_t offset, void *data, uint32_t size);
	void (*write)(void *opaque, uint64_t offset, const void *data, uint32_t size);
};

struct bus_range {
	uint64_t base;
	uint64_t len;
	const struct bus_ops *ops;
	void *opaque;
};

struct bus {
	struct bus_range *ranges; /* sorted by base, never overlapping */
	int nr_ranges;
	int capacity;
};

void bus_init(struct bus *bus);
void bus_destroy(struct bus *bus);

/* -EEXIST if the range overlaps one already registered, -EINVAL if empty. */
int bus_register(struct bus *bus, uint64_t base, uint64_t len, const struct bus_ops *ops,
		 void *opaque);

/* false when nothing is mapped at addr (then a read leaves data untouched). */
bool bus_read(const struct bus *bus, uint64_t addr, void *data, uint32_t size);
bool bus_write(const struct bus *bus, uint64_t addr, const void *data, uint32_t size);

#endif
