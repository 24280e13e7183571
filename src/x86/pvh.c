/*
 * The PVH boot path for an uncompressed ELF vmlinux: load its PT_LOAD
 * segments at their physical addresses, find the entry point in the
 * XEN_ELFNOTE_PHYS32_ENTRY note, and describe memory, command line,
 * initramfs and ACPI in an hvm_start_info (Xen's public
 * arch-x86/hvm/start_info.h, version 1), entered in 32-bit protected mode.
 */
#include <elf.h>
#include <errno.h>
#include <string.h>

#include "vmm/guest_mem.h"
#include "x86/boot.h"
#include "x86/e820.h"
#include "x86/layout.h"

#define XEN_ELFNOTE_PHYS32_ENTRY 18
#define HVM_START_MAGIC 0x336ec578
#define PVH_MAX_MEMMAP 16
#define ELF_NOTE_ALIGN 4

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

/* The start info page holds the header, one module and the memory map. */
struct pvh_start_page {
	struct hvm_start_info info;
	struct hvm_modlist_entry module;
	struct hvm_memmap_table_entry memmap[PVH_MAX_MEMMAP];
};

/* Pointer to [off, off + len) of the file, or NULL when it runs past the end. */
static const void *file_range(const struct boot_input *in, uint64_t off, uint64_t len)
{
	if (off > in->kernel_len || len > in->kernel_len - off)
		return NULL;
	return in->kernel + off;
}

static size_t note_align(size_t n)
{
	return (n + ELF_NOTE_ALIGN - 1) & ~(size_t)(ELF_NOTE_ALIGN - 1);
}

/* Searches one PT_NOTE segment for the PVH entry; 0 when absent. */
static uint64_t find_pvh_note(const uint8_t *notes, size_t len)
{
	size_t off = 0;

	while (len - off >= sizeof(Elf64_Nhdr)) {
		const Elf64_Nhdr *nh = (const void *)(notes + off);
		size_t name_off = off + sizeof(*nh);
		size_t desc_off, next;

		if (nh->n_namesz > len || nh->n_descsz > len)
			return 0;
		desc_off = name_off + note_align(nh->n_namesz);
		next = desc_off + note_align(nh->n_descsz);
		if (next > len)
			return 0;
		if (nh->n_type == XEN_ELFNOTE_PHYS32_ENTRY && nh->n_namesz == 4 &&
		    memcmp(notes + name_off, "Xen", 4) == 0 && nh->n_descsz >= 4) {
			uint32_t entry;

			memcpy(&entry, notes + desc_off, sizeof(entry));
			return entry;
		}
		off = next;
	}
	return 0;
}

static int load_segment(struct guest_mem *mem, const struct boot_input *in,
			const Elf64_Phdr *ph, uint64_t *entry, uint64_t *kernel_end)
{
	const void *src = file_range(in, ph->p_offset, ph->p_filesz);
	uint8_t *dst;

	if (!src)
		return -ENOEXEC;
	if (ph->p_type == PT_NOTE) {
		if (!*entry)
			*entry = find_pvh_note(src, ph->p_filesz);
		return 0;
	}
	if (ph->p_type != PT_LOAD)
		return 0;
	if (ph->p_filesz > ph->p_memsz)
		return -ENOEXEC;
	dst = guest_mem_ptr(mem, ph->p_paddr, ph->p_memsz);
	if (!dst)
		return -ENOMEM;
	memcpy(dst, src, ph->p_filesz);
	memset(dst + ph->p_filesz, 0, ph->p_memsz - ph->p_filesz);
	if (ph->p_paddr + ph->p_memsz > *kernel_end)
		*kernel_end = ph->p_paddr + ph->p_memsz;
	return 0;
}

static int load_elf(struct guest_mem *mem, const struct boot_input *in, uint64_t *entry,
		    uint64_t *kernel_end, const char **why)
{
	const Elf64_Ehdr *eh = file_range(in, 0, sizeof(Elf64_Ehdr));
	const Elf64_Phdr *phdrs;

	if (!eh || eh->e_ident[EI_CLASS] != ELFCLASS64 || eh->e_machine != EM_X86_64 ||
	    eh->e_phentsize != sizeof(Elf64_Phdr)) {
		*why = "the ELF kernel is not a 64-bit x86 vmlinux";
		return -ENOEXEC;
	}
	phdrs = file_range(in, eh->e_phoff, (uint64_t)eh->e_phnum * sizeof(Elf64_Phdr));
	if (!phdrs) {
		*why = "the ELF kernel is truncated (program headers past the end of the file)";
		return -ENOEXEC;
	}
	for (int i = 0; i < eh->e_phnum; i++) {
		int err = load_segment(mem, in, &phdrs[i], entry, kernel_end);

		if (err) {
			*why = err == -ENOMEM ? "the ELF kernel does not fit in guest memory"
					      : "the ELF kernel has a malformed segment";
			return err;
		}
	}
	if (!*entry) {
		*why = "the ELF kernel has no PVH entry point (XEN_ELFNOTE_PHYS32_ENTRY); "
		       "boot its bzImage instead";
		return -ENOEXEC;
	}
	return 0;
}

static int fill_memmap(struct guest_mem *mem, struct pvh_start_page *page)
{
	struct e820_range ranges[PVH_MAX_MEMMAP];
	int n = e820_build(mem, ranges, PVH_MAX_MEMMAP);

	if (n < 0)
		return n;
	for (int i = 0; i < n; i++) {
		page->memmap[i].addr = ranges[i].addr;
		page->memmap[i].size = ranges[i].size;
		page->memmap[i].type = ranges[i].type;
	}
	page->info.memmap_entries = (uint32_t)n;
	page->info.memmap_paddr = LAYOUT_PVH_START_INFO + offsetof(struct pvh_start_page, memmap);
	return 0;
}

int boot_load_pvh(struct guest_mem *mem, const struct boot_input *in, struct boot_entry *entry,
		  const char **why)
{
	struct pvh_start_page page;
	uint64_t entry_point = 0, kernel_end = 0;
	int err;

	err = load_elf(mem, in, &entry_point, &kernel_end, why);
	if (err)
		return err;
	memset(&page, 0, sizeof(page));
	page.info.magic = HVM_START_MAGIC;
	page.info.version = 1;
	page.info.rsdp_paddr = in->rsdp_gpa;
	page.info.cmdline_paddr = LAYOUT_CMDLINE;
	if (boot_write_cmdline(mem, in->cmdline, LAYOUT_CMDLINE_MAX - 1) < 0) {
		*why = "the kernel command line is too long";
		return -E2BIG;
	}
	if (in->initrd) {
		page.module.paddr = boot_place_initrd(mem, in, kernel_end, LAYOUT_HOLE_START);
		if (!page.module.paddr) {
			*why = "the initramfs does not fit in guest memory beside the kernel "
			       "(give the guest more --memory)";
			return -ENOMEM;
		}
		page.module.size = in->initrd_len;
		page.info.nr_modules = 1;
		page.info.modlist_paddr =
			LAYOUT_PVH_START_INFO + offsetof(struct pvh_start_page, module);
	}
	if (fill_memmap(mem, &page) < 0 ||
	    guest_mem_write(mem, LAYOUT_PVH_START_INFO, &page, sizeof(page)) < 0) {
		*why = "the PVH start info does not fit";
		return -ENOMEM;
	}
	entry->mode = BOOT_MODE_PVH32;
	entry->rip = entry_point;
	entry->params_gpa = LAYOUT_PVH_START_INFO;
	return 0;
}
