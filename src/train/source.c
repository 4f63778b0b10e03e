#include "train/source.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/shapes.h"
#include "data/shapes_prompt.h"
#include "encoders/audio_enc.h"
#include "encoders/patch.h"
#include "fusion/tokenizer.h"

#define SOURCE_MAX_TEXT_TOKENS 4096
#define SOURCE_MAX_TURNS 8

/* ---- manifests ----------------------------------------------------------- */

static int manifest_load(train_source *s, const char *path, loom_error *err) {
    FILE *f = fopen(path, "rb");
    if (!f) return loom_error_set(err, "%s: cannot open", path);
    size_t cap_r = 0, cap_i = 0, cap_a = 0, line_no = 0;
    char *line = NULL;
    size_t line_cap = 0;
    ssize_t got;
    int rc = 0;
    /* image path -> index, by linear probing on a small table would be nicer;
     * manifests list each image once per record, so reuse the previous one. */
    char *last_image = NULL;
    while (!rc && (got = getline(&line, &line_cap, f)) >= 0) {
        line_no++;
        while (got > 0 && (line[got - 1] == '\n' || line[got - 1] == '\r')) line[--got] = '\0';
        if (got == 0) continue;
        cJSON *o = cJSON_ParseWithLength(line, (size_t)got);
        const cJSON *im = o ? cJSON_GetObjectItemCaseSensitive(o, "image") : NULL;
        const cJSON *au = o ? cJSON_GetObjectItemCaseSensitive(o, "audio") : NULL;
        const cJSON *p = o ? cJSON_GetObjectItemCaseSensitive(o, "prompt") : NULL;
        const cJSON *a = o ? cJSON_GetObjectItemCaseSensitive(o, "answer") : NULL;
        const cJSON *t = o ? cJSON_GetObjectItemCaseSensitive(o, "text") : NULL;
        if (!cJSON_IsObject(o)) {
            rc = loom_error_set(err, "%s:%zu: not a JSON object", path, line_no);
        } else if (!(cJSON_IsString(a) || cJSON_IsString(t)) || (im && !cJSON_IsString(im)) ||
                   (p && !cJSON_IsString(p)) || (au && !cJSON_IsString(au))) {
            rc = loom_error_set(err, "%s:%zu: want string \"answer\" (or \"text\"), optional strings "
                                "\"prompt\", \"image\" and \"audio\"", path, line_no);
        } else {
            if (s->n_recs == cap_r) {
                cap_r = cap_r ? cap_r * 2 : 1024;
                manifest_record *nr = realloc(s->recs, cap_r * sizeof *nr);
                if (!nr) rc = loom_error_set(err, "out of memory");
                else s->recs = nr;
            }
            manifest_record *r = rc ? NULL : &s->recs[s->n_recs];
            if (r) {
                r->image = -1;
                r->audio = -1;
                r->prompt = NULL;
                r->answer = strdup(cJSON_IsString(a) ? a->valuestring : t->valuestring);
                if (cJSON_IsString(a)) r->prompt = strdup(p ? p->valuestring : "");
                if (!r->answer || (cJSON_IsString(a) && !r->prompt)) rc = loom_error_set(err, "out of memory");
            }
            if (!rc && im) {
                if (last_image && strcmp(last_image, im->valuestring) == 0) {
                    r->image = (int32_t)s->n_images - 1;
                } else {
                    if (s->n_images == cap_i) {
                        cap_i = cap_i ? cap_i * 2 : 1024;
                        loom_image *ni = realloc(s->images, cap_i * sizeof *ni);
                        if (!ni) rc = loom_error_set(err, "out of memory");
                        else s->images = ni;
                    }
                    char full[8192];
                    data_manifest_path(path, im->valuestring, full, sizeof full);
                    if (!rc && image_load_file(full, &s->images[s->n_images], err))
                        rc = loom_error_wrap(err, "%s:%zu", path, line_no);
                    if (!rc) {
                        r->image = (int32_t)s->n_images++;
                        free(last_image);
                        last_image = strdup(im->valuestring);
                    }
                }
            }
            if (!rc && au) {
                if (s->n_audio == cap_a) {
                    cap_a = cap_a ? cap_a * 2 : 1024;
                    loom_audio *na = realloc(s->audio, cap_a * sizeof *na);
                    if (!na) rc = loom_error_set(err, "out of memory");
                    else s->audio = na;
                }
                char full[8192];
                data_manifest_path(path, au->valuestring, full, sizeof full);
                if (!rc && audio_load_file(full, &s->audio[s->n_audio], err))
                    rc = loom_error_wrap(err, "%s:%zu", path, line_no);
                if (!rc) r->audio = (int32_t)s->n_audio++;
            }
            if (r) s->n_recs++;
        }
        cJSON_Delete(o);
    }
    free(line);
    free(last_image);
    fclose(f);
    if (!rc && s->n_recs == 0) rc = loom_error_set(err, "%s: no records", path);
    return rc;
}

