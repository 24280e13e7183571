/*
 * The ACPI tables: see acpi.h. Table layouts follow ACPI 6.3 chapter 5;
 * the DSDT is written with the AML builder (aml.h).
 *
 * In the caller's buffer: RSDP at offset 0, then XSDT, FADT, DSDT and MADT,
 * each 16-byte aligned. There is no RSDT (the RSDP's RsdtAddress is 0: a
 * revision 2 RSDP is read through its XSDT) and no FACS (optional on a
 * hardware-reduced machine, §5.2.9).
 *
 * Table structures are packed and written in host byte order: Vireo runs
 * only on x86-64 hosts, little-endian like ACPI.
 */
#include "x86/acpi.h"

#include <errno.h>
#include <stdbool.h>
#include <string.h>

#include "x86/aml.h"
#include "x86/layout.h"

#define ACPI_PACKED __attribute__((packed))

#define ACPI_TABLE_ALIGN 16 /* also where the kernel's RSDP scan looks (§5.2.5.1) */
#define ACPI_OEM_ID "VIREO "
#define ACPI_OEM_TABLE_PREFIX "VIREO" /* then three letters of the signature */
#define ACPI_OEM_REVISION 1
#define ACPI_CREATOR_ID "VIRO"
#define ACPI_CREATOR_REVISION 1
#define ACPI_HYPERVISOR_VENDOR "VIREOVMM"

/* Revisions of ACPI 6.3. */
#define ACPI_RSDP_REVISION 2
#define ACPI_XSDT_REVISION 1
#define ACPI_FADT_REVISION 6
#define ACPI_FADT_MINOR_REVISION 3
#define ACPI_DSDT_REVISION 2 /* 2 and up: AML integers are 64 bits (§5.2.11.1) */
#define ACPI_MADT_REVISION 5

/* §5.2.3.2 Generic Address Structure. */
struct acpi_gas {
	uint8_t space_id;
	uint8_t bit_width;
	uint8_t bit_offset;
	uint8_t access_size;
	uint64_t address;
} ACPI_PACKED;

#define ACPI_GAS_SYSTEM_IO 1
#define ACPI_GAS_ACCESS_BYTE 1
#define ACPI_GAS_BYTE_BITS 8

/* §5.2.5.3 Root System Description Pointer. */
struct acpi_rsdp {
	char signature[8];
	uint8_t checksum; /* of the first 20 bytes, the ACPI 1.0 structure */
	char oem_id[6];
	uint8_t revision;
	uint32_t rsdt_address;
	uint32_t length;
	uint64_t xsdt_address;
	uint8_t extended_checksum; /* of the whole structure */
	uint8_t reserved[3];
} ACPI_PACKED;

#define ACPI_RSDP_V1_LEN 20

/* §5.2.6 System Description Table Header. */
struct acpi_header {
	char signature[4];
	uint32_t length;
	uint8_t revision;
	uint8_t checksum;
	char oem_id[6];
	char oem_table_id[8];
	uint32_t oem_revision;
	char creator_id[4];
	uint32_t creator_revision;
} ACPI_PACKED;

