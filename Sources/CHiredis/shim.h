#ifndef TRAFFIC_CHIREDIS_SHIM_H
#define TRAFFIC_CHIREDIS_SHIM_H
#include <sys/time.h>
#include <hiredis/hiredis.h>
#include <hiredis/read.h>

/// Removes the socket read/write timeout (a pub/sub connection waits for pushes indefinitely).
static inline int redisSetTimeoutZero(redisContext *c) {
    struct timeval tv = {0, 0};
    return redisSetTimeout(c, tv);
}
#endif
