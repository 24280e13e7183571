/*
 * The Linux x86 boot protocol, 64-bit entry (Documentation/arch/x86/boot.rst):
 * copy the setup header into a zeroed zero page, load the protected-mode
 * kernel at 1 MiB, fill in the e820 map, command line, initramfs and ACPI
 * root pointer, and enter at load address + 0x200 in long mode.
 */
#include <asm/bootparam.h>
#include <errno.h>
#include <string.h>

#include "vmm/guest_mem.h"
#include "x86/boot.h"
#include "x86/e820.h"
#include "x86/layout.h"

#define SETUP_HEADER_OFFSET 0x1f1
#define SETUP_SECTOR_SIZE 512
#define DEFAULT_SETUP_SECTS 4 /* boot.rst: "if this field is 0, the real value is 4" */
#define MIN_PROTOCOL 0x020c   /* 2.12: xloadflags, and so XLF_KERNEL_64 */
#define ENTRY_64_OFFSET 0x200
#define LOADER_TYPE_UNDEFINED 0xff

/* Copies the setup header; its length is given by the byte at 0x201 (boot.rst). */
static void copy_setup_header(struct boot_params *params, const struct boot_input *in)
{
	size_t end = 0x202 + in->kernel[0x201];
	size_t len = end - SETUP_HEADER_OFFSET;

	if (len > sizeof(params->hdr))
		len = sizeof(params->hdr);
	if (len > in->kernel_len - SETUP_HEADER_OFFSET)
		len = in->kernel_len - SETUP_HEADER_OFFSET; /* a truncated file: check_header refuses it */
	memcpy(&params->hdr, in->kernel + SETUP_HEADER_OFFSET, len);
}

/*
 * End of the memory the kernel may use while it decompresses: a relocatable
 * kernel entered at 1 MiB moves itself to max(pref_address, load address
 * aligned to kernel_alignment) and uses init_size bytes from there
 * (arch/x86/boot/compressed/head_64.S).
 */
static uint64_t decompression_end(const struct setup_header *hdr, size_t kernel_size)
{
	uint64_t align = hdr->kernel_alignment ? hdr->kernel_alignment : 1;
	uint64_t start = (LAYOUT_HIGH_MEM + align - 1) / align * align;
	uint64_t size = hdr->init_size > kernel_size ? hdr->init_size : kernel_size;

	if (hdr->relocatable_kernel && hdr->pref_address > start)
		start = hdr->pref_address;
	if (!hdr->relocatable_kernel)
		start = LAYOUT_HIGH_MEM;
	return start + size;
}

static int fill_e820(struct guest_mem *mem, struct boot_params *params)
{
	struct e820_range ranges[E820_MAX_ENTRIES_ZEROPAGE];
	int n = e820_build(mem, ranges, E820_MAX_ENTRIES_ZEROPAGE);

	if (n < 0)
		return n;
	for (int i = 0; i < n; i++) {
		params->e820_table[i].addr = ranges[i].addr;
		params->e820_table[i].size = ranges[i].size;
		params->e820_table[i].type = ranges[i].type;
	}
	params->e820_entries = (uint8_t)n;
	return 0;
}

static int load_initrd(struct guest_mem *mem, const struct boot_input *in,
		       struct boot_params *params, uint64_t kernel_end, const char **why)
{
	uint64_t addr;

	if (!in->initrd)
		return 0;
	addr = boot_place_initrd(mem, in, kernel_end, (uint64_t)params->hdr.initrd_addr_max + 1);
	if (!addr) {
		*why = "the initramfs does not fit in guest memory beside the kernel "
		       "(give the guest more --memory)";
		return -ENOMEM;
	}
	params->hdr.ramdisk_image = (uint32_t)addr;
	params->hdr.ramdisk_size = (uint32_t)in->initrd_len;
	return 0;
}

static int check_header(const struct boot_input *in, const struct setup_header *hdr,
			size_t setup_size, const char **why)
{
	if (hdr->boot_flag != 0xaa55 || setup_size >= in->kernel_len) {
		*why = "not a valid bzImage (bad boot sector or truncated file)";
		return -ENOEXEC;
	}
	if (hdr->version < MIN_PROTOCOL || !(hdr->xloadflags & XLF_KERNEL_64)) {
		*why = "the bzImage has no 64-bit entry point (boot protocol 2.12 or later needed)";
		return -ENOEXEC;
	}
	return 0;
}

int boot_load_bzimage(struct guest_mem *mem, const struct boot_input *in,
		      struct boot_entry *entry, const char **why)
{
	struct boot_params params;
	size_t setup_sects, setup_size, kernel_size;
	uint64_t kernel_end;
	int err;

	memset(&params, 0, sizeof(params));
	copy_setup_header(&params, in);
	setup_sects = params.hdr.setup_sects ? params.hdr.setup_sects : DEFAULT_SETUP_SECTS;
	setup_size = (setup_sects + 1) * SETUP_SECTOR_SIZE;
	err = check_header(in, &params.hdr, setup_size, why);
	if (err)
		return err;
	kernel_size = in->kernel_len - setup_size;
	if (guest_mem_write(mem, LAYOUT_HIGH_MEM, in->kernel + setup_size, kernel_size) < 0) {
		*why = "the kernel does not fit in guest memory";
		return -ENOMEM;
	}
	kernel_end = decompression_end(&params.hdr, kernel_size);
	if (!guest_mem_ptr(mem, LAYOUT_HIGH_MEM, kernel_end - LAYOUT_HIGH_MEM)) {
		*why = "guest memory is too small for this kernel to decompress itself";
		return -ENOMEM;
	}

	params.hdr.type_of_loader = LOADER_TYPE_UNDEFINED;
	params.hdr.loadflags |= LOADED_HIGH | CAN_USE_HEAP;
	params.hdr.heap_end_ptr = 0xfe00; /* boot.rst: setup heap end, relative to real-mode base */
	params.hdr.cmd_line_ptr = (uint32_t)LAYOUT_CMDLINE;
	params.acpi_rsdp_addr = in->rsdp_gpa;
	if (boot_write_cmdline(mem, in->cmdline, params.hdr.cmdline_size) < 0) {
		*why = "the kernel command line is longer than this kernel accepts";
		return -E2BIG;
	}
	err = load_initrd(mem, in, &params, kernel_end, why);
	if (err)
		return err;
	err = fill_e820(mem, &params);
	if (err) {
		*why = "the memory map does not fit in the zero page";
		return err;
	}
	if (guest_mem_write(mem, LAYOUT_ZERO_PAGE, &params, sizeof(params)) < 0) {
		*why = "guest memory too small for the zero page";
		return -ENOMEM;
	}
	entry->mode = BOOT_MODE_LINUX64;
	entry->rip = LAYOUT_HIGH_MEM + ENTRY_64_OFFSET;
	entry->params_gpa = LAYOUT_ZERO_PAGE;
	return 0;
}
