/* tokenizer.h: byte-level BPE tokenizer for loom's text stream.
 *
 * Vocabulary layout (fixed; ids are int32_t):
 *
 *   0 .. 31                 special tokens. Named ones:
 *                             0 <pad>   1 <bos>   2 <eos>   3 <sep>
 *                             4 <img>   5 </img>  6 <row>   7 <aud>
 *                             8 </aud>  9 <boi>  10 <eoi>
 *                           11..31 are reserved (<reserved11> .. <reserved31>).
 *   32 .. 287               the 256 raw bytes: id = TOKENIZER_BYTE_BASE + byte.
 *   288 .. 288+n_merges-1   merges in rank order: merge i joins two existing
 *                           non-special ids (a, b), both < 288+i, into id 288+i.
 *
 *   tokenizer_vocab_size(t) = 288 + n_merges. The model may append further ids
 *   (image codes) after this; the tokenizer knows nothing about them and
 *   treats them as out of range.
 *
 * Encoding never produces a special token: user text "<img>" encodes to its
 * bytes. Specials are added by the caller (e.g. out[0] = TOKEN_BOS).
 * decode(encode(x)) == x for every byte string x, valid UTF-8 or not,
 * including NUL bytes: all text is passed with explicit lengths.
 *
 * Pre-splitting (used by both training and encoding; merges never cross a
 * chunk boundary). Bytes are classed as whitespace (' ' \t \n \v \f \r),
 * letters (A-Z a-z and every byte >= 0x80, so UTF-8 words stay together),
 * digits (0-9) and other (everything else, including NUL). A chunk is
 *   - an optional single leading ' ' followed by a run of one non-whitespace
 *     class (letters, digits or other), or
 *   - a run of whitespace; when such a run is followed by a non-whitespace
 *     byte and ends in ' ', that last ' ' is left to lead the next chunk.
 * A chunk longer than TOKENIZER_MAX_CHUNK_BYTES is cut every
 * TOKENIZER_MAX_CHUNK_BYTES bytes.
 * Within a chunk, encoding repeatedly merges the adjacent pair with the
 * lowest merge rank (leftmost first on ties), as GPT-2 does.
 *
 * Serialized form (JSON):
 *   {"type":"byte-bpe","version":1,"n_special":32,"merges":[[a,b],[c,d],...]}
 *
 * Limits: at most TOKENIZER_MAX_MERGES merges; a token decodes to at most
 * TOKENIZER_MAX_TOKEN_BYTES bytes; all tokens together to at most
 * TOKENIZER_MAX_TOTAL_BYTES bytes. Training skips pairs that would break these
 * limits and from_json rejects files that do.
 *
 * A tokenizer is immutable after creation; one tokenizer may be used from
 * several threads at once. There is no global state.
 *
 * Usage:
 *
 *   loom_error err;
 *   tokenizer_train_params p = tokenizer_train_default_params();
 *   p.vocab_size = 4096;
 *   tokenizer *tok = tokenizer_train(docs, lens, n_docs, p, &err);
 *   if (!tok) { fprintf(stderr, "loom: train tokenizer: %s\n", err.msg); ... }
 *
 *   size_t need = 0;
 *   tokenizer_encode(tok, text, len, NULL, 0, &need, NULL);   // size query
 *   int32_t *ids = malloc((need + 1) * sizeof *ids);
 *   ids[0] = TOKEN_BOS;
 *   int64_t n = tokenizer_encode(tok, text, len, ids + 1, need, NULL, &err);
 *
 *   size_t out_len;
 *   char *back = tokenizer_decode(tok, ids, (size_t)n + 1, 0, &out_len, &err);
 *   // back[0..out_len) == text[0..len); back[out_len] == '\0'
 *   free(back); free(ids);
 *
 *   char *json = tokenizer_to_json(tok, &err);  // save; reload with from_json
 *   free(json);
 *   tokenizer_free(tok);
 */
#ifndef LOOM_FUSION_TOKENIZER_H
#define LOOM_FUSION_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

#include "core/error.h"

