/*
 * Loading a kernel into guest memory, checked against fake guest RAM:
 * synthetic bzImages (64-bit boot protocol) and ELF vmlinux files (PVH),
 * built here byte by byte, then the zero page / hvm_start_info, loaded
 * bytes, command line, initramfs, the boot GDT and page tables, and the
 * boot vCPU's registers. Malformed files must fail with -errno and a reason
 * without reading outside the file. If the host has a real kernel, it is
 * loaded too.
 */
#include <asm/bootparam.h>
#include <elf.h>
#include <errno.h>
#include <glob.h>
#include <linux/kvm.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cmocka.h>

#include "vmm/guest_mem.h"
#include "x86/boot.h"
#include "x86/e820.h"
#include "x86/layout.h"

#define KiB (1ULL << 10)
#define MiB (1ULL << 20)
#define GiB (1ULL << 30)
#define PAGE 4096ULL

#define GUEST_RAM (256 * MiB)
#define RSDP_GPA LAYOUT_ACPI_TABLES
#define CMDLINE "console=ttyS0 root=/dev/vda rw"

/* Xen's public arch-x86/hvm/start_info.h, version 1: the layout the guest reads. */
#define HVM_START_MAGIC 0x336ec578
#define XEN_ELFNOTE_ENTRY 1
#define XEN_ELFNOTE_PHYS32_ENTRY 18

struct hvm_start_info {
	uint32_t magic;
	uint32_t version;
	uint32_t flags;
	uint32_t nr_modules;
	uint64_t modlist_paddr;
	uint64_t cmdline_paddr;
	uint64_t rsdp_paddr;
	uint64_t memmap_paddr;
	uint32_t memmap_entries;
	uint32_t reserved;
};

struct hvm_modlist_entry {
	uint64_t paddr;
	uint64_t size;
	uint64_t cmdline_paddr;
	uint64_t reserved;
};

struct hvm_memmap_table_entry {
	uint64_t addr;
	uint64_t size;
	uint32_t type;
	uint32_t reserved;
};

_Static_assert(sizeof(struct hvm_start_info) == 56, "start_info.h layout");
_Static_assert(offsetof(struct hvm_start_info, memmap_paddr) == 40, "start_info.h layout");
_Static_assert(sizeof(struct hvm_modlist_entry) == 32, "start_info.h layout");
_Static_assert(sizeof(struct hvm_memmap_table_entry) == 24, "start_info.h layout");

/* ---- fake guest RAM ---- */

static int ram_setup(void **state)
{
	struct guest_mem *mem = malloc(sizeof(*mem));

	assert_non_null(mem);
	assert_int_equal(guest_mem_create(mem, GUEST_RAM), 0);
	*state = mem;
	return 0;
}

static int ram_teardown(void **state)
{
	struct guest_mem *mem = *state;

	guest_mem_destroy(mem);
	free(mem);
	return 0;
}

static void *gptr(struct guest_mem *mem, uint64_t gpa, uint64_t len)
{
	void *p = guest_mem_ptr(mem, gpa, len);

	if (!p)
		fail_msg("guest range 0x%llx+0x%llx is not RAM", (unsigned long long)gpa,
			 (unsigned long long)len);
	return p;
}

static void fill_pattern(uint8_t *p, size_t len, unsigned int seed)
{
	for (size_t i = 0; i < len; i++)
		p[i] = (uint8_t)(i * 7 + i / 253 + seed);
}

static void assert_reason(const char *why, const char *words)
{
	if (!why)
		fail_msg("no reason given (expected one with '%s')", words);
	if (!strstr(why, words))
		fail_msg("reason '%s' does not say '%s'", why, words);
}

/* ---- synthetic bzImage ---- */

#define BZ_KERNEL_SIZE (64 * KiB)
#define BZ_INIT_SIZE (8 * MiB)
#define BZ_HEADER_END (SETUP_HEADER_OFFSET + sizeof(struct setup_header)) /* 0x26c */
#define SETUP_HEADER_OFFSET 0x1f1

struct bz {
	uint8_t *data;
	size_t len;
	size_t setup_size;
	struct setup_header *hdr; /* inside data */
};

/* A bzImage of protocol 2.15 with a 64-bit entry; setup_sects 0 means 4. */
static struct bz bz_make(unsigned int setup_sects, size_t kernel_size)
{
	struct bz bz;
	struct setup_header *hdr;

	bz.setup_size = ((setup_sects ? setup_sects : 4) + 1) * 512;
	bz.len = bz.setup_size + kernel_size;
	bz.data = malloc(bz.len);
	assert_non_null(bz.data);
	fill_pattern(bz.data, bz.setup_size, 0x11);
	fill_pattern(bz.data + bz.setup_size, kernel_size, 0x5a);
	hdr = (struct setup_header *)(bz.data + SETUP_HEADER_OFFSET);
	memset(hdr, 0, sizeof(*hdr));
	hdr->setup_sects = (uint8_t)setup_sects;
	hdr->syssize = (uint32_t)(kernel_size / 16);
	hdr->boot_flag = 0xaa55;
	/* A short jump over the header: the byte at 0x201 says where the header ends. */
	hdr->jump = 0xeb | (uint16_t)((BZ_HEADER_END - 0x202) << 8);
	memcpy(&hdr->header, "HdrS", 4);
	hdr->version = 0x020f;
	hdr->loadflags = LOADED_HIGH;
	hdr->code32_start = 0x100000;
	hdr->initrd_addr_max = 0x7fffffff;
	hdr->kernel_alignment = 0x200000;
	hdr->relocatable_kernel = 1;
	hdr->min_alignment = 21;
	hdr->xloadflags = XLF_KERNEL_64 | XLF_CAN_BE_LOADED_ABOVE_4G;
	hdr->cmdline_size = 2047;
	hdr->pref_address = 0x1000000;
	hdr->init_size = BZ_INIT_SIZE;
	bz.hdr = hdr;
	return bz;
}

static struct boot_input input_for(const uint8_t *kernel, size_t len)
{
	return (struct boot_input){
		.kernel = kernel,
		.kernel_len = len,
		.cmdline = CMDLINE,
		.rsdp_gpa = RSDP_GPA,
	};
}

static const struct boot_params *zero_page(struct guest_mem *mem)
{
	return gptr(mem, LAYOUT_ZERO_PAGE, sizeof(struct boot_params));
}

static void test_bzimage_loads_kernel_at_1m_and_enters_at_0x200(void **state)
{
	struct guest_mem *mem = *state;
	struct bz bz = bz_make(4, BZ_KERNEL_SIZE);
	struct boot_input in = input_for(bz.data, bz.len);
	struct boot_entry entry = { 0 };
	const char *why = NULL;

	assert_int_equal(boot_load(mem, &in, &entry, &why), 0);
	assert_null(why);
	assert_int_equal(entry.mode, BOOT_MODE_LINUX64);
	assert_int_equal(entry.rip, 0x100000 + 0x200);
	assert_int_equal(entry.params_gpa, LAYOUT_ZERO_PAGE);
	/* The protected-mode kernel (after the setup sectors) lies at 1 MiB, nothing more. */
	assert_memory_equal(gptr(mem, LAYOUT_HIGH_MEM, BZ_KERNEL_SIZE), bz.data + bz.setup_size,
			    BZ_KERNEL_SIZE);
	assert_int_equal(*(uint8_t *)gptr(mem, LAYOUT_HIGH_MEM + BZ_KERNEL_SIZE, 1), 0);
	assert_int_equal(*(uint8_t *)gptr(mem, LAYOUT_HIGH_MEM - 1, 1), 0);
	free(bz.data);
}

/* The whole zero page, byte for byte: header, loader fields, e820, RSDP and zeroes elsewhere. */
static void test_bzimage_zero_page_is_header_plus_loader_fields(void **state)
{
	struct guest_mem *mem = *state;
	struct bz bz = bz_make(4, BZ_KERNEL_SIZE);
	struct boot_input in = input_for(bz.data, bz.len);
	struct boot_entry entry;
	const char *why = NULL;
	struct boot_params want;
	const struct boot_params *got;
	struct e820_range map[8];
	int n;

	assert_int_equal(boot_load(mem, &in, &entry, &why), 0);
	got = zero_page(mem);

	memset(&want, 0, sizeof(want));
	memcpy(&want.hdr, bz.hdr, sizeof(want.hdr));
	want.hdr.type_of_loader = 0xff;
	assert_true(got->hdr.loadflags & LOADED_HIGH);
	assert_true(got->hdr.loadflags & CAN_USE_HEAP);
	want.hdr.loadflags = got->hdr.loadflags;
	want.hdr.heap_end_ptr = got->hdr.heap_end_ptr;
	want.hdr.cmd_line_ptr = LAYOUT_CMDLINE;
	want.acpi_rsdp_addr = RSDP_GPA;
	n = e820_build(mem, map, 8);
	assert_int_equal(n, 3);
	want.e820_entries = (uint8_t)n;
	for (int i = 0; i < n; i++) {
		want.e820_table[i].addr = map[i].addr;
		want.e820_table[i].size = map[i].size;
		want.e820_table[i].type = map[i].type;
	}

	assert_memory_equal(&got->hdr, &want.hdr, sizeof(want.hdr));
	assert_int_equal(got->hdr.ramdisk_image, 0);
	assert_int_equal(got->hdr.ramdisk_size, 0);
	assert_int_equal(got->e820_entries, 3);
	assert_int_equal(got->e820_table[0].addr, 0);
	assert_int_equal(got->e820_table[0].size, LAYOUT_LOW_RAM_END);
	assert_int_equal(got->e820_table[0].type, E820_TYPE_RAM);
	assert_int_equal(got->e820_table[1].addr, LAYOUT_LOW_RAM_END);
	assert_int_equal(got->e820_table[1].type, E820_TYPE_RESERVED);
	assert_int_equal(got->e820_table[2].addr, 1 * MiB);
	assert_int_equal(got->e820_table[2].size, GUEST_RAM - 1 * MiB);
	assert_int_equal(got->e820_table[2].type, E820_TYPE_RAM);
	assert_int_equal(got->acpi_rsdp_addr, RSDP_GPA);
	/* Nothing of the setup sectors outside the header leaks into the zero page. */
	assert_memory_equal(got, &want, sizeof(want));
	free(bz.data);
}

