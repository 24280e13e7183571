/*
 * The console escape keys (Ctrl-A x, Ctrl-A h, Ctrl-A Ctrl-A) filtered out
 * of host terminal input before it reaches the guest's serial port. Input
 * arrives in arbitrary read() chunks, so an escape may be split across calls.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "vmm/terminal.h"

#define CTRL_A "\x01"

/* Runs one chunk through the filter; returns the action, leaves the output in buf/len. */
static enum escape_action filter(struct escape_state *st, const char *in, uint8_t *buf,
				 size_t *len)
{
	*len = strlen(in);
	memcpy(buf, in, *len);
	return escape_filter(st, buf, len);
}

static void test_escape_filter_passes_ordinary_bytes_untouched(void **state)
{
	struct escape_state st = { 0 };
	uint8_t buf[256];
	size_t len = 0;

	/* Every byte except Ctrl-A, including NUL, ESC sequences, 'x' and 'h'. */
	for (int c = 0; c < 256; c++) {
		if (c != 0x01)
			buf[len++] = (uint8_t)c;
	}
	assert_int_equal(escape_filter(&st, buf, &len), ESCAPE_NONE);
	assert_int_equal(len, 255);
	for (size_t i = 0, c = 0; i < len; i++, c++) {
		if (c == 0x01)
			c++;
		assert_int_equal(buf[i], c);
	}
	assert_false(st.pending);
}

static void test_escape_filter_empty_input_does_nothing(void **state)
{
	struct escape_state st = { 0 };
	uint8_t buf[4] = { 0 };
	size_t len = 0;

	assert_int_equal(escape_filter(&st, buf, &len), ESCAPE_NONE);
	assert_int_equal(len, 0);
	assert_false(st.pending);
}

static void test_escape_filter_ctrl_a_x_quits_and_drops_the_rest(void **state)
{
	struct escape_state st = { 0 };
	uint8_t buf[64];
	size_t len;

	assert_int_equal(filter(&st, "ls" CTRL_A "x" "rm -rf\n", buf, &len), ESCAPE_QUIT);
	assert_int_equal(len, 2);
	assert_memory_equal(buf, "ls", 2);
	assert_false(st.pending);

	assert_int_equal(filter(&st, CTRL_A "X", buf, &len), ESCAPE_QUIT);
	assert_int_equal(len, 0);
}

static void test_escape_filter_ctrl_a_h_asks_for_help_and_keeps_the_rest(void **state)
{
	struct escape_state st = { 0 };
	uint8_t buf[64];
	size_t len;

	assert_int_equal(filter(&st, "a" CTRL_A "h" "b", buf, &len), ESCAPE_HELP);
	assert_int_equal(len, 2);
	assert_memory_equal(buf, "ab", 2);
	assert_int_equal(filter(&st, CTRL_A "?", buf, &len), ESCAPE_HELP);
	assert_int_equal(len, 0);
	assert_non_null(strstr(escape_help_text(), "Ctrl-A x"));
	assert_non_null(strstr(escape_help_text(), "Ctrl-A h"));
}

static void test_escape_filter_double_ctrl_a_sends_one_ctrl_a(void **state)
{
	struct escape_state st = { 0 };
	uint8_t buf[64];
	size_t len;

	assert_int_equal(filter(&st, "1" CTRL_A CTRL_A "2", buf, &len), ESCAPE_NONE);
	assert_int_equal(len, 3);
	assert_memory_equal(buf, "1\x01" "2", 3);
	/* Four in a row: two pass on, and no escape is left pending. */
	assert_int_equal(filter(&st, CTRL_A CTRL_A CTRL_A CTRL_A, buf, &len), ESCAPE_NONE);
	assert_int_equal(len, 2);
	assert_memory_equal(buf, "\x01\x01", 2);
	assert_false(st.pending);
	/* Then 'x' is an ordinary letter, not a quit. */
	assert_int_equal(filter(&st, "x", buf, &len), ESCAPE_NONE);
	assert_int_equal(len, 1);
	assert_int_equal(buf[0], 'x');
}

static void test_escape_filter_handles_escape_split_across_reads(void **state)
{
	struct escape_state st = { 0 };
	uint8_t buf[64];
	size_t len;

	assert_int_equal(filter(&st, "ab" CTRL_A, buf, &len), ESCAPE_NONE);
	assert_int_equal(len, 2);
	assert_memory_equal(buf, "ab", 2);
	assert_true(st.pending);
	assert_int_equal(filter(&st, "x" "tail", buf, &len), ESCAPE_QUIT);
	assert_int_equal(len, 0);

	st = (struct escape_state){ 0 };
	assert_int_equal(filter(&st, CTRL_A, buf, &len), ESCAPE_NONE);
	assert_int_equal(len, 0);
	assert_int_equal(filter(&st, "h", buf, &len), ESCAPE_HELP);
	assert_int_equal(len, 0);

	st = (struct escape_state){ 0 };
	assert_int_equal(filter(&st, "q" CTRL_A, buf, &len), ESCAPE_NONE);
	assert_int_equal(filter(&st, CTRL_A "z", buf, &len), ESCAPE_NONE);
	assert_int_equal(len, 2);
	assert_memory_equal(buf, "\x01z", 2);
}

static void test_escape_filter_swallows_unknown_escape_key(void **state)
{
	struct escape_state st = { 0 };
	uint8_t buf[64];
	size_t len;

	/* As in QEMU: Ctrl-A followed by a key with no meaning sends neither. */
	assert_int_equal(filter(&st, "1" CTRL_A "z" "2", buf, &len), ESCAPE_NONE);
	assert_int_equal(len, 2);
	assert_memory_equal(buf, "12", 2);
	assert_false(st.pending);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_escape_filter_passes_ordinary_bytes_untouched),
		cmocka_unit_test(test_escape_filter_empty_input_does_nothing),
		cmocka_unit_test(test_escape_filter_ctrl_a_x_quits_and_drops_the_rest),
		cmocka_unit_test(test_escape_filter_ctrl_a_h_asks_for_help_and_keeps_the_rest),
		cmocka_unit_test(test_escape_filter_double_ctrl_a_sends_one_ctrl_a),
		cmocka_unit_test(test_escape_filter_handles_escape_split_across_reads),
		cmocka_unit_test(test_escape_filter_swallows_unknown_escape_key),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
