/*
 * The x86-64 board's guest physical memory map and fixed port numbers.
 *
 * Low memory holds what Vireo builds for the boot: GDT, zero page, page
 * tables, command line. ACPI tables sit in the e820-reserved area below
 * 1 MiB, where the kernel's randomized decompression never lands.
 * Between 3 GiB and 4 GiB is the hole for device windows, IOAPIC and LAPIC;
 * RAM beyond 3 GiB continues at 4 GiB.
 */
#ifndef VIREO_X86_LAYOUT_H
#define VIREO_X86_LAYOUT_H

#define LAYOUT_BOOT_GDT 0x500ULL
#define LAYOUT_BOOT_IDT 0x540ULL /* after the five GDT entries */
#define LAYOUT_PVH_START_INFO 0x6000ULL
#define LAYOUT_ZERO_PAGE 0x7000ULL
#define LAYOUT_PML4 0x9000ULL
#define LAYOUT_PDPT 0xa000ULL
#define LAYOUT_PD 0xb000ULL /* four pages: identity map of the first 4 GiB */
#define LAYOUT_CMDLINE 0x20000ULL
#define LAYOUT_CMDLINE_MAX 0x10000ULL
#define LAYOUT_LOW_RAM_END 0x9fc00ULL /* usable RAM below here; reserved up to 1 MiB */
#define LAYOUT_ACPI_TABLES 0xe0000ULL /* RSDP first, then the other tables */
#define LAYOUT_ACPI_TABLES_SIZE 0x10000ULL
#define LAYOUT_RESET_VECTOR 0xffff0ULL /* F000:FFF0, in the reserved BIOS area */
#define LAYOUT_HIGH_MEM 0x100000ULL /* 1 MiB: where the kernel is loaded */

#define LAYOUT_HOLE_START 0xc0000000ULL /* 3 GiB */
#define LAYOUT_HOLE_END 0x100000000ULL	/* 4 GiB */
#define LAYOUT_VIRTIO_MMIO_BASE 0xd0000000ULL
#define LAYOUT_VIRTIO_MMIO_SIZE 0x1000ULL /* one window per device */
#define LAYOUT_IOAPIC 0xfec00000ULL
#define LAYOUT_LAPIC 0xfee00000ULL

/* KVM needs three pages for the TSS and one for the identity map, in the hole. */
#define LAYOUT_KVM_IDENTITY_MAP 0xfeffc000ULL
#define LAYOUT_KVM_TSS 0xfeffd000ULL

/* Hardware-reduced ACPI registers (FADT), emulated in src/devices/acpi_pm.c. */
#define LAYOUT_ACPI_SLEEP_CONTROL_PORT 0x600
#define LAYOUT_ACPI_SLEEP_STATUS_PORT 0x601
#define LAYOUT_ACPI_RESET_PORT 0x602
#define LAYOUT_ACPI_RESET_VALUE 0x1
#define LAYOUT_ACPI_S5_TYPE 5 /* SLP_TYP for soft-off, also in the DSDT's \_S5 */

#define LAYOUT_COM1_PORT 0x3f8
#define LAYOUT_COM1_IRQ 4
#define LAYOUT_I8042_PORT 0x60 /* 0x60 data, 0x64 command/status */

/* Virtio-mmio devices get IRQs from here up (ISA lines stay for legacy devices). */
#define LAYOUT_VIRTIO_IRQ_BASE 5
#define LAYOUT_IOAPIC_PINS 24

#endif
