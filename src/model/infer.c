#include "model/infer.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/utf8.h"
#include "encoders/audio_enc.h"
#include "encoders/patch.h"
#include "fusion/sequence.h"
#include "heads/sampler.h"

struct loom_infer {
    const loom_model *m;
    decoder_cache *kc;
    decoder_cache *kc_uncond; /* classifier-free guidance: the empty prompt's cache; contrast:
                                 the input without its image (lazy) */
    decoder_acts *acts;  /* (1, max_seq): the prompt runs as one batch (decoder_prefill) */
    fusion_batch fb;   /* one row of max_seq positions */
    float *x0;         /* (max_seq, C) */
    float *scratch;    /* model_embed_scratch_floats(m, max_patches, max_seq) */
    float *logits;     /* (V) */
    float *sample;     /* (2V) sampler scratch */
    uint8_t *allowed;  /* (V) text tokens and <eos> */
    uint8_t *allowed_codes; /* (V) image codes, or NULL without image output */
    float *logits_uncond;   /* (V) the logits of kc_uncond (lazy without image output) */
    float contrast;         /* the answer's contrast (infer_input.contrast), 0 = off */
    int32_t *ids;      /* (max_seq) prompt tokens */
    /* incremental answering (infer_answer_begin / next) */
    int32_t max_tokens, n_prefix, n_answer;
    infer_finish finish;
    char held[8];      /* bytes of an incomplete UTF-8 sequence */
    int32_t n_held;
    int32_t pending;   /* the token emitted and not yet run through the decoder, or -1 */
    /* INFER_SPOKEN_TRANSCRIBE: typed text, then the transcript */
    char spoken[INFER_PIECE_MAX];
    char transcript[INFER_PIECE_MAX];
    int32_t n_heard;   /* positions the transcription ran (its prefix and answer) */
    char caption[INFER_PIECE_MAX]; /* caption_first: the caption answered with */
};

const loom_model *infer_model(const loom_infer *inf) { return inf->m; }

loom_infer *infer_new(const loom_model *m, loom_error *err) {
    if (!m->tok) return loom_error_set(err, "model has no tokenizer"), NULL;
    loom_infer *inf = calloc(1, sizeof *inf);
    if (!inf) return loom_error_set(err, "out of memory"), NULL;
    inf->m = m;
    inf->pending = -1;
    const int32_t T = m->cfg.max_seq, V = m->cfg.vocab_size, C = m->cfg.d_model;
    const int32_t P = m->img.patch_size;
    const int64_t max_patches = P > 0 ? (int64_t)m->img.max_patch_rows * m->img.max_patch_cols : 0;
    inf->kc = decoder_cache_new(&m->cfg, T, err);
    if (!inf->kc) goto fail;
    inf->acts = decoder_acts_new(&m->cfg, 1, T, err);
    if (!inf->acts) goto fail;
    if (fusion_batch_init(&inf->fb, 1, T, P * P * 3, max_patches, err)) goto fail;
    if (m->aud.stack > 0 && fusion_batch_reserve_audio(&inf->fb, (int32_t)audio_enc_dim(&m->acfg), T, err))
        goto fail;
    inf->x0 = floats_alloc((size_t)T * C);
    const size_t n_scratch = model_embed_scratch_floats(m, max_patches, T);
    if (n_scratch == SIZE_MAX) {
        loom_error_set(err, "embedding scratch too large");
        goto fail;
    }
    inf->scratch = floats_alloc(n_scratch ? n_scratch : 1);
    inf->logits = floats_alloc((size_t)V);
    inf->sample = floats_alloc((size_t)V * 2);
    inf->allowed = calloc((size_t)V, 1);
    inf->ids = malloc((size_t)T * sizeof *inf->ids);
    if (!inf->x0 || !inf->scratch || !inf->logits || !inf->sample || !inf->allowed || !inf->ids) {
        loom_error_set(err, "out of memory");
        goto fail;
    }
    const int32_t tok_v = tokenizer_vocab_size(m->tok);
    for (int32_t i = TOKENIZER_N_SPECIAL; i < tok_v && i < V; i++) inf->allowed[i] = 1;
    inf->allowed[TOKEN_EOS] = 1;
    if (m->gen.n_codes > 0) {
        inf->allowed_codes = calloc((size_t)V, 1);
        inf->logits_uncond = floats_alloc((size_t)V);
        if (!inf->allowed_codes || !inf->logits_uncond) {
            loom_error_set(err, "out of memory");
            goto fail;
        }
        for (int32_t k = 0; k < m->gen.n_codes; k++) inf->allowed_codes[m->gen.code_base + k] = 1;
    }
    return inf;
fail:
    infer_free(inf);
    return NULL;
}

