/*
 * Address buses (port I/O and MMIO): a sorted array of ranges, searched by
 * binary search on every exit that userspace handles.
 */
#include "vmm/bus.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

void bus_init(struct bus *bus)
{
	memset(bus, 0, sizeof(*bus));
}

void bus_destroy(struct bus *bus)
{
	free(bus->ranges);
	bus_init(bus);
}

static bool ranges_overlap(uint64_t a, uint64_t a_len, uint64_t b, uint64_t b_len)
{
	return a < b + b_len && b < a + a_len;
}

int bus_register(struct bus *bus, uint64_t base, uint64_t len, const struct bus_ops *ops,
		 void *opaque)
{
	int pos = 0;

	if (len == 0 || base + len < base)
		return -EINVAL;
	for (int i = 0; i < bus->nr_ranges; i++) {
		if (ranges_overlap(base, len, bus->ranges[i].base, bus->ranges[i].len))
			return -EEXIST;
		if (bus->ranges[i].base < base)
			pos = i + 1;
	}
	if (bus->nr_ranges == bus->capacity) {
		int capacity = bus->capacity ? bus->capacity * 2 : 16;
		struct bus_range *ranges = realloc(bus->ranges, capacity * sizeof(*ranges));

		if (!ranges)
			return -ENOMEM;
		bus->ranges = ranges;
		bus->capacity = capacity;
	}
	memmove(&bus->ranges[pos + 1], &bus->ranges[pos],
		(bus->nr_ranges - pos) * sizeof(bus->ranges[0]));
	bus->ranges[pos] = (struct bus_range){ base, len, ops, opaque };
	bus->nr_ranges++;
	return 0;
}

static const struct bus_range *bus_find(const struct bus *bus, uint64_t addr)
{
	int lo = 0, hi = bus->nr_ranges - 1;

	while (lo <= hi) {
		int mid = lo + (hi - lo) / 2;
		const struct bus_range *r = &bus->ranges[mid];

		if (addr < r->base)
			hi = mid - 1;
		else if (addr - r->base >= r->len)
			lo = mid + 1;
		else
			return r;
	}
	return NULL;
}

bool bus_read(const struct bus *bus, uint64_t addr, void *data, uint32_t size)
{
	const struct bus_range *r = bus_find(bus, addr);

	if (!r || !r->ops->read)
		return r != NULL;
	r->ops->read(r->opaque, addr - r->base, data, size);
	return true;
}

bool bus_write(const struct bus *bus, uint64_t addr, const void *data, uint32_t size)
{
	const struct bus_range *r = bus_find(bus, addr);

	if (!r || !r->ops->write)
		return r != NULL;
	r->ops->write(r->opaque, addr - r->base, data, size);
	return true;
}
