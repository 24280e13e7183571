/*
 * The command line: `vireo run [options]`, `vireo check`, --help, --version.
 */
#ifndef VIREO_VMM_OPTIONS_H
#define VIREO_VMM_OPTIONS_H

#include <stddef.h>
#include <stdint.h>

#include "vmm/config.h"

enum options_command {
	COMMAND_RUN,
	COMMAND_CHECK,
	COMMAND_HELP,
	COMMAND_VERSION,
};

/*
 * Parses argv into cfg (strings point into argv). Returns 0 or -EINVAL with
 * one sentence in err (without the "vireo: " prefix).
 */
int options_parse(int argc, char **argv, enum options_command *command, struct vm_config *cfg,
		  char *err, size_t err_len);

/* "512M", "2G", "1048576K", "64" (MiB): bytes, or -EINVAL. */
int options_parse_size(const char *text, uint64_t *bytes);

void options_print_help(void);

#endif
