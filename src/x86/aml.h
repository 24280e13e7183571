/*
 * A small builder for ACPI Machine Language (AML), the byte code of the
 * DSDT. It knows the few constructs Vireo's DSDT needs: names bound to
 * integers, strings and EISA ids, packages, scopes, devices, simple methods
 * and resource templates (ACPI 6.3 chapter 20 for AML, 6.4 for resources).
 *
 * The builder is a growable byte buffer. Errors are sticky: the first one
 * (-ENOMEM, -EINVAL for a malformed name) is kept in aml->error and every
 * later call does nothing, so a caller emits a whole tree and checks
 * aml_error() once at the end.
 *
 * Objects that carry a PkgLength (Scope, Device, Method, Package, Buffer)
 * are opened with a call that returns a struct aml_block and closed with
 * aml_end(); blocks nest like the ASL braces they stand for:
 *
 *	struct aml_block sb = aml_scope(aml, "\\_SB");
 *	struct aml_block dev = aml_device(aml, "COM1");
 *	aml_name_eisaid(aml, "_HID", "PNP0501");
 *	aml_end(aml, dev);
 *	aml_end(aml, sb);
 */
#ifndef VIREO_X86_AML_H
#define VIREO_X86_AML_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct aml {
	uint8_t *buf;
	size_t len;
	size_t cap;
	int depth; /* blocks opened and not yet ended */
	int error; /* first error as a negative errno; 0 while all is well */
};

enum aml_block_kind {
	AML_BLOCK_PLAIN,    /* Scope, Device, Method, Package: PkgLength only */
	AML_BLOCK_BUFFER,   /* Buffer: PkgLength, then the buffer's size */
	AML_BLOCK_RESOURCES /* a Buffer that ends with an End Tag descriptor */
};

struct aml_block {
	size_t start; /* where the PkgLength goes once the body is known */
	enum aml_block_kind kind;
	int depth; /* aml->depth when opened: ends must come innermost first */
};

/* Flags of an Extended Interrupt descriptor (ACPI 6.3 §6.4.3.6, byte 3). */
#define AML_IRQ_PRODUCER 0x0
#define AML_IRQ_CONSUMER 0x1
#define AML_IRQ_LEVEL 0x0
#define AML_IRQ_EDGE 0x2
#define AML_IRQ_ACTIVE_HIGH 0x0
#define AML_IRQ_ACTIVE_LOW 0x4
#define AML_IRQ_EXCLUSIVE 0x0
#define AML_IRQ_SHARED 0x8

void aml_init(struct aml *aml);
void aml_destroy(struct aml *aml);
/* 0, the first error any call met, or -EINVAL while a block is still open. */
int aml_error(const struct aml *aml);

/* Raw bytes, for what the helpers below do not cover. */
void aml_bytes(struct aml *aml, const void *data, size_t len);
void aml_byte(struct aml *aml, uint8_t byte);

/* Data objects: the shortest encoding of an integer, a NUL-terminated ASCII string. */
void aml_integer(struct aml *aml, uint64_t value);
void aml_string(struct aml *aml, const char *str);
/* A compressed EISA id such as "PNP0501": three letters A-Z, four hex digits. */
void aml_eisaid(struct aml *aml, const char *id);
/*
 * A NameString: optional root ('\') or parent ('^') prefixes, then segments
 * separated by dots, e.g. "\\_SB.COM1". Segments shorter than four
 * characters are padded with '_' as ASL does ("_SB" is "_SB_").
 */
void aml_namestring(struct aml *aml, const char *path);

/* Name (path, ...): the caller appends exactly one data object next. */
void aml_name(struct aml *aml, const char *path);
void aml_name_integer(struct aml *aml, const char *path, uint64_t value);
void aml_name_string(struct aml *aml, const char *path, const char *str);
void aml_name_eisaid(struct aml *aml, const char *path, const char *id);

/* Return (...): the caller appends the returned object next. */
void aml_return(struct aml *aml);
void aml_return_integer(struct aml *aml, uint64_t value);

/* Blocks; each is closed by aml_end(), innermost first (else -EINVAL). */
struct aml_block aml_scope(struct aml *aml, const char *path);
struct aml_block aml_device(struct aml *aml, const char *path);
/* nr_args 0..7. */
struct aml_block aml_method(struct aml *aml, const char *path, int nr_args, bool serialized);
/* nr_elements 0..255: the caller appends that many data objects. */
struct aml_block aml_package(struct aml *aml, int nr_elements);
struct aml_block aml_buffer(struct aml *aml);
/* A Buffer of resource descriptors; aml_end() appends the End Tag. */
struct aml_block aml_resource_template(struct aml *aml);
void aml_end(struct aml *aml, struct aml_block block);

/* Resource descriptors, inside aml_resource_template(). */
void aml_memory32_fixed(struct aml *aml, bool writable, uint32_t base, uint32_t len);
/* flags: AML_IRQ_* ORed together; one interrupt number (a GSI on x86). */
void aml_interrupt(struct aml *aml, unsigned int flags, uint32_t irq);
/* IO (Decode16, min, max, align, len). */
void aml_io(struct aml *aml, uint16_t min, uint16_t max, uint8_t align, uint8_t len);

#endif
