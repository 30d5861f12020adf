// The few OpenSSL (libcrypto) calls the product makes: SHA-256, HMAC-SHA256, a constant-time
// comparison and the error queue's text. Wrapped once, by the Digest module.
#ifndef TRAFFIC_COPENSSL_SHIM_H
#define TRAFFIC_COPENSSL_SHIM_H

#include <stddef.h>
#include <openssl/hmac.h>
#include <openssl/evp.h>
#include <openssl/crypto.h>
#include <openssl/err.h>

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

/// The oldest error OpenSSL queued on this thread (removed from the queue), 0 when none; its
/// text goes to `text` (at most `capacity` bytes, NUL-terminated).
static inline unsigned long traffic_crypto_take_error(char *text, size_t capacity) {
    unsigned long code = ERR_get_error();
    if (capacity > 0) {
        text[0] = 0;
        if (code != 0) ERR_error_string_n(code, text, capacity);
    }
    ERR_clear_error();
    return code;
}

/// Constant-time comparison: 1 when equal.
static inline int traffic_memequal(const void *a, const void *b, size_t length) {
    return CRYPTO_memcmp(a, b, length) == 0;
}

#endif