/* §5.2.9 Fixed ACPI Description Table; a hardware-reduced one leaves the PM blocks 0. */
struct acpi_fadt {
	struct acpi_header header;
	uint32_t firmware_ctrl;
	uint32_t dsdt;
	uint8_t reserved0;
	uint8_t preferred_pm_profile;
	uint16_t sci_int;
	uint32_t smi_cmd;
	uint8_t acpi_enable;
	uint8_t acpi_disable;
	uint8_t s4bios_req;
	uint8_t pstate_cnt;
	uint32_t pm1a_evt_blk;
	uint32_t pm1b_evt_blk;
	uint32_t pm1a_cnt_blk;
	uint32_t pm1b_cnt_blk;
	uint32_t pm2_cnt_blk;
	uint32_t pm_tmr_blk;
	uint32_t gpe0_blk;
	uint32_t gpe1_blk;
	uint8_t pm1_evt_len;
	uint8_t pm1_cnt_len;
	uint8_t pm2_cnt_len;
	uint8_t pm_tmr_len;
	uint8_t gpe0_blk_len;
	uint8_t gpe1_blk_len;
	uint8_t gpe1_base;
	uint8_t cst_cnt;
	uint16_t p_lvl2_lat;
	uint16_t p_lvl3_lat;
	uint16_t flush_size;
	uint16_t flush_stride;
	uint8_t duty_offset;
	uint8_t duty_width;
	uint8_t day_alrm;
	uint8_t mon_alrm;
	uint8_t century;
	uint16_t iapc_boot_arch;
	uint8_t reserved1;
	uint32_t flags;
	struct acpi_gas reset_reg;
	uint8_t reset_value;
	uint16_t arm_boot_arch;
	uint8_t minor_version;
	uint64_t x_firmware_ctrl;
	uint64_t x_dsdt;
	struct acpi_gas x_pm1a_evt_blk;
	struct acpi_gas x_pm1b_evt_blk;
	struct acpi_gas x_pm1a_cnt_blk;
	struct acpi_gas x_pm1b_cnt_blk;
	struct acpi_gas x_pm2_cnt_blk;
	struct acpi_gas x_pm_tmr_blk;
	struct acpi_gas x_gpe0_blk;
	struct acpi_gas x_gpe1_blk;
	struct acpi_gas sleep_control_reg;
	struct acpi_gas sleep_status_reg;
	char hypervisor_vendor_id[8];
} ACPI_PACKED;

_Static_assert(offsetof(struct acpi_fadt, flags) == 112, "FADT flags offset");
_Static_assert(offsetof(struct acpi_fadt, x_dsdt) == 140, "FADT X_DSDT offset");
_Static_assert(offsetof(struct acpi_fadt, sleep_control_reg) == 244, "FADT sleep control offset");
_Static_assert(sizeof(struct acpi_fadt) == 276, "FADT length of ACPI 6.0 and later");

/* §5.2.9 Table 5-10, FADT fixed feature flags. */
#define ACPI_FADT_RESET_REG_SUP (1u << 10)
#define ACPI_FADT_HW_REDUCED_ACPI (1u << 20)

/*
 * §5.2.9.3 IA-PC boot architecture flags. No "8042" flag: the i8042 is only
 * a reset line, and without the flag Linux skips probing for a keyboard.
 * The board has no VGA and no CMOS RTC (kvmclock gives the wall time).
 */
#define ACPI_IAPC_VGA_NOT_PRESENT (1u << 2)
#define ACPI_IAPC_CMOS_RTC_NOT_PRESENT (1u << 5)

/* §5.2.12 Multiple APIC Description Table. */
struct acpi_madt {
	struct acpi_header header;
	uint32_t lapic_address;
	uint32_t flags;
} ACPI_PACKED;

#define ACPI_MADT_PCAT_COMPAT (1u << 0) /* dual 8259s too (KVM's in-kernel PIC) */

enum acpi_madt_type {
	ACPI_MADT_LAPIC = 0,
	ACPI_MADT_IOAPIC = 1,
	ACPI_MADT_INTERRUPT_OVERRIDE = 2,
	ACPI_MADT_LAPIC_NMI = 4,
};

/* §5.2.12.2 Processor Local APIC Structure. */
struct acpi_madt_lapic {
	uint8_t type;
	uint8_t length;
	uint8_t processor_uid;
	uint8_t apic_id;
	uint32_t flags;
} ACPI_PACKED;

#define ACPI_MADT_LAPIC_ENABLED (1u << 0)

/* §5.2.12.3 I/O APIC Structure. */
struct acpi_madt_ioapic {
	uint8_t type;
	uint8_t length;
	uint8_t ioapic_id;
	uint8_t reserved;
	uint32_t address;
	uint32_t gsi_base;
} ACPI_PACKED;

/*
 * KVM's in-kernel IOAPIC resets its ID register to 0; Linux keeps IOAPIC
 * ids apart from LAPIC ids, so 0 clashes with nothing.
 */
#define ACPI_IOAPIC_ID 0

/* §5.2.12.5 Interrupt Source Override Structure. */
struct acpi_madt_override {
	uint8_t type;
	uint8_t length;
	uint8_t bus;
	uint8_t source;
	uint32_t gsi;
	uint16_t flags;
} ACPI_PACKED;