static void test_bzimage_writes_command_line(void **state)
{
	struct guest_mem *mem = *state;
	struct bz bz = bz_make(4, BZ_KERNEL_SIZE);
	struct boot_input in = input_for(bz.data, bz.len);
	struct boot_entry entry;
	const char *why = NULL;

	assert_int_equal(boot_load(mem, &in, &entry, &why), 0);
	assert_int_equal(zero_page(mem)->hdr.cmd_line_ptr, LAYOUT_CMDLINE);
	assert_string_equal(gptr(mem, LAYOUT_CMDLINE, sizeof(CMDLINE)), CMDLINE);
	free(bz.data);
}

static char *repeat(char c, size_t n)
{
	char *s = malloc(n + 1);

	assert_non_null(s);
	memset(s, c, n);
	s[n] = '\0';
	return s;
}

static void test_bzimage_command_line_limit_is_cmdline_size(void **state)
{
	struct guest_mem *mem = *state;
	struct bz bz = bz_make(4, BZ_KERNEL_SIZE);
	struct boot_input in = input_for(bz.data, bz.len);
	struct boot_entry entry;
	const char *why = NULL;
	char *exact = repeat('a', 255), *longer = repeat('b', 256);

	bz.hdr->cmdline_size = 255; /* without the terminating NUL (boot.rst) */
	in.cmdline = exact;
	assert_int_equal(boot_load(mem, &in, &entry, &why), 0);
	assert_string_equal(gptr(mem, LAYOUT_CMDLINE, 256), exact);

	in.cmdline = longer;
	assert_int_equal(boot_load(mem, &in, &entry, &why), -E2BIG);
	assert_reason(why, "command line");
	free(exact);
	free(longer);
	free(bz.data);
}

static void test_bzimage_places_initramfs_at_top_of_ram_above_kernel(void **state)
{
	struct guest_mem *mem = *state;
	struct bz bz = bz_make(4, BZ_KERNEL_SIZE);
	struct boot_input in = input_for(bz.data, bz.len);
	struct boot_entry entry;
	const char *why = NULL;
	size_t initrd_len = 3 * MiB + 123; /* not a page multiple */
	uint8_t *initrd = malloc(initrd_len);
	const struct setup_header *hdr;

	assert_non_null(initrd);
	fill_pattern(initrd, initrd_len, 0x77);
	in.initrd = initrd;
	in.initrd_len = initrd_len;
	assert_int_equal(boot_load(mem, &in, &entry, &why), 0);
	hdr = &zero_page(mem)->hdr;
	assert_int_equal(hdr->ramdisk_size, initrd_len);
	assert_int_equal(hdr->ramdisk_image % PAGE, 0);
	/* Inside RAM, as high as it goes, and clear of the kernel's init_size. */
	assert_true((uint64_t)hdr->ramdisk_image + initrd_len <= GUEST_RAM);
	assert_true((uint64_t)hdr->ramdisk_image + initrd_len > GUEST_RAM - PAGE);
	assert_true(hdr->ramdisk_image >= LAYOUT_HIGH_MEM + BZ_INIT_SIZE);
	assert_memory_equal(gptr(mem, hdr->ramdisk_image, initrd_len), initrd, initrd_len);
	free(initrd);
	free(bz.data);
}

static void test_bzimage_keeps_initramfs_below_initrd_addr_max(void **state)
{
	struct guest_mem *mem = *state;
	struct bz bz = bz_make(4, BZ_KERNEL_SIZE);
	struct boot_input in = input_for(bz.data, bz.len);
	struct boot_entry entry;
	const char *why = NULL;
	uint8_t initrd[5000];
	const struct setup_header *hdr;

	fill_pattern(initrd, sizeof(initrd), 3);
	in.initrd = initrd;
	in.initrd_len = sizeof(initrd);
	bz.hdr->initrd_addr_max = 64 * MiB - 1; /* the highest address the initramfs may occupy */
	assert_int_equal(boot_load(mem, &in, &entry, &why), 0);
	hdr = &zero_page(mem)->hdr;
	assert_int_equal(hdr->ramdisk_image % PAGE, 0);
	assert_true(hdr->ramdisk_image + sizeof(initrd) <= 64 * MiB);
	assert_true(hdr->ramdisk_image + sizeof(initrd) > 64 * MiB - PAGE);
	assert_memory_equal(gptr(mem, hdr->ramdisk_image, sizeof(initrd)), initrd, sizeof(initrd));
	free(bz.data);
}

static void test_bzimage_initramfs_on_5g_guest_stays_below_2g(void **state)
{
	struct guest_mem mem;
	struct bz bz = bz_make(4, BZ_KERNEL_SIZE);
	struct boot_input in = input_for(bz.data, bz.len);
	struct boot_entry entry;
	const char *why = NULL;
	uint8_t initrd[PAGE];
	const struct boot_params *bp;

	fill_pattern(initrd, sizeof(initrd), 9);
	in.initrd = initrd;
	in.initrd_len = sizeof(initrd);
	assert_int_equal(guest_mem_create(&mem, 5 * GiB), 0);
	assert_int_equal(boot_load(&mem, &in, &entry, &why), 0);
	bp = zero_page(&mem);
	assert_int_equal((uint64_t)bp->hdr.ramdisk_image + PAGE, 0x80000000ULL);
	assert_memory_equal(gptr(&mem, bp->hdr.ramdisk_image, PAGE), initrd, PAGE);
	/* The e820 map names the RAM at 4 GiB too. */
	assert_int_equal(bp->e820_entries, 4);
	assert_int_equal(bp->e820_table[2].addr, 1 * MiB);
	assert_int_equal(bp->e820_table[2].size, 3 * GiB - 1 * MiB);
	assert_int_equal(bp->e820_table[3].addr, 4 * GiB);
	assert_int_equal(bp->e820_table[3].size, 2 * GiB);
	assert_int_equal(bp->e820_table[3].type, E820_TYPE_RAM);
	guest_mem_destroy(&mem);
	free(bz.data);
}

static void test_bzimage_rejects_initramfs_too_large_for_memory(void **state)
{
	struct guest_mem *mem = *state;
	struct bz bz = bz_make(4, BZ_KERNEL_SIZE);
	struct boot_input in = input_for(bz.data, bz.len);
	struct boot_entry entry;
	const char *why = NULL;
	/* Never read: refused on its size. */
	static const uint8_t byte;

	in.initrd = &byte;
	in.initrd_len = GUEST_RAM + PAGE;
	assert_int_equal(boot_load(mem, &in, &entry, &why), -ENOMEM);
	assert_reason(why, "does not fit");
	free(bz.data);
}

static void test_bzimage_rejects_initramfs_overlapping_init_size(void **state)
{
	struct guest_mem *mem = *state;
	struct bz bz = bz_make(4, BZ_KERNEL_SIZE);
	struct boot_input in = input_for(bz.data, bz.len);
	struct boot_entry entry;
	const char *why = NULL;
	size_t initrd_len = 60 * MiB;
	uint8_t *initrd = calloc(1, initrd_len);

	assert_non_null(initrd);
	/* 1 MiB + 200 MiB of kernel leaves 55 MiB of the 256: a 60 MiB initramfs does not fit. */
	bz.hdr->init_size = 200 * MiB;
	in.initrd = initrd;
	in.initrd_len = initrd_len;
	assert_int_equal(boot_load(mem, &in, &entry, &why), -ENOMEM);
	assert_reason(why, "does not fit");
	free(initrd);
	free(bz.data);
}

/*
 * A relocatable kernel loaded at 1 MiB does not decompress at 1 MiB: its
 * 64-bit entry (arch/x86/boot/compressed/head_64.S) moves itself to
 * max(load address rounded up to kernel_alignment, LOAD_PHYSICAL_ADDR =
 * pref_address) and needs init_size bytes from there; it first copies the
 * compressed image to the end of that buffer. An initramfs inside
 * [pref_address, pref_address + init_size) is overwritten before the
 * kernel ever looks at it.
 */
