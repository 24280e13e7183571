/*
 * The error sentences of parsers and openers: they fill a caller's buffer
 * (err, err_len) with one sentence that names the culprit, and the caller
 * prints it once, prefixed with "vireo: ".
 */
#ifndef VIREO_VMM_ERRMSG_H
#define VIREO_VMM_ERRMSG_H

#include <stdbool.h>
#include <stddef.h>

/* Formats the sentence into err; returns -EINVAL, so a parser can "return errmsg(...)". */
int errmsg(char *err, size_t err_len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Parses the value of "KEY=on|off" in OPTION (e.g. "--disk readonly=on") into *out. */
int errmsg_on_off(const char *option, const char *key, const char *value, bool *out, char *err,
		  size_t err_len);

#endif
