// RFC 6455 §5.1: a server must close the connection when a client sends an unmasked frame.
// libwebsockets 4.1's server parser accepts such frames without a word and offers no way to ask
// whether a frame was masked, so this guard watches the bytes lws reads from each server
// connection: lws reads plaintext sockets only through recv(2), which this file interposes.
// Every other descriptor (Redis, Kafka, files) passes straight through after one atomic load.
//
// A connection is watched from its accept, first as HTTP: the bytes after the latest end of a
// header block ("\r\n\r\n") are kept (a client must wait for the 101 before sending frames, so
// after the upgrade request they can only be frames sent too early). When lws upgrades the
// connection, those bytes and everything after are parsed as WebSocket frames. A frame without
// the mask marks the descriptor violated and wakes the connection's lws context, whose service
// thread closes it with 1002 — also for control frames (PING, CLOSE) lws answers by itself.
#define _GNU_SOURCE
#include <dlfcn.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include "CWebsockets.h"

#define EARLY_BYTES 256

enum guard_mode { GUARD_OFF = 0, GUARD_HTTP = 1, GUARD_FRAMES = 2 };

// Per descriptor: the mode (set on the lws service thread, read by any thread in recv), and the
// parser state (touched only by the lws service thread that owns the connection).
struct frame_parser {
    struct lws_context *context;
    uint8_t header[14];
    uint8_t have;             // frame header bytes collected
    uint8_t violated;         // an unmasked frame was seen
    uint8_t crlf;             // HTTP mode: how much of "\r\n\r\n" was matched
    uint64_t remaining;       // frame payload bytes still to skip
    uint16_t early_count;     // HTTP mode: bytes after the latest header block
    uint8_t early[EARLY_BYTES];
};

static _Atomic uint8_t modes[TRAFFIC_FRAME_GUARD_MAX_FD];
static struct frame_parser *parsers[TRAFFIC_FRAME_GUARD_MAX_FD];

// Violations waiting for their context's service thread, and the contexts alive to take them
// (a report never wakes a context that is being or has been destroyed).
static pthread_mutex_t pending_lock = PTHREAD_MUTEX_INITIALIZER;
static struct lws_context *live_contexts[256];
static int live_count;
static int pending_fds[1024];
static struct lws_context *pending_contexts[1024];
static _Atomic int pending_count;

typedef ssize_t (*recv_fn)(int, void *, size_t, int);
static _Atomic(recv_fn) real_recv_fn;

static recv_fn real_recv(void) {
    recv_fn fn = atomic_load_explicit(&real_recv_fn, memory_order_acquire);
    if (!fn) {
        fn = (recv_fn)dlsym(RTLD_NEXT, "recv");
        atomic_store_explicit(&real_recv_fn, fn, memory_order_release);
    }
    return fn;
}

static int is_live(struct lws_context *context) {
    for (int i = 0; i < live_count; i++) if (live_contexts[i] == context) return 1;
    return 0;
}

static void report(int fd, struct frame_parser *p) {
    p->violated = 1;
    pthread_mutex_lock(&pending_lock);
    if (p->context && is_live(p->context)) {
        int n = atomic_load(&pending_count);
        if (n < 1024) {
            pending_fds[n] = fd;
            pending_contexts[n] = p->context;
            atomic_store(&pending_count, n + 1);
        }
        lws_cancel_service(p->context);
    }
    pthread_mutex_unlock(&pending_lock);
}

void traffic_frame_guard_context_started(struct lws_context *context) {
    pthread_mutex_lock(&pending_lock);
    if (live_count < 256 && !is_live(context)) live_contexts[live_count++] = context;
    pthread_mutex_unlock(&pending_lock);
}

void traffic_frame_guard_context_stopping(struct lws_context *context) {
    pthread_mutex_lock(&pending_lock);
    for (int i = 0; i < live_count; i++) {
        if (live_contexts[i] == context) { live_contexts[i] = live_contexts[--live_count]; break; }
    }
    int n = atomic_load(&pending_count), kept = 0;
    for (int i = 0; i < n; i++) {
        if (pending_contexts[i] == context) continue;
        pending_fds[kept] = pending_fds[i];
        pending_contexts[kept++] = pending_contexts[i];
    }
    atomic_store(&pending_count, kept);
    pthread_mutex_unlock(&pending_lock);
    // Its descriptors are closed with it: stop watching them (they will be reused).
    for (int fd = 0; fd < TRAFFIC_FRAME_GUARD_MAX_FD; fd++) {
        if (parsers[fd] && parsers[fd]->context == context) atomic_store(&modes[fd], GUARD_OFF);
    }
}