#define ACPI_MADT_BUS_ISA 0
#define ACPI_ISA_TIMER_IRQ 0
#define ACPI_TIMER_GSI 2 /* the PIT is wired to IOAPIC pin 2 on every PC */

/* §5.2.12.7 Local APIC NMI Structure. */
struct acpi_madt_lapic_nmi {
	uint8_t type;
	uint8_t length;
	uint8_t processor_uid;
	uint16_t flags;
	uint8_t lint;
} ACPI_PACKED;

#define ACPI_ALL_PROCESSORS 0xff
#define ACPI_NMI_LINT 1 /* LINT1 carries NMI, as on every PC */

/* §5.2.12.5 Table 5-50, MPS INTI flags: polarity in bits 0-1, trigger mode in bits 2-3. */
#define ACPI_MPS_ACTIVE_HIGH 0x1
#define ACPI_MPS_EDGE (0x1 << 2)

/* §6.3.7 _STA: present, enabled, shown in the UI, functioning. */
#define ACPI_STA_ALL 0x0f

#define ACPI_COM1_PORTS 8
#define ACPI_COM1_ALIGN 1
#define ACPI_VIRTIO_HID "LNRO0005" /* the id Linux's virtio_mmio driver matches */
#define ACPI_COM1_HID "PNP0501"	   /* 16550A-compatible serial port */
#define ACPI_MEM32_LIMIT 0x100000000ULL /* Memory32Fixed reaches 4 GiB */

/* Offsets of each table in the caller's buffer. */
struct acpi_layout {
	size_t xsdt;
	size_t fadt;
	size_t dsdt;
	size_t madt;
	size_t end;
};

enum { ACPI_XSDT_ENTRIES = 2 }; /* FADT, MADT: the DSDT hangs off the FADT */

static size_t align_up(size_t value, size_t align)
{
	return (value + align - 1) / align * align;
}

static uint8_t acpi_checksum(const uint8_t *bytes, size_t len)
{
	uint8_t sum = 0;

	for (size_t i = 0; i < len; i++)
		sum += bytes[i];
	return (uint8_t)-sum;
}

/* Sets the header's checksum so that the table's bytes sum to 0 (§5.2.6). */
static void acpi_table_checksum(uint8_t *table, size_t len)
{
	table[offsetof(struct acpi_header, checksum)] = 0;
	table[offsetof(struct acpi_header, checksum)] = acpi_checksum(table, len);
}

static void acpi_header_init(struct acpi_header *h, const char *signature, size_t len,
			     uint8_t revision)
{
	memset(h, 0, sizeof(*h));
	memcpy(h->signature, signature, sizeof(h->signature));
	h->length = (uint32_t)len;
	h->revision = revision;
	memcpy(h->oem_id, ACPI_OEM_ID, sizeof(h->oem_id));
	memcpy(h->oem_table_id, ACPI_OEM_TABLE_PREFIX, strlen(ACPI_OEM_TABLE_PREFIX));
	memcpy(h->oem_table_id + strlen(ACPI_OEM_TABLE_PREFIX), signature,
	       sizeof(h->oem_table_id) - strlen(ACPI_OEM_TABLE_PREFIX));
	h->oem_revision = ACPI_OEM_REVISION;
	memcpy(h->creator_id, ACPI_CREATOR_ID, sizeof(h->creator_id));
	h->creator_revision = ACPI_CREATOR_REVISION;
}

static struct acpi_gas acpi_io_register(uint16_t port)
{
	return (struct acpi_gas){
		.space_id = ACPI_GAS_SYSTEM_IO,
		.bit_width = ACPI_GAS_BYTE_BITS,
		.access_size = ACPI_GAS_ACCESS_BYTE,
		.address = port,
	};
}

static int acpi_check_virtio(const struct acpi_virtio_mmio *v)
{
	if (v->size == 0 || v->base >= ACPI_MEM32_LIMIT || v->size > ACPI_MEM32_LIMIT - v->base)
		return -EINVAL;
	if (v->irq >= LAYOUT_IOAPIC_PINS)
		return -EINVAL;
	return 0;
}