#ifdef __cplusplus
extern "C" {
#endif

enum tokenizer_special {
    TOKEN_PAD = 0,
    TOKEN_BOS,        /* 1 */
    TOKEN_EOS,        /* 2 */
    TOKEN_SEP,        /* 3 */
    TOKEN_IMG,        /* 4  <img>  */
    TOKEN_IMG_END,    /* 5  </img> */
    TOKEN_ROW,        /* 6 */
    TOKEN_AUD,        /* 7  <aud>  */
    TOKEN_AUD_END,    /* 8  </aud> */
    TOKEN_BOI,        /* 9 */
    TOKEN_EOI,        /* 10 */
    TOKENIZER_N_SPECIAL = 32,   /* ids 0..31 are special (11..31 reserved) */
};

#define TOKENIZER_BYTE_BASE 32                                /* id of byte 0x00 */
#define TOKENIZER_MERGE_BASE (TOKENIZER_BYTE_BASE + 256)      /* 288: id of merge 0 */
#define TOKENIZER_MAX_MERGES 1000000
#define TOKENIZER_MAX_TOKEN_BYTES 1024
#define TOKENIZER_MAX_TOTAL_BYTES (64 * 1024 * 1024)
#define TOKENIZER_MAX_CHUNK_BYTES 4096
#define TOKENIZER_MAX_SPECIAL_NAME 16   /* longest special name incl. NUL */

typedef struct tokenizer tokenizer;

typedef struct {
    int32_t vocab_size;     /* target size incl. specials and bytes: 288 + merges wanted (default 1024) */
    int32_t min_frequency;  /* stop when the best pair occurs fewer times than this (default 2, >= 1) */
    int32_t verbose;        /* nonzero: progress lines on stderr */
} tokenizer_train_params;

/* Defaults: vocab_size 1024, min_frequency 2, verbose 0. */
tokenizer_train_params tokenizer_train_default_params(void);

/* Learns merges from a corpus of n_docs documents, docs[i] of lens[i] bytes
 * (any bytes; docs[i] may be NULL only if lens[i] == 0). Each step merges the
 * most frequent adjacent pair (ties: smallest first id, then smallest second
 * id) counted within pre-split chunks. Stops at p.vocab_size, when the best
 * pair is rarer than p.min_frequency, or when no pairs are left, so the
 * result may be smaller than asked. Deterministic: the same corpus and params
 * give the same merges. Returns NULL with err set on bad params or no memory.
 * Needs p.vocab_size in [288, 288 + TOKENIZER_MAX_MERGES]. */
tokenizer *tokenizer_train(const char *const *docs, const size_t *lens, size_t n_docs,
                           tokenizer_train_params p, loom_error *err);

/* Builds a tokenizer from an explicit merge list: merges is (n_merges, 2),
 * merge i = (merges[2i], merges[2i+1]). Validated like from_json. */
tokenizer *tokenizer_from_merges(const int32_t *merges, int32_t n_merges, loom_error *err);

/* Parses the JSON form (len bytes, need not be NUL-terminated). Input is
 * treated as hostile: wrong type/version/n_special, non-integer or
 * out-of-range ids, a merge using a special id or an id >= the id it creates,
 * a duplicate pair, more than TOKENIZER_MAX_MERGES merges, or tokens over the
 * byte limits are rejected. Returns NULL with err set on any problem. */
tokenizer *tokenizer_from_json(const char *json, size_t len, loom_error *err);

/* Serializes to the JSON form. Returns a malloc'd NUL-terminated string the
 * caller frees with free(), or NULL with err set. */
char *tokenizer_to_json(const tokenizer *t, loom_error *err);

/* Frees t (NULL is fine). */
void tokenizer_free(tokenizer *t);

/* 288 + n_merges. */
int32_t tokenizer_vocab_size(const tokenizer *t);

/* Number of merges. */
int32_t tokenizer_n_merges(const tokenizer *t);

/* Merge i (0 <= i < n_merges) joins *a and *b into id 288 + i.
 * Returns 0, or -1 if i is out of range. */
int tokenizer_get_merge(const tokenizer *t, int32_t i, int32_t *a, int32_t *b);

/* Encodes len bytes of text (no specials added) into out[0..out_cap).
 * Returns the number of ids written. If out_cap is too small, returns -1 with
 * err set and writes nothing useful; the count needed is stored in *needed
 * (if non-NULL) whenever the input was valid, so out = NULL, out_cap = 0 is a
 * size query. Also -1 if t is NULL, or text is NULL with len > 0.
 * Every id written is >= TOKENIZER_BYTE_BASE and < tokenizer_vocab_size(t). */
int64_t tokenizer_encode(const tokenizer *t, const char *text, size_t len, int32_t *out,
                         size_t out_cap, size_t *needed, loom_error *err);

/* Writes the bytes of token id to out, at most cap of them (out may be NULL
 * if cap is 0). A special id writes its name ("<bos>") if render_specials,
 * else nothing. Returns the full number of bytes the token decodes to (which
 * may exceed cap), or -1 if id is out of [0, vocab_size). No NUL is added. */
int64_t tokenizer_decode_token(const tokenizer *t, int32_t id, int render_specials, char *out,
                               size_t cap);

/* Decodes n ids into a malloc'd buffer of *out_len bytes plus a terminating
 * NUL (the text itself may hold NULs, so use *out_len). Specials as in
 * decode_token. Returns NULL with err set on an out-of-range id or no memory.
 * out_len must be non-NULL. Caller frees with free(). */
char *tokenizer_decode(const tokenizer *t, const int32_t *ids, size_t n, int render_specials,
                       size_t *out_len, loom_error *err);

/* Name of a special id ("<bos>", "<reserved11>"), or NULL if id is not in 0..31. */
const char *tokenizer_special_name(int32_t id);

#ifdef __cplusplus
}
#endif

#endif