static int manifest_has_images(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    char buf[65536];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    return strstr(buf, "\"image\"") != NULL || strstr(buf, "\"audio\"") != NULL;
}

/* ---- open / close -------------------------------------------------------- */

int source_open(train_source *s, const char *spec, float eval_frac, loom_error *err) {
    memset(s, 0, sizeof *s);
    s->eval_frac = eval_frac;
    s->caption_frac = 0.5f;
    s->caption_asks = 0.0f;
    s->caption_noise = 0.0f;
    s->turns = 4;
    s->gen_frac = 0.35f;
    s->gen_drop = 0.25f;
    s->gen_uncond = 0.1f;
    s->speech_frac = 0.3f;
    s->spoken_questions = -1.0f;
    if (strcmp(spec, "shapes") == 0) {
        s->kind = SOURCE_SHAPES;
        return 0;
    }
    if (data_is_jsonl_path(spec) && manifest_has_images(spec)) {
        s->kind = SOURCE_MANIFEST;
        if (manifest_load(s, spec, err)) {
            source_close(s);
            return -1;
        }
        size_t n_eval = (size_t)((double)s->n_recs * eval_frac);
        if (n_eval == 0 && s->n_recs > 1 && eval_frac > 0) n_eval = 1;
        s->n_train = s->n_recs - n_eval;
        return 0;
    }
    s->kind = SOURCE_TEXT;
    return raw_corpus_load(spec, &s->raw, err);
}

void source_close(train_source *s) {
    raw_corpus_free(&s->raw);
    corpus_free(&s->train_c);
    corpus_free(&s->eval_c);
    for (size_t i = 0; i < s->n_images; i++) image_free(&s->images[i]);
    free(s->images);
    for (size_t i = 0; i < s->n_audio; i++) {
        audio_free(&s->audio[i]);
        if (s->audio_frames) free(s->audio_frames[i]);
    }
    free(s->audio);
    free(s->audio_frames);
    free(s->audio_pos);
    for (size_t i = 0; i < s->n_recs; i++) {
        free(s->recs[i].prompt);
        free(s->recs[i].answer);
    }
    free(s->recs);
    free(s->patches);
    free(s->rgb);
    free(s->gen_rgb);
    free(s->gen_codes);
    free(s->gen_row);
    free(s->gen_prompt);
    free(s->gen_utt);
    speech_bank_free(&s->speech);
    free(s->prompt_utts);
    memset(s, 0, sizeof *s);
}

int source_is_multimodal(const train_source *s) {
    return s->kind == SOURCE_SHAPES || (s->kind == SOURCE_MANIFEST && s->n_images > 0);
}

/* Log-mel frames for every manifest audio file, grouped by the model's stack. */
static int manifest_prepare_audio(train_source *s, const loom_model *m, loom_error *err) {
    if (s->n_audio == 0) return 0;
    if (m->aud.stack <= 0) return loom_error_set(err, "the data has audio but the model has no audio input");
    s->audio_frames = calloc(s->n_audio, sizeof *s->audio_frames);
    s->audio_pos = calloc(s->n_audio, sizeof *s->audio_pos);
    if (!s->audio_frames || !s->audio_pos) return loom_error_set(err, "out of memory");
    for (size_t i = 0; i < s->n_audio; i++) {
        int64_t P;
        if (audio_enc_prepare(&s->audio[i], m->aud.stack, &s->audio_frames[i], &P, err)) return -1;
        s->audio_pos[i] = P > INT32_MAX ? INT32_MAX : (int32_t)P;
        audio_free(&s->audio[i]);
    }
    return 0;
}

int source_add_speech(train_source *s, const char *manifest, loom_error *err) {
    if (s->kind != SOURCE_SHAPES) return loom_error_set(err, "--speech goes with --data shapes");
    if (speech_bank_load(&s->speech, manifest, err)) return -1;
    s->n_prompt_utts = speech_bank_count(&s->speech, SPEECH_TASK_PROMPT);
    s->prompt_utts = malloc((s->n_prompt_utts ? s->n_prompt_utts : 1) * sizeof *s->prompt_utts);
    if (!s->prompt_utts) return loom_error_set(err, "out of memory");
    for (size_t i = 0, k = 0; i < s->speech.n; i++) {
        if (s->speech.u[i].task != SPEECH_TASK_PROMPT) continue;
        shapes_scene sc;
        if (shapes_scene_from_caption(s->speech.u[i].scene, &sc, err))
            return loom_error_wrap(err, "%s: %s: \"scene\"", manifest, s->speech.u[i].path);
        s->prompt_utts[k++] = i;
    }
    s->has_speech = 1;
    return 0;
}