static int acpi_check_config(const struct acpi_config *cfg, uint64_t tables_gpa)
{
	if (!cfg || cfg->nr_cpus < 1 || cfg->nr_cpus > ACPI_MAX_CPUS)
		return -EINVAL;
	if (cfg->nr_virtio < 0 || cfg->nr_virtio > ACPI_MAX_VIRTIO)
		return -EINVAL;
	if (cfg->nr_virtio > 0 && !cfg->virtio)
		return -EINVAL;
	if (tables_gpa % ACPI_TABLE_ALIGN)
		return -EINVAL;
	for (int i = 0; i < cfg->nr_virtio; i++)
		if (acpi_check_virtio(&cfg->virtio[i]))
			return -EINVAL;
	return 0;
}

/* \_S5: SLP_TYPa and SLP_TYPb for soft-off (§7.4.2). Only SLP_TYPa is used without PM1b. */
static void dsdt_add_s5(struct aml *aml)
{
	struct aml_block pkg;

	aml_name(aml, "\\_S5");
	pkg = aml_package(aml, 2);
	aml_integer(aml, LAYOUT_ACPI_S5_TYPE);
	aml_integer(aml, 0);
	aml_end(aml, pkg);
}

/*
 * COM1. On a hardware-reduced machine Linux sets up no legacy ISA IRQs, so
 * the serial driver gets IRQ 4 mapped only through this device's _CRS.
 */
static void dsdt_add_com1(struct aml *aml)
{
	struct aml_block dev, sta, crs;

	dev = aml_device(aml, "COM1");
	aml_name_eisaid(aml, "_HID", ACPI_COM1_HID);
	aml_name_integer(aml, "_UID", 0);
	sta = aml_method(aml, "_STA", 0, false);
	aml_return_integer(aml, ACPI_STA_ALL);
	aml_end(aml, sta);
	aml_name(aml, "_CRS");
	crs = aml_resource_template(aml);
	aml_io(aml, LAYOUT_COM1_PORT, LAYOUT_COM1_PORT, ACPI_COM1_ALIGN, ACPI_COM1_PORTS);
	aml_interrupt(aml,
		      AML_IRQ_CONSUMER | AML_IRQ_EDGE | AML_IRQ_ACTIVE_HIGH | AML_IRQ_EXCLUSIVE,
		      LAYOUT_COM1_IRQ);
	aml_end(aml, crs);
	aml_end(aml, dev);
}

/* "V" and three hex digits: V000 to VFFF (ACPI_MAX_VIRTIO). */
static void virtio_device_name(char name[sizeof("V000")], int index)
{
	static const char hex[] = "0123456789ABCDEF";

	name[0] = 'V';
	for (int i = 1; i <= 3; i++)
		name[i] = hex[(index >> (4 * (3 - i))) & 0xf];
	name[4] = '\0';
}

/*
 * One virtio-mmio device. Edge-triggered, active high: Vireo injects each
 * virtio interrupt as one irqfd write, and the driver reads and acknowledges
 * InterruptStatus in its handler, so no level needs holding.
 */
static void dsdt_add_virtio(struct aml *aml, int index, const struct acpi_virtio_mmio *v)
{
	char name[sizeof("V000")];
	struct aml_block dev, crs;

	virtio_device_name(name, index);
	dev = aml_device(aml, name);
	aml_name_string(aml, "_HID", ACPI_VIRTIO_HID);
	aml_name_integer(aml, "_UID", (uint64_t)index);
	aml_name(aml, "_CRS");
	crs = aml_resource_template(aml);
	aml_memory32_fixed(aml, true, (uint32_t)v->base, v->size);
	aml_interrupt(aml,
		      AML_IRQ_CONSUMER | AML_IRQ_EDGE | AML_IRQ_ACTIVE_HIGH | AML_IRQ_EXCLUSIVE,
		      v->irq);
	aml_end(aml, crs);
	aml_end(aml, dev);
}

/* The DSDT's body (its AML, without the table header). */
static int dsdt_build(struct aml *aml, const struct acpi_config *cfg)
{
	struct aml_block sb;

	dsdt_add_s5(aml);
	sb = aml_scope(aml, "\\_SB");
	dsdt_add_com1(aml);
	for (int i = 0; i < cfg->nr_virtio; i++)
		dsdt_add_virtio(aml, i, &cfg->virtio[i]);
	aml_end(aml, sb);
	return aml_error(aml);
}

