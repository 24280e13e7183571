/*
 * The e820 map both boot paths hand the guest: low RAM up to the EBDA,
 * reserved up to 1 MiB (Vireo's ACPI tables live there), RAM from 1 MiB to
 * the end of the low region, and RAM above 4 GiB when the guest has more
 * than 3 GiB. Layouts are described as regions only: nothing is allocated.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "vmm/guest_mem.h"
#include "x86/e820.h"
#include "x86/layout.h"

#define MiB (1ULL << 20)
#define GiB (1ULL << 30)

/* The regions guest_mem_create() makes for ram_size, without mapping anything. */
static void describe_ram(struct guest_mem *mem, uint64_t ram_size)
{
	static uint8_t never_touched;
	uint64_t low = ram_size < LAYOUT_HOLE_START ? ram_size : LAYOUT_HOLE_START;

	guest_mem_init_empty(mem);
	assert_int_equal(guest_mem_add_region(mem, 0, low, &never_touched), 0);
	if (ram_size > low)
		assert_int_equal(
			guest_mem_add_region(mem, LAYOUT_HOLE_END, ram_size - low, &never_touched), 0);
}

static void assert_range(const struct e820_range *r, uint64_t addr, uint64_t size, uint32_t type)
{
	assert_int_equal(r->addr, addr);
	assert_int_equal(r->size, size);
	assert_int_equal(r->type, type);
}

static void test_e820_small_guest_has_low_ram_reserved_and_ram_from_1m(void **state)
{
	struct guest_mem mem;
	struct e820_range map[8];

	describe_ram(&mem, 256 * MiB);
	assert_int_equal(e820_build(&mem, map, 8), 3);
	assert_range(&map[0], 0, LAYOUT_LOW_RAM_END, E820_TYPE_RAM);
	assert_int_equal(LAYOUT_LOW_RAM_END, 0x9fc00);
	assert_range(&map[1], 0x9fc00, 0x100000 - 0x9fc00, E820_TYPE_RESERVED);
	assert_range(&map[2], 0x100000, 256 * MiB - 0x100000, E820_TYPE_RAM);
}

static void test_e820_reserved_area_covers_acpi_tables(void **state)
{
	struct guest_mem mem;
	struct e820_range map[8];
	int n;

	describe_ram(&mem, 512 * MiB);
	n = e820_build(&mem, map, 8);
	assert_true(n > 1);
	for (int i = 0; i < n; i++) {
		uint64_t end = map[i].addr + map[i].size;

		if (map[i].type == E820_TYPE_RAM) {
			/* No RAM range may cover the ACPI tables. */
			assert_true(end <= LAYOUT_ACPI_TABLES ||
				    map[i].addr >= LAYOUT_ACPI_TABLES + LAYOUT_ACPI_TABLES_SIZE);
		} else if (map[i].addr <= LAYOUT_ACPI_TABLES) {
			assert_true(end >= LAYOUT_ACPI_TABLES + LAYOUT_ACPI_TABLES_SIZE);
		}
	}
}

static void test_e820_3g_guest_ends_ram_at_hole(void **state)
{
	struct guest_mem mem;
	struct e820_range map[8];

	describe_ram(&mem, 3 * GiB);
	assert_int_equal(e820_build(&mem, map, 8), 3);
	assert_range(&map[0], 0, 0x9fc00, E820_TYPE_RAM);
	assert_range(&map[1], 0x9fc00, 0x60400, E820_TYPE_RESERVED);
	assert_range(&map[2], 0x100000, LAYOUT_HOLE_START - 0x100000, E820_TYPE_RAM);
}

static void test_e820_large_guest_has_ram_at_4g(void **state)
{
	struct guest_mem mem;
	struct e820_range map[8];

	describe_ram(&mem, 5 * GiB);
	assert_int_equal(e820_build(&mem, map, 8), 4);
	assert_range(&map[0], 0, 0x9fc00, E820_TYPE_RAM);
	assert_range(&map[1], 0x9fc00, 0x60400, E820_TYPE_RESERVED);
	assert_range(&map[2], 0x100000, 3 * GiB - 0x100000, E820_TYPE_RAM);
	assert_range(&map[3], 4 * GiB, 2 * GiB, E820_TYPE_RAM);
}

static void test_e820_ram_total_matches_guest_ram_less_reserved(void **state)
{
	static const uint64_t sizes[] = { 32 * MiB, 1 * GiB, 3 * GiB, 3 * GiB + 1 * MiB, 5 * GiB,
					  64 * GiB };

	for (size_t s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++) {
		struct guest_mem mem;
		struct e820_range map[8];
		uint64_t ram = 0, prev_end = 0;
		int n;

		describe_ram(&mem, sizes[s]);
		n = e820_build(&mem, map, 8);
		assert_true(n >= 3);
		for (int i = 0; i < n; i++) {
			assert_true(map[i].size > 0);
			assert_true(map[i].addr >= prev_end); /* sorted, not overlapping */
			/* Nothing in the device hole. */
			assert_true(map[i].addr + map[i].size <= LAYOUT_HOLE_START ||
				    map[i].addr >= LAYOUT_HOLE_END);
			prev_end = map[i].addr + map[i].size;
			if (map[i].type == E820_TYPE_RAM)
				ram += map[i].size;
		}
		assert_int_equal(ram, sizes[s] - (0x100000 - 0x9fc00));
	}
}

static void test_e820_reports_enospc_when_max_too_small(void **state)
{
	struct guest_mem mem;
	struct e820_range map[4];

	describe_ram(&mem, 5 * GiB);
	assert_int_equal(e820_build(&mem, map, 3), -ENOSPC);
	assert_int_equal(e820_build(&mem, map, 1), -ENOSPC);
	assert_int_equal(e820_build(&mem, map, 0), -ENOSPC);
	assert_int_equal(e820_build(&mem, map, 4), 4);
	describe_ram(&mem, 256 * MiB);
	assert_int_equal(e820_build(&mem, map, 2), -ENOSPC);
	assert_int_equal(e820_build(&mem, map, 3), 3);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_e820_small_guest_has_low_ram_reserved_and_ram_from_1m),
		cmocka_unit_test(test_e820_reserved_area_covers_acpi_tables),
		cmocka_unit_test(test_e820_3g_guest_ends_ram_at_hole),
		cmocka_unit_test(test_e820_large_guest_has_ram_at_4g),
		cmocka_unit_test(test_e820_ram_total_matches_guest_ram_less_reserved),
		cmocka_unit_test(test_e820_reports_enospc_when_max_too_small),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
