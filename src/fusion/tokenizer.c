/* tokenizer.c: byte-level BPE (see tokenizer.h for the vocabulary layout,
 * the pre-splitting rule and the JSON form).
 *
 * Encoding: each chunk is a linked list of symbols; a min-heap holds the
 * adjacent pairs keyed by (merge rank, position), so a chunk of n bytes costs
 * O(n log n). Stale heap entries are detected when popped.
 * Training: unique chunks are counted first, then every merge touches only
 * the chunks that hold the merged pair (an index pair -> chunks), and the
 * pair counts are updated locally around each merge site. A max-heap of
 * (count, pair) with lazy deletion picks the next merge.
 */
#include "fusion/tokenizer.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAP_EMPTY UINT64_MAX
#define POS_NONE UINT32_MAX
#define MAX_JSON_BYTES ((size_t)128 * 1024 * 1024)

struct tokenizer {
    int32_t n_merges;
    int32_t *merges;    // (n_merges, 2)
    uint32_t *tok_off;  // (V) offset of each token's bytes in bytes[]; specials 0
    uint32_t *tok_len;  // (V) byte length of each token; specials 0
    uint8_t *bytes;     // (total) concatenated bytes of ids 32..V-1
    uint64_t *map_key;  // (map_cap) pair key (a<<32 | b), MAP_EMPTY if free
    int32_t *map_rank;  // (map_cap) merge rank of that pair
    size_t map_cap;     // power of two, > 2 * n_merges
};

static const char *const special_names[TOKENIZER_N_SPECIAL] = {
    "<pad>", "<bos>", "<eos>", "<sep>", "<img>", "</img>", "<row>", "<aud>",
    "</aud>", "<boi>", "<eoi>", "<reserved11>", "<reserved12>", "<reserved13>",
    "<reserved14>", "<reserved15>", "<reserved16>", "<reserved17>", "<reserved18>",
    "<reserved19>", "<reserved20>", "<reserved21>", "<reserved22>", "<reserved23>",
    "<reserved24>", "<reserved25>", "<reserved26>", "<reserved27>", "<reserved28>",
    "<reserved29>", "<reserved30>", "<reserved31>",
};

const char *tokenizer_special_name(int32_t id) {
    if (id < 0 || id >= TOKENIZER_N_SPECIAL) return NULL;
    return special_names[id];
}

/* ---- small helpers ---- */

static uint64_t pair_key(int32_t a, int32_t b) {
    return ((uint64_t)(uint32_t)a << 32) | (uint32_t)b;
}

static uint64_t hash64(uint64_t x) {  // splitmix64 finalizer
    x ^= x >> 30; x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 27; x *= 0x94d049bb133111ebULL;
    x ^= x >> 31;
    return x;
}

static uint64_t hash_bytes(const uint8_t *s, size_t n) {  // FNV-1a
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < n; i++) { h ^= s[i]; h *= 0x100000001b3ULL; }
    return h;
}

// Smallest power of two >= 16 and > 2*n. n is at most a few million here.
static size_t map_capacity(size_t n) {
    size_t cap = 16;
    while (cap <= 2 * n) cap *= 2;
    return cap;
}

/* ---- pre-splitting ---- */

enum { CLS_SPACE, CLS_LETTER, CLS_DIGIT, CLS_OTHER };

static int byte_class(uint8_t c) {
    if (c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r') return CLS_SPACE;
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c >= 0x80) return CLS_LETTER;
    if (c >= '0' && c <= '9') return CLS_DIGIT;
    return CLS_OTHER;
}

// End (exclusive) of the chunk that starts at s[i], i < n.
static size_t chunk_end(const uint8_t *s, size_t n, size_t i) {
    size_t j = i;
    int c = byte_class(s[i]);
    if (c == CLS_SPACE) {
        if (s[i] == ' ' && i + 1 < n && byte_class(s[i + 1]) != CLS_SPACE) {
            j = i + 1;  // " word": the space leads the run that follows
            c = byte_class(s[j]);
        } else {
            while (j < n && byte_class(s[j]) == CLS_SPACE) j++;
            if (j < n && j - i > 1 && s[j - 1] == ' ') j--;  // leave the last ' ' to the next word
            return j - i > TOKENIZER_MAX_CHUNK_BYTES ? i + TOKENIZER_MAX_CHUNK_BYTES : j;
        }
    }
    while (j < n && byte_class(s[j]) == c) j++;
    return j - i > TOKENIZER_MAX_CHUNK_BYTES ? i + TOKENIZER_MAX_CHUNK_BYTES : j;
}

/* ---- construction from a merge list ---- */

static int32_t rank_lookup(const tokenizer *t, int32_t a, int32_t b) {
    uint64_t k = pair_key(a, b);
    size_t mask = t->map_cap - 1;
    for (size_t i = hash64(k) & mask; t->map_key[i] != MAP_EMPTY; i = (i + 1) & mask)
        if (t->map_key[i] == k) return t->map_rank[i];
    return -1;
}