static size_t madt_size(const struct acpi_config *cfg)
{
	return sizeof(struct acpi_madt) + (size_t)cfg->nr_cpus * sizeof(struct acpi_madt_lapic) +
	       sizeof(struct acpi_madt_ioapic) + sizeof(struct acpi_madt_override) +
	       sizeof(struct acpi_madt_lapic_nmi);
}

static struct acpi_layout acpi_plan(const struct acpi_config *cfg, size_t dsdt_aml_len)
{
	struct acpi_layout l;

	l.xsdt = align_up(sizeof(struct acpi_rsdp), ACPI_TABLE_ALIGN);
	l.fadt = align_up(l.xsdt + sizeof(struct acpi_header) +
				  ACPI_XSDT_ENTRIES * sizeof(uint64_t),
			  ACPI_TABLE_ALIGN);
	l.dsdt = align_up(l.fadt + sizeof(struct acpi_fadt), ACPI_TABLE_ALIGN);
	l.madt = align_up(l.dsdt + sizeof(struct acpi_header) + dsdt_aml_len, ACPI_TABLE_ALIGN);
	l.end = l.madt + madt_size(cfg);
	return l;
}

static void write_rsdp(uint8_t *buf, uint64_t xsdt_gpa)
{
	struct acpi_rsdp rsdp = {
		.signature = { 'R', 'S', 'D', ' ', 'P', 'T', 'R', ' ' },
		.revision = ACPI_RSDP_REVISION,
		.length = sizeof(rsdp),
		.xsdt_address = xsdt_gpa,
	};

	memcpy(rsdp.oem_id, ACPI_OEM_ID, sizeof(rsdp.oem_id));
	rsdp.checksum = acpi_checksum((const uint8_t *)&rsdp, ACPI_RSDP_V1_LEN);
	rsdp.extended_checksum = acpi_checksum((const uint8_t *)&rsdp, sizeof(rsdp));
	memcpy(buf, &rsdp, sizeof(rsdp));
}

/* §5.2.8: the header, then 64-bit addresses of the other tables. */
static void write_xsdt(uint8_t *table, uint64_t fadt_gpa, uint64_t madt_gpa)
{
	const uint64_t entries[ACPI_XSDT_ENTRIES] = { fadt_gpa, madt_gpa };
	size_t len = sizeof(struct acpi_header) + sizeof(entries);
	struct acpi_header h;

	acpi_header_init(&h, "XSDT", len, ACPI_XSDT_REVISION);
	memcpy(table, &h, sizeof(h));
	memcpy(table + sizeof(h), entries, sizeof(entries));
	acpi_table_checksum(table, len);
}

/*
 * §5.2.9. Hardware-reduced (§4.1): no SCI, no PM1/PM2/GPE blocks, no FACS.
 * Soft-off writes SLP_TYP|SLP_EN to the sleep control register (§4.8.3.7),
 * reboot writes RESET_VALUE to the reset register (§4.8.3.6). The 32-bit
 * DSDT field must be 0 when X_DSDT is used.
 */
static void write_fadt(uint8_t *table, uint64_t dsdt_gpa)
{
	struct acpi_fadt fadt = {
		.flags = ACPI_FADT_HW_REDUCED_ACPI | ACPI_FADT_RESET_REG_SUP,
		.iapc_boot_arch = ACPI_IAPC_VGA_NOT_PRESENT | ACPI_IAPC_CMOS_RTC_NOT_PRESENT,
		.reset_reg = acpi_io_register(LAYOUT_ACPI_RESET_PORT),
		.reset_value = LAYOUT_ACPI_RESET_VALUE,
		.minor_version = ACPI_FADT_MINOR_REVISION,
		.x_dsdt = dsdt_gpa,
		.sleep_control_reg = acpi_io_register(LAYOUT_ACPI_SLEEP_CONTROL_PORT),
		.sleep_status_reg = acpi_io_register(LAYOUT_ACPI_SLEEP_STATUS_PORT),
	};

	acpi_header_init(&fadt.header, "FACP", sizeof(fadt), ACPI_FADT_REVISION);
	memcpy(fadt.hypervisor_vendor_id, ACPI_HYPERVISOR_VENDOR,
	       sizeof(fadt.hypervisor_vendor_id));
	memcpy(table, &fadt, sizeof(fadt));
	acpi_table_checksum(table, sizeof(fadt));
}

