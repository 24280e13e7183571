/*
 * Guest memory: guest_mem_ptr() hands out a host pointer only for a range
 * that lies whole inside one RAM region, and guest_mem_create() lays RAM out
 * around the 3-4 GiB device hole. Fake RAM is a calloc'd buffer described
 * with guest_mem_add_region(); created RAM is a MAP_NORESERVE anonymous mapping, so even
 * 5 GiB costs nothing until touched.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cmocka.h>

#include "vmm/guest_mem.h"
#include "x86/layout.h"

#define MiB (1ULL << 20)
#define GiB (1ULL << 30)

/* Two adjacent fake regions: [0, 64 KiB) and [64 KiB, 128 KiB), separate buffers. */
#define FAKE_SIZE 0x10000ULL

struct fake {
	struct guest_mem mem;
	uint8_t *low;
	uint8_t *high;
};

static int fake_setup(void **state)
{
	struct fake *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	f->low = calloc(1, FAKE_SIZE);
	f->high = calloc(1, FAKE_SIZE);
	assert_non_null(f->low);
	assert_non_null(f->high);
	guest_mem_init_empty(&f->mem);
	assert_int_equal(guest_mem_add_region(&f->mem, 0, FAKE_SIZE, f->low), 0);
	assert_int_equal(guest_mem_add_region(&f->mem, FAKE_SIZE, FAKE_SIZE, f->high), 0);
	*state = f;
	return 0;
}

static int fake_teardown(void **state)
{
	struct fake *f = *state;

	guest_mem_destroy(&f->mem); /* caller-owned buffers: must not be unmapped */
	free(f->low);
	free(f->high);
	free(f);
	return 0;
}

static void test_guest_mem_ptr_returns_host_address_of_gpa(void **state)
{
	struct fake *f = *state;

	assert_ptr_equal(guest_mem_ptr(&f->mem, 0, 1), f->low);
	assert_ptr_equal(guest_mem_ptr(&f->mem, 0x1234, 16), f->low + 0x1234);
	assert_ptr_equal(guest_mem_ptr(&f->mem, FAKE_SIZE, 1), f->high);
	assert_ptr_equal(guest_mem_ptr(&f->mem, FAKE_SIZE + 0x100, 0x100), f->high + 0x100);
}

static void test_guest_mem_ptr_accepts_whole_region(void **state)
{
	struct fake *f = *state;

	assert_ptr_equal(guest_mem_ptr(&f->mem, 0, FAKE_SIZE), f->low);
	assert_ptr_equal(guest_mem_ptr(&f->mem, FAKE_SIZE, FAKE_SIZE), f->high);
	/* The last byte of each region. */
	assert_ptr_equal(guest_mem_ptr(&f->mem, FAKE_SIZE - 1, 1), f->low + FAKE_SIZE - 1);
	assert_ptr_equal(guest_mem_ptr(&f->mem, 2 * FAKE_SIZE - 1, 1), f->high + FAKE_SIZE - 1);
}

static void test_guest_mem_ptr_rejects_range_past_end_of_ram(void **state)
{
	struct fake *f = *state;

	assert_null(guest_mem_ptr(&f->mem, 2 * FAKE_SIZE - 1, 2));
	assert_null(guest_mem_ptr(&f->mem, 2 * FAKE_SIZE, 1));
	assert_null(guest_mem_ptr(&f->mem, FAKE_SIZE, FAKE_SIZE + 1));
	assert_null(guest_mem_ptr(&f->mem, 0x100000, 4));
}

static void test_guest_mem_ptr_rejects_range_straddling_two_regions(void **state)
{
	struct fake *f = *state;

	/* Adjacent in guest space, but two regions: no one pointer covers both. */
	assert_null(guest_mem_ptr(&f->mem, FAKE_SIZE - 1, 2));
	assert_null(guest_mem_ptr(&f->mem, FAKE_SIZE - 8, 16));
	assert_null(guest_mem_ptr(&f->mem, 0, 2 * FAKE_SIZE));
}

static void test_guest_mem_ptr_rejects_gpa_plus_len_overflow(void **state)
{
	struct fake *f = *state;

	assert_null(guest_mem_ptr(&f->mem, 0x10, UINT64_MAX));
	assert_null(guest_mem_ptr(&f->mem, 0x10, UINT64_MAX - 0xf));
	assert_null(guest_mem_ptr(&f->mem, FAKE_SIZE + 0x10, UINT64_MAX - 0x8));
	assert_null(guest_mem_ptr(&f->mem, UINT64_MAX, 1));
	assert_null(guest_mem_ptr(&f->mem, UINT64_MAX, 2));
	assert_null(guest_mem_ptr(&f->mem, UINT64_MAX - 0xff, 0x200));
}

