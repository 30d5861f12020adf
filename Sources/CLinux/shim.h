// Linux interfaces Swift's Glibc module leaves out: epoll, and memmem (a GNU extension,
// declared here rather than through _GNU_SOURCE, which would change libc's structures for
// this module only). For the load generator (traffic-bench) only.
#ifndef TRAFFIC_CLINUX_SHIM_H
#define TRAFFIC_CLINUX_SHIM_H

#include <stddef.h>
#include <sys/epoll.h>

extern void *memmem(const void *haystack, size_t haystack_length, const void *needle, size_t needle_length);

/// `memmem`, under a name of its own.
static inline void *traffic_memmem(const void *haystack, size_t haystack_length, const void *needle, size_t needle_length) {
    return memmem(haystack, haystack_length, needle, needle_length);
}

#endif