void tokenizer_free(tokenizer *t) {
    if (!t) return;
    free(t->merges);
    free(t->tok_off);
    free(t->tok_len);
    free(t->bytes);
    free(t->map_key);
    free(t->map_rank);
    free(t);
}

tokenizer *tokenizer_from_merges(const int32_t *merges, int32_t n_merges, loom_error *err) {
    if (n_merges < 0 || n_merges > TOKENIZER_MAX_MERGES) {
        loom_error_set(err, "tokenizer: %d merges (must be 0..%d)", (int)n_merges, TOKENIZER_MAX_MERGES);
        return NULL;
    }
    if (!merges && n_merges > 0) {
        loom_error_set(err, "tokenizer: merges is NULL");
        return NULL;
    }
    size_t n = (size_t)n_merges, V = TOKENIZER_MERGE_BASE + n;
    tokenizer *t = calloc(1, sizeof *t);
    if (!t) { loom_error_set(err, "tokenizer: out of memory"); return NULL; }
    t->n_merges = n_merges;
    t->map_cap = map_capacity(n);
    t->merges = malloc((n ? 2 * n : 1) * sizeof *t->merges);
    t->tok_off = calloc(V, sizeof *t->tok_off);
    t->tok_len = calloc(V, sizeof *t->tok_len);
    t->map_key = malloc(t->map_cap * sizeof *t->map_key);
    t->map_rank = malloc(t->map_cap * sizeof *t->map_rank);
    if (!t->merges || !t->tok_off || !t->tok_len || !t->map_key || !t->map_rank) goto oom;
    if (n) memcpy(t->merges, merges, 2 * n * sizeof *merges);
    memset(t->map_key, 0xff, t->map_cap * sizeof *t->map_key);  // all MAP_EMPTY

    // lengths and offsets; total stays <= TOKENIZER_MAX_TOTAL_BYTES so uint32 suffices
    size_t total = 0;
    for (size_t id = TOKENIZER_BYTE_BASE; id < TOKENIZER_MERGE_BASE; id++) {
        t->tok_off[id] = (uint32_t)total;
        t->tok_len[id] = 1;
        total++;
    }
    for (size_t i = 0; i < n; i++) {
        int32_t a = merges[2 * i], b = merges[2 * i + 1];
        int64_t id = TOKENIZER_MERGE_BASE + (int64_t)i;
        if (a < TOKENIZER_BYTE_BASE || a >= id || b < TOKENIZER_BYTE_BASE || b >= id) {
            loom_error_set(err, "tokenizer: merge %zu (%d, %d) must join ids in [%d, %lld)", i,
                           (int)a, (int)b, TOKENIZER_BYTE_BASE, (long long)id);
            goto fail;
        }
        size_t len = (size_t)t->tok_len[a] + t->tok_len[b];
        if (len > TOKENIZER_MAX_TOKEN_BYTES) {
            loom_error_set(err, "tokenizer: merge %zu makes a token of %zu bytes (max %d)", i, len,
                           TOKENIZER_MAX_TOKEN_BYTES);
            goto fail;
        }
        if (total + len > TOKENIZER_MAX_TOTAL_BYTES) {
            loom_error_set(err, "tokenizer: tokens exceed %d bytes in total", TOKENIZER_MAX_TOTAL_BYTES);
            goto fail;
        }
        t->tok_off[id] = (uint32_t)total;
        t->tok_len[id] = (uint32_t)len;
        total += len;

        uint64_t k = pair_key(a, b);
        size_t mask = t->map_cap - 1, j = hash64(k) & mask;
        for (; t->map_key[j] != MAP_EMPTY; j = (j + 1) & mask) {
            if (t->map_key[j] == k) {
                loom_error_set(err, "tokenizer: merge %zu (%d, %d) duplicates merge %d", i, (int)a,
                               (int)b, (int)t->map_rank[j]);
                goto fail;
            }
        }
        t->map_key[j] = k;
        t->map_rank[j] = (int32_t)i;
    }

    t->bytes = malloc(total);
    if (!t->bytes) goto oom;
    for (size_t c = 0; c < 256; c++) t->bytes[c] = (uint8_t)c;
    for (size_t i = 0; i < n; i++) {
        size_t id = TOKENIZER_MERGE_BASE + i;
        int32_t a = merges[2 * i], b = merges[2 * i + 1];
        uint8_t *dst = t->bytes + t->tok_off[id];
        memcpy(dst, t->bytes + t->tok_off[a], t->tok_len[a]);
        memcpy(dst + t->tok_len[a], t->bytes + t->tok_off[b], t->tok_len[b]);
    }
    return t;
oom:
    loom_error_set(err, "tokenizer: out of memory (%zu merges)", n);
fail:
    tokenizer_free(t);
    return NULL;
}