int source_has_audio(const train_source *s) { return s->has_speech || s->n_audio > 0; }

int source_has_eval(const train_source *s) {
    switch (s->kind) {
    case SOURCE_TEXT: return s->n_eval > 0;
    case SOURCE_SHAPES: return 1;
    default: return s->n_train < s->n_recs;
    }
}

/* ---- tokenizer documents -------------------------------------------------- */

static int push_doc(char ***docs, size_t **lens, size_t *n, size_t *cap, char *d, size_t len) {
    if (*n == *cap) {
        *cap = *cap ? *cap * 2 : 4096;
        char **nd = realloc(*docs, *cap * sizeof *nd);
        size_t *nl = realloc(*lens, *cap * sizeof *nl);
        if (nd) *docs = nd;
        if (nl) *lens = nl;
        if (!nd || !nl) return -1;
    }
    (*docs)[*n] = d;
    (*lens)[*n] = len;
    (*n)++;
    return 0;
}

int source_tokenizer_docs(train_source *s, char ***docs, size_t **lens, size_t *n,
                          loom_error *err) {
    *docs = NULL;
    *lens = NULL;
    *n = 0;
    size_t cap = 0;
    if (s->kind == SOURCE_TEXT) {
        for (size_t i = 0; i < s->raw.n; i++) {
            if (s->raw.prompt[i] &&
                push_doc(docs, lens, n, &cap, s->raw.prompt[i], s->raw.prompt_len[i]))
                return loom_error_set(err, "out of memory");
            if (push_doc(docs, lens, n, &cap, s->raw.text[i], s->raw.text_len[i]))
                return loom_error_set(err, "out of memory");
        }
    } else if (s->kind == SOURCE_MANIFEST) {
        for (size_t i = 0; i < s->n_recs; i++) {
            if (s->recs[i].prompt && s->recs[i].prompt[0] &&
                push_doc(docs, lens, n, &cap, s->recs[i].prompt, strlen(s->recs[i].prompt)))
                return loom_error_set(err, "out of memory");
            if (push_doc(docs, lens, n, &cap, s->recs[i].answer, strlen(s->recs[i].answer)))
                return loom_error_set(err, "out of memory");
        }
    } else {
        /* Shapes World: captions and questions from a fixed stream. The
         * strings are owned by the caller through (*docs)[i] (free each). */
        loom_rng rng;
        shapes_split_rng(&rng, SHAPES_SPLIT_TRAIN, 0x70c0ull);
        for (int i = 0; i < 20000; i++) {
            shapes_scene sc;
            shapes_question q;
            char cap_buf[SHAPES_CAPTION_MAX];
            shapes_scene_sample_split(&sc, SHAPES_SPLIT_TRAIN, &rng);
            int cl = shapes_caption(&sc, cap_buf, sizeof cap_buf);
            if (cl < 0 || shapes_question_sample_mix(&sc, &rng, &q))
                return loom_error_set(err, "shapes: bad generated scene");
            char *c1 = strdup(cap_buf), *c2 = strdup(q.prompt), *c3 = strdup(q.answer);
            if (!c1 || !c2 || !c3 || push_doc(docs, lens, n, &cap, c1, strlen(c1)) ||
                push_doc(docs, lens, n, &cap, c2, strlen(c2)) ||
                push_doc(docs, lens, n, &cap, c3, strlen(c3)))
                return loom_error_set(err, "out of memory");
        }
    }
    return 0;
}

/* ---- batches -------------------------------------------------------------- */

