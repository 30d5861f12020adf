#ifndef TRAFFIC_CWEBSOCKETS_SHIM_H
#define TRAFFIC_CWEBSOCKETS_SHIM_H
#include <string.h>
#include <libwebsockets.h>

/// LWS_PRE is a computed macro Swift cannot import.
static inline size_t traffic_lws_pre(void) { return LWS_PRE; }

/// Creates a server context on `iface:port` (iface NULL: all interfaces). The creation info is a
/// large struct of unions: zeroing it here keeps every field lws does not need at its default.
static inline struct lws_context *
traffic_lws_create_server(const char *iface, int port, const struct lws_protocols *protocols, void *user) {
    struct lws_context_creation_info info;
    memset(&info, 0, sizeof info);
    info.iface = iface;
    info.port = port;
    info.protocols = protocols;
    info.user = user;
    info.options = LWS_SERVER_OPTION_VALIDATE_UTF8;
    return lws_create_context(&info);
}
#endif
