// RFC 6455 §5.1: a server must close the connection when a client sends an unmasked frame.
// libwebsockets 4.1's server parser accepts such frames without a word and offers no way to ask
// whether a frame was masked, so this guard watches the bytes lws reads from each WebSocket
// connection: lws reads plaintext sockets only through recv(2), which this file interposes.
// Every other descriptor (Redis, Kafka, HTTP) passes straight through after one atomic load.
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include "CWebsockets.h"

#define GUARD_MAX_FD 65536

// Per descriptor: watched (set and cleared on the lws service thread; read by any thread in
// recv), and the frame parser state (touched only by the thread that owns the connection).
struct frame_parser {
    uint8_t header[14];
    uint8_t have;        // header bytes collected
    uint8_t violated;    // an unmasked frame was seen
    uint64_t remaining;  // payload bytes still to skip
};

static _Atomic uint8_t watched[GUARD_MAX_FD];
static struct frame_parser parsers[GUARD_MAX_FD];

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

static void feed(struct frame_parser *p, const uint8_t *bytes, size_t count) {
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
        if (!(p->header[1] & 0x80)) { p->violated = 1; return; }
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

ssize_t recv(int fd, void *buffer, size_t length, int flags) {
    ssize_t n = real_recv()(fd, buffer, length, flags);
    if (n > 0 && fd >= 0 && fd < GUARD_MAX_FD && !(flags & MSG_PEEK)
        && atomic_load_explicit(&watched[fd], memory_order_acquire)) {
        feed(&parsers[fd], (const uint8_t *)buffer, (size_t)n);
    }
    return n;
}

void traffic_frame_guard_watch(int fd) {
    if (fd < 0 || fd >= GUARD_MAX_FD) return;
    memset(&parsers[fd], 0, sizeof parsers[fd]);
    atomic_store_explicit(&watched[fd], 1, memory_order_release);
}

void traffic_frame_guard_forget(int fd) {
    if (fd < 0 || fd >= GUARD_MAX_FD) return;
    atomic_store_explicit(&watched[fd], 0, memory_order_release);
}

int traffic_frame_guard_violated(int fd) {
    if (fd < 0 || fd >= GUARD_MAX_FD) return 0;
    return parsers[fd].violated;
}