int source_prepare(train_source *s, const loom_model *m, int32_t T, loom_error *err) {
    if (source_is_multimodal(s) && m->img.patch_size <= 0)
        return loom_error_set(err, "the data has images but the model has no image input");
    if (manifest_prepare_audio(s, m, err)) return -1;
    if (s->kind == SOURCE_TEXT) {
        size_t n_eval = (size_t)((double)s->raw.n * s->eval_frac);
        if (n_eval == 0 && s->raw.n > 1 && s->eval_frac > 0) n_eval = 1;
        if (corpus_build(&s->train_c, &s->raw, 0, s->raw.n - n_eval, m->tok, T, err)) return -1;
        if (n_eval && corpus_build(&s->eval_c, &s->raw, s->raw.n - n_eval, s->raw.n, m->tok, T, err)) {
            n_eval = 0;  /* an unusable evaluation split turns evaluation off */
        }
        s->n_eval = n_eval;
        return 0;
    }
    if (m->img.patch_size > 0) {
        size_t pd = (size_t)m->img.patch_size * m->img.patch_size * 3;
        size_t np = (size_t)m->img.max_patch_rows * m->img.max_patch_cols;
        s->patches = malloc(np * pd * sizeof(float));
        s->rgb = malloc((size_t)96 * 96 * 3);  /* the largest Shapes World canvas */
        if (!s->patches || !s->rgb) return loom_error_set(err, "out of memory");
    }
    if (s->has_speech) {
        if (m->aud.stack <= 0) return loom_error_set(err, "the data has audio but the model has no audio input");
        if (speech_bank_prepare(&s->speech, m->aud.stack, err)) return loom_error_wrap(err, "--speech");
    }
    return 0;
}

/* The question-type weights of --question-weights, or NULL (uniform). */
static const float *source_qweight(const train_source *s) {
    return s->has_qweight ? s->qweight : NULL;
}

/* Encodes text into out (at most cap ids); -1 if it does not fit. */
static int32_t encode(const loom_model *m, const char *text, int32_t *out, int32_t cap,
                      loom_error *err) {
    int64_t n = tokenizer_encode(m->tok, text, strlen(text), out, (size_t)cap, NULL, err);
    return n < 0 ? -1 : (int32_t)n;
}

/* Lays one (image, audio, prompt, answer) record into row b; audio: n_audio
 * positions of frames, or NULL. */
static int set_record_audio(const loom_model *m, fusion_batch *fb, int32_t b, const loom_image *img,
                            const float *audio, int32_t n_audio, const char *prompt,
                            const char *answer, loom_error *err) {
    int32_t ptok[SOURCE_MAX_TEXT_TOKENS], atok[SOURCE_MAX_TEXT_TOKENS];
    int32_t rows = 0, cols = 0, np = 0, na;
    float *owned = NULL;
    const float *pp = NULL;
    if (img) {
        if (patch_image(img, m->img.patch_size, m->img.max_patch_rows, m->img.max_patch_cols,
                        &owned, &rows, &cols, NULL, err))
            return -1;
        pp = owned;
    }
    if (prompt && (np = encode(m, prompt, ptok, SOURCE_MAX_TEXT_TOKENS, err)) < 0) goto fail;
    if ((na = encode(m, answer, atok, SOURCE_MAX_TEXT_TOKENS, err)) < 0) goto fail;
    fusion_row r = {.patches = pp, .rows = rows, .cols = cols, .audio = audio, .n_audio = audio ? n_audio : 0,
                    .prompt = ptok, .n_prompt = np, .answer = atok, .n_answer = na,
                    .with_sep = prompt != NULL || audio != NULL, .close = 1};
    if (fusion_batch_put_row(fb, b, &r, err)) goto fail;
    free(owned);
    return 0;
fail:
    free(owned);
    return -1;
}

static int set_record(const loom_model *m, fusion_batch *fb, int32_t b, const loom_image *img,
                      float *patches, const char *prompt, const char *answer, loom_error *err) {
    (void)patches;
    return set_record_audio(m, fb, b, img, NULL, 0, prompt, answer, err);
}

/* Room for B pending generation rows. */
static int gen_reserve(train_source *s, const loom_model *m, int32_t B, loom_error *err) {
    if (s->gen_cap >= B) return 0;
    const size_t img = (size_t)model_gen_height(m) * model_gen_width(m) * 3;
    free(s->gen_rgb), free(s->gen_codes), free(s->gen_row), free(s->gen_prompt), free(s->gen_utt);
    s->gen_utt = malloc((size_t)B * sizeof *s->gen_utt);
    s->gen_rgb = malloc((size_t)B * img);
    s->gen_codes = malloc((size_t)B * m->gen.rows * m->gen.cols * sizeof *s->gen_codes);
    s->gen_row = malloc((size_t)B * sizeof *s->gen_row);
    s->gen_prompt = malloc((size_t)B * sizeof *s->gen_prompt);
    s->gen_cap = s->gen_rgb && s->gen_codes && s->gen_row && s->gen_prompt && s->gen_utt ? B : 0;
    return s->gen_cap ? 0 : loom_error_set(err, "out of memory");
}

