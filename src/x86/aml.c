/*
 * The AML builder: see aml.h. Encodings follow ACPI 6.3 §20.2 (AML grammar)
 * and §6.4 (resource data types); the comments name the rule each function
 * writes.
 */
#include "x86/aml.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* §20.2 opcodes and prefixes. */
#define AML_ZERO_OP 0x00
#define AML_ONE_OP 0x01
#define AML_NAME_OP 0x08
#define AML_BYTE_PREFIX 0x0a
#define AML_WORD_PREFIX 0x0b
#define AML_DWORD_PREFIX 0x0c
#define AML_STRING_PREFIX 0x0d
#define AML_QWORD_PREFIX 0x0e
#define AML_SCOPE_OP 0x10
#define AML_BUFFER_OP 0x11
#define AML_PACKAGE_OP 0x12
#define AML_METHOD_OP 0x14
#define AML_DUAL_NAME_PREFIX 0x2e
#define AML_MULTI_NAME_PREFIX 0x2f
#define AML_EXT_OP_PREFIX 0x5b
#define AML_DEVICE_OP 0x82 /* after AML_EXT_OP_PREFIX */
#define AML_RETURN_OP 0xa4
#define AML_NULL_NAME 0x00
#define AML_ROOT_CHAR '\\'
#define AML_PARENT_PREFIX_CHAR '^'
#define AML_NAMESEG_LEN 4
#define AML_NAMESEG_PAD '_'
#define AML_MAX_SEGMENTS 255 /* MultiNamePrefix SegCount is one byte */

/* §20.2.5.2 MethodFlags: bits 0-2 ArgCount, bit 3 SerializeFlag. */
#define AML_METHOD_MAX_ARGS 7
#define AML_METHOD_SERIALIZED 0x08

/* §20.2.5.4 DefPackage: NumElements is one byte. */
#define AML_PACKAGE_MAX_ELEMENTS 255

/*
 * §20.2.4 PkgLength: one byte holds lengths up to 63 in bits 0-5; longer
 * ones put the count of following bytes (1-3) in bits 6-7, the low nibble
 * in bits 0-3 and the rest, 8 bits at a time, in the following bytes.
 * The length counts the PkgLength bytes themselves.
 */
#define AML_PKGLENGTH_MAX_BYTES 4
#define AML_PKGLENGTH_COUNT_SHIFT 6
#define AML_PKGLENGTH_LOW_NIBBLE 0x0f
#define AML_PKGLENGTH_NIBBLE_BITS 4

/* §6.4.2 small and §6.4.3 large resource descriptor tags. */
#define AML_RES_IO 0x47		 /* small item 0x08, 7 bytes follow */
#define AML_RES_IO_DECODE16 0x01 /* I/O information: 16-bit decode */
#define AML_RES_END_TAG 0x79	 /* small item 0x0f, 1 byte follows */
#define AML_RES_MEMORY32_FIXED 0x86
#define AML_RES_MEMORY32_FIXED_LEN 9
#define AML_RES_MEMORY_WRITABLE 0x01
#define AML_RES_EXT_IRQ 0x89
#define AML_RES_EXT_IRQ_LEN 6 /* flags, count, one 32-bit interrupt */

/* §6.1.5 _HID: a compressed EISA id is three 5-bit letters ('A' is 1), four hex digits. */
#define EISAID_LEN 7
#define EISAID_LETTERS 3
#define EISAID_LETTER_BITS 5
#define EISAID_HEX_BITS 4
#define EISAID_LETTER_BASE ('A' - 1)

#define AML_INITIAL_CAPACITY 256

static void aml_fail(struct aml *aml, int err)
{
	if (!aml->error)
		aml->error = err;
}

void aml_init(struct aml *aml)
{
	memset(aml, 0, sizeof(*aml));
}

void aml_destroy(struct aml *aml)
{
	free(aml->buf);
	aml_init(aml);
}

int aml_error(const struct aml *aml)
{
	if (aml->error)
		return aml->error;
	return aml->depth ? -EINVAL : 0;
}

/* Makes room for extra more bytes; false (and the error set) if it cannot. */
static bool aml_reserve(struct aml *aml, size_t extra)
{
	size_t need, cap;
	uint8_t *buf;

	if (aml->error)
		return false;
	if (extra > SIZE_MAX - aml->len) {
		aml_fail(aml, -ENOMEM);
		return false;
	}
	need = aml->len + extra;
	if (need <= aml->cap)
		return true;
	cap = aml->cap ? aml->cap : AML_INITIAL_CAPACITY;
	while (cap < need)
		cap = cap > SIZE_MAX / 2 ? need : cap * 2;
	buf = realloc(aml->buf, cap);
	if (!buf) {
		aml_fail(aml, -ENOMEM);
		return false;
	}
	aml->buf = buf;
	aml->cap = cap;
	return true;
}