static void test_bzimage_initramfs_clear_of_decompression_buffer(void **state)
{
	struct guest_mem mem;
	struct bz bz = bz_make(4, BZ_KERNEL_SIZE);
	struct boot_input in = input_for(bz.data, bz.len);
	struct boot_entry entry;
	const char *why = NULL;
	size_t initrd_len = 30 * MiB;
	uint8_t *initrd = calloc(1, initrd_len);
	uint64_t buffer_start, buffer_end;
	int rc;

	assert_non_null(initrd);
	assert_int_equal(guest_mem_create(&mem, 64 * MiB), 0);
	bz.hdr->init_size = 24 * MiB;
	buffer_start = bz.hdr->pref_address; /* 16 MiB: above 1 MiB rounded up to 2 MiB */
	buffer_end = buffer_start + bz.hdr->init_size;
	in.initrd = initrd;
	in.initrd_len = initrd_len;
	rc = boot_load(&mem, &in, &entry, &why);
	if (rc == 0) {
		uint64_t image = zero_page(&mem)->hdr.ramdisk_image;

		guest_mem_destroy(&mem);
		free(initrd);
		free(bz.data);
		if (image < buffer_end && image + initrd_len > buffer_start)
			fail_msg("initramfs at [0x%llx, 0x%llx) overlaps the kernel's decompression "
				 "buffer [0x%llx, 0x%llx)",
				 (unsigned long long)image, (unsigned long long)(image + initrd_len),
				 (unsigned long long)buffer_start, (unsigned long long)buffer_end);
		return;
	}
	assert_int_equal(rc, -ENOMEM);
	assert_reason(why, "does not fit");
	guest_mem_destroy(&mem);
	free(initrd);
	free(bz.data);
}

static void test_bzimage_zero_setup_sects_means_four(void **state)
{
	struct guest_mem *mem = *state;
	struct bz bz = bz_make(0, BZ_KERNEL_SIZE);
	struct boot_input in = input_for(bz.data, bz.len);
	struct boot_entry entry;
	const char *why = NULL;

	assert_int_equal(bz.setup_size, 5 * 512);
	assert_int_equal(boot_load(mem, &in, &entry, &why), 0);
	assert_memory_equal(gptr(mem, LAYOUT_HIGH_MEM, BZ_KERNEL_SIZE), bz.data + 5 * 512,
			    BZ_KERNEL_SIZE);
	free(bz.data);
}

static void test_bzimage_honours_larger_setup_sects(void **state)
{
	struct guest_mem *mem = *state;
	struct bz bz = bz_make(30, BZ_KERNEL_SIZE);
	struct boot_input in = input_for(bz.data, bz.len);
	struct boot_entry entry;
	const char *why = NULL;

	assert_int_equal(boot_load(mem, &in, &entry, &why), 0);
	assert_memory_equal(gptr(mem, LAYOUT_HIGH_MEM, BZ_KERNEL_SIZE), bz.data + 31 * 512,
			    BZ_KERNEL_SIZE);
	free(bz.data);
}

/* An older header is shorter: bytes past its end (0x202 + byte 0x201) are not header. */
static void test_bzimage_copies_only_the_header_the_kernel_declares(void **state)
{
	struct guest_mem *mem = *state;
	struct bz bz = bz_make(4, BZ_KERNEL_SIZE);
	struct boot_input in = input_for(bz.data, bz.len);
	struct boot_entry entry;
	const char *why = NULL;
	const struct setup_header *hdr;

	/* The header ends after init_size: handover_offset and kernel_info_offset are code. */
	bz.hdr->jump = 0xeb | (uint16_t)((offsetof(struct setup_header, handover_offset) +
					  SETUP_HEADER_OFFSET - 0x202)
					 << 8);
	bz.hdr->handover_offset = 0xdeadbeef;
	bz.hdr->kernel_info_offset = 0xfeedface;
	assert_int_equal(boot_load(mem, &in, &entry, &why), 0);
	hdr = &zero_page(mem)->hdr;
	assert_int_equal(hdr->init_size, BZ_INIT_SIZE);
	assert_int_equal(hdr->handover_offset, 0);
	assert_int_equal(hdr->kernel_info_offset, 0);
	free(bz.data);
}

static void test_boot_rejects_file_too_short_to_be_a_kernel(void **state)
{
	struct guest_mem *mem = *state;
	static const size_t lens[] = { 0, 3, 16, 0x200, 0x205 };
	uint8_t *data = calloc(1, 0x206);
	struct bz bz = bz_make(4, BZ_KERNEL_SIZE);

	assert_non_null(data);
	/* The first bytes of a real bzImage, cut short before "HdrS" is whole. */
	memcpy(data, bz.data, 0x206);
	for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
		struct boot_input in = input_for(data, lens[i]);
		struct boot_entry entry;
		const char *why = NULL;

		assert_int_equal(boot_load(mem, &in, &entry, &why), -ENOEXEC);
		assert_reason(why, "not a Linux kernel");
	}
	free(data);
	free(bz.data);
}

static void test_boot_rejects_wrong_magic(void **state)
{
	struct guest_mem *mem = *state;
	struct bz bz = bz_make(4, BZ_KERNEL_SIZE);
	struct boot_input in = input_for(bz.data, bz.len);
	struct boot_entry entry;
	const char *why = NULL;

	memcpy(&bz.hdr->header, "HdrT", 4);
	assert_int_equal(boot_load(mem, &in, &entry, &why), -ENOEXEC);
	assert_reason(why, "not a Linux kernel");
	/* Nothing was loaded. */
	assert_int_equal(*(uint8_t *)gptr(mem, LAYOUT_HIGH_MEM, 1), 0);
	free(bz.data);
}

static void test_bzimage_rejects_bad_boot_flag(void **state)
{
	struct guest_mem *mem = *state;
	struct bz bz = bz_make(4, BZ_KERNEL_SIZE);
	struct boot_input in = input_for(bz.data, bz.len);
	struct boot_entry entry;
	const char *why = NULL;

	bz.hdr->boot_flag = 0x55aa;
	assert_int_equal(boot_load(mem, &in, &entry, &why), -ENOEXEC);
	assert_reason(why, "bzImage");
	free(bz.data);
}

static void test_bzimage_rejects_file_ending_inside_setup_sectors(void **state)
{
	struct guest_mem *mem = *state;
	struct bz bz = bz_make(4, BZ_KERNEL_SIZE);
	struct boot_entry entry;
	const char *why = NULL;
	struct boot_input in = input_for(bz.data, bz.setup_size); /* no kernel after setup */

	assert_int_equal(boot_load(mem, &in, &entry, &why), -ENOEXEC);
	assert_reason(why, "truncated");
	why = NULL;
	bz.hdr->setup_sects = 0xff; /* 128 KiB of setup in a 66 KiB file */
	in = input_for(bz.data, bz.len);
	assert_int_equal(boot_load(mem, &in, &entry, &why), -ENOEXEC);
	assert_reason(why, "truncated");
	free(bz.data);
}

/*
 * The file's last byte is followed by an unmapped page, so a loader that
 * reads past the end of the file crashes here instead of reading garbage.
 */
struct guarded {
	uint8_t *map;
	size_t map_len;
	uint8_t *data; /* ends where the unmapped page starts */
};

static struct guarded guarded_copy(const uint8_t *data, size_t len)
{
	struct guarded g;
	size_t pages = (len + PAGE - 1) / PAGE;

	g.map_len = (pages + 1) * PAGE;
	g.map = mmap(NULL, g.map_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	assert_true(g.map != MAP_FAILED);
	assert_int_equal(mprotect(g.map + pages * PAGE, PAGE, PROT_NONE), 0);
	g.data = g.map + pages * PAGE - len;
	memcpy(g.data, data, len);
	return g;
}

static void test_bzimage_rejects_truncated_header_without_reading_past_file(void **state)
{
	struct guest_mem *mem = *state;
	struct bz bz = bz_make(4, BZ_KERNEL_SIZE);
	/* Long enough to hold "HdrS" at 0x202, too short for the header (to 0x26c). */
	static const size_t lens[] = { 0x206, 0x208, 0x220, 0x26b };

	for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
		struct guarded g = guarded_copy(bz.data, lens[i]);
		struct boot_input in = input_for(g.data, lens[i]);
		struct boot_entry entry;
		const char *why = NULL;

		assert_int_equal(boot_load(mem, &in, &entry, &why), -ENOEXEC);
		assert_non_null(why);
		munmap(g.map, g.map_len);
	}
	free(bz.data);
}

static void test_bzimage_rejects_protocol_older_than_2_12(void **state)
{
	struct guest_mem *mem = *state;
	struct bz bz = bz_make(4, BZ_KERNEL_SIZE);
	struct boot_input in = input_for(bz.data, bz.len);
	struct boot_entry entry;
	const char *why = NULL;

	bz.hdr->version = 0x020b;
	assert_int_equal(boot_load(mem, &in, &entry, &why), -ENOEXEC);
	assert_reason(why, "2.12");
	why = NULL;
	bz.hdr->version = 0x020c; /* 2.12 itself is enough */
	assert_int_equal(boot_load(mem, &in, &entry, &why), 0);
	free(bz.data);
}

static void test_bzimage_rejects_kernel_without_64bit_entry(void **state)
{
	struct guest_mem *mem = *state;
	struct bz bz = bz_make(4, BZ_KERNEL_SIZE);
	struct boot_input in = input_for(bz.data, bz.len);
	struct boot_entry entry;
	const char *why = NULL;

	bz.hdr->xloadflags = XLF_CAN_BE_LOADED_ABOVE_4G;
	assert_int_equal(boot_load(mem, &in, &entry, &why), -ENOEXEC);
	assert_reason(why, "64-bit");
	free(bz.data);
}