static void test_guest_mem_ptr_accepts_len_zero_inside_ram_only(void **state)
{
	struct fake *f = *state;

	assert_ptr_equal(guest_mem_ptr(&f->mem, 0, 0), f->low);
	assert_ptr_equal(guest_mem_ptr(&f->mem, 0x40, 0), f->low + 0x40);
	assert_null(guest_mem_ptr(&f->mem, 0x1000000, 0));
	assert_null(guest_mem_ptr(&f->mem, UINT64_MAX, 0));
}

static void test_guest_mem_add_region_rejects_empty_overflowing_and_too_many(void **state)
{
	struct guest_mem mem;
	static uint8_t buf[16];

	guest_mem_init_empty(&mem);
	assert_null(mem.mapping);
	assert_int_equal(mem.memfd, -1);
	assert_int_equal(mem.nr_regions, 0);
	assert_null(guest_mem_ptr(&mem, 0, 0));
	assert_int_equal(guest_mem_add_region(&mem, 0, 0, buf), -EINVAL);
	assert_int_equal(guest_mem_add_region(&mem, UINT64_MAX - 7, 16, buf), -EINVAL);
	for (int i = 0; i < GUEST_MEM_MAX_REGIONS; i++)
		assert_int_equal(guest_mem_add_region(&mem, 0x1000 * (uint64_t)i, 16, buf), 0);
	assert_int_equal(guest_mem_add_region(&mem, 0x100000, 16, buf), -ENOSPC);
	assert_int_equal(mem.nr_regions, GUEST_MEM_MAX_REGIONS);
	assert_int_equal(mem.ram_size, 16 * GUEST_MEM_MAX_REGIONS);
	guest_mem_destroy(&mem);
}

static void test_guest_mem_write_then_read_round_trips(void **state)
{
	struct fake *f = *state;
	const char msg[] = "hello, guest";
	char back[sizeof(msg)] = { 0 };

	assert_int_equal(guest_mem_write(&f->mem, FAKE_SIZE + 0x20, msg, sizeof(msg)), 0);
	assert_memory_equal(f->high + 0x20, msg, sizeof(msg));
	assert_int_equal(guest_mem_read(&f->mem, FAKE_SIZE + 0x20, back, sizeof(back)), 0);
	assert_string_equal(back, msg);
	/* len 0 copies nothing and succeeds. */
	assert_int_equal(guest_mem_write(&f->mem, 0x10, msg, 0), 0);
	assert_int_equal(f->low[0x10], 0);
}

static void test_guest_mem_write_and_read_refuse_ranges_outside_one_region(void **state)
{
	struct fake *f = *state;
	uint8_t buf[32];

	memset(buf, 0xab, sizeof(buf));
	assert_int_equal(guest_mem_write(&f->mem, FAKE_SIZE - 16, buf, sizeof(buf)), -EFAULT);
	assert_int_equal(guest_mem_write(&f->mem, 2 * FAKE_SIZE - 16, buf, sizeof(buf)), -EFAULT);
	assert_int_equal(guest_mem_read(&f->mem, FAKE_SIZE - 16, buf, sizeof(buf)), -EFAULT);
	assert_int_equal(guest_mem_read(&f->mem, UINT64_MAX - 4, buf, sizeof(buf)), -EFAULT);
	/* A refused write changes nothing, not even the part that was inside RAM. */
	for (size_t i = 0; i < FAKE_SIZE; i++) {
		assert_int_equal(f->low[i], 0);
		assert_int_equal(f->high[i], 0);
	}
	/* A refused read leaves the destination alone. */
	for (size_t i = 0; i < sizeof(buf); i++)
		assert_int_equal(buf[i], 0xab);
}

