/* b64.h: base64 (RFC 4648, standard alphabet) for the API's data URLs,
 * input_audio and b64_json fields.
 *
 * Decoding is strict about the alphabet and padding (a wrong character or a
 * truncated group is an error, not silently skipped) but tolerates ASCII
 * whitespace between characters, as MIME line wrapping produces. */
#ifndef LOOM_SERVER_B64_H
#define LOOM_SERVER_B64_H

#include <stddef.h>
#include <stdint.h>

/* Bytes base64 of n bytes takes, without the NUL. */
size_t b64_encoded_len(size_t n);
/* Writes the encoding of in[0 .. n) and a NUL to out (b64_encoded_len(n) + 1 bytes). */
void b64_encode(const uint8_t *in, size_t n, char *out);
/* Decodes s[0 .. n) into out (at least n / 4 * 3 + 3 bytes). Returns the
 * decoded length, or -1 with the offset of the first bad character in *bad_at. */
int64_t b64_decode(const char *s, size_t n, uint8_t *out, size_t *bad_at);

#endif