int32_t tokenizer_vocab_size(const tokenizer *t) {
    return t ? TOKENIZER_MERGE_BASE + t->n_merges : 0;
}

int32_t tokenizer_n_merges(const tokenizer *t) {
    return t ? t->n_merges : 0;
}

int tokenizer_get_merge(const tokenizer *t, int32_t i, int32_t *a, int32_t *b) {
    if (!t || i < 0 || i >= t->n_merges) return -1;
    if (a) *a = t->merges[2 * (size_t)i];
    if (b) *b = t->merges[2 * (size_t)i + 1];
    return 0;
}

/* ---- encoding ---- */

typedef struct {
    int32_t rank;
    uint32_t pos;  // position of the pair's left symbol
} enc_pair;

typedef struct {
    int32_t *id;      // (n) token starting at each byte position, -1 once absorbed
    uint32_t *prev;   // (n) previous live position or POS_NONE
    uint32_t *next;   // (n) next live position or POS_NONE
    enc_pair *heap;   // (3n) min-heap on (rank, pos)
    size_t n_heap;
} enc_scratch;

static int enc_less(enc_pair x, enc_pair y) {
    return x.rank < y.rank || (x.rank == y.rank && x.pos < y.pos);
}

static void enc_push(enc_scratch *s, enc_pair e) {
    size_t i = s->n_heap++;
    while (i > 0) {
        size_t up = (i - 1) / 2;
        if (!enc_less(e, s->heap[up])) break;
        s->heap[i] = s->heap[up];
        i = up;
    }
    s->heap[i] = e;
}

static enc_pair enc_pop(enc_scratch *s) {
    enc_pair top = s->heap[0], e = s->heap[--s->n_heap];
    size_t i = 0, n = s->n_heap;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && enc_less(s->heap[c + 1], s->heap[c])) c++;
        if (!enc_less(s->heap[c], e)) break;
        s->heap[i] = s->heap[c];
        i = c;
    }
    if (n) s->heap[i] = e;
    return top;
}

static void enc_push_pair(const tokenizer *t, enc_scratch *s, uint32_t left) {
    uint32_t right = s->next[left];
    if (right == POS_NONE) return;
    int32_t r = rank_lookup(t, s->id[left], s->id[right]);
    if (r >= 0) enc_push(s, (enc_pair){r, left});
}

// Encodes one chunk of n bytes (1 <= n <= TOKENIZER_MAX_CHUNK_BYTES); writes ids to
// out[*count..out_cap) and advances *count by the number of ids produced.
static void encode_chunk(const tokenizer *t, const uint8_t *text, size_t n, enc_scratch *s,
                         int32_t *out, size_t out_cap, size_t *count) {
    for (size_t i = 0; i < n; i++) {
        s->id[i] = TOKENIZER_BYTE_BASE + text[i];
        s->prev[i] = i == 0 ? POS_NONE : (uint32_t)(i - 1);
        s->next[i] = i + 1 == n ? POS_NONE : (uint32_t)(i + 1);
    }
    s->n_heap = 0;
    for (size_t i = 0; i + 1 < n; i++) enc_push_pair(t, s, (uint32_t)i);
    while (s->n_heap > 0) {
        enc_pair e = enc_pop(s);
        uint32_t left = e.pos, right = s->next[left];
        if (s->id[left] < 0 || right == POS_NONE) continue;  // stale
        const int32_t *m = t->merges + 2 * (size_t)e.rank;
        if (s->id[left] != m[0] || s->id[right] != m[1]) continue;  // stale
        s->id[left] = TOKENIZER_MERGE_BASE + e.rank;
        s->id[right] = -1;
        s->next[left] = s->next[right];
        if (s->next[right] != POS_NONE) s->prev[s->next[right]] = left;
        if (s->prev[left] != POS_NONE) enc_push_pair(t, s, s->prev[left]);
        enc_push_pair(t, s, left);
    }
    for (uint32_t i = 0; i != POS_NONE; i = s->next[i]) {
        if (*count < out_cap) out[*count] = s->id[i];
        (*count)++;
    }
}

