/*
 * The host side of the guest console: reads the user's input (stdin), takes
 * out the Ctrl-A escape keys, and feeds the rest to the serial port without
 * dropping any: when the UART's input buffer is full, stdin is no longer
 * watched until the guest has drained it.
 */
#ifndef VIREO_VMM_CONSOLE_H
#define VIREO_VMM_CONSOLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vmm/event_loop.h"
#include "vmm/terminal.h"

struct serial;

#define CONSOLE_CHUNK 256

struct console {
	int in_fd;
	int out_fd;	      /* where help text goes; the serial output fd */
	bool escapes;	      /* the input is a terminal: Ctrl-A keys are ours */
	struct serial *serial;
	struct event_loop *loop;
	struct escape_state escape;
	void (*quit)(void *opaque); /* Ctrl-A x */
	void *quit_opaque;
	uint8_t pending[CONSOLE_CHUNK]; /* read from in_fd, not yet taken by the UART */
	size_t pending_off, pending_len;
	bool waiting_for_room;
	struct event_handler input_handler;
	struct event_handler room_handler;
};

/* Starts watching in_fd on loop. */
int console_start(struct console *console, struct event_loop *loop, int in_fd, int out_fd,
		  struct serial *serial, void (*quit)(void *opaque), void *quit_opaque);

#endif
