/*
 * Tests for the ACPI tables (src/x86/acpi.c). The tables are walked the way
 * a guest walks them, RSDP -> XSDT -> FADT -> DSDT, reading fields at the
 * offsets ACPI 6.3 chapter 5 gives (not through acpi.c's structures), and
 * then handed to iasl, the ACPICA disassembler that shares its parser with
 * Linux: it must decode them and show what we meant.
 */
#include <errno.h>
#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "x86/acpi.h"
#include "x86/layout.h"

#define TABLES_GPA LAYOUT_ACPI_TABLES
#define BUF_LEN LAYOUT_ACPI_TABLES_SIZE

/* §5.2.5.3 RSDP and §5.2.6 header offsets. */
#define RSDP_V1_LEN 20
#define RSDP_LEN 36
#define RSDP_REVISION 15
#define RSDP_XSDT 24
#define HDR_LEN 36
#define HDR_LENGTH 4
#define HDR_REVISION 8
#define HDR_OEM_ID 10
/* §5.2.9 FADT offsets. */
#define FADT_DSDT 40
#define FADT_SCI_INT 46
#define FADT_FLAGS 112
#define FADT_RESET_REG 116
#define FADT_RESET_VALUE 128
#define FADT_X_DSDT 140
#define FADT_SLEEP_CONTROL 244
#define FADT_SLEEP_STATUS 256
#define FADT_LEN 276
#define FADT_RESET_REG_SUP (1u << 10)
#define FADT_HW_REDUCED (1u << 20)
/* §5.2.3.2 GAS offsets. */
#define GAS_SPACE 0
#define GAS_BIT_WIDTH 1
#define GAS_ADDRESS 4
#define GAS_SYSTEM_IO 1
/* §5.2.12 MADT. */
#define MADT_LAPIC_ADDRESS 36
#define MADT_FLAGS 40
#define MADT_ENTRIES 44