void infer_free(loom_infer *inf) {
    if (!inf) return;
    decoder_cache_free(inf->kc);
    decoder_cache_free(inf->kc_uncond);
    decoder_acts_free(inf->acts);
    free(inf->allowed_codes);
    free(inf->logits_uncond);
    fusion_batch_free(&inf->fb);
    free(inf->x0);
    free(inf->scratch);
    free(inf->logits);
    free(inf->sample);
    free(inf->allowed);
    free(inf->ids);
    free(inf);
}

/* Runs <bos> [image] [audio] prompt <sep> through cache kc; the logits of
 * <sep> land in logits. reserve: positions that must remain after it. */
static int prefill_input(loom_infer *inf, decoder_cache *kc, const infer_input *in, int32_t reserve,
                         float *logits, loom_error *err) {
    const loom_model *m = inf->m;
    const int32_t T = m->cfg.max_seq, C = m->cfg.d_model;
    if (in->image && m->img.patch_size <= 0) return loom_error_set(err, "this model has no image input");
    if (in->audio && m->aud.stack <= 0) return loom_error_set(err, "this model has no audio input");
    float *patches = NULL, *frames = NULL;
    int32_t rows = 0, cols = 0;
    int64_t n_audio = 0;
    int rc = -1;
    if (in->image && patch_image(in->image, m->img.patch_size, m->img.max_patch_rows,
                                 m->img.max_patch_cols, &patches, &rows, &cols, NULL, err))
        goto done;
    if (in->audio && audio_enc_prepare(in->audio, m->aud.stack, &frames, &n_audio, err)) goto done;
    if (n_audio > T) {
        loom_error_set(err, "audio of %.1f s takes %lld positions; the context holds %d",
                       (double)in->audio->n / AUDIO_RATE, (long long)n_audio, T);
        goto done;
    }
    const size_t bad = in->prompt ? utf8_invalid_at(in->prompt, in->prompt_len) : 0;
    if (in->prompt && bad < in->prompt_len) {
        loom_error_set(err, "the prompt is not valid UTF-8 (byte %zu)", bad);
        goto done;
    }
    size_t needed = 0;
    int64_t n = tokenizer_encode(m->tok, in->prompt ? in->prompt : "", in->prompt ? in->prompt_len : 0,
                                 inf->ids, (size_t)T, &needed, err);
    if (n < 0) {
        if (needed) loom_error_set(err, "prompt is %zu tokens; the context holds %d", needed, T);
        goto done;
    }
    fusion_row r = {.patches = patches, .rows = rows, .cols = cols, .audio = frames,
                    .n_audio = (int32_t)n_audio, .prompt = inf->ids, .n_prompt = (int32_t)n,
                    .with_sep = 1, .close = 0};
    const int64_t len = fusion_row_positions(&r);
    if (len + reserve > T) {
        loom_error_set(err, "the input takes %lld positions%s; the context holds %d", (long long)len,
                       reserve > 1 ? " before the image codes" : "", T);
        goto done;
    }
    fusion_batch_clear(&inf->fb);
    if (fusion_batch_put_row(&inf->fb, 0, &r, err)) goto done;
    model_embed(m, &inf->fb, inf->x0, inf->scratch);
    decoder_cache_reset(kc);
    memcpy(inf->acts->x0, inf->x0, (size_t)len * C * sizeof(float));
    rc = decoder_prefill(&m->cfg, &m->w, kc, inf->acts, (int32_t)len, logits, err);
done:
    free(patches);
    free(frames);
    return rc;
}

