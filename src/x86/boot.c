/*
 * Kernel format detection and what both boot paths share: where the
 * initramfs and the command line go.
 */
#include "x86/boot.h"

#include <errno.h>
#include <elf.h>
#include <string.h>

#include "vmm/guest_mem.h"
#include "x86/layout.h"

#define PAGE_SIZE 4096ULL
#define BZIMAGE_MAGIC_OFFSET 0x202
#define BZIMAGE_MAGIC "HdrS"

static int is_elf(const struct boot_input *in)
{
	return in->kernel_len >= SELFMAG && memcmp(in->kernel, ELFMAG, SELFMAG) == 0;
}

static int is_bzimage(const struct boot_input *in)
{
	return in->kernel_len >= BZIMAGE_MAGIC_OFFSET + 4 &&
	       memcmp(in->kernel + BZIMAGE_MAGIC_OFFSET, BZIMAGE_MAGIC, 4) == 0;
}

int boot_load(struct guest_mem *mem, const struct boot_input *in, struct boot_entry *entry,
	      const char **why)
{
	if (is_bzimage(in))
		return boot_load_bzimage(mem, in, entry, why);
	if (is_elf(in))
		return boot_load_pvh(mem, in, entry, why);
	*why = "not a Linux kernel (neither a bzImage nor an ELF vmlinux)";
	return -ENOEXEC;
}

/* End of the RAM that starts at address 0 (the region below the device hole). */
static uint64_t low_ram_end(const struct guest_mem *mem)
{
	for (int i = 0; i < mem->nr_regions; i++) {
		if (mem->regions[i].gpa == 0)
			return mem->regions[i].size;
	}
	return 0;
}

uint64_t boot_place_initrd(struct guest_mem *mem, const struct boot_input *in,
			   uint64_t kernel_end, uint64_t limit)
{
	uint64_t top = low_ram_end(mem);
	uint64_t addr;

	if (limit < top)
		top = limit;
	if (in->initrd_len > top)
		return 0;
	addr = (top - in->initrd_len) & ~(PAGE_SIZE - 1);
	if (addr < kernel_end || guest_mem_write(mem, addr, in->initrd, in->initrd_len) < 0)
		return 0;
	return addr;
}

int boot_write_cmdline(struct guest_mem *mem, const char *cmdline, size_t max_len)
{
	size_t len = strlen(cmdline);

	if (max_len > LAYOUT_CMDLINE_MAX - 1)
		max_len = LAYOUT_CMDLINE_MAX - 1;
	if (len > max_len)
		return -E2BIG;
	return guest_mem_write(mem, LAYOUT_CMDLINE, cmdline, len + 1);
}
