/* Console input: see console.h. Runs on the I/O thread only. */
#include "vmm/console.h"

#include <errno.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "devices/serial.h"

static void console_write_all(int fd, const char *text)
{
	size_t len = strlen(text);

	while (len > 0 && fd >= 0) {
		ssize_t n = write(fd, text, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return;
		text += n;
		len -= (size_t)n;
	}
}

/* Hands pending bytes to the UART; true when all were taken. */
static bool console_flush_pending(struct console *c)
{
	size_t taken = serial_receive(c->serial, c->pending + c->pending_off,
				      c->pending_len - c->pending_off);

	c->pending_off += taken;
	if (c->pending_off < c->pending_len)
		return false;
	c->pending_off = c->pending_len = 0;
	return true;
}

static void console_wait_for_room(struct console *c, bool wait)
{
	if (wait == c->waiting_for_room)
		return;
	c->waiting_for_room = wait;
	if (wait) {
		event_loop_remove(c->loop, c->in_fd);
		event_loop_add(c->loop, serial_input_room_fd(c->serial), EPOLLIN, &c->room_handler);
	} else {
		event_loop_remove(c->loop, serial_input_room_fd(c->serial));
		event_loop_add(c->loop, c->in_fd, EPOLLIN, &c->input_handler);
	}
}

static void console_on_room(void *opaque, uint32_t events)
{
	struct console *c = opaque;
	uint64_t count;

	(void)events;
	if (read(serial_input_room_fd(c->serial), &count, sizeof(count)) < 0 && errno != EAGAIN)
		return;
	if (console_flush_pending(c))
		console_wait_for_room(c, false);
}

static void console_on_input(void *opaque, uint32_t events)
{
	struct console *c = opaque;
	ssize_t n = read(c->in_fd, c->pending, sizeof(c->pending));
	enum escape_action action = ESCAPE_NONE;
	size_t len;

	(void)events;
	if (n < 0 && (errno == EINTR || errno == EAGAIN))
		return;
	if (n <= 0) {
		/* End of input: the guest keeps running without it. */
		event_loop_remove(c->loop, c->in_fd);
		return;
	}
	len = (size_t)n;
	if (c->escapes)
		action = escape_filter(&c->escape, c->pending, &len);
	c->pending_off = 0;
	c->pending_len = len;
	if (action == ESCAPE_HELP)
		console_write_all(c->out_fd, escape_help_text());
	if (action == ESCAPE_QUIT) {
		c->quit(c->quit_opaque);
		return;
	}
	if (!console_flush_pending(c))
		console_wait_for_room(c, true);
}

int console_start(struct console *c, struct event_loop *loop, int in_fd, int out_fd,
		  struct serial *serial, void (*quit)(void *opaque), void *quit_opaque)
{
	memset(c, 0, sizeof(*c));
	c->in_fd = in_fd;
	c->out_fd = out_fd;
	c->serial = serial;
	c->loop = loop;
	c->quit = quit;
	c->quit_opaque = quit_opaque;
	c->escapes = isatty(in_fd);
	c->input_handler = (struct event_handler){ console_on_input, c };
	c->room_handler = (struct event_handler){ console_on_room, c };
	return event_loop_add(loop, in_fd, EPOLLIN, &c->input_handler);
}
