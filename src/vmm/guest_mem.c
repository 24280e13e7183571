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
	/* MAP_NORESERVE: guest RAM is touched lazily; untouched pages cost nothing. */
	mem->mapping = mmap(NULL, ram_size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE,
			    mem->memfd, 0);
	if (mem->mapping == MAP_FAILED) {
		mem->mapping = NULL;
		goto fail_errno;
	}
	madvise(mem->mapping, ram_size, MADV_MERGEABLE);
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
