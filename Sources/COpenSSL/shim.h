// The few OpenSSL (libcrypto) calls the product makes: SHA-256, HMAC-SHA256 and a constant-time
// comparison. Wrapped once, by the Digest module.
#ifndef TRAFFIC_COPENSSL_SHIM_H
#define TRAFFIC_COPENSSL_SHIM_H

#include <stddef.h>
#include <openssl/hmac.h>
#include <openssl/evp.h>
#include <openssl/crypto.h>

/// HMAC-SHA256: writes 32 bytes to `out`; 0 on success.
static inline int
traffic_hmac_sha256(const void *key, int key_length, const unsigned char *data, size_t length, unsigned char *out) {
    unsigned int out_length = 32;
    return HMAC(EVP_sha256(), key, key_length, data, length, out, &out_length) != NULL && out_length == 32 ? 0 : -1;
}

/// SHA-256: writes 32 bytes to `out`; 0 on success.
static inline int traffic_sha256(const void *data, size_t length, unsigned char *out) {
    unsigned int out_length = 32;
    return EVP_Digest(data, length, out, &out_length, EVP_sha256(), NULL) == 1 && out_length == 32 ? 0 : -1;
}

/// Constant-time comparison: 1 when equal.
static inline int traffic_memequal(const void *a, const void *b, size_t length) {
    return CRYPTO_memcmp(a, b, length) == 0;
}

#endif