int64_t tokenizer_encode(const tokenizer *t, const char *text, size_t len, int32_t *out,
                         size_t out_cap, size_t *needed, loom_error *err) {
    if (!t) return loom_error_set(err, "tokenizer_encode: tokenizer is NULL");
    if (!text && len > 0) return loom_error_set(err, "tokenizer_encode: text is NULL");
    if (!out && out_cap > 0) return loom_error_set(err, "tokenizer_encode: out is NULL");
    const uint8_t *s = (const uint8_t *)text;
    size_t cap = len < TOKENIZER_MAX_CHUNK_BYTES ? len : TOKENIZER_MAX_CHUNK_BYTES;
    if (cap == 0) cap = 1;
    enc_scratch sc = {0};
    sc.id = malloc(cap * sizeof *sc.id);
    sc.prev = malloc(cap * sizeof *sc.prev);
    sc.next = malloc(cap * sizeof *sc.next);
    sc.heap = malloc(3 * cap * sizeof *sc.heap);
    int64_t ret = -1;
    if (!sc.id || !sc.prev || !sc.next || !sc.heap) {
        loom_error_set(err, "tokenizer_encode: out of memory");
        goto done;
    }
    size_t count = 0;
    for (size_t i = 0; i < len;) {
        size_t end = chunk_end(s, len, i);
        encode_chunk(t, s + i, end - i, &sc, out, out_cap, &count);
        i = end;
    }
    if (needed) *needed = count;
    if (count > out_cap) {
        loom_error_set(err, "tokenizer_encode: output holds %zu ids, %zu needed", out_cap, count);
        goto done;
    }
    ret = (int64_t)count;  // count <= len, and len fits in memory
done:
    free(sc.id);
    free(sc.prev);
    free(sc.next);
    free(sc.heap);
    return ret;
}

/* ---- decoding ---- */

int64_t tokenizer_decode_token(const tokenizer *t, int32_t id, int render_specials, char *out,
                               size_t cap) {
    if (!t || id < 0 || id >= tokenizer_vocab_size(t)) return -1;
    const char *src;
    size_t n;
    if (id < TOKENIZER_N_SPECIAL) {
        if (!render_specials) return 0;
        src = special_names[id];
        n = strlen(src);
    } else {
        src = (const char *)t->bytes + t->tok_off[id];
        n = t->tok_len[id];
    }
    if (out) memcpy(out, src, n < cap ? n : cap);
    return (int64_t)n;
}

char *tokenizer_decode(const tokenizer *t, const int32_t *ids, size_t n, int render_specials,
                       size_t *out_len, loom_error *err) {
    if (!t || !out_len || (!ids && n > 0)) {
        loom_error_set(err, "tokenizer_decode: NULL argument");
        return NULL;
    }
    size_t total = 0;
    for (size_t i = 0; i < n; i++) {
        int64_t k = tokenizer_decode_token(t, ids[i], render_specials, NULL, 0);
        if (k < 0) {
            loom_error_set(err, "tokenizer_decode: id %d at position %zu is out of range [0, %d)",
                           (int)ids[i], i, (int)tokenizer_vocab_size(t));
            return NULL;
        }
        if (loom_add_size(total, (size_t)k, &total)) {
            loom_error_set(err, "tokenizer_decode: output size overflows");
            return NULL;
        }
    }
    if (total == SIZE_MAX) {
        loom_error_set(err, "tokenizer_decode: output size overflows");
        return NULL;
    }
    char *buf = malloc(total + 1);
    if (!buf) {
        loom_error_set(err, "tokenizer_decode: out of memory (%zu bytes)", total + 1);
        return NULL;
    }
    size_t off = 0;
    for (size_t i = 0; i < n; i++)
        off += (size_t)tokenizer_decode_token(t, ids[i], render_specials, buf + off, total - off);
    buf[total] = '\0';
    *out_len = total;
    return buf;
}

/* ---- JSON ---- */

char *tokenizer_to_json(const tokenizer *t, loom_error *err) {
    if (!t) {
        loom_error_set(err, "tokenizer_to_json: tokenizer is NULL");
        return NULL;
    }
    char *ret = NULL, *s = NULL;
    cJSON *root = cJSON_CreateObject();
    cJSON *arr = NULL;
    if (!root || !cJSON_AddStringToObject(root, "type", "byte-bpe") ||
        !cJSON_AddNumberToObject(root, "version", 1) ||
        !cJSON_AddNumberToObject(root, "n_special", TOKENIZER_N_SPECIAL) ||
        !(arr = cJSON_AddArrayToObject(root, "merges")))
        goto oom;
    for (int32_t i = 0; i < t->n_merges; i++) {
        const int32_t *m = t->merges + 2 * (size_t)i;
        int pair[2] = {(int)m[0], (int)m[1]};
        cJSON *item = cJSON_CreateIntArray(pair, 2);
        if (!item || !cJSON_AddItemToArray(arr, item)) {
            cJSON_Delete(item);
            goto oom;
        }
    }
    s = cJSON_PrintUnformatted(root);
    if (!s) goto oom;
    // copy so the caller can free() whatever allocator hooks cJSON was given
    size_t n = strlen(s);
    ret = malloc(n + 1);
    if (!ret) goto oom;
    memcpy(ret, s, n + 1);
    cJSON_free(s);
    cJSON_Delete(root);
    return ret;
oom:
    loom_error_set(err, "tokenizer_to_json: out of memory");
    if (s) cJSON_free(s);
    cJSON_Delete(root);
    return NULL;
}

