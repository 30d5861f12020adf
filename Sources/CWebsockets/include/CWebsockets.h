#ifndef TRAFFIC_CWEBSOCKETS_SHIM_H
#define TRAFFIC_CWEBSOCKETS_SHIM_H
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <libwebsockets.h>
#include <ev.h>
#include <malloc.h>

/// Unmasked-frame detection on WebSocket server connections (frame_guard.c). Watch each accepted
/// descriptor (HTTP mode), switch it to frame mode when lws upgrades it, forget it when it closes.
/// A violation wakes the context (`lws_cancel_service`); its service thread takes the violating
/// descriptors with `traffic_frame_guard_take` and closes them with 1002. Descriptors at or
/// above TRAFFIC_FRAME_GUARD_MAX_FD cannot be watched (watch returns -1).
#define TRAFFIC_FRAME_GUARD_MAX_FD (1 << 20)
int traffic_frame_guard_watch(int fd, struct lws_context *context);
int traffic_frame_guard_upgrade(int fd);
void traffic_frame_guard_forget(int fd);
int traffic_frame_guard_violated(int fd);
int traffic_frame_guard_take(struct lws_context *context, int *fds, int capacity);
/// A context's reports are delivered only between these two (call stopping before destroying it).
void traffic_frame_guard_context_started(struct lws_context *context);
void traffic_frame_guard_context_stopping(struct lws_context *context);

/// LWS_PRE is a computed macro Swift cannot import.
static inline size_t traffic_lws_pre(void) { return LWS_PRE; }

/// Creates a server context on `iface:port` (iface NULL: all interfaces), with a header buffer
/// of `header_buffer_bytes` per request being read. The creation info is a
/// large struct of unions: zeroing it here keeps every field lws does not need at its default.
/// `ping_seconds`/`hangup_seconds` (0: lws defaults) set the idle policy: a connection silent for
/// `ping_seconds` gets a PING, one without valid traffic for `hangup_seconds` is closed. The
/// policy is copied into `policy_storage`, which must outlive the context.
static inline struct lws_context *
traffic_lws_create_server(const char *iface, int port, const struct lws_protocols *protocols, void *user,
                          uint16_t ping_seconds, uint16_t hangup_seconds, lws_retry_bo_t *policy_storage,
                          struct ev_loop *loop, uint16_t header_buffer_bytes) {
    struct lws_context_creation_info info;
    void *loops[1] = { loop };
    memset(&info, 0, sizeof info);
    info.iface = iface;
    // The buffer one request's headers are parsed into (allocated per request while parsing).
    info.max_http_header_data = header_buffer_bytes;
    // At most this many requests hold a header buffer at once (the rest wait to be read), so
    // clients that trickle headers cannot pin more than pool × buffer bytes.
    info.max_http_header_pool = 4096;
    info.port = port;
    info.protocols = protocols;
    info.user = user;
    info.options = LWS_SERVER_OPTION_VALIDATE_UTF8 | LWS_SERVER_OPTION_DISABLE_IPV6 | LWS_SERVER_OPTION_LIBEV;
    info.foreign_loops = loops;
    if (policy_storage && ping_seconds && hangup_seconds) {
        memset(policy_storage, 0, sizeof *policy_storage);
        policy_storage->secs_since_valid_ping = ping_seconds;
        policy_storage->secs_since_valid_hangup = hangup_seconds;
        info.retry_and_idle_policy = policy_storage;
    }
    // The per-connection receive buffer; inbound frames are reassembled above it.
    info.pt_serv_buf_size = 16 * 1024;
    return lws_create_context(&info);
}

/// Creates a client-only context (no listening socket).
static inline struct lws_context *
traffic_lws_create_client(const struct lws_protocols *protocols, void *user, struct ev_loop *loop) {
    struct lws_context_creation_info info;
    void *loops[1] = { loop };
    memset(&info, 0, sizeof info);
    info.port = CONTEXT_PORT_NO_LISTEN;
    info.protocols = protocols;
    info.user = user;
    info.options = LWS_SERVER_OPTION_DISABLE_IPV6 | LWS_SERVER_OPTION_LIBEV;
    info.foreign_loops = loops;
    info.fd_limit_per_thread = 0;
    // Room for long request targets (a token in ?token=) in the handshake, which lws builds in
    // the per-thread service buffer.
    info.max_http_header_data = 32 * 1024;
    info.pt_serv_buf_size = 32 * 1024;
    return lws_create_context(&info);
}

/// Opens a plain-TCP WebSocket client connection; `tag` comes back from lws_get_opaque_user_data.
static inline struct lws *
traffic_lws_client_connect(struct lws_context *context, const char *address, int port, const char *path,
                           const char *origin, const char *protocol_name, void *tag) {
    struct lws_client_connect_info info;
    memset(&info, 0, sizeof info);
    info.context = context;
    info.address = address;
    info.port = port;
    info.path = path;
    info.host = address;
    info.origin = origin;
    info.local_protocol_name = protocol_name;
    info.opaque_user_data = tag;
    return lws_client_connect_via_info(&info);
}

/// The event loop a context runs on: libev on epoll, through lws' libev plugin, so a wake-up
/// costs per ready socket instead of per open socket (lws' own loop polls every descriptor).
static inline struct ev_loop *traffic_ev_loop_new(void) { return ev_loop_new(EVBACKEND_EPOLL | EVFLAG_NOENV); }
static inline void traffic_ev_run(struct ev_loop *loop) { ev_run(loop, 0); }
static inline void traffic_ev_break(struct ev_loop *loop) { ev_break(loop, EVBREAK_ALL); }
static inline void traffic_ev_loop_destroy(struct ev_loop *loop) { ev_loop_destroy(loop); }

/// Returns freed heap pages to the system (glibc keeps them otherwise).
static inline int traffic_malloc_trim(void) { return malloc_trim(0); }

#endif
