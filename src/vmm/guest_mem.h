/*
 * Guest physical memory: the only way any part of Vireo touches guest RAM.
 *
 * RAM is one mapping, anonymous or of a memfd; it is split into regions around the 32-bit
 * device hole (below 4 GiB) and each region becomes one KVM memory slot.
 * guest_mem_ptr() hands out a host pointer only for a range that lies whole
 * inside one region, so a device never does arithmetic on guest addresses.
 */
#ifndef VIREO_VMM_GUEST_MEM_H
#define VIREO_VMM_GUEST_MEM_H

#include <stddef.h>
#include <stdint.h>

#define GUEST_MEM_MAX_REGIONS 4

struct guest_mem_region {
	uint64_t gpa;
	uint64_t size;
	uint8_t *host;
};

struct guest_mem {
	struct guest_mem_region regions[GUEST_MEM_MAX_REGIONS];
	int nr_regions;
	uint64_t ram_size; /* total bytes of RAM, all regions together */
	uint8_t *mapping;      /* guest_mem_create()'s mapping; NULL for caller-owned RAM */
	uint64_t mapping_size; /* its length */
	int memfd;	       /* guest_mem_create_shared()'s memfd, else -1 */
};

/*
 * Allocates ram_size bytes of RAM laid out around the device hole below
 * 4 GiB: anonymous memory, which gets transparent huge pages.
 */
int guest_mem_create(struct guest_mem *mem, uint64_t ram_size);

/*
 * The same backed by a memfd ("vireo-guest-ram") that another process can
 * map, such as a vhost-user back end. Huge pages only where the host's
 * shmem_enabled allows them.
 */
int guest_mem_create_shared(struct guest_mem *mem, uint64_t ram_size);

/* Describes caller-owned memory as guest RAM (unit tests' fake guest RAM). */
void guest_mem_init_empty(struct guest_mem *mem);
int guest_mem_add_region(struct guest_mem *mem, uint64_t gpa, uint64_t size, void *host);

void guest_mem_destroy(struct guest_mem *mem);

/*
 * Host pointer for [gpa, gpa + len) if the whole range is inside one RAM
 * region (and gpa + len does not overflow); NULL otherwise. len 0 is valid.
 */
void *guest_mem_ptr(const struct guest_mem *mem, uint64_t gpa, uint64_t len);

/* Copies to or from guest memory; -EFAULT when the range is not all RAM. */
int guest_mem_write(const struct guest_mem *mem, uint64_t gpa, const void *src, size_t len);
int guest_mem_read(const struct guest_mem *mem, uint64_t gpa, void *dst, size_t len);

#endif