// Reads an integral JSON number in [lo, hi]; returns 0 or -1.
static int json_int(const cJSON *item, int64_t lo, int64_t hi, int64_t *out) {
    if (!cJSON_IsNumber(item)) return -1;
    double d = item->valuedouble;
    if (!(d >= (double)lo && d <= (double)hi)) return -1;  // also rejects NaN and inf
    int64_t v = (int64_t)d;
    if ((double)v != d) return -1;
    *out = v;
    return 0;
}

tokenizer *tokenizer_from_json(const char *json, size_t len, loom_error *err) {
    if (!json || len == 0) {
        loom_error_set(err, "tokenizer json: empty input");
        return NULL;
    }
    if (len > MAX_JSON_BYTES) {
        loom_error_set(err, "tokenizer json: %zu bytes (max %zu)", len, MAX_JSON_BYTES);
        return NULL;
    }
    if (memchr(json, '\0', len)) {
        loom_error_set(err, "tokenizer json: contains a NUL byte");
        return NULL;
    }
    // parse a NUL-terminated copy so cJSON never reads past the caller's buffer
    char *buf = malloc(len + 1);
    if (!buf) {
        loom_error_set(err, "tokenizer json: out of memory");
        return NULL;
    }
    memcpy(buf, json, len);
    buf[len] = '\0';
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(buf, len + 1, &end, 1);
    size_t err_at = end ? (size_t)(end - buf) : 0;
    free(buf);
    if (!root) {
        loom_error_set(err, "tokenizer json: parse error near byte %zu", err_at);
        return NULL;
    }
    tokenizer *t = NULL;
    int32_t *merges = NULL;
    int64_t v;
    if (!cJSON_IsObject(root)) {
        loom_error_set(err, "tokenizer json: top level is not an object");
        goto done;
    }
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(root, "type");
    const cJSON *arr = cJSON_GetObjectItemCaseSensitive(root, "merges");
    if (!cJSON_IsString(type) || strcmp(type->valuestring, "byte-bpe") != 0) {
        loom_error_set(err, "tokenizer json: \"type\" must be \"byte-bpe\"");
        goto done;
    }
    if (json_int(cJSON_GetObjectItemCaseSensitive(root, "version"), 1, 1, &v)) {
        loom_error_set(err, "tokenizer json: \"version\" must be 1");
        goto done;
    }
    if (json_int(cJSON_GetObjectItemCaseSensitive(root, "n_special"), TOKENIZER_N_SPECIAL,
                 TOKENIZER_N_SPECIAL, &v)) {
        loom_error_set(err, "tokenizer json: \"n_special\" must be %d", TOKENIZER_N_SPECIAL);
        goto done;
    }
    if (!cJSON_IsArray(arr)) {
        loom_error_set(err, "tokenizer json: \"merges\" must be an array");
        goto done;
    }
    size_t n = 0;
    for (const cJSON *m = arr->child; m; m = m->next) {
        if (++n > TOKENIZER_MAX_MERGES) {
            loom_error_set(err, "tokenizer json: more than %d merges", TOKENIZER_MAX_MERGES);
            goto done;
        }
    }
    merges = malloc((n ? 2 * n : 1) * sizeof *merges);
    if (!merges) {
        loom_error_set(err, "tokenizer json: out of memory (%zu merges)", n);
        goto done;
    }
    size_t i = 0;
    for (const cJSON *m = arr->child; m; m = m->next, i++) {
        const cJSON *a = cJSON_IsArray(m) ? m->child : NULL;
        const cJSON *b = a ? a->next : NULL;
        int64_t va, vb;
        if (!b || b->next || json_int(a, 0, INT32_MAX, &va) || json_int(b, 0, INT32_MAX, &vb)) {
            loom_error_set(err, "tokenizer json: merge %zu is not a pair of non-negative integers", i);
            goto done;
        }
        merges[2 * i] = (int32_t)va;
        merges[2 * i + 1] = (int32_t)vb;
    }
    t = tokenizer_from_merges(merges, (int32_t)n, err);
    if (!t) loom_error_wrap(err, "tokenizer json");
done:
    free(merges);
    cJSON_Delete(root);
    return t;
}

/* ---- training ---- */

typedef struct {
    const uint8_t *s;  // points into the caller's document
    size_t len;
    uint64_t hash;
    int64_t count;     // occurrences in the corpus
} train_word;

typedef struct {
    uint64_t key;       // pair_key(a, b), MAP_EMPTY if free
    int64_t count;      // occurrences, weighted by word counts
    int64_t head;       // first node of the list of words that hold (or held) the pair; -1 none
    int32_t last_word;  // last word appended to the list
    int32_t stamp;      // merge step that last changed count
    int32_t banned;     // merging it would break a byte limit
} train_pair;

typedef struct {
    int32_t word;
    int64_t next;
} train_node;

typedef struct {
    int64_t count;
    uint64_t key;
} train_cand;  // max-heap on count, then smallest key