/* A generation row, pending until gen_flush: a scene of the split rendered
 * at the generation size, and its prompt (attributes left out at random;
 * sometimes empty, the unconditional case of guidance). */
static int gen_record(train_source *s, const loom_model *m, fusion_batch *fb, int32_t b,
                      const shapes_scene *scene, enum shapes_split split, loom_rng *rng,
                      loom_error *err) {
    const int32_t H = model_gen_height(m), W = model_gen_width(m), n_codes = m->gen.rows * m->gen.cols;
    shapes_scene sc = *scene;
    const int32_t k = s->gen_n;
    uint8_t *rgb = s->gen_rgb + (size_t)k * H * W * 3;
    /* A prompt too long for the row is redrawn with a new scene a few times
     * (long prompts are rare with a learned tokenizer); then it is an error. */
    for (int tries = 0;; tries++) {
        shapes_prompt p;
        if (shapes_prompt_from_scene(&sc, rng, s->gen_drop, &p))
            return loom_error_set(err, "shapes: cannot make a prompt");
        if (rng_uniform(rng) < s->gen_uncond) s->gen_prompt[k][0] = '\0';
        else if (shapes_prompt_format(&p, s->gen_prompt[k], sizeof s->gen_prompt[k]) < 0)
            return loom_error_set(err, "shapes: prompt too long");
        int32_t ptok[SOURCE_MAX_TEXT_TOKENS];
        int32_t np = encode(m, s->gen_prompt[k], ptok, SOURCE_MAX_TEXT_TOKENS, err);
        if (np < 0) return -1;
        if (fusion_row_length(0, 0, np, n_codes + 2, 1) <= fb->T) break;
        if (tries == 8)
            return loom_error_set(err, "generation rows (prompt, %d image codes) do not fit the "
                                  "sequence length %d: raise --seq", n_codes, fb->T);
        shapes_scene_sample_split(&sc, split, rng);
    }
    if (shapes_scene_layout(&sc, W, H, rng, err) || shapes_render(&sc, rgb, rng, err)) return -1;
    s->gen_row[k] = b;
    s->gen_utt[k] = -1;
    s->gen_n++;
    return 0;
}

/* A generation row whose prompt is spoken: utterance u of the bank and its
 * scene, rendered at the generation size; pending until gen_flush. */
static int gen_record_spoken(train_source *s, const loom_model *m, fusion_batch *fb, int32_t b,
                             size_t u, loom_rng *rng, loom_error *err) {
    const int32_t H = model_gen_height(m), W = model_gen_width(m), n_codes = m->gen.rows * m->gen.cols;
    const speech_utt *su = &s->speech.u[u];
    fusion_row r = {.n_audio = su->n_pos, .n_answer = n_codes + 2, .with_sep = 1, .close = 1};
    if (fusion_row_positions(&r) > fb->T) return 1; /* the caller draws another */
    shapes_scene sc;
    if (shapes_scene_from_caption(su->scene, &sc, err)) return -1;
    const int32_t k = s->gen_n;
    if (shapes_scene_layout(&sc, W, H, rng, err) ||
        shapes_render(&sc, s->gen_rgb + (size_t)k * H * W * 3, rng, err))
        return -1;
    s->gen_prompt[k][0] = '\0';
    s->gen_row[k] = b;
    s->gen_utt[k] = (int32_t)u;
    s->gen_n++;
    return 0;
}

/* Encodes the pending images with the VQ (one batch) and lays out each row:
 * <bos> prompt <sep> <boi> codes <eoi> <eos>, the loss on <boi> .. <eos>. */
static int gen_flush(train_source *s, const loom_model *m, fusion_batch *fb, loom_error *err) {
    if (s->gen_n == 0) return 0;
    const int32_t n_codes = m->gen.rows * m->gen.cols;
    if (model_encode_images(m, s->gen_rgb, s->gen_n, model_gen_height(m), model_gen_width(m),
                            s->gen_codes, err))
        return -1;
    int32_t ptok[SOURCE_MAX_TEXT_TOKENS], atok[SOURCE_MAX_TEXT_TOKENS];
    if (n_codes + 2 > SOURCE_MAX_TEXT_TOKENS) return loom_error_set(err, "too many image codes");
    for (int32_t k = 0; k < s->gen_n; k++) {
        int32_t np = encode(m, s->gen_prompt[k], ptok, SOURCE_MAX_TEXT_TOKENS, err);
        if (np < 0) return -1;
        atok[0] = TOKEN_BOI;
        for (int32_t i = 0; i < n_codes; i++) atok[1 + i] = m->gen.code_base + s->gen_codes[(size_t)k * n_codes + i];
        atok[1 + n_codes] = TOKEN_EOI;
        fusion_row r = {.prompt = ptok, .n_prompt = np, .answer = atok, .n_answer = n_codes + 2,
                        .with_sep = 1, .close = 1};
        if (s->gen_utt[k] >= 0) {
            r.audio = s->speech.u[s->gen_utt[k]].frames;
            r.n_audio = s->speech.u[s->gen_utt[k]].n_pos;
        }
        if (fusion_batch_put_row(fb, s->gen_row[k], &r, err)) return -1;
    }
    s->gen_n = 0;
    return 0;
}

