/*
 * The fuzz targets' input: bytes taken from the front of libFuzzer's data,
 * zeroes once it runs out, so every input is a whole run of operations.
 */
#ifndef VIREO_FUZZ_INPUT_H
#define VIREO_FUZZ_INPUT_H

#include <stddef.h>
#include <stdint.h>

struct input {
	const uint8_t *p;
	size_t left;
};

static inline uint8_t get8(struct input *in)
{
	if (!in->left)
		return 0;
	in->left--;
	return *in->p++;
}

/* The next `bytes` bytes (at most 4) as a little-endian number. */
static inline uint32_t get_n(struct input *in, int bytes)
{
	uint32_t v = 0;

	for (int i = 0; i < bytes; i++)
		v |= (uint32_t)get8(in) << (8 * i);
	return v;
}

#endif
