/*
 * The address bus: registration rules (no overlaps, no empty ranges) and
 * dispatch by address to the one range that holds it, with the offset from
 * that range's base. Each fake device records the last access it saw.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "vmm/bus.h"

struct fake_dev {
	int id;
	int reads, writes;
	uint64_t offset;
	uint32_t size;
	uint64_t written;
};

/* A read returns id << 16 | offset, so the test sees which device answered and where. */
static void fake_read(void *opaque, uint64_t offset, void *data, uint32_t size)
{
	struct fake_dev *d = opaque;
	uint64_t value = ((uint64_t)d->id << 16) | offset;

	d->reads++;
	d->offset = offset;
	d->size = size;
	memcpy(data, &value, size);
}

static void fake_write(void *opaque, uint64_t offset, const void *data, uint32_t size)
{
	struct fake_dev *d = opaque;

	d->writes++;
	d->offset = offset;
	d->size = size;
	d->written = 0;
	memcpy(&d->written, data, size);
}

static const struct bus_ops fake_ops = { .read = fake_read, .write = fake_write };
static const struct bus_ops write_only_ops = { .write = fake_write };

static void test_bus_dispatches_to_range_with_offset(void **state)
{
	struct bus bus;
	struct fake_dev com1 = { .id = 1 }, kbd = { .id = 2 };
	uint8_t byte = 0;
	uint32_t word = 0x11223344;

	bus_init(&bus);
	assert_int_equal(bus_register(&bus, 0x3f8, 8, &fake_ops, &com1), 0);
	assert_int_equal(bus_register(&bus, 0x60, 5, &fake_ops, &kbd), 0);

	assert_true(bus_read(&bus, 0x3fd, &byte, 1));
	assert_int_equal(com1.reads, 1);
	assert_int_equal(com1.offset, 5);
	assert_int_equal(com1.size, 1);
	assert_int_equal(byte, 5);
	assert_int_equal(kbd.reads, 0);

	assert_true(bus_write(&bus, 0x64, &word, 4));
	assert_int_equal(kbd.writes, 1);
	assert_int_equal(kbd.offset, 4);
	assert_int_equal(kbd.size, 4);
	assert_int_equal(kbd.written, 0x11223344);
	assert_int_equal(com1.writes, 0);

	/* First and last address of a range. */
	assert_true(bus_read(&bus, 0x3f8, &word, 4));
	assert_int_equal(com1.offset, 0);
	assert_int_equal(word, (1 << 16) | 0);
	assert_true(bus_read(&bus, 0x3ff, &byte, 1));
	assert_int_equal(com1.offset, 7);
	bus_destroy(&bus);
}

static void test_bus_unmapped_address_returns_false_and_leaves_data(void **state)
{
	struct bus bus;
	struct fake_dev dev = { .id = 1 };
	uint32_t data = 0xdeadbeef;

	bus_init(&bus);
	assert_false(bus_read(&bus, 0x3f8, &data, 4)); /* empty bus */
	assert_false(bus_write(&bus, 0x3f8, &data, 4));
	assert_int_equal(bus_register(&bus, 0x1000, 0x100, &fake_ops, &dev), 0);
	assert_false(bus_read(&bus, 0xfff, &data, 4));	 /* just below */
	assert_false(bus_read(&bus, 0x1100, &data, 4)); /* just past the end */
	assert_false(bus_write(&bus, 0x1100, &data, 4));
	assert_false(bus_read(&bus, 0, &data, 4));
	assert_false(bus_read(&bus, UINT64_MAX, &data, 4));
	assert_int_equal(data, 0xdeadbeef);
	assert_int_equal(dev.reads, 0);
	assert_int_equal(dev.writes, 0);
	bus_destroy(&bus);
}

static void test_bus_range_without_callback_is_mapped_but_silent(void **state)
{
	struct bus bus;
	struct fake_dev dev = { .id = 3 };
	uint32_t data = 0xdeadbeef;

	bus_init(&bus);
	assert_int_equal(bus_register(&bus, 0x80, 1, &write_only_ops, &dev), 0);
	assert_true(bus_read(&bus, 0x80, &data, 1));
	assert_int_equal(data, 0xdeadbeef);
	assert_true(bus_write(&bus, 0x80, &data, 1));
	assert_int_equal(dev.writes, 1);
	assert_int_equal(dev.written, 0xef);
	bus_destroy(&bus);
}