static const int32_t shapes_sides[4] = {48, 64, 80, 96};

/* A spoken row: a transcript, a spoken question about scene sc (rendered at
 * a random canvas size), or a spoken prompt -> image codes (models with
 * image output), each a third of the time unless spoken_questions gives the
 * questions' share (the rest split evenly); a question nobody spoke in the
 * bank, or audio too long for the row, falls back to a transcript. */
static int speech_record(train_source *s, const loom_model *m, fusion_batch *fb, int32_t b,
                         const shapes_scene *scene, loom_rng *rng, loom_error *err) {
    const speech_bank *bank = &s->speech;
    const int can_gen = m->gen.n_codes > 0 && s->n_prompt_utts > 0;
    uint32_t kind;
    if (s->spoken_questions < 0) {
        kind = rng_below(rng, can_gen ? 3 : 2);
    } else if (rng_uniform(rng) < s->spoken_questions) {
        kind = 1;
    } else {
        kind = can_gen && rng_uniform(rng) < 0.5f ? 2 : 0;
    }
    int32_t atok[SOURCE_MAX_TEXT_TOKENS], na;
    if (kind == 1) {
        shapes_question q;
        size_t first, n;
        if (shapes_question_sample_weighted(scene, source_qweight(s), rng, &q))
            return loom_error_set(err, "shapes: no question");
        if ((n = speech_bank_find(bank, q.prompt, &first)) > 0) {
            const speech_utt *u = &bank->u[bank->by_text[first + rng_below(rng, (uint32_t)n)]];
            shapes_scene sc = *scene;
            int32_t W = shapes_sides[rng_below(rng, 4)], H = shapes_sides[rng_below(rng, 4)];
            if (shapes_scene_layout(&sc, W, H, rng, err) || shapes_render(&sc, s->rgb, rng, err)) return -1;
            loom_image img = {.width = W, .height = H, .rgb = s->rgb};
            float *patches = NULL;
            int32_t rows, cols;
            if (patch_image(&img, m->img.patch_size, m->img.max_patch_rows, m->img.max_patch_cols,
                            &patches, &rows, &cols, NULL, err))
                return -1;
            if ((na = encode(m, q.answer, atok, SOURCE_MAX_TEXT_TOKENS, err)) < 0) {
                free(patches);
                return -1;
            }
            fusion_row r = {.patches = patches, .rows = rows, .cols = cols, .audio = u->frames,
                            .n_audio = u->n_pos, .answer = atok, .n_answer = na, .with_sep = 1, .close = 1};
            int rc = fusion_row_positions(&r) <= fb->T ? fusion_batch_put_row(fb, b, &r, err) : 1;
            free(patches);
            if (rc <= 0) return rc;
        }
    }
    for (int tries = 0; tries < 16; tries++) {
        if (kind == 2) {
            int rc = gen_reserve(s, m, fb->B, err);
            if (!rc) rc = gen_record_spoken(s, m, fb, b, s->prompt_utts[rng_u64(rng) % s->n_prompt_utts], rng, err);
            if (rc <= 0) return rc;
            continue;
        }
        const speech_utt *u = &bank->u[rng_u64(rng) % bank->n];
        if ((na = encode(m, u->text, atok, SOURCE_MAX_TEXT_TOKENS, err)) < 0) return -1;
        fusion_row r = {.audio = u->frames, .n_audio = u->n_pos, .answer = atok, .n_answer = na,
                        .with_sep = 1, .close = 1};
        if (fusion_row_positions(&r) <= fb->T) return fusion_batch_put_row(fb, b, &r, err);
    }
    return loom_error_set(err, "spoken rows do not fit the sequence length %d: raise --seq", fb->T);
}

/* Appends distinct questions about sc to row b as further turns while they
 * fit, until the row holds s->turns questions; asked[0 .. n_asked) are the
 * questions already in it. */