void aml_bytes(struct aml *aml, const void *data, size_t len)
{
	/* An empty builder has no buffer yet, and memcpy() wants none NULL. */
	if (len == 0 || !aml_reserve(aml, len))
		return;
	memcpy(aml->buf + aml->len, data, len);
	aml->len += len;
}

void aml_byte(struct aml *aml, uint8_t byte)
{
	aml_bytes(aml, &byte, 1);
}

static void aml_insert(struct aml *aml, size_t pos, const uint8_t *data, size_t len)
{
	if (!aml_reserve(aml, len))
		return;
	memmove(aml->buf + pos + len, aml->buf + pos, aml->len - pos);
	memcpy(aml->buf + pos, data, len);
	aml->len += len;
}

static void put_le(uint8_t *out, uint64_t value, size_t len)
{
	for (size_t i = 0; i < len; i++)
		out[i] = (uint8_t)(value >> (8 * i));
}

static void aml_le(struct aml *aml, uint64_t value, size_t len)
{
	uint8_t bytes[sizeof(value)];

	put_le(bytes, value, len);
	aml_bytes(aml, bytes, len);
}

/* §20.2.3 ComputationalData: ZeroOp, OneOp or the smallest *Const. Returns bytes used. */
static size_t encode_integer(uint8_t out[1 + sizeof(uint64_t)], uint64_t value)
{
	size_t len;

	if (value == 0 || value == 1) {
		out[0] = value ? AML_ONE_OP : AML_ZERO_OP;
		return 1;
	}
	if (value <= UINT8_MAX) {
		out[0] = AML_BYTE_PREFIX;
		len = sizeof(uint8_t);
	} else if (value <= UINT16_MAX) {
		out[0] = AML_WORD_PREFIX;
		len = sizeof(uint16_t);
	} else if (value <= UINT32_MAX) {
		out[0] = AML_DWORD_PREFIX;
		len = sizeof(uint32_t);
	} else {
		out[0] = AML_QWORD_PREFIX;
		len = sizeof(uint64_t);
	}
	put_le(out + 1, value, len);
	return 1 + len;
}

void aml_integer(struct aml *aml, uint64_t value)
{
	uint8_t bytes[1 + sizeof(value)];

	aml_bytes(aml, bytes, encode_integer(bytes, value));
}

/* §20.2.4: returns the bytes used, or 0 if body is too long for any form. */
static size_t encode_pkglength(uint8_t out[AML_PKGLENGTH_MAX_BYTES], size_t body)
{
	/* Largest length each form holds: 6, 12, 20 and 28 bits. */
	static const size_t max[AML_PKGLENGTH_MAX_BYTES] = { 0x3f, 0xfff, 0xfffff, 0xfffffff };
	size_t n, total;

	for (n = 1; n <= AML_PKGLENGTH_MAX_BYTES; n++)
		if (body <= max[n - 1] - n)
			break;
	if (n > AML_PKGLENGTH_MAX_BYTES)
		return 0;
	total = body + n;
	if (n == 1) {
		out[0] = (uint8_t)total;
		return 1;
	}
	out[0] = (uint8_t)(((n - 1) << AML_PKGLENGTH_COUNT_SHIFT) |
			   (total & AML_PKGLENGTH_LOW_NIBBLE));
	put_le(out + 1, total >> AML_PKGLENGTH_NIBBLE_BITS, n - 1);
	return n;
}

/* §20.2.3 String: StringPrefix, ASCII characters 0x01-0x7f, NullChar. */
void aml_string(struct aml *aml, const char *str)
{
	for (const unsigned char *c = (const unsigned char *)str; *c; c++) {
		if (*c > 0x7f) {
			aml_fail(aml, -EINVAL);
			return;
		}
	}
	aml_byte(aml, AML_STRING_PREFIX);
	aml_bytes(aml, str, strlen(str) + 1);
}