static void test_bzimage_rejects_kernel_larger_than_memory(void **state)
{
	struct guest_mem small;
	size_t ram = 2 * MiB;
	uint8_t *buf = calloc(1, ram);
	struct bz bz = bz_make(4, 1 * MiB + 1); /* 1 MiB + 1 byte from 1 MiB: past 2 MiB */
	struct boot_input in = input_for(bz.data, bz.len);
	struct boot_entry entry;
	const char *why = NULL;

	assert_non_null(buf);
	guest_mem_init_empty(&small);
	assert_int_equal(guest_mem_add_region(&small, 0, ram, buf), 0);
	assert_int_equal(boot_load(&small, &in, &entry, &why), -ENOMEM);
	assert_reason(why, "does not fit");
	guest_mem_destroy(&small);
	free(buf);
	free(bz.data);
}

/* ---- synthetic ELF vmlinux with a PVH entry note ---- */

#define ELF_LEN 0x4800
#define ELF_NOTES_OFF 0x200
#define ELF_TEXT_OFF 0x1000
#define ELF_TEXT_SIZE 0x3000
#define ELF_TEXT_PADDR 0x1000000ULL
#define ELF_DATA_OFF 0x4000
#define ELF_DATA_FILESZ 0x800
#define ELF_DATA_MEMSZ 0x4000
#define ELF_DATA_PADDR 0x1400000ULL
#define ELF_KERNEL_END (ELF_DATA_PADDR + ELF_DATA_MEMSZ)
#define PVH_ENTRY 0x1000abcULL

enum { PH_TEXT, PH_DATA, PH_NOTE, PH_STACK, NR_PH };

struct elf {
	uint8_t *data;
	size_t len;
	Elf64_Ehdr *eh;
	Elf64_Phdr *ph; /* NR_PH entries */
	size_t notes_len;
};

static size_t align4(size_t n)
{
	return (n + 3) & ~(size_t)3;
}

static size_t put_note(uint8_t *at, const char *name, uint32_t type, const void *desc,
		       uint32_t descsz)
{
	Elf64_Nhdr nh = { .n_namesz = (uint32_t)strlen(name) + 1, .n_descsz = descsz,
			  .n_type = type };
	size_t off = sizeof(nh);

	memcpy(at, &nh, sizeof(nh));
	memcpy(at + off, name, nh.n_namesz);
	off += align4(nh.n_namesz);
	memcpy(at + off, desc, descsz);
	return off + align4(descsz);
}

/* Notes as a real vmlinux has them: a build id and other Xen notes before the PVH entry. */
static size_t put_notes(uint8_t *at, uint64_t pvh_entry, int with_pvh)
{
	static const uint8_t build_id[20] = { 1, 2, 3, 4, 5 };
	uint64_t xen_entry = 0xffffffff81001000ULL;
	size_t off = 0;

	off += put_note(at + off, "GNU", NT_GNU_BUILD_ID, build_id, sizeof(build_id));
	off += put_note(at + off, "Xen", XEN_ELFNOTE_ENTRY, &xen_entry, 8);
	off += put_note(at + off, "Linux", XEN_ELFNOTE_PHYS32_ENTRY, &xen_entry, 8);
	if (with_pvh)
		off += put_note(at + off, "Xen", XEN_ELFNOTE_PHYS32_ENTRY, &pvh_entry, 8);
	return off;
}

static struct elf elf_make(int with_pvh)
{
	struct elf elf;

	elf.len = ELF_LEN;
	elf.data = calloc(1, ELF_LEN);
	assert_non_null(elf.data);
	elf.eh = (Elf64_Ehdr *)elf.data;
	elf.ph = (Elf64_Phdr *)(elf.data + sizeof(Elf64_Ehdr));
	memcpy(elf.eh->e_ident, ELFMAG, SELFMAG);
	elf.eh->e_ident[EI_CLASS] = ELFCLASS64;
	elf.eh->e_ident[EI_DATA] = ELFDATA2LSB;
	elf.eh->e_ident[EI_VERSION] = EV_CURRENT;
	elf.eh->e_type = ET_EXEC;
	elf.eh->e_machine = EM_X86_64;
	elf.eh->e_version = EV_CURRENT;
	elf.eh->e_entry = 0xffffffff81000000ULL;
	elf.eh->e_phoff = sizeof(Elf64_Ehdr);
	elf.eh->e_ehsize = sizeof(Elf64_Ehdr);
	elf.eh->e_phentsize = sizeof(Elf64_Phdr);
	elf.eh->e_phnum = NR_PH;

	fill_pattern(elf.data + ELF_TEXT_OFF, ELF_TEXT_SIZE, 0x21);
	fill_pattern(elf.data + ELF_DATA_OFF, ELF_DATA_FILESZ, 0x42);
	elf.notes_len = put_notes(elf.data + ELF_NOTES_OFF, PVH_ENTRY, with_pvh);
	assert_true(ELF_NOTES_OFF + elf.notes_len <= ELF_TEXT_OFF);

	elf.ph[PH_TEXT] = (Elf64_Phdr){
		.p_type = PT_LOAD, .p_flags = PF_R | PF_X, .p_offset = ELF_TEXT_OFF,
		.p_vaddr = 0xffffffff81000000ULL, .p_paddr = ELF_TEXT_PADDR,
		.p_filesz = ELF_TEXT_SIZE, .p_memsz = ELF_TEXT_SIZE, .p_align = 0x200000,
	};
	elf.ph[PH_DATA] = (Elf64_Phdr){
		.p_type = PT_LOAD, .p_flags = PF_R | PF_W, .p_offset = ELF_DATA_OFF,
		.p_vaddr = 0xffffffff81400000ULL, .p_paddr = ELF_DATA_PADDR,
		.p_filesz = ELF_DATA_FILESZ, .p_memsz = ELF_DATA_MEMSZ, .p_align = 0x200000,
	};
	elf.ph[PH_NOTE] = (Elf64_Phdr){
		.p_type = PT_NOTE, .p_flags = PF_R, .p_offset = ELF_NOTES_OFF,
		.p_vaddr = 0xffffffff81200000ULL, .p_paddr = 0x1200000,
		.p_filesz = elf.notes_len, .p_memsz = elf.notes_len, .p_align = 4,
	};
	elf.ph[PH_STACK] = (Elf64_Phdr){ .p_type = PT_GNU_STACK, .p_flags = PF_R | PF_W };
	return elf;
}

static const struct hvm_start_info *start_info(struct guest_mem *mem)
{
	return gptr(mem, LAYOUT_PVH_START_INFO, sizeof(struct hvm_start_info));
}

static void test_pvh_loads_segments_at_physical_addresses(void **state)
{
	struct guest_mem *mem = *state;
	struct elf elf = elf_make(1);
	struct boot_input in = input_for(elf.data, elf.len);
	struct boot_entry entry;
	const char *why = NULL;
	uint8_t *bss;

	/* Stale bytes where the bss goes: the loader must clear them. */
	memset(gptr(mem, ELF_DATA_PADDR, ELF_DATA_MEMSZ + 16), 0xcc, ELF_DATA_MEMSZ + 16);
	assert_int_equal(boot_load(mem, &in, &entry, &why), 0);
	assert_null(why);
	assert_memory_equal(gptr(mem, ELF_TEXT_PADDR, ELF_TEXT_SIZE), elf.data + ELF_TEXT_OFF,
			    ELF_TEXT_SIZE);
	assert_memory_equal(gptr(mem, ELF_DATA_PADDR, ELF_DATA_FILESZ), elf.data + ELF_DATA_OFF,
			    ELF_DATA_FILESZ);
	bss = gptr(mem, ELF_DATA_PADDR + ELF_DATA_FILESZ, ELF_DATA_MEMSZ - ELF_DATA_FILESZ);
	for (size_t i = 0; i < ELF_DATA_MEMSZ - ELF_DATA_FILESZ; i++)
		assert_int_equal(bss[i], 0);
	/* Only p_memsz bytes: the byte after the segment is untouched. */
	assert_int_equal(*(uint8_t *)gptr(mem, ELF_KERNEL_END, 1), 0xcc);
	/* The PT_NOTE segment is not loaded (its p_paddr is just a number). */
	assert_int_equal(*(uint8_t *)gptr(mem, 0x1200000, 1), 0);
	free(elf.data);
}

static void test_pvh_enters_at_note_entry_in_32bit_mode(void **state)
{
	struct guest_mem *mem = *state;
	struct elf elf = elf_make(1);
	struct boot_input in = input_for(elf.data, elf.len);
	struct boot_entry entry = { 0 };
	const char *why = NULL;

	assert_int_equal(boot_load(mem, &in, &entry, &why), 0);
	assert_int_equal(entry.mode, BOOT_MODE_PVH32);
	assert_int_equal(entry.rip, PVH_ENTRY);
	assert_int_equal(entry.params_gpa, LAYOUT_PVH_START_INFO);
	free(elf.data);
}