int64_t infer_answer(loom_infer *inf, const loom_image *img, const char *prompt,
                     size_t prompt_len, int32_t max_tokens, char *out, size_t cap,
                     loom_error *err) {
    infer_input in = {.image = img, .prompt = prompt, .prompt_len = prompt_len};
    return infer_answer_input(inf, &in, max_tokens, out, cap, err);
}

const char *infer_transcript(const loom_infer *inf) { return inf->transcript; }
const char *infer_heard_prompt(const loom_infer *inf) { return inf->spoken; }
const char *infer_caption(const loom_infer *inf) { return inf->caption; }

/* caption_first: runs <bos> <img>..</img> <sep>, decodes the caption greedily
 * through its <eos>, then the question and <sep>; the logits of that <sep>
 * land in inf->logits, as prefill_input leaves them. */
static int prefill_captioned(loom_infer *inf, const infer_input *in, loom_error *err) {
    const loom_model *m = inf->m;
    const infer_input image_only = {.image = in->image};
    const size_t bad = utf8_invalid_at(in->prompt, in->prompt_len);
    if (bad < in->prompt_len) return loom_error_set(err, "the prompt is not valid UTF-8 (byte %zu)", bad);
    if (prefill_input(inf, inf->kc, &image_only, 0, inf->logits, err)) return -1;
    const sampler_params greedy = {.temp = 0.0f};
    size_t used = 0;
    for (int32_t k = 0;; k++) {
        const int32_t id = k < INFER_ANSWER_MAX_TOKENS
                               ? sampler_sample(inf->logits, m->cfg.vocab_size, inf->allowed, greedy, NULL, inf->sample)
                               : TOKEN_EOS; /* a caption that runs on ends here */
        if (id < 0) return loom_error_set(err, "no caption token could be chosen");
        if (decoder_step_token(&m->cfg, &m->w, inf->kc, id, inf->logits, err)) return -1;
        if (id == TOKEN_EOS) break;
        const int64_t pl = tokenizer_decode_token(m->tok, id, 0, inf->caption + used,
                                                  sizeof inf->caption - 1 - used);
        if (pl > 0) used += (size_t)pl;
    }
    inf->caption[used] = '\0';
    size_t needed = 0;
    const int32_t room = inf->kc->max_seq - inf->kc->n;
    int64_t n = tokenizer_encode(m->tok, in->prompt, in->prompt_len, inf->ids, (size_t)m->cfg.max_seq, &needed, err);
    if (n < 0 || n + 1 > room)
        return loom_error_set(err, "the question does not fit the context after the image and its caption");
    for (int64_t i = 0; i < n; i++)
        if (decoder_step_token(&m->cfg, &m->w, inf->kc, inf->ids[i], inf->logits, err)) return -1;
    return decoder_step_token(&m->cfg, &m->w, inf->kc, TOKEN_SEP, inf->logits, err);
}

/* For INFER_SPOKEN_TRANSCRIBE with something besides the audio (an image, or
 * an image to draw): transcribes the audio alone, then *out is *in with the
 * audio replaced by the transcript (after any typed prompt). Otherwise *out
 * is *in. */
static int resolve_spoken(loom_infer *inf, const infer_input *in, int drawing, infer_input *out,
                          loom_error *err) {
    *out = *in;
    inf->transcript[0] = '\0';
    inf->spoken[0] = '\0';
    inf->n_heard = 0;
    const size_t typed = in->prompt ? in->prompt_len : 0;
    if (!in->audio || in->spoken != INFER_SPOKEN_TRANSCRIBE || (!in->image && !typed && !drawing)) return 0;
    const size_t bad = typed ? utf8_invalid_at(in->prompt, typed) : 0;
    if (typed && bad < typed) return loom_error_set(err, "the prompt is not valid UTF-8 (byte %zu)", bad);
    const infer_input alone = {.audio = in->audio};
    char heard_text[sizeof inf->transcript];
    if (infer_answer_input(inf, &alone, INFER_ANSWER_MAX_TOKENS, heard_text, sizeof heard_text, err) < 0)
        return -1;
    memcpy(inf->transcript, heard_text, sizeof heard_text);
    inf->n_heard = inf->n_prefix + inf->n_answer; /* the transcription's positions, for usage */
    const size_t heard = strlen(inf->transcript);
    if (typed + 1 + heard + 1 > sizeof inf->spoken) return loom_error_set(err, "the prompt is too long");
    size_t n = 0;
    if (typed) {
        memcpy(inf->spoken, in->prompt, typed);
        n = typed;
        if (heard) inf->spoken[n++] = ' ';
    }
    memcpy(inf->spoken + n, inf->transcript, heard);
    n += heard;
    inf->spoken[n] = '\0';
    out->audio = NULL;
    out->prompt = inf->spoken;
    out->prompt_len = n;
    out->spoken = INFER_SPOKEN_DIRECT;
    return 0;
}

