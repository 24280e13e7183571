/*
 * The boot vCPU's starting state: a GDT with the selectors both entry
 * paths expect (boot.rst: __BOOT_CS 0x10, __BOOT_DS 0x18), an identity map
 * of the first 4 GiB in 2 MiB pages for the 64-bit entry, and registers.
 */
#include <errno.h>
#include <linux/kvm.h>
#include <string.h>

#include "vmm/guest_mem.h"
#include "x86/boot.h"
#include "x86/layout.h"

#define GDT_SEL_CODE32 0x08
#define GDT_SEL_CODE64 0x10
#define GDT_SEL_DATA 0x18
#define GDT_SEL_TSS 0x20

/* Flat descriptors (Intel SDM vol. 3A 3.4.5): base 0, limit 4 GiB, 4 KiB granular. */
static const uint64_t boot_gdt[] = {
	0,
	0x00cf9b000000ffffULL, /* 32-bit code, execute/read, accessed */
	0x00af9b000000ffffULL, /* 64-bit code (L=1) */
	0x00cf93000000ffffULL, /* data, read/write, accessed */
	0x00008b0000000067ULL, /* 32-bit TSS, busy: VM entry needs a usable TR */
};

#define PTE_PRESENT (1ULL << 0)
#define PTE_WRITE (1ULL << 1)
#define PTE_LARGE (1ULL << 7)
#define PAGE_SIZE 4096ULL
#define ENTRIES_PER_TABLE 512
#define IDENTITY_MAP_GIB 4
#define TWO_MIB (2ULL << 20)

#define CR0_PE (1ULL << 0)
#define CR0_ET (1ULL << 4)
#define CR0_PG (1ULL << 31)
#define CR4_PAE (1ULL << 5)
#define EFER_LME (1ULL << 8)
#define EFER_LMA (1ULL << 10)
#define RFLAGS_RESERVED (1ULL << 1)
#define BOOT_STACK 0x8ff0ULL

static int write_page_tables(struct guest_mem *mem)
{
	uint64_t *pml4 = guest_mem_ptr(mem, LAYOUT_PML4, PAGE_SIZE);
	uint64_t *pdpt = guest_mem_ptr(mem, LAYOUT_PDPT, PAGE_SIZE);
	uint64_t *pd = guest_mem_ptr(mem, LAYOUT_PD, IDENTITY_MAP_GIB * PAGE_SIZE);

	if (!pml4 || !pdpt || !pd)
		return -ENOMEM;
	memset(pml4, 0, PAGE_SIZE);
	memset(pdpt, 0, PAGE_SIZE);
	pml4[0] = LAYOUT_PDPT | PTE_PRESENT | PTE_WRITE;
	for (int gib = 0; gib < IDENTITY_MAP_GIB; gib++)
		pdpt[gib] = (LAYOUT_PD + gib * PAGE_SIZE) | PTE_PRESENT | PTE_WRITE;
	for (int i = 0; i < IDENTITY_MAP_GIB * ENTRIES_PER_TABLE; i++)
		pd[i] = (uint64_t)i * TWO_MIB | PTE_PRESENT | PTE_WRITE | PTE_LARGE;
	return 0;
}

/*
 * What a guest finds at the real-mode reset vector (F000:FFF0) instead of a
 * BIOS. Linux on a hardware-reduced ACPI machine reboots through "EFI",
 * then by jumping there (arch/x86/kernel/reboot.c, BOOT_BIOS): without this
 * it would run zeroes forever. The stub pulses the i8042 reset line.
 */
static const uint8_t reset_vector_stub[] = {
	0xb0, 0xfe,	  /* mov al, 0xfe: the i8042 "pulse reset" command */
	0xe6, 0x64,	  /* out 0x64, al */
	0xf4,		  /* hlt */
	0xeb, 0xfd,	  /* jmp back to the hlt */
};

int boot_setup_cpu_tables(struct guest_mem *mem)
{
	uint64_t empty_idt = 0;

	if (guest_mem_write(mem, LAYOUT_BOOT_GDT, boot_gdt, sizeof(boot_gdt)) < 0 ||
	    guest_mem_write(mem, LAYOUT_BOOT_IDT, &empty_idt, sizeof(empty_idt)) < 0 ||
	    guest_mem_write(mem, LAYOUT_RESET_VECTOR, reset_vector_stub,
			    sizeof(reset_vector_stub)) < 0)
		return -ENOMEM;
	return write_page_tables(mem);
}

static struct kvm_segment flat_segment(uint16_t selector, uint8_t type, int code64)
{
	return (struct kvm_segment){
		.base = 0,
		.limit = 0xffffffff,
		.selector = selector,
		.type = type,
		.present = 1,
		.s = 1,
		.l = code64,
		.db = !code64,
		.g = 1,
	};
}

static void set_segments(struct kvm_sregs *sregs, uint16_t code_selector, int code64)
{
	struct kvm_segment data = flat_segment(GDT_SEL_DATA, 0x3, 0);

	sregs->cs = flat_segment(code_selector, 0xb, code64);
	sregs->ds = sregs->es = sregs->fs = sregs->gs = sregs->ss = data;
	sregs->tr = (struct kvm_segment){
		.selector = GDT_SEL_TSS, .limit = 0x67, .type = 0xb, .present = 1,
	};
	sregs->gdt.base = LAYOUT_BOOT_GDT;
	sregs->gdt.limit = sizeof(boot_gdt) - 1;
	sregs->idt.base = LAYOUT_BOOT_IDT;
	sregs->idt.limit = 7;
}

void boot_cpu_registers(const struct boot_entry *entry, struct kvm_regs *regs,
			struct kvm_sregs *sregs)
{
	memset(regs, 0, sizeof(*regs));
	regs->rip = entry->rip;
	regs->rflags = RFLAGS_RESERVED;
	regs->rsp = regs->rbp = BOOT_STACK;

	if (entry->mode == BOOT_MODE_LINUX64) {
		regs->rsi = entry->params_gpa;
		set_segments(sregs, GDT_SEL_CODE64, 1);
		sregs->cr3 = LAYOUT_PML4;
		sregs->cr4 |= CR4_PAE;
		sregs->cr0 |= CR0_PE | CR0_PG | CR0_ET;
		sregs->efer |= EFER_LME | EFER_LMA;
	} else {
		/* PVH: 32-bit protected mode, paging off (start_info.h "x86/HVM ABI"). */
		regs->rbx = entry->params_gpa;
		set_segments(sregs, GDT_SEL_CODE32, 0);
		sregs->cr0 = (sregs->cr0 | CR0_PE | CR0_ET) & ~CR0_PG;
		sregs->cr4 &= ~CR4_PAE;
		sregs->efer &= ~(EFER_LME | EFER_LMA);
	}
}
