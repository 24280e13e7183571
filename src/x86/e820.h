/*
 * The guest's physical memory map as both boot paths report it (the zero
 * page's e820 table and PVH's memmap): RAM, with low memory from the EBDA
 * to 1 MiB reserved because Vireo's ACPI tables live there.
 */
#ifndef VIREO_X86_E820_H
#define VIREO_X86_E820_H

#include <stdint.h>

struct guest_mem;

#define E820_TYPE_RAM 1
#define E820_TYPE_RESERVED 2

struct e820_range {
	uint64_t addr;
	uint64_t size;
	uint32_t type;
};

/* Fills out[] (at most max entries); returns the count or -ENOSPC. */
int e820_build(const struct guest_mem *mem, struct e820_range *out, int max);

#endif
