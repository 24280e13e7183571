/*
 * Guest RAM: one memfd, mapped once, cut into regions around the device hole.
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
	mem->memfd = -1;
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
 * Maps fd at a 2 MiB-aligned address, so guest-physical huge pages line up
 * with host ones. MAP_NORESERVE: RAM is touched lazily; untouched costs nothing.
 */
static uint8_t *map_aligned(int fd, uint64_t size)
{
	uint8_t *area = mmap(NULL, size + HUGE_PAGE_SIZE, PROT_NONE,
			     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	uint8_t *aligned, *ram;

	if (area == MAP_FAILED)
		return NULL;
	aligned = (uint8_t *)(((uintptr_t)area + HUGE_PAGE_SIZE - 1) & ~(HUGE_PAGE_SIZE - 1));
	ram = mmap(aligned, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE | MAP_FIXED,
		   fd, 0);
	if (ram == MAP_FAILED) {
		munmap(area, size + HUGE_PAGE_SIZE);
		return NULL;
	}
	/* Give back the unused ends of the reservation. */
	if (aligned > area)
		munmap(area, (size_t)(aligned - area));
	munmap(aligned + size, (size_t)(area + HUGE_PAGE_SIZE - aligned));
	return ram;
}

int guest_mem_create(struct guest_mem *mem, uint64_t ram_size)
{
	uint64_t low = ram_size < LAYOUT_HOLE_START ? ram_size : LAYOUT_HOLE_START;
	int err;

	guest_mem_init_empty(mem);
	mem->memfd = memfd_create("vireo-guest-ram", MFD_CLOEXEC);
	if (mem->memfd < 0)
		return -errno;
	if (ftruncate(mem->memfd, (off_t)ram_size) < 0)
		goto fail_errno;
	mem->mapping = map_aligned(mem->memfd, ram_size);
	if (!mem->mapping)
		goto fail_errno;
	/*
	 * Huge pages save the guest tens of thousands of page-fault exits at
	 * boot; shmem (memfd) gets them where the host's shmem_enabled allows.
	 */
	madvise(mem->mapping, ram_size, MADV_HUGEPAGE);
	err = guest_mem_add_region(mem, 0, low, mem->mapping);
	if (!err && ram_size > low)
		err = guest_mem_add_region(mem, LAYOUT_HOLE_END, ram_size - low, mem->mapping + low);
	if (err) {
		guest_mem_destroy(mem);
		return err;
	}
	return 0;

fail_errno:
	err = -errno;
	guest_mem_destroy(mem);
	return err;
}

void guest_mem_destroy(struct guest_mem *mem)
{
	if (mem->mapping)
		munmap(mem->mapping, mem->ram_size);
	if (mem->memfd >= 0)
		close(mem->memfd);
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