static int add_questions(train_source *s, const loom_model *m, fusion_batch *fb, int32_t b,
                         const shapes_scene *sc, loom_rng *rng, char (*asked)[SHAPES_PROMPT_MAX],
                         int32_t n_asked, loom_error *err) {
    shapes_question q;
    for (int tries = 0; tries < 4 * SOURCE_MAX_TURNS && n_asked < s->turns && n_asked < SOURCE_MAX_TURNS; tries++) {
        if (shapes_question_sample_weighted(sc, source_qweight(s), rng, &q))
            return loom_error_set(err, "shapes: no question");
        int dup = 0;
        for (int32_t i = 0; i < n_asked; i++) dup |= strcmp(asked[i], q.prompt) == 0;
        if (dup) continue;
        int32_t ptok[SHAPES_PROMPT_MAX], atok[SHAPES_ANSWER_MAX], np, na;
        if ((np = encode(m, q.prompt, ptok, SHAPES_PROMPT_MAX, err)) < 0 || (na = encode(m, q.answer, atok, SHAPES_ANSWER_MAX, err)) < 0)
            return -1;
        if (fb->len[b] + np + na + 2 > fb->T) break;
        if (fusion_batch_add_turn(fb, b, ptok, np, atok, na, err)) return -1;
        snprintf(asked[n_asked++], sizeof asked[0], "%s", q.prompt);
    }
    return 0;
}

/* --caption-noise: the caption row b (its answer is sc's caption, then <eos>)
 * gets, as input only, each object's color word swapped for another color
 * with probability s->caption_noise; the targets stay the true caption. A
 * shape word then cannot be read off the color word before it, only off the
 * image: the prior "yellow is never a cross" that the held-out combinations
 * defeat is the one this weakens. No image, and no target, shows a held-out
 * combination. A swap that would change the caption's token count is not
 * made. */
static int noise_caption(const train_source *s, const loom_model *m, fusion_batch *fb, int32_t b,
                         const shapes_scene *sc, loom_rng *rng, loom_error *err) {
    char text[SHAPES_CAPTION_MAX];
    int32_t clean[SOURCE_MAX_TEXT_TOKENS], noisy[SOURCE_MAX_TEXT_TOKENS], nc = 0;
    shapes_scene alt = *sc;
    int swapped = 0;
    /* one word at a time, each kept only when the caption keeps its token
     * count: words are encoded apart, so the other tokens stay in place */
    for (int32_t i = 0; i < alt.n; i++) {
        if (rng_uniform(rng) >= s->caption_noise) continue;
        const int8_t was = alt.obj[i].color;
        const int32_t other = (int32_t)rng_below(rng, SHAPES_N_COLORS - 1);
        if (!nc) {
            if (shapes_caption(sc, text, sizeof text) < 0)
                return loom_error_set(err, "shapes: caption too long");
            if ((nc = encode(m, text, clean, SOURCE_MAX_TEXT_TOKENS, err)) < 0) return -1;
        }
        alt.obj[i].color = (int8_t)(other >= sc->obj[i].color ? other + 1 : other);
        if (shapes_caption(&alt, text, sizeof text) < 0)
            return loom_error_set(err, "shapes: caption too long");
        const int32_t nn = encode(m, text, noisy, SOURCE_MAX_TEXT_TOKENS, err);
        if (nn < 0) return -1;
        if (nn == nc) swapped = 1;
        else alt.obj[i].color = was;
    }
    if (!swapped) return 0;
    if (shapes_caption(&alt, text, sizeof text) < 0 ||
        encode(m, text, noisy, SOURCE_MAX_TEXT_TOKENS, err) != nc)
        return loom_error_set(err, "shapes: caption noise changed the token count");
    int32_t *tok = fb->tokens + (size_t)b * fb->T;
    const int32_t first = fb->len[b] - 1 - nc; /* the caption's first token; <eos> ends the row */
    if (first < 0 || memcmp(tok + first, clean, (size_t)nc * sizeof *clean))
        return loom_error_set(err, "shapes: caption noise: the row is not the caption");
    memcpy(tok + first, noisy, (size_t)nc * sizeof *noisy);
    return 0;
}

/* One Shapes World record of a split from rng, on a canvas of a random spec
 * size: a caption (caption_frac of the time; caption_asks of those go on with
 * questions, the caption in context) or questions of the mix, as many
 * distinct ones as fit (the image's positions are paid for once and serve
 * every answer); or a spoken or a generation row (speech_frac, gen_frac). */