static uint64_t le(const uint8_t *p, size_t len)
{
	uint64_t v = 0;

	for (size_t i = 0; i < len; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

static uint8_t sum(const uint8_t *p, size_t len)
{
	uint8_t s = 0;

	while (len--)
		s += *p++;
	return s;
}

/* A guest address in the tables, as a pointer into buf; fails the test if outside. */
static const uint8_t *at_gpa(const uint8_t *buf, int used, uint64_t gpa)
{
	assert_in_range(gpa, TABLES_GPA, TABLES_GPA + (uint64_t)used - HDR_LEN);
	return buf + (gpa - TABLES_GPA);
}

static uint32_t table_len(const uint8_t *table)
{
	return (uint32_t)le(table + HDR_LENGTH, 4);
}

struct tables {
	uint8_t buf[BUF_LEN];
	int used;
	const uint8_t *xsdt, *fadt, *dsdt, *madt;
};

/* Builds the tables and follows the pointers from the RSDP, checking each signature. */
static void build(struct tables *t, int nr_cpus, const struct acpi_virtio_mmio *virtio,
		  int nr_virtio)
{
	struct acpi_config cfg = { .nr_cpus = nr_cpus, .virtio = virtio, .nr_virtio = nr_virtio };
	const uint8_t *xsdt;

	t->used = acpi_build(&cfg, TABLES_GPA, t->buf, sizeof(t->buf));
	assert_in_range(t->used, RSDP_LEN, sizeof(t->buf));
	assert_memory_equal(t->buf, "RSD PTR ", 8);
	xsdt = t->xsdt = at_gpa(t->buf, t->used, le(t->buf + RSDP_XSDT, 8));
	assert_memory_equal(xsdt, "XSDT", 4);
	assert_int_equal(table_len(xsdt), HDR_LEN + 2 * 8);
	t->fadt = at_gpa(t->buf, t->used, le(xsdt + HDR_LEN, 8));
	t->madt = at_gpa(t->buf, t->used, le(xsdt + HDR_LEN + 8, 8));
	assert_memory_equal(t->fadt, "FACP", 4);
	assert_memory_equal(t->madt, "APIC", 4);
	t->dsdt = at_gpa(t->buf, t->used, le(t->fadt + FADT_X_DSDT, 8));
	assert_memory_equal(t->dsdt, "DSDT", 4);
}

static const struct acpi_virtio_mmio two_virtio[] = {
	{ .base = LAYOUT_VIRTIO_MMIO_BASE, .size = LAYOUT_VIRTIO_MMIO_SIZE, .irq = 5 },
	{ .base = LAYOUT_VIRTIO_MMIO_BASE + LAYOUT_VIRTIO_MMIO_SIZE,
	  .size = LAYOUT_VIRTIO_MMIO_SIZE,
	  .irq = 6 },
};

static void test_acpi_checksums_sum_to_zero(void **state)
{
	struct tables *t = malloc(sizeof(*t));
	const uint8_t *tables[4];

	assert_non_null(t);
	build(t, 4, two_virtio, 2);
	assert_int_equal(sum(t->buf, RSDP_V1_LEN), 0);
	assert_int_equal(sum(t->buf, RSDP_LEN), 0);
	tables[0] = t->xsdt;
	tables[1] = t->fadt;
	tables[2] = t->dsdt;
	tables[3] = t->madt;
	for (int i = 0; i < 4; i++) {
		assert_true(tables[i] + table_len(tables[i]) <= t->buf + t->used);
		assert_int_equal(sum(tables[i], table_len(tables[i])), 0);
		assert_memory_equal(tables[i] + HDR_OEM_ID, "VIREO ", 6);
	}
	free(t);
}

static void test_rsdp_is_revision_2_at_offset_0(void **state)
{
	struct tables *t = malloc(sizeof(*t));

	assert_non_null(t);
	build(t, 1, NULL, 0);
	assert_int_equal(t->buf[RSDP_REVISION], 2);
	assert_int_equal(le(t->buf + 20, 4), RSDP_LEN);
	assert_memory_equal(t->buf + 9, "VIREO ", 6);
	free(t);
}

static void assert_io_register(const uint8_t *gas, uint16_t port)
{
	assert_int_equal(gas[GAS_SPACE], GAS_SYSTEM_IO);
	assert_int_equal(gas[GAS_BIT_WIDTH], 8);
	assert_int_equal(le(gas + GAS_ADDRESS, 8), port);
}

static void test_fadt_is_hardware_reduced_with_sleep_and_reset_registers(void **state)
{
	struct tables *t = malloc(sizeof(*t));
	const uint8_t *fadt;
	uint32_t flags;

	assert_non_null(t);
	build(t, 1, NULL, 0);
	fadt = t->fadt;
	assert_int_equal(table_len(fadt), FADT_LEN);
	assert_int_equal(fadt[HDR_REVISION], 6);
	flags = (uint32_t)le(fadt + FADT_FLAGS, 4);
	assert_true(flags & FADT_HW_REDUCED);
	assert_true(flags & FADT_RESET_REG_SUP);
	assert_int_equal(le(fadt + FADT_SCI_INT, 2), 0);
	/* X_DSDT set, so the 32-bit DSDT field must be 0 (§5.2.9). */
	assert_int_equal(le(fadt + FADT_DSDT, 4), 0);
	assert_io_register(fadt + FADT_RESET_REG, LAYOUT_ACPI_RESET_PORT);
	assert_int_equal(fadt[FADT_RESET_VALUE], LAYOUT_ACPI_RESET_VALUE);
	assert_io_register(fadt + FADT_SLEEP_CONTROL, LAYOUT_ACPI_SLEEP_CONTROL_PORT);
	assert_io_register(fadt + FADT_SLEEP_STATUS, LAYOUT_ACPI_SLEEP_STATUS_PORT);
	free(t);
}

struct madt_counts {
	int lapics, ioapics, overrides, nmis, other;
};

/* Walks the MADT's entries, checking each; returns how many of each type. */
static struct madt_counts walk_madt(const uint8_t *madt)
{
	struct madt_counts c = { 0 };
	uint32_t len = table_len(madt);

	for (uint32_t off = MADT_ENTRIES; off < len; off += madt[off + 1]) {
		const uint8_t *e = madt + off;

		assert_true(e[1] >= 2 && off + e[1] <= len);
		switch (e[0]) {
		case 0: /* Processor Local APIC: UID, APIC id, enabled */
			assert_int_equal(e[2], c.lapics);
			assert_int_equal(e[3], c.lapics);
			assert_int_equal(le(e + 4, 4), 1);
			c.lapics++;
			break;
		case 1: /* I/O APIC */
			assert_int_equal(le(e + 4, 4), LAYOUT_IOAPIC);
			assert_int_equal(le(e + 8, 4), 0);
			c.ioapics++;
			break;
		case 2: /* Interrupt Source Override: ISA IRQ 0 -> GSI 2, edge, active high */
			assert_int_equal(e[2], 0);
			assert_int_equal(e[3], 0);
			assert_int_equal(le(e + 4, 4), 2);
			assert_int_equal(le(e + 8, 2), 0x5);
			c.overrides++;
			break;
		case 4: /* Local APIC NMI: all processors, LINT1 */
			assert_int_equal(e[2], 0xff);
			assert_int_equal(e[5], 1);
			c.nmis++;
			break;
		default:
			c.other++;
		}
	}
	return c;
}

static void check_madt(int nr_cpus)
{
	struct tables *t = malloc(sizeof(*t));
	struct madt_counts c;

	assert_non_null(t);
	build(t, nr_cpus, NULL, 0);
	assert_int_equal(le(t->madt + MADT_LAPIC_ADDRESS, 4), LAYOUT_LAPIC);
	assert_int_equal(le(t->madt + MADT_FLAGS, 4) & 1, 1); /* PCAT_COMPAT */
	c = walk_madt(t->madt);
	assert_int_equal(c.lapics, nr_cpus);
	assert_int_equal(c.ioapics, 1);
	assert_int_equal(c.overrides, 1);
	assert_int_equal(c.nmis, 1);
	assert_int_equal(c.other, 0);
	free(t);
}

static void test_madt_has_one_enabled_lapic_per_cpu(void **state)
{
	check_madt(1);
	check_madt(64);
	check_madt(ACPI_MAX_CPUS);
}

static void test_acpi_build_reports_enospc_on_small_buffer(void **state)
{
	struct acpi_config cfg = { .nr_cpus = 64, .virtio = two_virtio, .nr_virtio = 2 };
	uint8_t *buf = malloc(BUF_LEN);
	int need;

	assert_non_null(buf);
	need = acpi_build(&cfg, TABLES_GPA, buf, BUF_LEN);
	assert_true(need > 0);
	memset(buf, 0xaa, BUF_LEN);
	assert_int_equal(acpi_build(&cfg, TABLES_GPA, buf, (size_t)need - 1), -ENOSPC);
	assert_int_equal(acpi_build(&cfg, TABLES_GPA, buf, RSDP_LEN), -ENOSPC);
	assert_int_equal(acpi_build(&cfg, TABLES_GPA, buf, 0), -ENOSPC);
	for (size_t i = 0; i < BUF_LEN; i++)
		assert_int_equal(buf[i], 0xaa); /* nothing written on failure */
	assert_int_equal(acpi_build(&cfg, TABLES_GPA, buf, (size_t)need), need);
	free(buf);
}

static void test_acpi_build_rejects_bad_config(void **state)
{
	static uint8_t buf[BUF_LEN];
	const struct acpi_virtio_mmio above_4g = { .base = 0x100000000ULL, .size = 0x1000,
						   .irq = 5 };
	const struct acpi_virtio_mmio across_4g = { .base = 0xfffff000ULL, .size = 0x2000,
						    .irq = 5 };
	const struct acpi_virtio_mmio empty = { .base = 0xd0000000, .size = 0, .irq = 5 };
	const struct acpi_virtio_mmio bad_irq = { .base = 0xd0000000, .size = 0x1000,
						  .irq = LAYOUT_IOAPIC_PINS };
	const struct acpi_config bad[] = {
		{ .nr_cpus = 0 },
		{ .nr_cpus = ACPI_MAX_CPUS + 1 },
		{ .nr_cpus = 1, .nr_virtio = -1 },
		{ .nr_cpus = 1, .virtio = NULL, .nr_virtio = 1 },
		{ .nr_cpus = 1, .virtio = &above_4g, .nr_virtio = 1 },
		{ .nr_cpus = 1, .virtio = &across_4g, .nr_virtio = 1 },
		{ .nr_cpus = 1, .virtio = &empty, .nr_virtio = 1 },
		{ .nr_cpus = 1, .virtio = &bad_irq, .nr_virtio = 1 },
	};
	const struct acpi_config good = { .nr_cpus = 1 };

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(acpi_build(&bad[i], TABLES_GPA, buf, sizeof(buf)), -EINVAL);
	assert_int_equal(acpi_build(NULL, TABLES_GPA, buf, sizeof(buf)), -EINVAL);
	/* The RSDP must sit on a 16-byte boundary. */
	assert_int_equal(acpi_build(&good, TABLES_GPA + 8, buf, sizeof(buf)), -EINVAL);
}

static void test_acpi_tables_fit_their_area_with_most_cpus_and_devices(void **state)
{
	struct acpi_virtio_mmio virtio[LAYOUT_IOAPIC_PINS - LAYOUT_VIRTIO_IRQ_BASE];
	struct acpi_config cfg = { .nr_cpus = ACPI_MAX_CPUS, .virtio = virtio };
	static uint8_t buf[BUF_LEN];

	for (size_t i = 0; i < sizeof(virtio) / sizeof(virtio[0]); i++)
		virtio[i] = (struct acpi_virtio_mmio){
			.base = LAYOUT_VIRTIO_MMIO_BASE + i * LAYOUT_VIRTIO_MMIO_SIZE,
			.size = LAYOUT_VIRTIO_MMIO_SIZE,
			.irq = (uint32_t)(LAYOUT_VIRTIO_IRQ_BASE + i),
		};
	cfg.nr_virtio = (int)(sizeof(virtio) / sizeof(virtio[0]));
	assert_in_range(acpi_build(&cfg, TABLES_GPA, buf, sizeof(buf)), 1, sizeof(buf));
}

/*
 * iasl: the tables are written to files in a private directory, iasl -d
 * writes NAME.dsl beside each, and the tests read those back.
 */
struct iasl_dir {
	char path[64];
};

static bool have_iasl(void)
{
	return system("command -v iasl >/dev/null 2>&1") == 0;
}

static int iasl_setup(void **state)
{
	struct iasl_dir *dir = malloc(sizeof(*dir));

	if (!dir)
		return -1;
	snprintf(dir->path, sizeof(dir->path), "/tmp/vireo-acpi-XXXXXX");
	if (!mkdtemp(dir->path)) {
		free(dir);
		return -1;
	}
	*state = dir;
	return 0;
}

static int remove_entry(const char *path, const struct stat *sb, int type, struct FTW *ftw)
{
	return remove(path);
}

static int iasl_teardown(void **state)
{
	struct iasl_dir *dir = *state;

	nftw(dir->path, remove_entry, 8, FTW_DEPTH | FTW_PHYS);
	free(dir);
	return 0;
}

static void write_file(const char *path, const void *data, size_t len)
{
	FILE *f = fopen(path, "wb");

	assert_non_null(f);
	assert_int_equal(fwrite(data, 1, len, f), len);
	assert_int_equal(fclose(f), 0);
}

/* Returns the whole file, NUL-terminated; the caller frees it. */
static char *read_file(const char *path)
{
	FILE *f = fopen(path, "rb");
	char *text;
	long len;

	assert_non_null(f);
	assert_int_equal(fseek(f, 0, SEEK_END), 0);
	len = ftell(f);
	assert_true(len >= 0);
	rewind(f);
	text = malloc((size_t)len + 1);
	assert_non_null(text);
	assert_int_equal(fread(text, 1, (size_t)len, f), (size_t)len);
	text[len] = '\0';
	fclose(f);
	return text;
}

/* Runs "iasl ARGS FILE" in dir; returns its exit status. */
static int run_iasl(const struct iasl_dir *dir, const char *args, const char *file)
{
	char cmd[512];
	int status;

	snprintf(cmd, sizeof(cmd), "cd '%s' && iasl %s %s >%s.log 2>&1", dir->path, args, file,
		 file);
	status = system(cmd);
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* Writes a table as NAME.dat, disassembles it, returns the text of NAME.dsl. */
static char *disassemble(const struct iasl_dir *dir, const char *name, const uint8_t *table)
{
	char path[128];

	snprintf(path, sizeof(path), "%s/%s.dat", dir->path, name);
	write_file(path, table, table_len(table));
	snprintf(path, sizeof(path), "%s.dat", name);
	assert_int_equal(run_iasl(dir, "-d", path), 0);
	snprintf(path, sizeof(path), "%s/%s.dsl", dir->path, name);
	return read_file(path);
}

static int count(const char *text, const char *needle)
{
	int n = 0;

	for (const char *p = text; (p = strstr(p, needle)); p += strlen(needle))
		n++;
	return n;
}

/* Skips text up to needle, failing the test if it is not there. */
static const char *expect(const char *text, const char *needle)
{
	const char *p = strstr(text, needle);

	if (!p)
		fail_msg("\"%s\" not in the disassembly", needle);
	return p + strlen(needle);
}

static void test_dsdt_disassembles_with_iasl(void **state)
{
	struct tables *t = malloc(sizeof(*t));
	char log[128];
	const char *p;
	char *dsl;

	if (!have_iasl())
		skip();
	assert_non_null(t);
	build(t, 2, two_virtio, 2);
	dsl = disassemble(*state, "dsdt", t->dsdt);
	expect(dsl, "DefinitionBlock (\"\", \"DSDT\", 2, \"VIREO \"");
	p = expect(dsl, "Name (\\_S5, Package (0x02)");
	p = expect(p, "0x05");
	expect(p, "Zero");
	assert_int_equal(count(dsl, "Name (_HID, \"LNRO0005\")"), 2);
	p = expect(dsl, "Device (V000)");
	p = expect(p, "Name (_UID, Zero)");
	p = expect(p, "Memory32Fixed (ReadWrite,");
	p = expect(p, "0xD0000000,         // Address Base");
	p = expect(p, "0x00001000,         // Address Length");
	p = expect(p, "Interrupt (ResourceConsumer, Edge, ActiveHigh, Exclusive, ,, )");
	p = expect(p, "0x00000005,");
	p = expect(p, "Device (V001)");
	p = expect(p, "Name (_UID, One)");
	p = expect(p, "0xD0001000,         // Address Base");
	p = expect(p, "Interrupt (ResourceConsumer, Edge, ActiveHigh, Exclusive, ,, )");
	expect(p, "0x00000006,");
	p = expect(dsl, "Device (COM1)");
	p = expect(p, "EisaId (\"PNP0501\")");
	p = expect(p, "Method (_STA, 0, NotSerialized)");
	p = expect(p, "Return (0x0F)");
	p = expect(p, "IO (Decode16,");
	p = expect(p, "0x03F8,             // Range Minimum");
	p = expect(p, "0x08,               // Length");
	p = expect(p, "Interrupt (ResourceConsumer, Edge, ActiveHigh, Exclusive, ,, )");
	expect(p, "0x00000004,");
	free(dsl);
	/* What iasl printed must compile back without errors or warnings. */
	assert_int_equal(run_iasl(*state, "", "dsdt.dsl"), 0);
	snprintf(log, sizeof(log), "%s/dsdt.dsl.log", ((struct iasl_dir *)*state)->path);
	dsl = read_file(log);
	expect(dsl, "Compilation successful. 0 Errors, 0 Warnings");
	free(dsl);
	free(t);
}

static void check_madt_with_iasl(void **state, int nr_cpus)
{
	struct tables *t = malloc(sizeof(*t));
	char *dsl;

	assert_non_null(t);
	build(t, nr_cpus, NULL, 0);
	dsl = disassemble(*state, "apic", t->madt);
	assert_int_equal(count(dsl, "[Processor Local APIC]"), nr_cpus);
	assert_int_equal(count(dsl, "Processor Enabled : 1"), nr_cpus);
	assert_int_equal(count(dsl, "[I/O APIC]"), 1);
	expect(dsl, "Address : FEC00000");
	expect(dsl, "Local Apic Address : FEE00000");
	expect(dsl, "PC-AT Compatibility : 1");
	assert_int_equal(count(dsl, "[Interrupt Source Override]"), 1);
	assert_int_equal(count(dsl, "[Local APIC NMI]"), 1);
	expect(dsl, "Interrupt Input LINT : 01");
	assert_null(strstr(dsl, "Incorrect checksum"));
	free(dsl);
	free(t);
}

static void test_madt_disassembles_with_iasl_for_1_and_64_cpus(void **state)
{
	if (!have_iasl())
		skip();
	check_madt_with_iasl(state, 1);
	check_madt_with_iasl(state, 64);
}

static void test_fadt_disassembles_with_iasl(void **state)
{
	struct tables *t = malloc(sizeof(*t));
	const char *p;
	char *dsl;

	if (!have_iasl())
		skip();
	assert_non_null(t);
	build(t, 1, NULL, 0);
	dsl = disassemble(*state, "facp", t->fadt);
	expect(dsl, "Revision : 06");
	expect(dsl, "FADT Minor Revision : 03");
	expect(dsl, "Reset Register Supported (V2) : 1");
	expect(dsl, "Hardware Reduced (V5) : 1");
	p = expect(dsl, "Reset Register : [Generic Address Structure]");
	p = expect(p, "Space ID : 01 [SystemIO]");
	expect(p, "Address : 0000000000000602");
	expect(dsl, "Value to cause reset : 01");
	p = expect(dsl, "Sleep Control Register : [Generic Address Structure]");
	p = expect(p, "Space ID : 01 [SystemIO]");
	p = expect(p, "Bit Width : 08");
	expect(p, "Address : 0000000000000600");
	p = expect(dsl, "Sleep Status Register : [Generic Address Structure]");
	expect(p, "Address : 0000000000000601");
	assert_null(strstr(dsl, "Incorrect checksum"));
	free(dsl);
	free(t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_acpi_checksums_sum_to_zero),
		cmocka_unit_test(test_rsdp_is_revision_2_at_offset_0),
		cmocka_unit_test(test_fadt_is_hardware_reduced_with_sleep_and_reset_registers),
		cmocka_unit_test(test_madt_has_one_enabled_lapic_per_cpu),
		cmocka_unit_test(test_acpi_build_reports_enospc_on_small_buffer),
		cmocka_unit_test(test_acpi_build_rejects_bad_config),
		cmocka_unit_test(test_acpi_tables_fit_their_area_with_most_cpus_and_devices),
		cmocka_unit_test_setup_teardown(test_dsdt_disassembles_with_iasl, iasl_setup,
						iasl_teardown),
		cmocka_unit_test_setup_teardown(test_madt_disassembles_with_iasl_for_1_and_64_cpus,
						iasl_setup, iasl_teardown),
		cmocka_unit_test_setup_teardown(test_fadt_disassembles_with_iasl, iasl_setup,
						iasl_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