static void test_pvh_start_info_describes_memory_cmdline_and_rsdp(void **state)
{
	struct guest_mem *mem = *state;
	struct elf elf = elf_make(1);
	struct boot_input in = input_for(elf.data, elf.len);
	struct boot_entry entry;
	const char *why = NULL;
	const struct hvm_start_info *info;
	const struct hvm_memmap_table_entry *map;
	struct e820_range want[8];
	int n;

	assert_int_equal(boot_load(mem, &in, &entry, &why), 0);
	info = start_info(mem);
	assert_int_equal(info->magic, HVM_START_MAGIC);
	assert_int_equal(info->version, 1);
	assert_int_equal(info->flags, 0);
	assert_int_equal(info->nr_modules, 0);
	assert_int_equal(info->rsdp_paddr, RSDP_GPA);
	assert_int_equal(info->cmdline_paddr, LAYOUT_CMDLINE);
	assert_string_equal(gptr(mem, info->cmdline_paddr, sizeof(CMDLINE)), CMDLINE);
	assert_int_equal(info->reserved, 0);

	n = e820_build(mem, want, 8);
	assert_int_equal(n, 3);
	assert_int_equal(info->memmap_entries, n);
	map = gptr(mem, info->memmap_paddr, n * sizeof(*map));
	for (int i = 0; i < n; i++) {
		assert_int_equal(map[i].addr, want[i].addr);
		assert_int_equal(map[i].size, want[i].size);
		assert_int_equal(map[i].type, want[i].type);
		assert_int_equal(map[i].reserved, 0);
	}
	assert_int_equal(map[2].addr + map[2].size, GUEST_RAM);
	/* The memory map does not overlap the start info header. */
	assert_true(info->memmap_paddr >= LAYOUT_PVH_START_INFO + sizeof(*info));
	free(elf.data);
}

static void test_pvh_start_info_lists_initramfs_module(void **state)
{
	struct guest_mem *mem = *state;
	struct elf elf = elf_make(1);
	struct boot_input in = input_for(elf.data, elf.len);
	struct boot_entry entry;
	const char *why = NULL;
	size_t initrd_len = 2 * MiB + 17;
	uint8_t *initrd = malloc(initrd_len);
	const struct hvm_start_info *info;
	const struct hvm_modlist_entry *mod;

	assert_non_null(initrd);
	fill_pattern(initrd, initrd_len, 0x99);
	in.initrd = initrd;
	in.initrd_len = initrd_len;
	assert_int_equal(boot_load(mem, &in, &entry, &why), 0);
	info = start_info(mem);
	assert_int_equal(info->nr_modules, 1);
	assert_true(info->modlist_paddr >= LAYOUT_PVH_START_INFO + sizeof(*info));
	mod = gptr(mem, info->modlist_paddr, sizeof(*mod));
	assert_int_equal(mod->size, initrd_len);
	assert_int_equal(mod->paddr % PAGE, 0);
	assert_int_equal(mod->cmdline_paddr, 0);
	assert_int_equal(mod->reserved, 0);
	assert_true(mod->paddr >= ELF_KERNEL_END);
	assert_true(mod->paddr + initrd_len <= GUEST_RAM);
	assert_true(mod->paddr + initrd_len > GUEST_RAM - PAGE);
	assert_memory_equal(gptr(mem, mod->paddr, initrd_len), initrd, initrd_len);
	/* The modlist and memmap do not overlap each other. */
	assert_true(info->memmap_paddr >= info->modlist_paddr + sizeof(*mod) ||
		    info->memmap_paddr + info->memmap_entries * sizeof(struct hvm_memmap_table_entry) <=
			    info->modlist_paddr);
	free(initrd);
	free(elf.data);
}

static void test_pvh_rejects_elf_without_pvh_note(void **state)
{
	struct guest_mem *mem = *state;
	struct elf elf = elf_make(0);
	struct boot_input in = input_for(elf.data, elf.len);
	struct boot_entry entry;
	const char *why = NULL;

	assert_int_equal(boot_load(mem, &in, &entry, &why), -ENOEXEC);
	assert_reason(why, "PVH");

	/* A "Xen" name with the right type but the name size wrong is not the note. */
	free(elf.data);
	elf = elf_make(1);
	in = input_for(elf.data, elf.len);
	why = NULL;
	{
		uint8_t *notes = elf.data + ELF_NOTES_OFF;
		size_t off = 0;

		/* Walk to the last note (the PVH one) and rename it "Xem". */
		for (int i = 0; i < 3; i++) {
			Elf64_Nhdr nh;

			memcpy(&nh, notes + off, sizeof(nh));
			off += sizeof(nh) + align4(nh.n_namesz) + align4(nh.n_descsz);
		}
		memcpy(notes + off + sizeof(Elf64_Nhdr), "Xem", 4);
	}
	assert_int_equal(boot_load(mem, &in, &entry, &why), -ENOEXEC);
	assert_reason(why, "PVH");
	free(elf.data);
}

static void test_pvh_rejects_program_headers_past_end_of_file(void **state)
{
	struct guest_mem *mem = *state;
	struct elf elf = elf_make(1);
	struct boot_entry entry;
	const char *why = NULL;
	struct boot_input in = input_for(elf.data, elf.len);

	elf.eh->e_phoff = elf.len - sizeof(Elf64_Phdr) + 1;
	elf.eh->e_phnum = 1;
	assert_int_equal(boot_load(mem, &in, &entry, &why), -ENOEXEC);
	assert_reason(why, "truncated");

	why = NULL;
	elf.eh->e_phoff = sizeof(Elf64_Ehdr);
	elf.eh->e_phnum = 0xffff;
	assert_int_equal(boot_load(mem, &in, &entry, &why), -ENOEXEC);
	assert_reason(why, "truncated");

	why = NULL;
	elf.eh->e_phoff = UINT64_MAX - 8;
	elf.eh->e_phnum = 1;
	assert_int_equal(boot_load(mem, &in, &entry, &why), -ENOEXEC);
	assert_reason(why, "truncated");

	/* The file cut right after the ELF header. */
	why = NULL;
	elf.eh->e_phoff = sizeof(Elf64_Ehdr);
	elf.eh->e_phnum = NR_PH;
	in.kernel_len = sizeof(Elf64_Ehdr) + 10;
	assert_int_equal(boot_load(mem, &in, &entry, &why), -ENOEXEC);
	assert_reason(why, "truncated");
	free(elf.data);
}

static void test_pvh_rejects_elf_header_cut_short(void **state)
{
	struct guest_mem *mem = *state;
	struct elf elf = elf_make(1);
	struct guarded g = guarded_copy(elf.data, 32); /* "\x7fELF" and half a header */
	struct boot_input in = input_for(g.data, 32);
	struct boot_entry entry;
	const char *why = NULL;

	assert_int_equal(boot_load(mem, &in, &entry, &why), -ENOEXEC);
	assert_non_null(why);
	munmap(g.map, g.map_len);
	free(elf.data);
}

static void test_pvh_rejects_segment_outside_guest_ram(void **state)
{
	struct guest_mem *mem = *state;
	struct elf elf = elf_make(1);
	struct boot_input in = input_for(elf.data, elf.len);
	struct boot_entry entry;
	const char *why = NULL;

	elf.ph[PH_DATA].p_paddr = GUEST_RAM - 0x100; /* starts in RAM, ends past it */
	assert_int_equal(boot_load(mem, &in, &entry, &why), -ENOMEM);
	assert_reason(why, "does not fit");

	why = NULL;
	elf.ph[PH_DATA].p_paddr = LAYOUT_HOLE_START; /* device hole */
	assert_int_equal(boot_load(mem, &in, &entry, &why), -ENOMEM);
	assert_reason(why, "does not fit");

	why = NULL;
	elf.ph[PH_DATA].p_paddr = UINT64_MAX - 0x10; /* paddr + memsz wraps */
	assert_int_equal(boot_load(mem, &in, &entry, &why), -ENOMEM);
	assert_reason(why, "does not fit");
	free(elf.data);
}

static void test_pvh_rejects_malformed_segments(void **state)
{
	struct guest_mem *mem = *state;
	struct elf elf = elf_make(1);
	struct boot_input in = input_for(elf.data, elf.len);
	struct boot_entry entry;
	const char *why = NULL;

	elf.ph[PH_DATA].p_offset = elf.len - 0x10; /* file bytes past the end */
	assert_int_equal(boot_load(mem, &in, &entry, &why), -ENOEXEC);
	assert_reason(why, "malformed");

	why = NULL;
	elf.ph[PH_DATA].p_offset = ELF_DATA_OFF;
	elf.ph[PH_DATA].p_filesz = ELF_DATA_MEMSZ + 1 - 0x4000 + 0x800; /* fits the file */
	elf.ph[PH_DATA].p_memsz = elf.ph[PH_DATA].p_filesz - 1;	/* filesz > memsz */
	assert_int_equal(boot_load(mem, &in, &entry, &why), -ENOEXEC);
	assert_reason(why, "malformed");

	why = NULL;
	elf.ph[PH_DATA].p_filesz = ELF_DATA_FILESZ;
	elf.ph[PH_DATA].p_memsz = ELF_DATA_MEMSZ;
	elf.ph[PH_NOTE].p_filesz = UINT64_MAX; /* a note segment past the end */
	assert_int_equal(boot_load(mem, &in, &entry, &why), -ENOEXEC);
	assert_reason(why, "malformed");
	free(elf.data);
}

