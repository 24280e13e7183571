/*
 * vireo: parse the command line and run what it asks for.
 */
#include <stdio.h>

#include "vmm/options.h"
#include "vmm/vm.h"

int main(int argc, char **argv)
{
	enum options_command command;
	struct vm_config cfg;
	char err[256];

	if (options_parse(argc, argv, &command, &cfg, err, sizeof(err)) < 0) {
		fprintf(stderr, "vireo: %s\n", err);
		return VM_EXIT_ERROR;
	}
	switch (command) {
	case COMMAND_HELP:
		options_print_help();
		return 0;
	case COMMAND_VERSION:
		printf("vireo %s\n", VIREO_VERSION);
		return 0;
	case COMMAND_CHECK:
		return vm_check_kvm();
	case COMMAND_RUN:
		return (int)vm_run(&cfg);
	}
	return VM_EXIT_ERROR;
}
