#include "server/b64.h"

static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

size_t b64_encoded_len(size_t n) { return (n + 2) / 3 * 4; }

void b64_encode(const uint8_t *in, size_t n, char *out) {
    size_t o = 0, i = 0;
    for (; i + 3 <= n; i += 3) {
        const uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
        out[o++] = alphabet[v >> 18 & 63];
        out[o++] = alphabet[v >> 12 & 63];
        out[o++] = alphabet[v >> 6 & 63];
        out[o++] = alphabet[v & 63];
    }
    if (i < n) {
        const uint32_t v = (uint32_t)in[i] << 16 | (i + 1 < n ? (uint32_t)in[i + 1] << 8 : 0);
        out[o++] = alphabet[v >> 18 & 63];
        out[o++] = alphabet[v >> 12 & 63];
        out[o++] = i + 1 < n ? alphabet[v >> 6 & 63] : '=';
        out[o++] = '=';
    }
    out[o] = '\0';
}

static int value_of(unsigned char c) {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
}

int64_t b64_decode(const char *s, size_t n, uint8_t *out, size_t *bad_at) {
    uint32_t acc = 0;
    int have = 0, pad = 0;
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        const unsigned char c = (unsigned char)s[i];
        if (c == ' ' || c == '\t' || c == '\r' || c == '\n') continue;
        if (c == '=') {
            /* padding completes a group of 2 or 3 characters, then only padding/space may follow */
            if (have < 2 || have + pad >= 4) goto bad;
            pad++;
            if (have + pad == 4) {
                out[o++] = (uint8_t)(acc >> (have == 2 ? 4 : 10));
                if (have == 3) out[o++] = (uint8_t)(acc >> 2);
                have = 0;
                acc = 0;
            }
            continue;
        }
        const int v = value_of(c);
        if (v < 0 || pad) goto bad;
        acc = acc << 6 | (uint32_t)v;
        if (++have == 4) {
            out[o++] = (uint8_t)(acc >> 16);
            out[o++] = (uint8_t)(acc >> 8);
            out[o++] = (uint8_t)acc;
            have = 0;
            acc = 0;
        }
        continue;
    bad:
        if (bad_at) *bad_at = i;
        return -1;
    }
    /* unpadded input is accepted when its last group has 2 or 3 characters */
    if (have == 1 || (pad && have)) {
        if (bad_at) *bad_at = n;
        return -1;
    }
    if (have == 2) out[o++] = (uint8_t)(acc >> 4);
    if (have == 3) {
        out[o++] = (uint8_t)(acc >> 10);
        out[o++] = (uint8_t)(acc >> 2);
    }
    return (int64_t)o;
}