typedef struct {
    train_word *words; size_t n_words, cap_words;
    int32_t *word_slots; size_t cap_word_slots;  // open addressing: index into words or -1
    int32_t *sym;       // (total) symbols of all words, each word's run shrinks as it merges
    size_t *word_off;   // (n_words) start of each word in sym
    uint32_t *word_len; // (n_words) current symbol count
    int32_t *word_step; // (n_words) last step that merged in this word
    train_pair *pairs; size_t n_pairs, cap_pairs;
    train_node *nodes; size_t n_nodes, cap_nodes;
    train_cand *heap; size_t n_heap, cap_heap;
    uint64_t *touched; size_t n_touched, cap_touched;
} trainer;

static void trainer_free(trainer *tr) {
    free(tr->words); free(tr->word_slots); free(tr->sym); free(tr->word_off);
    free(tr->word_len); free(tr->word_step); free(tr->pairs); free(tr->nodes);
    free(tr->heap); free(tr->touched);
}

// Grows *buf (of *cap elements of size elem) to hold at least need elements. 0 or -1.
static int grow(void **buf, size_t *cap, size_t need, size_t elem) {
    if (need <= *cap) return 0;
    size_t c = *cap ? *cap : 64, bytes;
    while (c < need) {
        if (c > SIZE_MAX / 2) return -1;
        c *= 2;
    }
    if (loom_mul_size(c, elem, &bytes)) return -1;
    void *p = realloc(*buf, bytes);
    if (!p) return -1;
    *buf = p;
    *cap = c;
    return 0;
}

static int word_count_chunk(trainer *tr, const uint8_t *s, size_t len) {
    if (2 * (tr->n_words + 1) >= tr->cap_word_slots) {
        size_t cap = tr->cap_word_slots ? 2 * tr->cap_word_slots : 1024;
        int32_t *slots = malloc(cap * sizeof *slots);
        if (!slots) return -1;
        memset(slots, 0xff, cap * sizeof *slots);
        for (size_t w = 0; w < tr->n_words; w++) {
            size_t j = tr->words[w].hash & (cap - 1);
            while (slots[j] >= 0) j = (j + 1) & (cap - 1);
            slots[j] = (int32_t)w;
        }
        free(tr->word_slots);
        tr->word_slots = slots;
        tr->cap_word_slots = cap;
    }
    uint64_t h = hash_bytes(s, len);
    size_t mask = tr->cap_word_slots - 1, j = h & mask;
    for (; tr->word_slots[j] >= 0; j = (j + 1) & mask) {
        train_word *w = &tr->words[tr->word_slots[j]];
        if (w->hash == h && w->len == len && memcmp(w->s, s, len) == 0) {
            w->count++;
            return 0;
        }
    }
    if (tr->n_words >= INT32_MAX) return -1;
    if (grow((void **)&tr->words, &tr->cap_words, tr->n_words + 1, sizeof *tr->words)) return -1;
    tr->words[tr->n_words] = (train_word){s, len, h, 1};
    tr->word_slots[j] = (int32_t)tr->n_words++;
    return 0;
}

// Index of the pair (inserted with count 0 if absent), or SIZE_MAX on no memory.
static size_t pair_find(trainer *tr, uint64_t key) {
    if (2 * (tr->n_pairs + 1) >= tr->cap_pairs) {
        size_t cap = tr->cap_pairs ? 2 * tr->cap_pairs : 4096;
        train_pair *p = malloc(cap * sizeof *p);
        if (!p) return SIZE_MAX;
        for (size_t j = 0; j < cap; j++) p[j].key = MAP_EMPTY;
        for (size_t i = 0; i < tr->cap_pairs; i++) {
            if (tr->pairs[i].key == MAP_EMPTY) continue;
            size_t j = hash64(tr->pairs[i].key) & (cap - 1);
            while (p[j].key != MAP_EMPTY) j = (j + 1) & (cap - 1);
            p[j] = tr->pairs[i];
        }
        free(tr->pairs);
        tr->pairs = p;
        tr->cap_pairs = cap;
    }
    size_t mask = tr->cap_pairs - 1, j = hash64(key) & mask;
    for (; tr->pairs[j].key != MAP_EMPTY; j = (j + 1) & mask)
        if (tr->pairs[j].key == key) return j;
    tr->pairs[j] = (train_pair){key, 0, -1, -1, -2, 0};
    tr->n_pairs++;
    return j;
}

static int heap_push(trainer *tr, int64_t count, uint64_t key) {
    if (grow((void **)&tr->heap, &tr->cap_heap, tr->n_heap + 1, sizeof *tr->heap)) return -1;
    train_cand e = {count, key};
    size_t i = tr->n_heap++;
    while (i > 0) {
        size_t up = (i - 1) / 2;
        train_cand u = tr->heap[up];
        if (u.count > e.count || (u.count == e.count && u.key < e.key)) break;
        tr->heap[i] = u;
        i = up;
    }
    tr->heap[i] = e;
    return 0;
}