static void test_pvh_rejects_elf_that_is_not_x86_64(void **state)
{
	struct guest_mem *mem = *state;
	struct elf elf = elf_make(1);
	struct boot_input in = input_for(elf.data, elf.len);
	struct boot_entry entry;
	const char *why = NULL;

	elf.eh->e_ident[EI_CLASS] = ELFCLASS32;
	assert_int_equal(boot_load(mem, &in, &entry, &why), -ENOEXEC);
	assert_reason(why, "64-bit x86");

	why = NULL;
	elf.eh->e_ident[EI_CLASS] = ELFCLASS64;
	elf.eh->e_machine = EM_AARCH64;
	assert_int_equal(boot_load(mem, &in, &entry, &why), -ENOEXEC);
	assert_reason(why, "64-bit x86");

	why = NULL;
	elf.eh->e_machine = EM_X86_64;
	elf.eh->e_phentsize = sizeof(Elf32_Phdr);
	assert_int_equal(boot_load(mem, &in, &entry, &why), -ENOEXEC);
	assert_reason(why, "64-bit x86");
	free(elf.data);
}

/* Note headers with sizes that run past the segment: no entry found, no crash. */
static void test_pvh_survives_malformed_notes(void **state)
{
	struct guest_mem *mem = *state;
	static const uint32_t bad_sizes[] = { 0xffffffff, 0xfffffffd, 0x10000, 0x41 };

	for (size_t i = 0; i < sizeof(bad_sizes) / sizeof(bad_sizes[0]); i++) {
		for (int field = 0; field < 2; field++) {
			struct elf elf = elf_make(1);
			struct guarded g;
			struct boot_input in;
			struct boot_entry entry;
			const char *why = NULL;
			Elf64_Nhdr *first = (Elf64_Nhdr *)(elf.data + ELF_NOTES_OFF);

			if (field == 0)
				first->n_namesz = bad_sizes[i];
			else
				first->n_descsz = bad_sizes[i];
			/* The notes are the last thing in the file: a wild read faults. */
			elf.ph[PH_NOTE].p_filesz = elf.notes_len;
			elf.ph[PH_NOTE].p_offset = ELF_LEN - elf.notes_len;
			memmove(elf.data + ELF_LEN - elf.notes_len, elf.data + ELF_NOTES_OFF,
				elf.notes_len);
			elf.ph[PH_DATA].p_filesz = 0x400; /* keep data clear of the moved notes */
			g = guarded_copy(elf.data, elf.len);
			in = input_for(g.data, elf.len);
			assert_int_equal(boot_load(mem, &in, &entry, &why), -ENOEXEC);
			assert_reason(why, "PVH");
			munmap(g.map, g.map_len);
			free(elf.data);
		}
	}
}

static void test_pvh_rejects_initramfs_too_large(void **state)
{
	struct guest_mem *mem = *state;
	struct elf elf = elf_make(1);
	struct boot_input in = input_for(elf.data, elf.len);
	struct boot_entry entry;
	const char *why = NULL;
	size_t initrd_len = GUEST_RAM - ELF_KERNEL_END + PAGE; /* just too much above the kernel */
	uint8_t *initrd = calloc(1, initrd_len);

	assert_non_null(initrd);
	in.initrd = initrd;
	in.initrd_len = initrd_len;
	assert_int_equal(boot_load(mem, &in, &entry, &why), -ENOMEM);
	assert_reason(why, "does not fit");
	free(initrd);
	free(elf.data);
}

static void test_pvh_rejects_command_line_too_long(void **state)
{
	struct guest_mem *mem = *state;
	struct elf elf = elf_make(1);
	struct boot_input in = input_for(elf.data, elf.len);
	struct boot_entry entry;
	const char *why = NULL;
	char *max = repeat('m', LAYOUT_CMDLINE_MAX - 1), *longer = repeat('l', LAYOUT_CMDLINE_MAX);

	in.cmdline = max;
	assert_int_equal(boot_load(mem, &in, &entry, &why), 0);
	assert_string_equal(gptr(mem, LAYOUT_CMDLINE, LAYOUT_CMDLINE_MAX), max);
	in.cmdline = longer;
	assert_int_equal(boot_load(mem, &in, &entry, &why), -E2BIG);
	assert_reason(why, "command line");
	free(max);
	free(longer);
	free(elf.data);
}

/* ---- boot CPU: GDT, page tables, registers ---- */

#define PTE_P (1ULL << 0)
#define PTE_W (1ULL << 1)
#define PTE_PS (1ULL << 7)
#define CR0_PE (1ULL << 0)
#define CR0_ET (1ULL << 4)
#define CR0_PG (1ULL << 31)
#define CR4_PAE (1ULL << 5)
#define EFER_LME (1ULL << 8)
#define EFER_LMA (1ULL << 10)
#define RFLAGS_IF (1ULL << 9)

static void test_boot_cpu_tables_write_gdt_and_empty_idt(void **state)
{
	struct guest_mem *mem = *state;
	const uint64_t *gdt;

	memset(gptr(mem, LAYOUT_BOOT_IDT, 8), 0xff, 8);
	assert_int_equal(boot_setup_cpu_tables(mem), 0);
	gdt = gptr(mem, LAYOUT_BOOT_GDT, 5 * 8);
	assert_int_equal(gdt[0], 0);
	assert_int_equal(gdt[1], 0x00cf9b000000ffffULL); /* 0x08: flat 32-bit code */
	assert_int_equal(gdt[2], 0x00af9b000000ffffULL); /* 0x10: flat 64-bit code, L=1 */
	assert_int_equal(gdt[3], 0x00cf93000000ffffULL); /* 0x18: flat data */
	assert_int_equal(*(uint64_t *)gptr(mem, LAYOUT_BOOT_IDT, 8), 0);
}

/* Walks the boot page tables as the MMU would (4-level, 2 MiB pages); ~0 when unmapped. */
static uint64_t walk(struct guest_mem *mem, uint64_t cr3, uint64_t va)
{
	const uint64_t *pml4 = gptr(mem, cr3 & ~0xfffULL, PAGE);
	uint64_t e = pml4[(va >> 39) & 511];
	const uint64_t *pdpt, *pd;

	if (!(e & PTE_P))
		return ~0ULL;
	pdpt = gptr(mem, e & 0x000ffffffffff000ULL, PAGE);
	e = pdpt[(va >> 30) & 511];
	if (!(e & PTE_P) || (e & PTE_PS))
		return ~0ULL;
	pd = gptr(mem, e & 0x000ffffffffff000ULL, PAGE);
	e = pd[(va >> 21) & 511];
	if (!(e & PTE_P) || !(e & PTE_PS))
		return ~0ULL;
	return (e & 0x000fffffffe00000ULL) | (va & (2 * MiB - 1));
}

static void test_boot_cpu_page_tables_identity_map_4g_in_2m_pages(void **state)
{
	struct guest_mem *mem = *state;
	const uint64_t *pml4, *pdpt, *pd;
	static const uint64_t probes[] = { 0,	    0x1000,	 LAYOUT_HIGH_MEM + 0x200,
					   0x1234567, 0xbfffffff, LAYOUT_IOAPIC,
					   LAYOUT_LAPIC + 0x30,	 0xffffffff };

	/* Stale page-table pages: the loader must not leave old entries behind. */
	memset(gptr(mem, LAYOUT_PML4, PAGE), 0xa5, PAGE);
	memset(gptr(mem, LAYOUT_PDPT, PAGE), 0xa5, PAGE);
	assert_int_equal(boot_setup_cpu_tables(mem), 0);

	pml4 = gptr(mem, LAYOUT_PML4, PAGE);
	pdpt = gptr(mem, LAYOUT_PDPT, PAGE);
	pd = gptr(mem, LAYOUT_PD, 4 * PAGE);
	assert_int_equal(pml4[0], LAYOUT_PDPT | PTE_P | PTE_W);
	for (int i = 1; i < 512; i++)
		assert_int_equal(pml4[i], 0);
	for (int i = 0; i < 4; i++)
		assert_int_equal(pdpt[i], (LAYOUT_PD + i * PAGE) | PTE_P | PTE_W);
	for (int i = 4; i < 512; i++)
		assert_int_equal(pdpt[i], 0);
	for (int i = 0; i < 4 * 512; i++)
		assert_int_equal(pd[i], (uint64_t)i * 2 * MiB | PTE_P | PTE_W | PTE_PS);

	for (size_t i = 0; i < sizeof(probes) / sizeof(probes[0]); i++)
		assert_int_equal(walk(mem, LAYOUT_PML4, probes[i]), probes[i]);
	assert_int_equal(walk(mem, LAYOUT_PML4, 4 * GiB), ~0ULL);
	/* The tables do not collide with the zero page, GDT or command line. */
	assert_true(LAYOUT_PML4 >= LAYOUT_ZERO_PAGE + PAGE);
	assert_true(LAYOUT_PD + 4 * PAGE <= LAYOUT_CMDLINE);
}