static void write_dsdt(uint8_t *table, const struct aml *aml)
{
	size_t len = sizeof(struct acpi_header) + aml->len;
	struct acpi_header h;

	acpi_header_init(&h, "DSDT", len, ACPI_DSDT_REVISION);
	memcpy(table, &h, sizeof(h));
	memcpy(table + sizeof(h), aml->buf, aml->len);
	acpi_table_checksum(table, len);
}

static uint8_t *put(uint8_t *p, const void *entry, size_t len)
{
	memcpy(p, entry, len);
	return p + len;
}

static uint8_t *madt_put_cpus(uint8_t *p, int nr_cpus)
{
	for (int i = 0; i < nr_cpus; i++) {
		struct acpi_madt_lapic lapic = {
			.type = ACPI_MADT_LAPIC,
			.length = sizeof(lapic),
			.processor_uid = (uint8_t)i,
			.apic_id = (uint8_t)i,
			.flags = ACPI_MADT_LAPIC_ENABLED,
		};

		p = put(p, &lapic, sizeof(lapic));
	}
	return p;
}

static uint8_t *madt_put_interrupts(uint8_t *p)
{
	struct acpi_madt_ioapic ioapic = {
		.type = ACPI_MADT_IOAPIC,
		.length = sizeof(ioapic),
		.ioapic_id = ACPI_IOAPIC_ID,
		.address = (uint32_t)LAYOUT_IOAPIC,
		.gsi_base = 0,
	};
	struct acpi_madt_override timer = {
		.type = ACPI_MADT_INTERRUPT_OVERRIDE,
		.length = sizeof(timer),
		.bus = ACPI_MADT_BUS_ISA,
		.source = ACPI_ISA_TIMER_IRQ,
		.gsi = ACPI_TIMER_GSI,
		.flags = ACPI_MPS_ACTIVE_HIGH | ACPI_MPS_EDGE,
	};
	struct acpi_madt_lapic_nmi nmi = {
		.type = ACPI_MADT_LAPIC_NMI,
		.length = sizeof(nmi),
		.processor_uid = ACPI_ALL_PROCESSORS,
		.flags = ACPI_MPS_ACTIVE_HIGH | ACPI_MPS_EDGE,
		.lint = ACPI_NMI_LINT,
	};

	p = put(p, &ioapic, sizeof(ioapic));
	p = put(p, &timer, sizeof(timer));
	return put(p, &nmi, sizeof(nmi));
}

static void write_madt(uint8_t *table, const struct acpi_config *cfg)
{
	size_t len = madt_size(cfg);
	struct acpi_madt madt = {
		.lapic_address = (uint32_t)LAYOUT_LAPIC,
		.flags = ACPI_MADT_PCAT_COMPAT,
	};
	uint8_t *p;

	acpi_header_init(&madt.header, "APIC", len, ACPI_MADT_REVISION);
	p = put(table, &madt, sizeof(madt));
	p = madt_put_cpus(p, cfg->nr_cpus);
	madt_put_interrupts(p);
	acpi_table_checksum(table, len);
}

int acpi_build(const struct acpi_config *cfg, uint64_t tables_gpa, uint8_t *buf, size_t buf_len)
{
	struct acpi_layout l;
	struct aml dsdt;
	int err;

	err = acpi_check_config(cfg, tables_gpa);
	if (err)
		return err;
	aml_init(&dsdt);
	err = dsdt_build(&dsdt, cfg);
	if (err)
		goto out;
	l = acpi_plan(cfg, dsdt.len);
	if (l.end > UINT64_MAX - tables_gpa) {
		err = -EINVAL;
		goto out;
	}
	if (!buf || l.end > buf_len) {
		err = -ENOSPC;
		goto out;
	}
	memset(buf, 0, l.end);
	write_rsdp(buf, tables_gpa + l.xsdt);
	write_xsdt(buf + l.xsdt, tables_gpa + l.fadt, tables_gpa + l.madt);
	write_fadt(buf + l.fadt, tables_gpa + l.dsdt);
	write_dsdt(buf + l.dsdt, &dsdt);
	write_madt(buf + l.madt, cfg);
	err = (int)l.end;
out:
	aml_destroy(&dsdt);
	return err;
}