int infer_answer_begin(loom_infer *inf, const infer_input *in_, int32_t max_tokens, loom_error *err) {
    infer_input in_resolved;
    const infer_input *in = &in_resolved;
    inf->finish = INFER_FINISH_LENGTH;
    if (resolve_spoken(inf, in_, 0, &in_resolved, err)) return -1;
    inf->finish = INFER_FINISH_LENGTH; /* a failed begin leaves nothing to decode */
    inf->n_held = 0;
    inf->n_answer = 0;
    inf->n_prefix = 0;
    inf->pending = -1;
    inf->caption[0] = '\0';
    inf->contrast = 0.0f;
    const int captioned = in->caption_first && in->image && !in->audio && in->prompt && in->prompt_len;
    if (captioned && in->contrast != 0.0f)
        return loom_error_set(err, "contrastive decoding does not go with caption first");
    if (captioned ? prefill_captioned(inf, in, err) : prefill_input(inf, inf->kc, in, 0, inf->logits, err)) {
        if (inf->transcript[0]) loom_error_wrap(err, "the spoken question, heard as \"%.80s\"", inf->transcript);
        return -1;
    }
    if (in->contrast != 0.0f && in->image) {
        /* the same input without its image, in its own cache */
        const loom_model *m = inf->m;
        infer_input plain = *in;
        plain.image = NULL;
        if (!inf->kc_uncond && !(inf->kc_uncond = decoder_cache_new(&m->cfg, m->cfg.max_seq, err))) return -1;
        if (!inf->logits_uncond && !(inf->logits_uncond = floats_alloc((size_t)m->cfg.vocab_size)))
            return loom_error_set(err, "out of memory");
        if (prefill_input(inf, inf->kc_uncond, &plain, 0, inf->logits_uncond, err)) return -1;
        inf->contrast = in->contrast;
    }
    inf->n_prefix = (int32_t)inf->kc->n;
    inf->max_tokens = max_tokens;
    inf->finish = INFER_FINISH_NONE;
    return 0;
}

/* Length of the longest prefix of s[0 .. n) that does not end inside a
 * UTF-8 sequence (an incomplete lead byte plus continuations at the end). */