static int shapes_record(train_source *s, const loom_model *m, fusion_batch *fb, int32_t b,
                         enum shapes_split split, loom_rng *rng, loom_error *err) {
    shapes_scene sc;
    shapes_scene_sample_split(&sc, split, rng);
    if (s->has_speech && rng_uniform(rng) < s->speech_frac) return speech_record(s, m, fb, b, &sc, rng, err);
    if (m->gen.n_codes > 0 && rng_uniform(rng) < s->gen_frac) {
        if (gen_reserve(s, m, fb->B, err)) return -1;
        return gen_record(s, m, fb, b, &sc, split, rng, err);
    }
    int32_t W = shapes_sides[rng_below(rng, 4)], H = shapes_sides[rng_below(rng, 4)];
    if (shapes_scene_layout(&sc, W, H, rng, err) || shapes_render(&sc, s->rgb, rng, err)) return -1;
    loom_image img = {.width = W, .height = H, .rgb = s->rgb};
    char caption[SHAPES_CAPTION_MAX];
    char asked[SOURCE_MAX_TURNS][SHAPES_PROMPT_MAX];
    if (rng_uniform(rng) < s->caption_frac) {
        if (shapes_caption(&sc, caption, sizeof caption) < 0)
            return loom_error_set(err, "shapes: caption too long");
        if (set_record(m, fb, b, &img, s->patches, "", caption, err)) return -1;
        /* (no draw unless asked for: older recipes keep their data stream) */
        if (s->caption_asks > 0 && rng_uniform(rng) < s->caption_asks)
            return add_questions(s, m, fb, b, &sc, rng, asked, 0, err);
        return s->caption_noise > 0 ? noise_caption(s, m, fb, b, &sc, rng, err) : 0;
    }
    shapes_question q;
    if (shapes_question_sample_weighted(&sc, source_qweight(s), rng, &q))
        return loom_error_set(err, "shapes: no question");
    if (set_record(m, fb, b, &img, s->patches, q.prompt, q.answer, err)) return -1;
    snprintf(asked[0], sizeof asked[0], "%s", q.prompt);
    return add_questions(s, m, fb, b, &sc, rng, asked, 1, err);
}

static int manifest_row(train_source *s, const loom_model *m, fusion_batch *fb, int32_t b,
                        size_t r, loom_error *err) {
    const manifest_record *rec = &s->recs[r];
    return set_record_audio(m, fb, b, rec->image >= 0 ? &s->images[rec->image] : NULL,
                            rec->audio >= 0 ? s->audio_frames[rec->audio] : NULL,
                            rec->audio >= 0 ? s->audio_pos[rec->audio] : 0, rec->prompt, rec->answer, err);
}

int source_sample(train_source *s, const loom_model *m, loom_rng *rng, fusion_batch *fb,
                  loom_error *err) {
    fusion_batch_clear(fb);
    s->gen_n = 0;
    if (s->kind == SOURCE_TEXT) {
        corpus_sample(&s->train_c, rng, fb->B, fb->T, fb->tokens, fb->targets);
        return 0;
    }
    for (int32_t b = 0; b < fb->B; b++) {
        int rc;
        if (s->kind == SOURCE_SHAPES) {
            rc = shapes_record(s, m, fb, b, SHAPES_SPLIT_TRAIN, rng, err);
            if (!rc && b == fb->B - 1) rc = gen_flush(s, m, fb, err);
        } else {
            /* records longer than the context are skipped (a few tries) */
            rc = -1;
            for (int tries = 0; tries < 8 && rc; tries++)
                rc = manifest_row(s, m, fb, b, (size_t)(rng_u64(rng) % s->n_train), err);
        }
        if (rc) return -1;
    }
    return 0;
}

int source_eval_batch(train_source *s, const loom_model *m, int64_t i, fusion_batch *fb,
                      loom_error *err) {
    fusion_batch_clear(fb);
    s->gen_n = 0;
    if (s->kind == SOURCE_TEXT) {
        corpus_batch_at(&s->eval_c, (size_t)i, fb->B, fb->T, fb->tokens, fb->targets);
        return 0;
    }
    for (int32_t b = 0; b < fb->B; b++) {
        uint64_t k = (uint64_t)i * (uint64_t)fb->B + (uint64_t)b;
        if (s->kind == SOURCE_SHAPES) {
            loom_rng rng;
            shapes_split_rng(&rng, SHAPES_SPLIT_TEST, k);
            if (shapes_record(s, m, fb, b, SHAPES_SPLIT_TEST, &rng, err)) return -1;
            if (b == fb->B - 1 && gen_flush(s, m, fb, err)) return -1;
        } else {
            size_t n_eval = s->n_recs - s->n_train;
            if (manifest_row(s, m, fb, b, s->n_train + (size_t)(k % n_eval), err)) return -1;
        }
    }
    return 0;
}