static void test_boot_cpu_tables_fail_without_low_ram(void **state)
{
	struct guest_mem none;
	uint8_t buf[PAGE];

	guest_mem_init_empty(&none);
	assert_int_equal(guest_mem_add_region(&none, 1 * MiB, sizeof(buf), buf), 0);
	assert_int_equal(boot_setup_cpu_tables(&none), -ENOMEM);
}

/* What KVM reports for a vCPU after reset (SDM vol. 3A table 10-1), more or less. */
static void reset_sregs(struct kvm_sregs *s)
{
	memset(s, 0, sizeof(*s));
	s->cr0 = 0x60000010;
	s->cs = (struct kvm_segment){ .base = 0xffff0000, .limit = 0xffff, .selector = 0xf000,
				      .type = 0xb, .present = 1, .s = 1 };
}

/* The descriptor at sel in the boot GDT, decoded into KVM's segment form. */
static struct kvm_segment gdt_segment(struct guest_mem *mem, uint16_t sel)
{
	uint64_t d = ((const uint64_t *)gptr(mem, LAYOUT_BOOT_GDT, 5 * 8))[sel >> 3];
	uint32_t limit = (uint32_t)((d & 0xffff) | ((d >> 32) & 0xf0000));
	struct kvm_segment s = {
		.base = ((d >> 16) & 0xffffff) | (((d >> 56) & 0xff) << 24),
		.selector = sel,
		.type = (d >> 40) & 0xf,
		.s = (d >> 44) & 1,
		.dpl = (d >> 45) & 3,
		.present = (d >> 47) & 1,
		.avl = (d >> 52) & 1,
		.l = (d >> 53) & 1,
		.db = (d >> 54) & 1,
		.g = (d >> 55) & 1,
	};

	s.limit = s.g ? (limit << 12) | 0xfff : limit;
	return s;
}

static void assert_segment_matches_gdt(struct guest_mem *mem, const struct kvm_segment *seg)
{
	struct kvm_segment want = gdt_segment(mem, seg->selector);

	assert_int_not_equal(seg->selector, 0);
	assert_int_equal(seg->base, want.base);
	assert_int_equal(seg->limit, want.limit);
	assert_int_equal(seg->type, want.type);
	assert_int_equal(seg->s, want.s);
	assert_int_equal(seg->dpl, want.dpl);
	assert_int_equal(seg->present, want.present);
	assert_int_equal(seg->l, want.l);
	assert_int_equal(seg->db, want.db);
	assert_int_equal(seg->g, want.g);
	assert_int_equal(seg->unusable, 0);
}

static void assert_common_sregs(struct guest_mem *mem, const struct kvm_sregs *s)
{
	assert_segment_matches_gdt(mem, &s->cs);
	assert_segment_matches_gdt(mem, &s->ds);
	assert_segment_matches_gdt(mem, &s->es);
	assert_segment_matches_gdt(mem, &s->fs);
	assert_segment_matches_gdt(mem, &s->gs);
	assert_segment_matches_gdt(mem, &s->ss);
	/* A usable TR for VM entry: busy 32-bit TSS (its descriptor: see the TSS test). */
	assert_int_equal(s->tr.type, 0xb);
	assert_int_equal(s->tr.present, 1);
	assert_int_equal(s->tr.s, 0);
	assert_int_equal(s->tr.limit, 0x67);
	assert_int_equal(s->ds.selector, 0x18);
	assert_int_equal(s->ss.selector, 0x18);
	assert_int_equal(s->tr.selector, 0x20);
	assert_int_equal(s->gdt.base, LAYOUT_BOOT_GDT);
	assert_int_equal(s->gdt.limit, 5 * 8 - 1);
	assert_int_equal(s->idt.base, LAYOUT_BOOT_IDT);
	assert_int_equal(s->cr0 & CR0_PE, CR0_PE);
}

/*
 * The GDT has five descriptors (0x28 bytes from LAYOUT_BOOT_GDT); the TSS
 * descriptor at selector 0x20 must still be there after the IDT is written,
 * and match the TR that boot_cpu_registers() loads.
 */
static void test_boot_cpu_tss_descriptor_is_not_overwritten_by_idt(void **state)
{
	struct guest_mem *mem = *state;
	struct boot_entry entry = { .mode = BOOT_MODE_LINUX64, .rip = 0x100200,
				    .params_gpa = LAYOUT_ZERO_PAGE };
	struct kvm_regs regs;
	struct kvm_sregs sregs;
	uint64_t tss;

	memset(&sregs, 0, sizeof(sregs));
	boot_cpu_registers(&entry, &regs, &sregs);
	assert_int_equal(boot_setup_cpu_tables(mem), 0);
	if (sregs.idt.base <= sregs.gdt.base + sregs.gdt.limit &&
	    sregs.gdt.base <= sregs.idt.base + sregs.idt.limit)
		fail_msg("IDT [0x%llx, +%u] overlaps GDT [0x%llx, +%u]",
			 (unsigned long long)sregs.idt.base, sregs.idt.limit + 1,
			 (unsigned long long)sregs.gdt.base, sregs.gdt.limit + 1);
	tss = ((const uint64_t *)gptr(mem, LAYOUT_BOOT_GDT, 5 * 8))[4];
	assert_int_equal((tss >> 40) & 0xff, 0x8b); /* present, busy 32-bit TSS */
	assert_segment_matches_gdt(mem, &sregs.tr);
}

static void test_boot_cpu_registers_64bit_long_mode(void **state)
{
	struct guest_mem *mem = *state;
	struct boot_entry entry = { .mode = BOOT_MODE_LINUX64, .rip = 0x100200,
				    .params_gpa = LAYOUT_ZERO_PAGE };
	struct kvm_regs regs;
	struct kvm_sregs sregs;

	assert_int_equal(boot_setup_cpu_tables(mem), 0);
	memset(&regs, 0xee, sizeof(regs));
	reset_sregs(&sregs);
	boot_cpu_registers(&entry, &regs, &sregs);
	assert_int_equal(regs.rip, 0x100200);
	assert_int_equal(regs.rsi, LAYOUT_ZERO_PAGE);
	assert_int_equal(regs.rflags & RFLAGS_IF, 0); /* boot.rst: interrupts disabled */
	assert_int_equal(regs.rflags & 2, 2);
	assert_int_equal(regs.rax, 0);
	assert_int_equal(regs.rbx, 0);
	assert_int_not_equal(regs.rsp, 0);
	assert_int_equal(sregs.cs.selector, 0x10);
	assert_int_equal(sregs.cs.l, 1);
	assert_int_equal(sregs.cs.db, 0);
	assert_int_equal(sregs.cs.type & 0x8, 0x8); /* code */
	assert_common_sregs(mem, &sregs);
	assert_int_equal(sregs.cr0 & (CR0_PE | CR0_PG), CR0_PE | CR0_PG);
	assert_int_equal(sregs.cr4 & CR4_PAE, CR4_PAE);
	assert_int_equal(sregs.efer & (EFER_LME | EFER_LMA), EFER_LME | EFER_LMA);
	assert_int_equal(sregs.cr3, LAYOUT_PML4);
	/* The stack is RAM, mapped, and clear of the zero page and page tables. */
	assert_int_equal(walk(mem, sregs.cr3, regs.rsp), regs.rsp);
	assert_true(regs.rsp >= LAYOUT_ZERO_PAGE + PAGE && regs.rsp <= LAYOUT_PML4);
}

static void test_boot_cpu_registers_pvh_32bit_protected_mode(void **state)
{
	struct guest_mem *mem = *state;
	struct boot_entry entry = { .mode = BOOT_MODE_PVH32, .rip = PVH_ENTRY,
				    .params_gpa = LAYOUT_PVH_START_INFO };
	struct kvm_regs regs;
	struct kvm_sregs sregs;

	assert_int_equal(boot_setup_cpu_tables(mem), 0);
	memset(&regs, 0xee, sizeof(regs));
	reset_sregs(&sregs);
	/* Whatever a previous boot left: PVH starts with paging and long mode off. */
	sregs.cr0 |= CR0_PG | CR0_PE;
	sregs.cr4 |= CR4_PAE;
	sregs.efer |= EFER_LME | EFER_LMA;
	boot_cpu_registers(&entry, &regs, &sregs);
	assert_int_equal(regs.rip, PVH_ENTRY);
	assert_int_equal(regs.rbx, LAYOUT_PVH_START_INFO);
	assert_int_equal(regs.rsi, 0);
	assert_int_equal(regs.rflags & RFLAGS_IF, 0);
	assert_int_equal(sregs.cs.selector, 0x08);
	assert_int_equal(sregs.cs.l, 0);
	assert_int_equal(sregs.cs.db, 1);
	assert_int_equal(sregs.cs.base, 0);
	assert_int_equal(sregs.cs.limit, 0xffffffff);
	assert_common_sregs(mem, &sregs);
	assert_int_equal(sregs.cr0 & CR0_PG, 0);
	assert_int_equal(sregs.cr4 & CR4_PAE, 0);
	assert_int_equal(sregs.efer & (EFER_LME | EFER_LMA), 0);
}

/* ---- a real kernel, when the host has one ---- */

