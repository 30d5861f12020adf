#ifndef TRAFFIC_CWEBSOCKETS_SHIM_H
#define TRAFFIC_CWEBSOCKETS_SHIM_H
#include <libwebsockets.h>
#endif