static void feed_frames(int fd, struct frame_parser *p, const uint8_t *bytes, size_t count) {
    size_t i = 0;
    while (i < count && !p->violated) {
        if (p->remaining > 0) {
            size_t skip = count - i < p->remaining ? count - i : (size_t)p->remaining;
            p->remaining -= skip;
            i += skip;
            continue;
        }
        p->header[p->have++] = bytes[i++];
        if (p->have < 2) continue;
        if (!(p->header[1] & 0x80)) { report(fd, p); return; }
        uint8_t len7 = p->header[1] & 0x7F;
        uint8_t need = 2 + (len7 == 126 ? 2 : len7 == 127 ? 8 : 0) + 4;
        if (p->have < need) continue;
        uint64_t length = len7;
        if (len7 == 126) length = ((uint64_t)p->header[2] << 8) | p->header[3];
        if (len7 == 127) {
            length = 0;
            for (int k = 2; k < 10; k++) length = (length << 8) | p->header[k];
        }
        p->remaining = length;
        p->have = 0;
    }
}

static void feed_http(struct frame_parser *p, const uint8_t *bytes, size_t count) {
    static const uint8_t end[4] = {13, 10, 13, 10};
    for (size_t i = 0; i < count; i++) {
        uint8_t b = bytes[i];
        if (p->early_count < EARLY_BYTES) p->early[p->early_count] = b;
        if (p->early_count < UINT16_MAX) p->early_count++;
        p->crlf = b == end[p->crlf] ? p->crlf + 1 : (b == 13 ? 1 : 0);
        if (p->crlf == 4) { p->crlf = 0; p->early_count = 0; } // a header block ended: keep what follows
    }
}

ssize_t recv(int fd, void *buffer, size_t length, int flags) {
    ssize_t n = real_recv()(fd, buffer, length, flags);
    if (n > 0 && fd >= 0 && fd < TRAFFIC_FRAME_GUARD_MAX_FD && !(flags & MSG_PEEK)) {
        uint8_t mode = atomic_load_explicit(&modes[fd], memory_order_acquire);
        if (mode == GUARD_HTTP) feed_http(parsers[fd], (const uint8_t *)buffer, (size_t)n);
        else if (mode == GUARD_FRAMES) feed_frames(fd, parsers[fd], (const uint8_t *)buffer, (size_t)n);
    }
    return n;
}

int traffic_frame_guard_watch(int fd, struct lws_context *context) {
    if (fd < 0 || fd >= TRAFFIC_FRAME_GUARD_MAX_FD) return -1;
    if (!parsers[fd]) {
        parsers[fd] = calloc(1, sizeof(struct frame_parser));
        if (!parsers[fd]) return -1;
    }
    memset(parsers[fd], 0, offsetof(struct frame_parser, early));
    parsers[fd]->context = context;
    atomic_store_explicit(&modes[fd], GUARD_HTTP, memory_order_release);
    return 0;
}

int traffic_frame_guard_upgrade(int fd) {
    if (fd < 0 || fd >= TRAFFIC_FRAME_GUARD_MAX_FD || atomic_load(&modes[fd]) != GUARD_HTTP) return -1;
    struct frame_parser *p = parsers[fd];
    atomic_store_explicit(&modes[fd], GUARD_FRAMES, memory_order_release);
    if (p->early_count > EARLY_BYTES) { report(fd, p); return 0; } // frames sent before the 101, more than can be checked
    feed_frames(fd, p, p->early, p->early_count);
    return 0;
}

void traffic_frame_guard_forget(int fd) {
    if (fd < 0 || fd >= TRAFFIC_FRAME_GUARD_MAX_FD) return;
    atomic_store_explicit(&modes[fd], GUARD_OFF, memory_order_release);
}

int traffic_frame_guard_violated(int fd) {
    if (fd < 0 || fd >= TRAFFIC_FRAME_GUARD_MAX_FD || !parsers[fd]) return 0;
    return atomic_load(&modes[fd]) == GUARD_FRAMES && parsers[fd]->violated;
}

int traffic_frame_guard_take(struct lws_context *context, int *fds, int capacity) {
    if (atomic_load(&pending_count) == 0) return 0;
    int taken = 0;
    pthread_mutex_lock(&pending_lock);
    int n = atomic_load(&pending_count), kept = 0;
    for (int i = 0; i < n; i++) {
        if (pending_contexts[i] == context && taken < capacity) {
            fds[taken++] = pending_fds[i];
        } else {
            pending_fds[kept] = pending_fds[i];
            pending_contexts[kept++] = pending_contexts[i];
        }
    }
    atomic_store(&pending_count, kept);
    pthread_mutex_unlock(&pending_lock);
    return taken;
}