static void test_bus_register_refuses_overlap(void **state)
{
	struct bus bus;
	struct fake_dev a = { .id = 1 }, b = { .id = 2 };
	uint8_t byte;

	bus_init(&bus);
	assert_int_equal(bus_register(&bus, 0x1000, 0x100, &fake_ops, &a), 0);
	assert_int_equal(bus_register(&bus, 0x1000, 0x100, &fake_ops, &b), -EEXIST); /* same */
	assert_int_equal(bus_register(&bus, 0xf00, 0x101, &fake_ops, &b), -EEXIST);  /* tail in */
	assert_int_equal(bus_register(&bus, 0x10ff, 0x10, &fake_ops, &b), -EEXIST);  /* head in */
	assert_int_equal(bus_register(&bus, 0x1010, 0x10, &fake_ops, &b), -EEXIST);  /* inside */
	assert_int_equal(bus_register(&bus, 0x0, 0x10000, &fake_ops, &b), -EEXIST);  /* around */
	assert_int_equal(bus_register(&bus, 0x10ff, 1, &fake_ops, &b), -EEXIST);     /* last byte */
	assert_int_equal(bus.nr_ranges, 1);
	/* Touching ends do not overlap. */
	assert_int_equal(bus_register(&bus, 0xf00, 0x100, &fake_ops, &b), 0);
	assert_int_equal(bus_register(&bus, 0x1100, 0x100, &fake_ops, &b), 0);
	assert_int_equal(bus.nr_ranges, 3);
	assert_true(bus_read(&bus, 0x1000, &byte, 1));
	assert_int_equal(a.reads, 1);
	assert_true(bus_read(&bus, 0xfff, &byte, 1));
	assert_true(bus_read(&bus, 0x1100, &byte, 1));
	assert_int_equal(b.reads, 2);
	assert_int_equal(a.reads, 1);
	bus_destroy(&bus);
}

static void test_bus_register_refuses_empty_and_wrapping_ranges(void **state)
{
	struct bus bus;
	struct fake_dev dev = { .id = 1 };

	bus_init(&bus);
	assert_int_equal(bus_register(&bus, 0x1000, 0, &fake_ops, &dev), -EINVAL);
	assert_int_equal(bus_register(&bus, UINT64_MAX - 0xf, 0x20, &fake_ops, &dev), -EINVAL);
	assert_int_equal(bus.nr_ranges, 0);
	bus_destroy(&bus);
}

static void test_bus_finds_many_ranges_registered_out_of_order(void **state)
{
	enum { N = 100 };
	struct bus bus;
	struct fake_dev *devs = calloc(N, sizeof(*devs));

	assert_non_null(devs);
	bus_init(&bus);
	/* 37 is coprime with 100: every slot once, in scrambled order; crosses the first regrowth. */
	for (int k = 0; k < N; k++) {
		int i = (k * 37) % N;

		devs[i].id = i + 1;
		assert_int_equal(bus_register(&bus, 0x10000 + (uint64_t)i * 0x1000, 0x800 + i, &fake_ops,
					      &devs[i]),
				 0);
	}
	assert_int_equal(bus.nr_ranges, N);
	for (int i = 1; i < N; i++)
		assert_true(bus.ranges[i - 1].base < bus.ranges[i].base);
	for (int i = 0; i < N; i++) {
		uint64_t base = 0x10000 + (uint64_t)i * 0x1000;
		uint64_t value = 0;

		assert_true(bus_read(&bus, base, &value, 8));
		assert_int_equal(value, (uint64_t)(i + 1) << 16);
		assert_true(bus_read(&bus, base + 0x7ff + i, &value, 8));
		assert_int_equal(value, ((uint64_t)(i + 1) << 16) | (0x7ff + i));
		/* The gap after each range is unmapped. */
		assert_false(bus_read(&bus, base + 0x800 + i, &value, 8));
		assert_int_equal(devs[i].reads, 2);
	}
	assert_false(bus_read(&bus, 0xffff, &(uint64_t){ 0 }, 8));
	bus_destroy(&bus);
	free(devs);
}

static void test_bus_destroy_leaves_an_empty_bus(void **state)
{
	struct bus bus;
	struct fake_dev dev = { .id = 1 };
	uint8_t byte;

	bus_init(&bus);
	assert_int_equal(bus_register(&bus, 0x70, 2, &fake_ops, &dev), 0);
	bus_destroy(&bus);
	assert_int_equal(bus.nr_ranges, 0);
	assert_null(bus.ranges);
	assert_false(bus_read(&bus, 0x70, &byte, 1));
	/* And it can be used again. */
	assert_int_equal(bus_register(&bus, 0x70, 2, &fake_ops, &dev), 0);
	assert_true(bus_read(&bus, 0x71, &byte, 1));
	bus_destroy(&bus);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_bus_dispatches_to_range_with_offset),
		cmocka_unit_test(test_bus_unmapped_address_returns_false_and_leaves_data),
		cmocka_unit_test(test_bus_range_without_callback_is_mapped_but_silent),
		cmocka_unit_test(test_bus_register_refuses_overlap),
		cmocka_unit_test(test_bus_register_refuses_empty_and_wrapping_ranges),
		cmocka_unit_test(test_bus_finds_many_ranges_registered_out_of_order),
		cmocka_unit_test(test_bus_destroy_leaves_an_empty_bus),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
