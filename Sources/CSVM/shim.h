#ifndef TRAFFIC_CSVM_SHIM_H
#define TRAFFIC_CSVM_SHIM_H
#include <stdlib.h>
#include <libsvm/svm.h>

/// libsvm prints progress to stdout by default; this silences it (a function pointer Swift
/// could pass itself, kept here beside the library).
static void traffic_svm_quiet(const char *message) { (void)message; }
static inline void traffic_svm_silence(void) { svm_set_print_string_function(traffic_svm_quiet); }
/// libsvm's version number (an extern int, read once here).
static inline int traffic_svm_version(void) { return libsvm_version; }
#endif
