/*
 * Guest RAM: one anonymous mapping, cut into regions around the device hole.
 * See guest_mem.h for the rules every caller lives by.
 */
#include "vmm/guest_mem.h"

#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "x86/layout.h"

void guest_mem_init_empty(struct guest_mem *mem)
{
	memset(mem, 0, sizeof(*mem));
}

int guest_mem_add_region(struct guest_mem *mem, uint64_t gpa, uint64_t size, void *host)
{
	if (mem->nr_regions == GUEST_MEM_MAX_REGIONS)
		return -ENOSPC;
	if (size == 0 || gpa + size < gpa)
		return -EINVAL;
	mem->regions[mem->nr_regions++] = (struct guest_mem_region){
		.gpa = gpa,
		.size = size,
		.host = host,
	};
	mem->ram_size += size;
	return 0;
}

#define HUGE_PAGE_SIZE (2ULL << 20)

/*
 * Anonymous memory at a 2 MiB-aligned address, so guest-physical huge pages
 * line up with host ones. Anonymous rather than a memfd: transparent huge
 * pages reach it wherever THP is "madvise" or "always", while shmem's own
 * switch (shmem_enabled) is "never" on stock kernels, which cost a guest
 * tens of thousands of page-fault exits at boot. MAP_NORESERVE: RAM is
 * touched lazily; untouched costs nothing.
 */
static uint8_t *map_aligned(uint64_t size)
{
	uint8_t *area = mmap(NULL, size + HUGE_PAGE_SIZE, PROT_READ | PROT_WRITE,
			     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	uint8_t *aligned;

	if (area == MAP_FAILED)
		return NULL;
	aligned = (uint8_t *)(((uintptr_t)area + HUGE_PAGE_SIZE - 1) & ~(HUGE_PAGE_SIZE - 1));
	/* Give back the unused ends of the reservation. */
	if (aligned > area)
		munmap(area, (size_t)(aligned - area));
	munmap(aligned + size, (size_t)(area + HUGE_PAGE_SIZE - aligned));
	return aligned;
}

int guest_mem_create(struct guest_mem *mem, uint64_t ram_size)
{
	uint64_t low = ram_size < LAYOUT_HOLE_START ? ram_size : LAYOUT_HOLE_START;
	int err;

	guest_mem_init_empty(mem);
	mem->mapping = map_aligned(ram_size);
	if (!mem->mapping)
		return -errno;
	mem->mapping_size = ram_size;
	madvise(mem->mapping, ram_size, MADV_HUGEPAGE);
	/* A child process (none today) must not share or copy-on-write guest RAM. */
	madvise(mem->mapping, ram_size, MADV_DONTFORK);
	err = guest_mem_add_region(mem, 0, low, mem->mapping);
	if (!err && ram_size > low)
		err = guest_mem_add_region(mem, LAYOUT_HOLE_END, ram_size - low, mem->mapping + low);
	if (err) {
		guest_mem_destroy(mem);
		return err;
	}
	return 0;
}

void guest_mem_destroy(struct guest_mem *mem)
{
	if (mem->mapping)
		munmap(mem->mapping, mem->mapping_size);
	guest_mem_init_empty(mem);
}

void *guest_mem_ptr(const struct guest_mem *mem, uint64_t gpa, uint64_t len)
{
	for (int i = 0; i < mem->nr_regions; i++) {
		const struct guest_mem_region *r = &mem->regions[i];

		/* Written so that no sum can overflow: gpa - r->gpa is in range first. */
		if (gpa >= r->gpa && gpa - r->gpa <= r->size && len <= r->size - (gpa - r->gpa))
			return r->host + (gpa - r->gpa);
	}
	return NULL;
}

int guest_mem_write(const struct guest_mem *mem, uint64_t gpa, const void *src, size_t len)
{
	void *dst = guest_mem_ptr(mem, gpa, len);

	if (!dst)
		return -EFAULT;
	memcpy(dst, src, len);
	return 0;
}

int guest_mem_read(const struct guest_mem *mem, uint64_t gpa, void *dst, size_t len)
{
	const void *src = guest_mem_ptr(mem, gpa, len);

	if (!src)
		return -EFAULT;
	memcpy(dst, src, len);
	return 0;
}