static train_cand heap_pop(trainer *tr) {
    train_cand top = tr->heap[0], e = tr->heap[--tr->n_heap];
    size_t i = 0, n = tr->n_heap;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n) break;
        train_cand *h = tr->heap;
        if (c + 1 < n && (h[c + 1].count > h[c].count ||
                          (h[c + 1].count == h[c].count && h[c + 1].key < h[c].key)))
            c++;
        if (e.count > h[c].count || (e.count == h[c].count && e.key < h[c].key)) break;
        h[i] = h[c];
        i = c;
    }
    if (n) tr->heap[i] = e;
    return top;
}

// count(a, b) += delta; a positive delta lists word as holding the pair.
// step >= 0 records the pair as touched in that step. 0 or -1 (no memory).
static int pair_add(trainer *tr, int32_t a, int32_t b, int64_t delta, int32_t word, int32_t step) {
    uint64_t key = pair_key(a, b);
    size_t j = pair_find(tr, key);
    if (j == SIZE_MAX) return -1;
    train_pair *p = &tr->pairs[j];
    p->count += delta;
    if (delta > 0 && p->last_word != word) {
        if (grow((void **)&tr->nodes, &tr->cap_nodes, tr->n_nodes + 1, sizeof *tr->nodes)) return -1;
        tr->nodes[tr->n_nodes] = (train_node){word, p->head};
        p->head = (int64_t)tr->n_nodes++;
        p->last_word = word;
    }
    if (step >= 0 && p->stamp != step) {
        p->stamp = step;
        if (grow((void **)&tr->touched, &tr->cap_touched, tr->n_touched + 1, sizeof *tr->touched))
            return -1;
        tr->touched[tr->n_touched++] = key;
    }
    return 0;
}

// Replaces every (a, b) in word w, left to right, by x and updates the pair counts.
static int merge_word(trainer *tr, int32_t w, int32_t a, int32_t b, int32_t x, int32_t step) {
    int32_t *seq = tr->sym + tr->word_off[w];
    size_t n = tr->word_len[w], out = 0;
    int64_t c = tr->words[w].count;
    for (size_t i = 0; i < n;) {
        if (i + 1 < n && seq[i] == a && seq[i + 1] == b) {
            if (out > 0) {
                int32_t prev = seq[out - 1];
                if (pair_add(tr, prev, a, -c, w, step) || pair_add(tr, prev, x, c, w, step)) return -1;
            }
            if (i + 2 < n) {
                int32_t next = seq[i + 2];
                if (pair_add(tr, b, next, -c, w, step) || pair_add(tr, x, next, c, w, step)) return -1;
            }
            if (pair_add(tr, a, b, -c, w, step)) return -1;
            seq[out++] = x;
            i += 2;
        } else {
            seq[out++] = seq[i++];
        }
    }
    tr->word_len[w] = (uint32_t)out;
    return 0;
}

tokenizer_train_params tokenizer_train_default_params(void) {
    return (tokenizer_train_params){.vocab_size = 1024, .min_frequency = 2, .verbose = 0};
}

