/*
 * The host side of the guest console: reads the user's input (stdin), takes
 * out the Ctrl-A escape keys, and feeds the rest to the console device (the
 * serial port or virtio-console) without dropping any: bytes the device
 * cannot take yet wait here, and while this buffer is full stdin is no
 * longer watched, until the device signals that it has room again.
 */
#ifndef VIREO_VMM_CONSOLE_H
#define VIREO_VMM_CONSOLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vmm/event_loop.h"
#include "vmm/terminal.h"

struct serial;
struct virtio_console;

#define CONSOLE_CHUNK 256

/* The device the input goes to. */
struct console_input {
	/* Takes what it can of buf now and returns how many bytes; fewer than len: full. */
	size_t (*receive)(void *dev, const uint8_t *buf, size_t len);
	int room_fd; /* eventfd the device signals when it can take more after a short receive */
	void *dev;
};

struct console_input console_input_serial(struct serial *serial);
struct console_input console_input_virtio(struct virtio_console *vcon);

struct console {
	int in_fd;
	int out_fd;	      /* where help text goes: the console output fd */
	bool escapes;	      /* the input is a terminal: Ctrl-A keys are ours */
	struct console_input input;
	struct event_loop *loop;
	struct escape_state escape;
	void (*quit)(void *opaque); /* Ctrl-A x */
	void *quit_opaque;
	uint8_t pending[CONSOLE_CHUNK]; /* read from in_fd, not yet taken by the device */
	size_t pending_len;
	bool input_closed;		  /* in_fd reached its end */
	bool input_watched, room_watched; /* what is in the loop's epoll set */
	struct event_handler input_handler;
	struct event_handler room_handler;
};

/* Starts watching in_fd on loop; *input is copied. */
int console_start(struct console *console, struct event_loop *loop, int in_fd, int out_fd,
		  const struct console_input *input, void (*quit)(void *opaque),
		  void *quit_opaque);

#endif