static void test_guest_mem_create_1g_is_one_region_at_zero(void **state)
{
	struct guest_mem mem;

	assert_int_equal(guest_mem_create(&mem, 1 * GiB), 0);
	assert_non_null(mem.mapping);
	/* 2 MiB-aligned, so guest huge pages can sit on host huge pages. */
	assert_int_equal((uintptr_t)mem.mapping % (2 * 1024 * 1024), 0);
	assert_int_equal(mem.ram_size, 1 * GiB);
	assert_int_equal(mem.nr_regions, 1);
	assert_int_equal(mem.regions[0].gpa, 0);
	assert_int_equal(mem.regions[0].size, 1 * GiB);
	assert_ptr_equal(mem.regions[0].host, mem.mapping);
	assert_ptr_equal(guest_mem_ptr(&mem, 1 * GiB - 4096, 4096), mem.mapping + GiB - 4096);
	assert_null(guest_mem_ptr(&mem, 1 * GiB - 4096, 4097));
	assert_null(guest_mem_ptr(&mem, 1 * GiB, 1));
	guest_mem_destroy(&mem);
}

static void test_guest_mem_create_3g_fills_ram_below_hole(void **state)
{
	struct guest_mem mem;

	assert_int_equal(guest_mem_create(&mem, 3 * GiB), 0);
	assert_int_equal(mem.ram_size, 3 * GiB);
	assert_int_equal(mem.nr_regions, 1);
	assert_int_equal(mem.regions[0].gpa, 0);
	assert_int_equal(mem.regions[0].size, LAYOUT_HOLE_START);
	assert_non_null(guest_mem_ptr(&mem, LAYOUT_HOLE_START - 1, 1));
	assert_null(guest_mem_ptr(&mem, LAYOUT_HOLE_START, 1));
	assert_null(guest_mem_ptr(&mem, LAYOUT_HOLE_END, 1));
	guest_mem_destroy(&mem);
}

static void test_guest_mem_create_5g_continues_at_4g(void **state)
{
	struct guest_mem mem;

	assert_int_equal(guest_mem_create(&mem, 5 * GiB), 0);
	assert_int_equal(mem.ram_size, 5 * GiB);
	assert_int_equal(mem.nr_regions, 2);
	assert_int_equal(mem.regions[0].gpa, 0);
	assert_int_equal(mem.regions[0].size, LAYOUT_HOLE_START);
	assert_ptr_equal(mem.regions[0].host, mem.mapping);
	assert_int_equal(mem.regions[1].gpa, LAYOUT_HOLE_END);
	assert_int_equal(mem.regions[1].size, 5 * GiB - LAYOUT_HOLE_START);
	/* Both regions are consecutive parts of the one mapping. */
	assert_ptr_equal(mem.regions[1].host, mem.mapping + LAYOUT_HOLE_START);
	assert_ptr_equal(guest_mem_ptr(&mem, LAYOUT_HOLE_END, 8), mem.mapping + LAYOUT_HOLE_START);
	assert_ptr_equal(guest_mem_ptr(&mem, 6 * GiB - 8, 8), mem.mapping + 5 * GiB - 8);
	assert_null(guest_mem_ptr(&mem, 6 * GiB - 8, 9));
	assert_null(guest_mem_ptr(&mem, 6 * GiB, 1));
	guest_mem_destroy(&mem);
}

static void test_guest_mem_rejects_range_straddling_hole(void **state)
{
	struct guest_mem mem;
	uint8_t buf[64] = { 0 };

	assert_int_equal(guest_mem_create(&mem, 5 * GiB), 0);
	/* Into the hole from below, inside the hole, and into RAM at 4 GiB from the hole. */
	assert_null(guest_mem_ptr(&mem, LAYOUT_HOLE_START - 8, 16));
	assert_null(guest_mem_ptr(&mem, LAYOUT_VIRTIO_MMIO_BASE, 4));
	assert_null(guest_mem_ptr(&mem, LAYOUT_LAPIC, 4));
	assert_null(guest_mem_ptr(&mem, LAYOUT_HOLE_END - 8, 16));
	/* Across the whole hole: both ends are RAM, the middle is not. */
	assert_null(guest_mem_ptr(&mem, LAYOUT_HOLE_START - 8, LAYOUT_HOLE_END - LAYOUT_HOLE_START + 16));
	assert_int_equal(guest_mem_write(&mem, LAYOUT_HOLE_START - 8, buf, sizeof(buf)), -EFAULT);
	assert_int_equal(guest_mem_read(&mem, LAYOUT_HOLE_END - 8, buf, sizeof(buf)), -EFAULT);
	guest_mem_destroy(&mem);
}