static int32_t utf8_complete_prefix(const char *s, int32_t n) {
    for (int32_t back = 1; back <= 4 && back <= n; back++) {
        const unsigned char c = (unsigned char)s[n - back];
        if ((c & 0xC0) == 0x80) continue; /* continuation byte: look further back */
        const int32_t want = c < 0x80 ? 1 : (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3
                           : (c & 0xF8) == 0xF0 ? 4 : 1;
        return back < want ? n - back : n;
    }
    return n;
}

/* Appends held bytes that can never complete as U+FFFD each, keeping valid text. */
static int64_t flush_held(loom_infer *inf, char *out, int64_t used) {
    for (int32_t i = 0; i < inf->n_held; i++) {
        memcpy(out + used, "\xEF\xBF\xBD", 3);
        used += 3;
    }
    inf->n_held = 0;
    out[used] = '\0';
    return used;
}

int64_t infer_answer_emit(loom_infer *inf, char *out, loom_error *err) {
    const loom_model *m = inf->m;
    (void)err;
    out[0] = '\0';
    inf->pending = -1;
    if (inf->finish != INFER_FINISH_NONE) return INFER_DONE;
    if (inf->n_answer >= inf->max_tokens) {
        inf->finish = INFER_FINISH_LENGTH;
        return inf->n_held ? flush_held(inf, out, 0) : INFER_DONE;
    }
    sampler_params greedy = {.temp = 0.0f};
    if (inf->contrast != 0.0f) {
        /* only tokens the image's logits find plausible (within log(INFER_CONTRAST_CUTOFF)
         * of the best allowed one) compete: the contrast reorders them, never promotes
         * what neither context would say */
        const float a = inf->contrast;
        float best = -INFINITY;
        for (int32_t v = 0; v < m->cfg.vocab_size; v++)
            if (inf->allowed[v] && inf->logits[v] > best) best = inf->logits[v];
        const float floor_ = best + logf(INFER_CONTRAST_CUTOFF);
        for (int32_t v = 0; v < m->cfg.vocab_size; v++)
            inf->logits[v] = inf->logits[v] >= floor_ ? (1.0f + a) * inf->logits[v] - a * inf->logits_uncond[v]
                                                       : -INFINITY;
    }
    const int32_t id = sampler_sample(inf->logits, m->cfg.vocab_size, inf->allowed, greedy, NULL, inf->sample);
    if (id < 0 || id == TOKEN_EOS) {
        inf->finish = INFER_FINISH_STOP;
        return inf->n_held ? flush_held(inf, out, 0) : INFER_DONE;
    }
    inf->n_answer++;
    /* held bytes, then this token's: emit what forms whole characters */
    char buf[sizeof inf->held + TOKENIZER_MAX_TOKEN_BYTES];
    memcpy(buf, inf->held, (size_t)inf->n_held);
    int64_t pl = tokenizer_decode_token(m->tok, id, 0, buf + inf->n_held, TOKENIZER_MAX_TOKEN_BYTES);
    const int32_t n = inf->n_held + (int32_t)(pl > 0 ? pl : 0);
    int32_t keep = utf8_complete_prefix(buf, n);
    if (n - keep >= (int32_t)sizeof inf->held) keep = n; /* cannot be a sequence: let it through */
    /* invalid bytes inside the complete part become U+FFFD (at most 3x growth) */
    int64_t used = 0;
    for (int32_t i = 0; i < keep;) {
        const size_t bad = utf8_invalid_at(buf + i, (size_t)(keep - i));
        memcpy(out + used, buf + i, bad);
        used += (int64_t)bad;
        i += (int32_t)bad;
        if (i < keep) {
            memcpy(out + used, "\xEF\xBF\xBD", 3);
            used += 3;
            i++;
        }
    }
    out[used] = '\0';
    inf->n_held = n - keep;
    memcpy(inf->held, buf + keep, (size_t)inf->n_held);
    if (inf->kc->n >= inf->kc->max_seq || (inf->contrast != 0.0f && inf->kc_uncond->n >= inf->kc_uncond->max_seq)) {
        inf->finish = INFER_FINISH_LENGTH;
        return flush_held(inf, out, used);
    }
    inf->pending = id;
    return used;
}

int infer_answer_pending(const loom_infer *inf) { return inf->pending >= 0; }

int64_t infer_answer_next(loom_infer *inf, char *out, loom_error *err) {
    const int64_t used = infer_answer_emit(inf, out, err);
    if (used < 0 || inf->pending < 0) return used;
    const int32_t id = inf->pending;
    inf->pending = -1;
    if (decoder_step_token(&inf->m->cfg, &inf->m->w, inf->kc, id, inf->logits, err) ||
        (inf->contrast != 0.0f &&
         decoder_step_token(&inf->m->cfg, &inf->m->w, inf->kc_uncond, id, inf->logits_uncond, err))) {
        inf->finish = INFER_FINISH_LENGTH;
        return -1;
    }
    return used;
}

/* Scratch for infer_answer_step_batch: the decoder's, plus the rows of
 * inputs and logits. */
struct infer_batch {
    const loom_model *m;
    decoder_batch *db;
    float *x, *logits;  /* (max, C), (max, V) */
    decoder_cache **kc; /* (max) */
    loom_infer **row_inf; /* (max) the answer of each row */
    uint8_t *row_second;  /* (max) 1: the row is that answer's image-free cache (contrast) */
    int32_t max;
};

infer_batch *infer_batch_new(const loom_model *m, int32_t max_seqs, loom_error *err) {
    infer_batch *b = calloc(1, sizeof *b);
    if (!b) return loom_error_set(err, "out of memory"), NULL;
    b->m = m;
    b->max = max_seqs;
    if (!(b->db = decoder_batch_new(&m->cfg, max_seqs, m->cfg.max_seq, err))) {
        free(b);
        return NULL;
    }
    b->x = floats_alloc((size_t)max_seqs * m->cfg.d_model);
    b->logits = floats_alloc((size_t)max_seqs * m->cfg.vocab_size);
    b->kc = malloc((size_t)max_seqs * sizeof *b->kc);
    b->row_inf = malloc((size_t)max_seqs * sizeof *b->row_inf);
    b->row_second = malloc((size_t)max_seqs);
    if (!b->x || !b->logits || !b->kc || !b->row_inf || !b->row_second) {
        infer_batch_free(b);
        return loom_error_set(err, "out of memory"), NULL;
    }
    return b;
}

void infer_batch_free(infer_batch *b) {
    if (!b) return;
    decoder_batch_free(b->db);
    free(b->x);
    free(b->logits);
    free(b->kc);
    free(b->row_inf);
    free(b->row_second);
    free(b);
}

/* Runs the batch's k rows through the decoder and hands each its logits. */
static int step_rows(infer_batch *b, int32_t k, loom_error *err) {
    const loom_model *m = b->m;
    const int32_t V = m->cfg.vocab_size;
    const int rc = decoder_step_batch(&m->cfg, &m->w, b->kc, k, b->db, b->x, b->logits, err);
    for (int32_t r = 0; r < k; r++) {
        loom_infer *inf = b->row_inf[r];
        if (rc) inf->finish = INFER_FINISH_LENGTH;
        else memcpy(b->row_second[r] ? inf->logits_uncond : inf->logits, b->logits + (size_t)r * V,
                    (size_t)V * sizeof(float));
    }
    return rc;
}

int infer_answer_step_batch(infer_batch *b, loom_infer *const *infs, int32_t n, loom_error *err) {
    const loom_model *m = b->m;
    const int32_t C = m->cfg.d_model;
    if (n < 0 || n > b->max) return loom_error_set(err, "batch of %d answers (room for %d)", n, b->max);
    for (int32_t i = 0; i < n; i++)
        if (infs[i]->m != m) return loom_error_set(err, "answers of different models in one batch");
    /* a row per pending answer, and one more for a contrastive answer's
     * image-free cache; at most b->max rows per decoder step */
    int rc = 0;
    int32_t k = 0;
    for (int32_t i = 0; i < n; i++) {
        loom_infer *inf = infs[i];
        if (inf->pending < 0) continue;
        for (int second = 0; second <= (inf->contrast != 0.0f); second++) {
            if (k == b->max) {
                rc |= step_rows(b, k, err);
                k = 0;
            }
            memcpy(b->x + (size_t)k * C, m->w.tok_emb + (size_t)inf->pending * C, (size_t)C * sizeof(float));
            b->kc[k] = second ? inf->kc_uncond : inf->kc;
            b->row_inf[k] = inf;
            b->row_second[k] = (uint8_t)second;
            k++;
        }
    }
    if (k) rc |= step_rows(b, k, err);
    for (int32_t i = 0; i < n; i++) infs[i]->pending = -1;
    return rc ? -1 : 0;
}

infer_finish infer_answer_finish(const loom_infer *inf) { return inf->finish; }
int32_t infer_prompt_tokens(const loom_infer *inf) { return inf->n_prefix + inf->n_heard; }
int32_t infer_answer_tokens(const loom_infer *inf) { return inf->n_answer; }

int64_t infer_answer_input(loom_infer *inf, const infer_input *in, int32_t max_tokens, char *out,
                           size_t cap, loom_error *err) {
    if (cap) out[0] = '\0';
    if (infer_answer_begin(inf, in, max_tokens, err)) return -1;
    size_t used = 0;
    char piece[INFER_PIECE_MAX];
    for (;;) {
        const int64_t pl = infer_answer_next(inf, piece, err);
        if (pl == INFER_DONE) break;
        if (pl < 0) return -1;
        if (cap && used + 1 < cap) {
            size_t k = (size_t)pl < cap - 1 - used ? (size_t)pl : cap - 1 - used;
            /* never cut a character in half */
            while (k > 0 && k < (size_t)pl && ((unsigned char)piece[k] & 0xC0) == 0x80) k--;
            memcpy(out + used, piece, k);
            used += k;
            out[used] = '\0';
        }
    }
    return (int64_t)used;
}

/* Runs tokens through a fresh cache; logits of the last one. */
static int prefill_tokens(const loom_model *m, decoder_cache *kc, decoder_acts *a,
                          const int32_t *ids, int32_t n, float *logits, loom_error *err) {
    decoder_cache_reset(kc);
    if (n > kc->max_seq) return loom_error_set(err, "prompt is %d tokens; the context holds %d", n, kc->max_seq);
    decoder_embed(&m->cfg, &m->w, ids, n, a->x0);
    return decoder_prefill(&m->cfg, &m->w, kc, a, n, logits, err);
}

int infer_imagine(loom_infer *inf, const char *prompt, size_t prompt_len,
                  const infer_imagine_params *p, int32_t *codes, loom_error *err) {
    infer_input in = {.prompt = prompt, .prompt_len = prompt_len};
    return infer_imagine_input(inf, &in, p, codes, err);
}

int infer_imagine_input(loom_infer *inf, const infer_input *in_, const infer_imagine_params *p,
                        int32_t *codes, loom_error *err) {
    const loom_model *m = inf->m;
    if (in_->image) return loom_error_set(err, "imagine: an image cannot be part of the prompt");
    infer_input in_resolved;
    const infer_input *in = &in_resolved;
    if (m->gen.n_codes > 0 && resolve_spoken(inf, in_, 1, &in_resolved, err)) return -1;
    if (m->gen.n_codes <= 0) in_resolved = *in_;
    const int32_t T = m->cfg.max_seq, V = m->cfg.vocab_size;
    if (m->gen.n_codes <= 0 || !inf->allowed_codes)
        return loom_error_set(err, "this model has no image output");
    if (in->image) return loom_error_set(err, "imagine: an image cannot be part of the prompt");
    const int32_t n_codes = m->gen.rows * m->gen.cols;
    /* <bos> [audio] prompt <sep> <boi>, then the codes: all must fit the context */
    if (prefill_input(inf, inf->kc, in, 1 + n_codes, inf->logits, err)) {
        if (inf->transcript[0]) loom_error_wrap(err, "the spoken prompt, heard as \"%.80s\"", inf->transcript);
        return -1;
    }
    if (decoder_step_token(&m->cfg, &m->w, inf->kc, TOKEN_BOI, inf->logits, err)) return -1;
    const int guide = p->cfg_scale != 1.0f;
    if (guide) {
        if (!inf->kc_uncond && !(inf->kc_uncond = decoder_cache_new(&m->cfg, T, err))) return -1;
        const int32_t empty[3] = {TOKEN_BOS, TOKEN_SEP, TOKEN_BOI};
        if (prefill_tokens(m, inf->kc_uncond, inf->acts, empty, 3, inf->logits_uncond, err)) return -1;
    }
    loom_rng rng;
    rng_seed(&rng, p->seed);
    for (int32_t i = 0; i < n_codes; i++) {
        if (guide)
            for (int32_t v = 0; v < V; v++)
                inf->logits[v] = inf->logits_uncond[v] + p->cfg_scale * (inf->logits[v] - inf->logits_uncond[v]);
        int32_t id = sampler_sample(inf->logits, V, inf->allowed_codes, p->sampling, &rng, inf->sample);
        if (id < 0) return loom_error_set(err, "imagine: no code could be sampled");
        codes[i] = id - m->gen.code_base;
        if (i == n_codes - 1) break; /* then <eoi>: nothing more to sample */
        if (decoder_step_token(&m->cfg, &m->w, inf->kc, id, inf->logits, err)) return -1;
        if (guide && decoder_step_token(&m->cfg, &m->w, inf->kc_uncond, id, inf->logits_uncond, err))
            return -1;
    }
    return 0;
}
