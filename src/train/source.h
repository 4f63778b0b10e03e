/* source.h: where training batches come from.
 *
 *   a text file / JSONL without images  the text corpus of data.h
 *   "shapes"                             Shapes World scenes generated on the fly
 *                                        (train split), each a caption or questions;
 *                                        for a model with image output also
 *                                        prompt -> image codes (gen_frac of rows)
 *   JSONL with "image"/"audio" keys      {"image": PATH, "audio": PATH, "prompt": ...,
 *                                        "answer": ...} records (image, audio, prompt
 *                                        each optional); PATH relative to the manifest
 *   "shapes" + a speech manifest         also spoken rows (train/speech_bank.h):
 *                                          <aud> a.. </aud> <sep> transcript <eos>
 *                                          <img> p.. </img> <aud> a.. </aud> <sep> answer <eos>
 *                                          <aud> a.. </aud> <sep> <boi> codes <eoi> <eos>
 *
 * Every source fills fusion batches (fusion/sequence.h); the model embeds
 * them. Evaluation batches are fixed: held-out records, or for "shapes" the
 * test split from fixed seeds. */
#ifndef LOOM_TRAIN_SOURCE_H
#define LOOM_TRAIN_SOURCE_H

#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "core/rng.h"
#include "data/shapes.h"
#include "encoders/image.h"
#include "fusion/sequence.h"
#include "model/model.h"
#include "train/data.h"
#include "train/speech_bank.h"

typedef enum { SOURCE_TEXT, SOURCE_SHAPES, SOURCE_MANIFEST } source_kind;

typedef struct manifest_record {
    int32_t image;      /* index into images, or -1 */
    int32_t audio;      /* index into audio, or -1 */
    char   *prompt;     /* NULL: plain text record */
    char   *answer;
} manifest_record;

typedef struct train_source {
    source_kind kind;
    float eval_frac;
    float caption_frac;          /* shapes: fraction of caption records */
    float caption_asks;          /* shapes: share of caption records that go on with questions
                                    (the caption in context, as infer's caption_first) */
    float caption_noise;         /* shapes: chance that a caption-only row's object has its
                                    color word swapped in the input (targets stay true) */
    int32_t turns;               /* shapes: questions per question record (at most 8) */
    int has_qweight;             /* shapes: question types drawn in proportion to qweight */
    float qweight[SHAPES_N_QTYPES];
    float gen_frac;              /* shapes + image output: fraction of generation rows */
    float gen_drop;              /* each stated attribute left out with this probability */
    float gen_uncond;            /* fraction of generation rows with the empty prompt (guidance) */
    /* text */
    raw_corpus raw;
    corpus train_c, eval_c;
    size_t n_eval;
    /* manifest */
    loom_image *images;
    size_t n_images;
    loom_audio *audio;           /* decoded, until source_prepare turns them into frames */
    float **audio_frames;        /* (n_audio) the model's audio positions of each */
    int32_t *audio_pos;          /* (n_audio) how many */
    size_t n_audio;
    manifest_record *recs;
    size_t n_recs, n_train;      /* records [n_train, n_recs) are held out */
    /* scratch */
    float *patches;              /* (max_rows * max_cols, P*P*3) */
    uint8_t *rgb;                /* shapes canvas */
    /* generation rows of the batch being filled: images encoded together */
    int32_t gen_cap, gen_n;
    uint8_t *gen_rgb;            /* (gen_cap, H, W, 3) */
    int32_t *gen_codes;          /* (gen_cap, rows * cols) */
    int32_t *gen_row;            /* (gen_cap) batch row */
    char (*gen_prompt)[256];     /* (gen_cap) prompt text */
    int32_t *gen_utt;            /* (gen_cap) spoken prompt (speech utterance), or -1 */
    /* speech (shapes with --speech): spoken rows, speech_frac of all rows */
    int has_speech;
    float speech_frac;
    float spoken_questions;      /* share of spoken rows that are questions; < 0: a third */
    speech_bank speech;
    size_t *prompt_utts, n_prompt_utts;  /* the bank's spoken prompts */
} train_source;

int  source_open(train_source *s, const char *spec, float eval_frac, loom_error *err);
void source_close(train_source *s);
int  source_is_multimodal(const train_source *s);
/* Adds spoken prompts and questions (a `loom data speech` manifest) to a
 * shapes source: then speech_frac of the rows are spoken (a transcript, a
 * spoken question about an image, or a spoken prompt -> image codes). */
int  source_add_speech(train_source *s, const char *manifest, loom_error *err);
int  source_has_audio(const train_source *s);
/* Documents for tokenizer training (pointers into the source or into
 * generated strings owned by *arena; free *arena after training). */
int  source_tokenizer_docs(train_source *s, char ***docs, size_t **lens, size_t *n,
                           loom_error *err);
/* Tokenizes what needs the tokenizer and allocates scratch for the model's patch budget. */
int  source_prepare(train_source *s, const loom_model *m, int32_t T, loom_error *err);
int  source_has_eval(const train_source *s);
/* Fills every row of fb with records drawn with rng. */
int  source_sample(train_source *s, const loom_model *m, loom_rng *rng, fusion_batch *fb,
                   loom_error *err);
/* Fills fb with the i-th fixed evaluation batch. */
int  source_eval_batch(train_source *s, const loom_model *m, int64_t i, fusion_batch *fb,
                       loom_error *err);

#endif
