/* Console input: see console.h. Runs on the I/O thread only. */
#include "vmm/console.h"

#include <errno.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "devices/serial.h"
#include "virtio/console.h"

static size_t serial_input_receive(void *dev, const uint8_t *buf, size_t len)
{
	return serial_receive(dev, buf, len);
}

struct console_input console_input_serial(struct serial *serial)
{
	return (struct console_input){ serial_input_receive, serial_input_room_fd(serial), serial };
}

static size_t virtio_input_receive(void *dev, const uint8_t *buf, size_t len)
{
	return virtio_console_receive(dev, buf, len);
}

struct console_input console_input_virtio(struct virtio_console *vcon)
{
	return (struct console_input){ virtio_input_receive, virtio_console_room_fd(vcon), vcon };
}

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

/* Offers the pending bytes to the device; what it does not take stays pending. */
static void console_flush_pending(struct console *c)
{
	size_t taken;

	if (c->pending_len == 0)
		return;
	taken = c->input.receive(c->input.dev, c->pending, c->pending_len);
	memmove(c->pending, c->pending + taken, c->pending_len - taken);
	c->pending_len -= taken;
}

/*
 * Watches in_fd while pending has space (so Ctrl-A x still works while the
 * device is full) and the room fd while bytes wait for the device.
 */
static void console_update_watches(struct console *c)
{
	bool want_input = !c->input_closed && c->pending_len < sizeof(c->pending);
	bool want_room = c->pending_len > 0;

	if (want_input != c->input_watched) {
		if (want_input)
			event_loop_add(c->loop, c->in_fd, EPOLLIN, &c->input_handler);
		else
			event_loop_remove(c->loop, c->in_fd);
		c->input_watched = want_input;
	}
	if (want_room != c->room_watched) {
		if (want_room)
			event_loop_add(c->loop, c->input.room_fd, EPOLLIN, &c->room_handler);
		else
			event_loop_remove(c->loop, c->input.room_fd);
		c->room_watched = want_room;
	}
}

static void console_on_room(void *opaque, uint32_t events)
{
	struct console *c = opaque;
	uint64_t count;

	(void)events;
	if (read(c->input.room_fd, &count, sizeof(count)) < 0 && errno != EAGAIN)
		return;
	console_flush_pending(c);
	console_update_watches(c);
}

static void console_on_input(void *opaque, uint32_t events)
{
	struct console *c = opaque;
	uint8_t *fresh = c->pending + c->pending_len;
	ssize_t n = read(c->in_fd, fresh, sizeof(c->pending) - c->pending_len);
	enum escape_action action = ESCAPE_NONE;
	size_t len;

	(void)events;
	if (n < 0 && (errno == EINTR || errno == EAGAIN))
		return;
	if (n <= 0) {
		/* End of input: the guest keeps running without it. */
		c->input_closed = true;
		console_update_watches(c);
		return;
	}
	len = (size_t)n;
	if (c->escapes)
		action = escape_filter(&c->escape, fresh, &len);
	c->pending_len += len;
	if (action == ESCAPE_HELP)
		console_write_all(c->out_fd, escape_help_text());
	if (action == ESCAPE_QUIT) {
		c->quit(c->quit_opaque);
		return;
	}
	console_flush_pending(c);
	console_update_watches(c);
}

int console_start(struct console *c, struct event_loop *loop, int in_fd, int out_fd,
		  const struct console_input *input, void (*quit)(void *opaque),
		  void *quit_opaque)
{
	int err;

	memset(c, 0, sizeof(*c));
	c->in_fd = in_fd;
	c->out_fd = out_fd;
	c->input = *input;
	c->loop = loop;
	c->quit = quit;
	c->quit_opaque = quit_opaque;
	c->escapes = isatty(in_fd);
	c->input_handler = (struct event_handler){ console_on_input, c };
	c->room_handler = (struct event_handler){ console_on_room, c };
	err = event_loop_add(loop, in_fd, EPOLLIN, &c->input_handler);
	c->input_watched = err == 0;
	return err;
}