tokenizer *tokenizer_train(const char *const *docs, const size_t *lens, size_t n_docs,
                           tokenizer_train_params p, loom_error *err) {
    if (p.vocab_size < TOKENIZER_MERGE_BASE || p.vocab_size > TOKENIZER_MERGE_BASE + TOKENIZER_MAX_MERGES) {
        loom_error_set(err, "tokenizer_train: vocab_size %d must be in [%d, %d]", (int)p.vocab_size,
                       TOKENIZER_MERGE_BASE, TOKENIZER_MERGE_BASE + TOKENIZER_MAX_MERGES);
        return NULL;
    }
    if (p.min_frequency < 1) {
        loom_error_set(err, "tokenizer_train: min_frequency %d must be >= 1", (int)p.min_frequency);
        return NULL;
    }
    if (n_docs > 0 && (!docs || !lens)) {
        loom_error_set(err, "tokenizer_train: docs or lens is NULL");
        return NULL;
    }
    for (size_t d = 0; d < n_docs; d++) {
        if (!docs[d] && lens[d] > 0) {
            loom_error_set(err, "tokenizer_train: document %zu is NULL", d);
            return NULL;
        }
    }
    trainer tr = {0};
    tokenizer *t = NULL;
    int32_t n_target = p.vocab_size - TOKENIZER_MERGE_BASE, nm = 0;
    int32_t *merges = malloc((n_target ? 2 * (size_t)n_target : 1) * sizeof *merges);
    uint32_t *tlen = malloc(((size_t)p.vocab_size) * sizeof *tlen);  // (V) token byte lengths
    if (!merges || !tlen) goto oom;

    // 1. unique chunks and their counts
    for (size_t d = 0; d < n_docs; d++) {
        const uint8_t *s = (const uint8_t *)docs[d];
        for (size_t i = 0; i < lens[d];) {
            size_t end = chunk_end(s, lens[d], i);
            if (word_count_chunk(&tr, s + i, end - i)) goto oom;
            i = end;
        }
    }

    // 2. symbols of every word, initial pair counts, the candidate heap
    size_t total = 0;
    for (size_t w = 0; w < tr.n_words; w++) total += tr.words[w].len;  // <= corpus size
    tr.sym = malloc((total ? total : 1) * sizeof *tr.sym);
    tr.word_off = malloc((tr.n_words ? tr.n_words : 1) * sizeof *tr.word_off);
    tr.word_len = malloc((tr.n_words ? tr.n_words : 1) * sizeof *tr.word_len);
    tr.word_step = malloc((tr.n_words ? tr.n_words : 1) * sizeof *tr.word_step);
    if (!tr.sym || !tr.word_off || !tr.word_len || !tr.word_step) goto oom;
    size_t off = 0;
    for (size_t w = 0; w < tr.n_words; w++) {
        const train_word *wd = &tr.words[w];
        tr.word_off[w] = off;
        tr.word_len[w] = (uint32_t)wd->len;  // <= TOKENIZER_MAX_CHUNK_BYTES
        tr.word_step[w] = -1;
        for (size_t i = 0; i < wd->len; i++) tr.sym[off + i] = TOKENIZER_BYTE_BASE + wd->s[i];
        for (size_t i = 0; i + 1 < wd->len; i++)
            if (pair_add(&tr, tr.sym[off + i], tr.sym[off + i + 1], wd->count, (int32_t)w, -1)) goto oom;
        off += wd->len;
    }
    for (size_t j = 0; j < tr.cap_pairs; j++)
        if (tr.pairs[j].key != MAP_EMPTY && tr.pairs[j].count > 0)
            if (heap_push(&tr, tr.pairs[j].count, tr.pairs[j].key)) goto oom;
    if (p.verbose)
        fprintf(stderr, "tokenizer_train: %zu unique chunks, %zu symbols, %zu pairs\n", tr.n_words,
                total, tr.n_pairs);

    // 3. merges
    size_t total_bytes = 256;
    for (int32_t id = 0; id < TOKENIZER_MERGE_BASE; id++) tlen[id] = id < TOKENIZER_BYTE_BASE ? 0 : 1;
    while (nm < n_target && tr.n_heap > 0) {
        train_cand top = heap_pop(&tr);
        size_t j = pair_find(&tr, top.key);
        if (j == SIZE_MAX) goto oom;
        train_pair *pr = &tr.pairs[j];
        if (pr->banned || pr->count != top.count || top.count <= 0) continue;  // stale
        if (top.count < p.min_frequency) break;
        int32_t a = (int32_t)(top.key >> 32), b = (int32_t)(top.key & 0xffffffffu);
        size_t len = (size_t)tlen[a] + tlen[b];
        if (len > TOKENIZER_MAX_TOKEN_BYTES || total_bytes + len > TOKENIZER_MAX_TOTAL_BYTES) {
            pr->banned = 1;
            continue;
        }
        int32_t x = TOKENIZER_MERGE_BASE + nm, step = nm;
        merges[2 * (size_t)nm] = a;
        merges[2 * (size_t)nm + 1] = b;
        tlen[x] = (uint32_t)len;
        total_bytes += len;
        nm++;

        tr.n_touched = 0;
        for (int64_t node = pr->head; node >= 0;) {  // pr may move: only node indices are kept
            train_node nd = tr.nodes[node];
            if (tr.word_step[nd.word] != step) {
                tr.word_step[nd.word] = step;
                if (merge_word(&tr, nd.word, a, b, x, step)) goto oom;
            }
            node = nd.next;
        }
        for (size_t k = 0; k < tr.n_touched; k++) {
            size_t i = pair_find(&tr, tr.touched[k]);
            if (i == SIZE_MAX) goto oom;
            if (tr.pairs[i].key == top.key) tr.pairs[i].head = -1;  // list fully consumed
            if (tr.pairs[i].count > 0 && !tr.pairs[i].banned)
                if (heap_push(&tr, tr.pairs[i].count, tr.pairs[i].key)) goto oom;
        }
        if (p.verbose && (nm % 1000 == 0 || nm == n_target))
            fprintf(stderr, "tokenizer_train: merge %d/%d (%d, %d) count %lld\n", (int)nm,
                    (int)n_target, (int)a, (int)b, (long long)top.count);
    }
    if (p.verbose) fprintf(stderr, "tokenizer_train: %d merges, vocab %d\n", (int)nm, (int)(TOKENIZER_MERGE_BASE + nm));

    t = tokenizer_from_merges(merges, nm, err);
    goto done;
oom:
    loom_error_set(err, "tokenizer_train: out of memory");
done:
    trainer_free(&tr);
    free(merges);
    free(tlen);
    return t;
}
