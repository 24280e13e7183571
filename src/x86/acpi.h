/*
 * The ACPI tables a Linux guest reads at boot: RSDP -> XSDT -> FADT -> DSDT,
 * and the MADT. They describe a hardware-reduced ACPI machine (no PM timer,
 * no GPEs, no SCI): CPUs and the IOAPIC in the MADT, power-off and reset
 * through the registers src/devices/acpi_pm.c emulates, COM1 and the
 * virtio-mmio devices as DSDT devices, which is how a distribution kernel
 * without CONFIG_VIRTIO_MMIO_CMDLINE_DEVICES finds them.
 */
#ifndef VIREO_X86_ACPI_H
#define VIREO_X86_ACPI_H

#include <stddef.h>
#include <stdint.h>

#define ACPI_MAX_CPUS 255 /* xAPIC ids, one byte in the MADT */
#define ACPI_MAX_VIRTIO 4096 /* DSDT device names V000..VFFF */

struct acpi_virtio_mmio {
	uint64_t base; /* the window must lie below 4 GiB (Memory32Fixed) */
	uint32_t size;
	uint32_t irq; /* a GSI of the IOAPIC, declared level-triggered, active high */
};

struct acpi_config {
	int nr_cpus; /* 1..255: one LAPIC entry each, APIC ids 0..n-1 */
	const struct acpi_virtio_mmio *virtio; /* devices described in the DSDT (may be NULL) */
	int nr_virtio;
};

/*
 * Builds RSDP, XSDT, FADT, DSDT, MADT into buf, which the guest sees at
 * tables_gpa (16-byte aligned, so the kernel's scan of 0xe0000-0xfffff finds
 * the RSDP too). RSDP is at offset 0 (so the RSDP's address is tables_gpa).
 * Returns bytes used, -ENOSPC if buf_len is too small (buf is then left
 * untouched), -EINVAL for a bad config, -ENOMEM.
 */
int acpi_build(const struct acpi_config *cfg, uint64_t tables_gpa, uint8_t *buf, size_t buf_len);

#endif
