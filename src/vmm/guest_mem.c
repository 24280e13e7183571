/*
 * Guest RAM: one mapping (anonymous, or of a memfd for sharing), cut into
 * regions around the device hole.
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
 * size bytes at a 2 MiB-aligned address, so guest-physical huge pages line
 * up with host ones: anonymous memory when fd is -1, else the memfd fd.
 * MAP_NORESERVE: RAM is touched lazily; untouched costs nothing.
 */
static uint8_t *map_aligned(uint64_t size, int fd)
{
	uint8_t *area = mmap(NULL, size + HUGE_PAGE_SIZE, PROT_NONE,
			     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	uint8_t *aligned, *ram;

	if (area == MAP_FAILED)
		return NULL;
	aligned = (uint8_t *)(((uintptr_t)area + HUGE_PAGE_SIZE - 1) & ~(HUGE_PAGE_SIZE - 1));
	if (fd < 0)
		ram = mmap(aligned, size, PROT_READ | PROT_WRITE,
			   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED, -1, 0);
	else
		ram = mmap(aligned, size, PROT_READ | PROT_WRITE,
			   MAP_SHARED | MAP_NORESERVE | MAP_FIXED, fd, 0);
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

/* Maps ram_size bytes (of mem->memfd, or anonymous if it is -1) and cuts them into regions. */
static int guest_mem_map(struct guest_mem *mem, uint64_t ram_size)
{
	uint64_t low = ram_size < LAYOUT_HOLE_START ? ram_size : LAYOUT_HOLE_START;
	int err;

	mem->mapping = map_aligned(ram_size, mem->memfd);
	if (!mem->mapping)
		return -errno;
	mem->mapping_size = ram_size;
	/*
	 * Huge pages save the guest tens of thousands of page-fault exits at
	 * boot. Anonymous memory gets them wherever THP is "madvise" or
	 * "always"; a memfd only where shmem_enabled allows, which stock
	 * kernels do not.
	 */
	madvise(mem->mapping, ram_size, MADV_HUGEPAGE);
	/* A child process (none today) must not share or copy-on-write guest RAM. */
	madvise(mem->mapping, ram_size, MADV_DONTFORK);
	err = guest_mem_add_region(mem, 0, low, mem->mapping);
	if (!err && ram_size > low)
		err = guest_mem_add_region(mem, LAYOUT_HOLE_END, ram_size - low, mem->mapping + low);
	return err;
}

int guest_mem_create(struct guest_mem *mem, uint64_t ram_size)
{
	int err;

	guest_mem_init_empty(mem);
	err = guest_mem_map(mem, ram_size);
	if (err)
		guest_mem_destroy(mem);
	return err;
}

int guest_mem_create_shared(struct guest_mem *mem, uint64_t ram_size)
{
	int err;

	guest_mem_init_empty(mem);
	mem->memfd = memfd_create("vireo-guest-ram", MFD_CLOEXEC);
	if (mem->memfd < 0)
		return -errno;
	err = ftruncate(mem->memfd, (off_t)ram_size) < 0 ? -errno : guest_mem_map(mem, ram_size);
	if (err)
		guest_mem_destroy(mem);
	return err;
}

void guest_mem_destroy(struct guest_mem *mem)
{
	if (mem->mapping)
		munmap(mem->mapping, mem->mapping_size);
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
