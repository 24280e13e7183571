/*
 * Loading a Linux kernel into guest memory: a bzImage through the x86 64-bit
 * boot protocol (Documentation/arch/x86/boot.rst), or an uncompressed ELF
 * vmlinux through its PVH entry point. Both leave a struct boot_entry that
 * says how the boot vCPU must start.
 */
#ifndef VIREO_X86_BOOT_H
#define VIREO_X86_BOOT_H

#include <stddef.h>
#include <stdint.h>

struct guest_mem;
struct kvm_regs;
struct kvm_sregs;

struct boot_input {
	const uint8_t *kernel;
	size_t kernel_len;
	const uint8_t *initrd; /* NULL when there is none */
	size_t initrd_len;
	const char *cmdline;
	uint64_t rsdp_gpa; /* ACPI root pointer, handed to the kernel */
};

enum boot_mode {
	BOOT_MODE_LINUX64, /* 64-bit long mode, rsi = zero page */
	BOOT_MODE_PVH32,   /* 32-bit protected mode, paging off, ebx = start info */
};

struct boot_entry {
	enum boot_mode mode;
	uint64_t rip;
	uint64_t params_gpa;
};

/*
 * Detects the kernel's format and loads kernel, initramfs, command line and
 * boot parameters. On failure returns -errno and sets *why to a sentence
 * naming what is wrong with the input.
 */
int boot_load(struct guest_mem *mem, const struct boot_input *in, struct boot_entry *entry,
	      const char **why);

int boot_load_bzimage(struct guest_mem *mem, const struct boot_input *in,
		      struct boot_entry *entry, const char **why);
int boot_load_pvh(struct guest_mem *mem, const struct boot_input *in, struct boot_entry *entry,
		  const char **why);

/*
 * Places the initramfs at the highest page-aligned address below limit and
 * above kernel_end. Returns its address, or 0 if it does not fit.
 */
uint64_t boot_place_initrd(struct guest_mem *mem, const struct boot_input *in,
			   uint64_t kernel_end, uint64_t limit);

/* Writes the command line at LAYOUT_CMDLINE; -E2BIG past max_len bytes. */
int boot_write_cmdline(struct guest_mem *mem, const char *cmdline, size_t max_len);

/* GDT, identity page tables and the boot vCPU's registers for the entry. */
int boot_setup_cpu_tables(struct guest_mem *mem);
void boot_cpu_registers(const struct boot_entry *entry, struct kvm_regs *regs,
			struct kvm_sregs *sregs);

#endif