/* The first readable file matching pattern ("~/" is $HOME), or NULL. */
static char *find_file(const char *pattern)
{
	const char *home = getenv("HOME");
	char expanded[4096];
	char *found = NULL;
	glob_t g;

	if (strncmp(pattern, "~/", 2) == 0) {
		if (!home)
			return NULL;
		snprintf(expanded, sizeof(expanded), "%s/%s", home, pattern + 2);
		pattern = expanded;
	}
	if (glob(pattern, 0, NULL, &g) != 0)
		return NULL;
	for (size_t i = 0; i < g.gl_pathc && !found; i++) {
		if (access(g.gl_pathv[i], R_OK) == 0)
			found = strdup(g.gl_pathv[i]);
	}
	globfree(&g);
	return found;
}

static char *find_real_kernel(void)
{
	char *path = find_file("/boot/vmlinuz-*");

	return path ? path : find_file("~/.cache/vireo/*/vmlinuz");
}

static uint8_t *read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	uint8_t *data;
	long size;

	if (!f)
		return NULL;
	if (fseek(f, 0, SEEK_END) < 0 || (size = ftell(f)) <= 0 || fseek(f, 0, SEEK_SET) < 0) {
		fclose(f);
		return NULL;
	}
	data = malloc((size_t)size);
	if (data && fread(data, 1, (size_t)size, f) != (size_t)size) {
		free(data);
		data = NULL;
	}
	fclose(f);
	*len = (size_t)size;
	return data;
}

static void test_boot_loads_real_kernel_from_host(void **state)
{
	struct guest_mem *mem = *state;
	char *path = find_real_kernel();
	struct boot_input in;
	struct boot_entry entry;
	const char *why = NULL;
	const struct boot_params *bp;
	uint8_t initrd[PAGE] = { '0', '7', '0', '7', '0', '1' };
	uint8_t *data;
	size_t len = 0;
	int rc;

	if (!path) {
		print_message("no /boot/vmlinuz-* or ~/.cache/vireo/*/vmlinuz on this host: "
			      "skipping the real-kernel load\n");
		skip();
	}
	data = read_file(path, &len);
	if (!data) {
		print_message("%s cannot be read: skipping the real-kernel load\n", path);
		free(path);
		skip();
	}
	print_message("loading %s (%zu bytes)\n", path, len);
	in = input_for(data, len);
	in.initrd = initrd;
	in.initrd_len = sizeof(initrd);
	rc = boot_load(mem, &in, &entry, &why);
	if (rc != 0)
		fail_msg("%s: %s (%d)", path, why ? why : "no reason", rc);
	assert_int_equal(entry.mode, BOOT_MODE_LINUX64);
	assert_int_equal(entry.rip, LAYOUT_HIGH_MEM + 0x200);
	bp = zero_page(mem);
	assert_memory_equal(&bp->hdr.header, "HdrS", 4);
	assert_int_equal(bp->hdr.type_of_loader, 0xff);
	assert_true(bp->hdr.version >= 0x020c);
	assert_true(bp->hdr.init_size > 0);
	assert_true(bp->hdr.ramdisk_image >= LAYOUT_HIGH_MEM + bp->hdr.init_size);
	assert_true(bp->hdr.ramdisk_image + sizeof(initrd) <= GUEST_RAM);
	assert_string_equal(gptr(mem, bp->hdr.cmd_line_ptr, sizeof(CMDLINE)), CMDLINE);
	{
		size_t setup = ((data[0x1f1] ? data[0x1f1] : 4) + 1) * 512;

		assert_memory_equal(gptr(mem, LAYOUT_HIGH_MEM, len - setup), data + setup,
				    len - setup);
	}
	free(data);
	free(path);
}

/* The guest kit's uncompressed vmlinux boots through PVH. */
static void test_boot_loads_real_vmlinux_through_pvh(void **state)
{
	struct guest_mem *mem = *state;
	char *path = find_file("~/.cache/vireo/*/vmlinux");
	struct boot_input in;
	struct boot_entry entry;
	const char *why = NULL;
	const struct hvm_start_info *info;
	const Elf64_Ehdr *eh;
	const Elf64_Phdr *ph;
	uint8_t *data;
	size_t len = 0;
	int rc;

	if (!path) {
		print_message("no ~/.cache/vireo/*/vmlinux on this host: skipping the real PVH "
			      "load\n");
		skip();
	}
	data = read_file(path, &len);
	if (!data || len < sizeof(*eh)) {
		print_message("%s cannot be read: skipping the real PVH load\n", path);
		free(data);
		free(path);
		skip();
	}
	print_message("loading %s (%zu bytes)\n", path, len);
	in = input_for(data, len);
	rc = boot_load(mem, &in, &entry, &why);
	if (rc == -ENOEXEC && why && strstr(why, "PVH")) {
		print_message("%s has no PVH entry: skipping\n", path);
		free(data);
		free(path);
		skip();
	}
	if (rc != 0)
		fail_msg("%s: %s (%d)", path, why ? why : "no reason", rc);
	assert_int_equal(entry.mode, BOOT_MODE_PVH32);
	assert_true(entry.rip >= LAYOUT_HIGH_MEM && entry.rip < GUEST_RAM);
	info = start_info(mem);
	assert_int_equal(info->magic, HVM_START_MAGIC);
	assert_int_equal(info->version, 1);
	assert_int_equal(info->memmap_entries, 3);
	/* The first PT_LOAD segment's bytes are where its p_paddr says. */
	eh = (const Elf64_Ehdr *)data;
	ph = (const Elf64_Phdr *)(data + eh->e_phoff);
	for (int i = 0; i < eh->e_phnum; i++) {
		if (ph[i].p_type != PT_LOAD)
			continue;
		assert_memory_equal(gptr(mem, ph[i].p_paddr, ph[i].p_filesz), data + ph[i].p_offset,
				    ph[i].p_filesz);
		break;
	}
	free(data);
	free(path);
}

int main(void)
{
#define RAM_TEST(t) cmocka_unit_test_setup_teardown(t, ram_setup, ram_teardown)
	const struct CMUnitTest tests[] = {
		RAM_TEST(test_bzimage_loads_kernel_at_1m_and_enters_at_0x200),
		RAM_TEST(test_bzimage_zero_page_is_header_plus_loader_fields),
		RAM_TEST(test_bzimage_writes_command_line),
		RAM_TEST(test_bzimage_command_line_limit_is_cmdline_size),
		RAM_TEST(test_bzimage_places_initramfs_at_top_of_ram_above_kernel),
		RAM_TEST(test_bzimage_keeps_initramfs_below_initrd_addr_max),
		cmocka_unit_test(test_bzimage_initramfs_on_5g_guest_stays_below_2g),
		RAM_TEST(test_bzimage_rejects_initramfs_too_large_for_memory),
		RAM_TEST(test_bzimage_rejects_initramfs_overlapping_init_size),
		cmocka_unit_test(test_bzimage_initramfs_clear_of_decompression_buffer),
		RAM_TEST(test_bzimage_zero_setup_sects_means_four),
		RAM_TEST(test_bzimage_honours_larger_setup_sects),
		RAM_TEST(test_bzimage_copies_only_the_header_the_kernel_declares),
		RAM_TEST(test_boot_rejects_file_too_short_to_be_a_kernel),
		RAM_TEST(test_boot_rejects_wrong_magic),
		RAM_TEST(test_bzimage_rejects_bad_boot_flag),
		RAM_TEST(test_bzimage_rejects_file_ending_inside_setup_sectors),
		RAM_TEST(test_bzimage_rejects_truncated_header_without_reading_past_file),
		RAM_TEST(test_bzimage_rejects_protocol_older_than_2_12),
		RAM_TEST(test_bzimage_rejects_kernel_without_64bit_entry),
		cmocka_unit_test(test_bzimage_rejects_kernel_larger_than_memory),
		RAM_TEST(test_pvh_loads_segments_at_physical_addresses),
		RAM_TEST(test_pvh_enters_at_note_entry_in_32bit_mode),
		RAM_TEST(test_pvh_start_info_describes_memory_cmdline_and_rsdp),
		RAM_TEST(test_pvh_start_info_lists_initramfs_module),
		RAM_TEST(test_pvh_rejects_elf_without_pvh_note),
		RAM_TEST(test_pvh_rejects_program_headers_past_end_of_file),
		RAM_TEST(test_pvh_rejects_elf_header_cut_short),
		RAM_TEST(test_pvh_rejects_segment_outside_guest_ram),
		RAM_TEST(test_pvh_rejects_malformed_segments),
		RAM_TEST(test_pvh_rejects_elf_that_is_not_x86_64),
		RAM_TEST(test_pvh_survives_malformed_notes),
		RAM_TEST(test_pvh_rejects_initramfs_too_large),
		RAM_TEST(test_pvh_rejects_command_line_too_long),
		RAM_TEST(test_boot_cpu_tables_write_gdt_and_empty_idt),
		RAM_TEST(test_boot_cpu_tss_descriptor_is_not_overwritten_by_idt),
		RAM_TEST(test_boot_cpu_page_tables_identity_map_4g_in_2m_pages),
		cmocka_unit_test(test_boot_cpu_tables_fail_without_low_ram),
		RAM_TEST(test_boot_cpu_registers_64bit_long_mode),
		RAM_TEST(test_boot_cpu_registers_pvh_32bit_protected_mode),
		RAM_TEST(test_boot_loads_real_kernel_from_host),
		RAM_TEST(test_boot_loads_real_vmlinux_through_pvh),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
