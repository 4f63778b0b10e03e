/* data.h: training corpora. A corpus is a list of records, each a token
 * sequence `<bos> ... <eos>` with the index from which its targets count:
 *
 *   text file            one record per non-empty line, loss on every token
 *   JSONL {"text": s}    the same, one record per line
 *   JSONL {"prompt": p, "answer": a}
 *                        <bos> p <sep> a <eos>, loss only after <sep>
 *
 * Text-only corpora are packed into one stream and sampled as random windows
 * (no padding); corpora with prompts are sampled as right-padded records. */
#ifndef LOOM_TRAIN_DATA_H
#define LOOM_TRAIN_DATA_H

#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "core/rng.h"
#include "fusion/tokenizer.h"

#define DATA_MAX_FILE_BYTES ((size_t)4 << 30)

/* Raw documents, before tokenization. */
typedef struct raw_corpus {
    char  **prompt;     /* (n) NULL for plain text records */
    size_t *prompt_len;
    char  **text;       /* (n) the text, or the answer */
    size_t *text_len;
    size_t  n;
} raw_corpus;

/* 1 if path names a JSONL corpus (.jsonl or .json), else 0 (a text file). */
int  data_is_jsonl_path(const char *path);
/* The file a manifest's entry names: an absolute entry as it is, a relative
 * one under the manifest's directory. Written NUL-terminated into out. */
void data_manifest_path(const char *manifest, const char *entry, char *out, size_t cap);

int  raw_corpus_load(const char *path, raw_corpus *rc, loom_error *err);
void raw_corpus_free(raw_corpus *rc);

typedef struct corpus {
    int32_t *tokens;    /* all records back to back */
    size_t   n_tokens;
    size_t  *off;       /* (n) start of each record in tokens */
    int32_t *len;       /* (n) */
    int32_t *loss_from; /* (n) first position whose prediction target counts (1 = all) */
    size_t   n;
    int      packed;    /* every record counts from 1: sample windows of the stream */
} corpus;

/* Tokenizes records [begin, end) of rc. */
int  corpus_build(corpus *c, const raw_corpus *rc, size_t begin, size_t end, const tokenizer *tok,
                  int32_t max_len, loom_error *err);
void corpus_free(corpus *c);

/* Fills tokens/targets (B, T) with a batch drawn with rng. Right-padded
 * records use <pad> and target -1. */
void corpus_sample(const corpus *c, loom_rng *rng, int32_t B, int32_t T, int32_t *tokens,
                   int32_t *targets);
/* The i-th fixed batch for evaluation: deterministic windows / records. */
void corpus_batch_at(const corpus *c, size_t i, int32_t B, int32_t T, int32_t *tokens,
                     int32_t *targets);

#endif
