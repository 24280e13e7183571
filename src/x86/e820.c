/* The e820 memory map: see e820.h. */
#include "x86/e820.h"

#include <errno.h>

#include "vmm/guest_mem.h"
#include "x86/layout.h"

static int e820_add(struct e820_range *out, int max, int *n, uint64_t addr, uint64_t size,
		    uint32_t type)
{
	if (size == 0)
		return 0;
	if (*n == max)
		return -ENOSPC;
	out[(*n)++] = (struct e820_range){ addr, size, type };
	return 0;
}

int e820_build(const struct guest_mem *mem, struct e820_range *out, int max)
{
	int n = 0, err = 0;

	for (int i = 0; i < mem->nr_regions && !err; i++) {
		const struct guest_mem_region *r = &mem->regions[i];
		uint64_t end = r->gpa + r->size;

		if (r->gpa < LAYOUT_HIGH_MEM) {
			/* The region holding low memory: split it around the reserved area. */
			err = e820_add(out, max, &n, r->gpa, LAYOUT_LOW_RAM_END - r->gpa,
				       E820_TYPE_RAM);
			if (!err)
				err = e820_add(out, max, &n, LAYOUT_LOW_RAM_END,
					       LAYOUT_HIGH_MEM - LAYOUT_LOW_RAM_END,
					       E820_TYPE_RESERVED);
			if (!err && end > LAYOUT_HIGH_MEM)
				err = e820_add(out, max, &n, LAYOUT_HIGH_MEM, end - LAYOUT_HIGH_MEM,
					       E820_TYPE_RAM);
		} else {
			err = e820_add(out, max, &n, r->gpa, r->size, E820_TYPE_RAM);
		}
	}
	return err ? err : n;
}