static void test_guest_mem_create_writes_land_in_the_mapping(void **state)
{
	struct guest_mem mem;
	const uint32_t magic = 0x5eed1e55;
	uint32_t back = 0;

	assert_int_equal(guest_mem_create(&mem, 5 * GiB), 0);
	/* Above the hole, RAM continues in the mapping where the low part ended. */
	assert_int_equal(guest_mem_write(&mem, LAYOUT_HOLE_END + 0x1000, &magic, 4), 0);
	memcpy(&back, mem.mapping + LAYOUT_HOLE_START + 0x1000, 4);
	assert_int_equal(back, magic);
	assert_int_equal(guest_mem_write(&mem, 0x2000, &magic, 4), 0);
	memcpy(&back, mem.mapping + 0x2000, 4);
	assert_int_equal(back, magic);
	guest_mem_destroy(&mem);
}

static void test_guest_mem_create_shared_is_a_memfd_with_the_ram(void **state)
{
	struct guest_mem mem;
	const uint32_t magic = 0x5eed1e55;
	uint32_t back = 0;
	int fd;

	assert_int_equal(guest_mem_create_shared(&mem, 5 * GiB), 0);
	assert_true(mem.memfd >= 0);
	assert_int_equal((uintptr_t)mem.mapping % (2 * 1024 * 1024), 0);
	/* Another process mapping the fd sees what the guest wrote, at the same offsets. */
	assert_int_equal(guest_mem_write(&mem, LAYOUT_HOLE_END + 0x1000, &magic, 4), 0);
	assert_int_equal(pread(mem.memfd, &back, 4, (off_t)(LAYOUT_HOLE_START + 0x1000)), 4);
	assert_int_equal(back, magic);
	fd = mem.memfd;
	guest_mem_destroy(&mem);
	assert_int_equal(fcntl(fd, F_GETFD), -1); /* closed */
	assert_int_equal(mem.memfd, -1);
}

static void test_guest_mem_destroy_unmaps_and_empties(void **state)
{
	struct guest_mem mem;
	uint8_t *ram;
	unsigned char resident;

	assert_int_equal(guest_mem_create(&mem, 64 * MiB), 0);
	ram = mem.mapping;
	guest_mem_destroy(&mem);
	/* mincore() fails with ENOMEM on an address that is not mapped. */
	assert_int_equal(mincore(ram, 4096, &resident), -1);
	assert_int_equal(errno, ENOMEM);
	assert_null(mem.mapping);
	assert_int_equal(mem.nr_regions, 0);
	assert_null(guest_mem_ptr(&mem, 0, 1));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_guest_mem_ptr_returns_host_address_of_gpa,
						fake_setup, fake_teardown),
		cmocka_unit_test_setup_teardown(test_guest_mem_ptr_accepts_whole_region, fake_setup,
						fake_teardown),
		cmocka_unit_test_setup_teardown(test_guest_mem_ptr_rejects_range_past_end_of_ram,
						fake_setup, fake_teardown),
		cmocka_unit_test_setup_teardown(
			test_guest_mem_ptr_rejects_range_straddling_two_regions, fake_setup,
			fake_teardown),
		cmocka_unit_test_setup_teardown(test_guest_mem_ptr_rejects_gpa_plus_len_overflow,
						fake_setup, fake_teardown),
		cmocka_unit_test_setup_teardown(test_guest_mem_ptr_accepts_len_zero_inside_ram_only,
						fake_setup, fake_teardown),
		cmocka_unit_test(test_guest_mem_add_region_rejects_empty_overflowing_and_too_many),
		cmocka_unit_test_setup_teardown(test_guest_mem_write_then_read_round_trips,
						fake_setup, fake_teardown),
		cmocka_unit_test_setup_teardown(
			test_guest_mem_write_and_read_refuse_ranges_outside_one_region, fake_setup,
			fake_teardown),
		cmocka_unit_test(test_guest_mem_create_1g_is_one_region_at_zero),
		cmocka_unit_test(test_guest_mem_create_3g_fills_ram_below_hole),
		cmocka_unit_test(test_guest_mem_create_5g_continues_at_4g),
		cmocka_unit_test(test_guest_mem_rejects_range_straddling_hole),
		cmocka_unit_test(test_guest_mem_create_writes_land_in_the_mapping),
		cmocka_unit_test(test_guest_mem_create_shared_is_a_memfd_with_the_ram),
		cmocka_unit_test(test_guest_mem_destroy_unmaps_and_empties),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