static int hex_digit(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/*
 * The compressed id is a 32-bit value with the first letter in bits 26-30,
 * stored most significant byte first (it was a big-endian EISA field), and
 * always written as a DWordConst so that disassemblers recognise it.
 */
void aml_eisaid(struct aml *aml, const char *id)
{
	uint32_t value = 0;
	uint8_t bytes[1 + sizeof(value)];

	if (strlen(id) != EISAID_LEN) {
		aml_fail(aml, -EINVAL);
		return;
	}
	for (int i = 0; i < EISAID_LEN; i++) {
		bool letter = i < EISAID_LETTERS;
		int v = letter ? (id[i] >= 'A' && id[i] <= 'Z' ? id[i] - EISAID_LETTER_BASE : -1)
			       : hex_digit(id[i]);

		if (v < 0) {
			aml_fail(aml, -EINVAL);
			return;
		}
		value = (value << (letter ? EISAID_LETTER_BITS : EISAID_HEX_BITS)) | (uint32_t)v;
	}
	bytes[0] = AML_DWORD_PREFIX;
	for (size_t i = 0; i < sizeof(value); i++)
		bytes[1 + i] = (uint8_t)(value >> (8 * (sizeof(value) - 1 - i)));
	aml_bytes(aml, bytes, sizeof(bytes));
}

/* §20.2.2 NameSeg: LeadNameChar ('A'-'Z', '_') then NameChars (also digits). */
static bool nameseg_char_ok(char c, bool lead)
{
	if (c == '_' || (c >= 'A' && c <= 'Z'))
		return true;
	return !lead && c >= '0' && c <= '9';
}

/* Copies the segment at p (up to '.' or the end) padded; returns its length or -1. */
static int parse_nameseg(const char *p, char seg[AML_NAMESEG_LEN])
{
	int n = 0;

	while (p[n] && p[n] != '.') {
		if (n == AML_NAMESEG_LEN || !nameseg_char_ok(p[n], n == 0))
			return -1;
		seg[n] = p[n];
		n++;
	}
	if (n == 0)
		return -1;
	memset(seg + n, AML_NAMESEG_PAD, AML_NAMESEG_LEN - n);
	return n;
}

/* Number of valid segments in a dotted path, or -1. An empty path has none. */
static int count_namesegs(const char *p)
{
	char seg[AML_NAMESEG_LEN];
	int count = 0;

	if (!*p)
		return 0;
	for (;;) {
		int n = parse_nameseg(p, seg);

		if (n < 0)
			return -1;
		count++;
		p += n;
		if (!*p)
			return count;
		p++; /* the dot */
	}
}

/* §20.2.2 NameString := RootChar NamePath | PrefixPath NamePath. */
void aml_namestring(struct aml *aml, const char *path)
{
	const char *p = path;
	char seg[AML_NAMESEG_LEN];
	int count;

	if (*p == AML_ROOT_CHAR)
		p++;
	else
		while (*p == AML_PARENT_PREFIX_CHAR)
			p++;
	count = count_namesegs(p);
	if (count < 0 || count > AML_MAX_SEGMENTS || !*path) {
		aml_fail(aml, -EINVAL);
		return;
	}
	/* RootChar and ParentPrefixChar are the ASCII characters themselves. */
	aml_bytes(aml, path, (size_t)(p - path));
	if (count == 0) {
		aml_byte(aml, AML_NULL_NAME);
		return;
	}
	if (count == 2) {
		aml_byte(aml, AML_DUAL_NAME_PREFIX);
	} else if (count > 2) {
		aml_byte(aml, AML_MULTI_NAME_PREFIX);
		aml_byte(aml, (uint8_t)count);
	}
	for (int i = 0; i < count; i++) {
		p += parse_nameseg(p, seg) + 1;
		aml_bytes(aml, seg, sizeof(seg));
	}
}

/* §20.2.5.1 DefName := NameOp NameString DataRefObject. */
void aml_name(struct aml *aml, const char *path)
{
	aml_byte(aml, AML_NAME_OP);
	aml_namestring(aml, path);
}

void aml_name_integer(struct aml *aml, const char *path, uint64_t value)
{
	aml_name(aml, path);
	aml_integer(aml, value);
}

void aml_name_string(struct aml *aml, const char *path, const char *str)
{
	aml_name(aml, path);
	aml_string(aml, str);
}

void aml_name_eisaid(struct aml *aml, const char *path, const char *id)
{
	aml_name(aml, path);
	aml_eisaid(aml, id);
}

/* §20.2.5.3 DefReturn := ReturnOp ArgObject. */
void aml_return(struct aml *aml)
{
	aml_byte(aml, AML_RETURN_OP);
}

void aml_return_integer(struct aml *aml, uint64_t value)
{
	aml_return(aml);
	aml_integer(aml, value);
}

/* Call right after the opcode: the PkgLength is inserted here by aml_end(). */
static struct aml_block aml_open(struct aml *aml, enum aml_block_kind kind)
{
	struct aml_block block = { .start = aml->len, .kind = kind, .depth = aml->depth };

	aml->depth++;
	return block;
}

/* §20.2.5.1 DefScope := ScopeOp PkgLength NameString TermList. */
struct aml_block aml_scope(struct aml *aml, const char *path)
{
	struct aml_block block;

	aml_byte(aml, AML_SCOPE_OP);
	block = aml_open(aml, AML_BLOCK_PLAIN);
	aml_namestring(aml, path);
	return block;
}

/* §20.2.5.2 DefDevice := DeviceOp PkgLength NameString TermList. */
struct aml_block aml_device(struct aml *aml, const char *path)
{
	struct aml_block block;

	aml_byte(aml, AML_EXT_OP_PREFIX);
	aml_byte(aml, AML_DEVICE_OP);
	block = aml_open(aml, AML_BLOCK_PLAIN);
	aml_namestring(aml, path);
	return block;
}

/* §20.2.5.2 DefMethod := MethodOp PkgLength NameString MethodFlags TermList. */
struct aml_block aml_method(struct aml *aml, const char *path, int nr_args, bool serialized)
{
	struct aml_block block;

	if (nr_args < 0 || nr_args > AML_METHOD_MAX_ARGS)
		aml_fail(aml, -EINVAL);
	aml_byte(aml, AML_METHOD_OP);
	block = aml_open(aml, AML_BLOCK_PLAIN);
	aml_namestring(aml, path);
	aml_byte(aml, (uint8_t)((nr_args & AML_METHOD_MAX_ARGS) |
				(serialized ? AML_METHOD_SERIALIZED : 0)));
	return block;
}

/* §20.2.5.4 DefPackage := PackageOp PkgLength NumElements PackageElementList. */
struct aml_block aml_package(struct aml *aml, int nr_elements)
{
	struct aml_block block;

	if (nr_elements < 0 || nr_elements > AML_PACKAGE_MAX_ELEMENTS)
		aml_fail(aml, -EINVAL);
	aml_byte(aml, AML_PACKAGE_OP);
	block = aml_open(aml, AML_BLOCK_PLAIN);
	aml_byte(aml, (uint8_t)nr_elements);
	return block;
}

/*
 * §20.2.5.4 DefBuffer := BufferOp PkgLength BufferSize ByteList. BufferSize
 * comes before the bytes but depends on them, so aml_end() inserts it too.
 */
struct aml_block aml_buffer(struct aml *aml)
{
	aml_byte(aml, AML_BUFFER_OP);
	return aml_open(aml, AML_BLOCK_BUFFER);
}

struct aml_block aml_resource_template(struct aml *aml)
{
	aml_byte(aml, AML_BUFFER_OP);
	return aml_open(aml, AML_BLOCK_RESOURCES);
}

/* §6.4.2.9 End Tag: a checksum byte of 0 means "treat the template as valid". */
static void aml_end_tag(struct aml *aml)
{
	aml_byte(aml, AML_RES_END_TAG);
	aml_byte(aml, 0);
}

void aml_end(struct aml *aml, struct aml_block block)
{
	uint8_t bytes[1 + sizeof(uint64_t)];
	size_t n;

	if (aml->error)
		return;
	if (block.depth != aml->depth - 1 || block.start > aml->len) {
		aml_fail(aml, -EINVAL);
		return;
	}
	aml->depth--;
	if (block.kind == AML_BLOCK_RESOURCES)
		aml_end_tag(aml);
	if (block.kind != AML_BLOCK_PLAIN) {
		n = encode_integer(bytes, aml->len - block.start);
		aml_insert(aml, block.start, bytes, n);
	}
	n = encode_pkglength(bytes, aml->len - block.start);
	if (!n) {
		aml_fail(aml, -E2BIG);
		return;
	}
	aml_insert(aml, block.start, bytes, n);
}

/* §6.4.3.4 32-Bit Fixed Memory Range Descriptor. */
void aml_memory32_fixed(struct aml *aml, bool writable, uint32_t base, uint32_t len)
{
	aml_byte(aml, AML_RES_MEMORY32_FIXED);
	aml_le(aml, AML_RES_MEMORY32_FIXED_LEN, sizeof(uint16_t));
	aml_byte(aml, writable ? AML_RES_MEMORY_WRITABLE : 0);
	aml_le(aml, base, sizeof(base));
	aml_le(aml, len, sizeof(len));
}

/* §6.4.3.6 Extended Interrupt Descriptor, with a table of one interrupt. */
void aml_interrupt(struct aml *aml, unsigned int flags, uint32_t irq)
{
	aml_byte(aml, AML_RES_EXT_IRQ);
	aml_le(aml, AML_RES_EXT_IRQ_LEN, sizeof(uint16_t));
	aml_byte(aml, (uint8_t)flags);
	aml_byte(aml, 1);
	aml_le(aml, irq, sizeof(irq));
}

/* §6.4.2.5 I/O Port Descriptor. */
void aml_io(struct aml *aml, uint16_t min, uint16_t max, uint8_t align, uint8_t len)
{
	aml_byte(aml, AML_RES_IO);
	aml_byte(aml, AML_RES_IO_DECODE16);
	aml_le(aml, min, sizeof(min));
	aml_le(aml, max, sizeof(max));
	aml_byte(aml, align);
	aml_byte(aml, len);
}
