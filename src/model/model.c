#include "model/model.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "core/safetensors.h"

/* The audio encoder's config for a model's audio input of width d_model. */
static audio_enc_config audio_config(const model_audio_config *aud, int32_t d_model) {
    return (audio_enc_config){.stack = aud->stack, .d_model = d_model, .kind = aud->encoder,
                              .channels = aud->channels};
}

loom_model *model_new(const decoder_config *cfg, tokenizer *tok, loom_error *err) {
    return model_new_ex(cfg, NULL, NULL, tok, err);
}

loom_model *model_new_ex(const decoder_config *cfg, const model_image_config *img,
                         const model_audio_config *aud, tokenizer *tok, loom_error *err) {
    if (img && img->patch_size > 0 &&
        (img->max_patch_rows < 1 || img->max_patch_cols < 1 ||
         img->max_patch_rows > PATCH_MAX_GRID || img->max_patch_cols > PATCH_MAX_GRID)) {
        tokenizer_free(tok);
        return loom_error_set(err, "max_patch_rows/cols must be in [1, %d]", PATCH_MAX_GRID), NULL;
    }
    if (img && img->patch_size > 0) {
        patch_config pc = {.patch = img->patch_size, .d_model = cfg->d_model};
        if (patch_config_check(&pc, err)) {
            tokenizer_free(tok);
            return NULL;
        }
    }
    if (aud && aud->stack > 0) {
        audio_enc_config ac = audio_config(aud, cfg->d_model);
        if (audio_enc_config_check(&ac, err)) {
            tokenizer_free(tok);
            return NULL;
        }
    }
    if (decoder_config_check(cfg, err)) {
        tokenizer_free(tok);
        return NULL;
    }
    if (tok && tokenizer_vocab_size(tok) > cfg->vocab_size) {
        loom_error_set(err, "tokenizer has %d tokens but vocab_size is %d",
                       tokenizer_vocab_size(tok), cfg->vocab_size);
        tokenizer_free(tok);
        return NULL;
    }
    loom_model *m = calloc(1, sizeof *m);
    if (!m) {
        tokenizer_free(tok);
        return loom_error_set(err, "out of memory"), NULL;
    }
    m->cfg = *cfg;
    m->tok = tok;
    if (img && img->patch_size > 0) {
        m->img = *img;
        m->pcfg.patch = img->patch_size;
        m->pcfg.d_model = cfg->d_model;
    }
    if (aud && aud->stack > 0) {
        m->aud = *aud;
        m->acfg = audio_config(aud, cfg->d_model);
    }
    if (decoder_register(cfg, &m->table, err)) goto fail;
    if (m->img.patch_size > 0 && patch_register(&m->pcfg, &m->table, err)) goto fail;
    if (m->aud.stack > 0 && audio_enc_register(&m->acfg, &m->table, err)) goto fail;
    m->params = floats_alloc(m->table.total);
    if (!m->params) {
        loom_error_set(err, "out of memory for %zu parameters", m->table.total);
        goto fail;
    }
    if (cfg->quant_group > 0 && !(m->q8 = decoder_q8_new(cfg, err))) goto fail;
    decoder_bind(cfg, &m->table, m->params, &m->w);
    m->w.q8 = m->q8;
    if (m->img.patch_size > 0) patch_bind(&m->pcfg, &m->table, m->params, &m->pw);
    if (m->aud.stack > 0) audio_enc_bind(&m->acfg, &m->table, m->params, &m->aw);
    return m;
fail:
    model_free(m);
    return NULL;
}

void model_init_random(loom_model *m, uint64_t seed) {
    loom_rng rng;
    rng_seed(&rng, seed);
    decoder_init_weights(&m->cfg, &m->w, &rng);
    if (m->img.patch_size > 0) patch_init_weights(&m->pcfg, &m->pw, &rng);
    if (m->aud.stack > 0) audio_enc_init_weights(&m->acfg, &m->aw, &rng);
}

void model_bind_grads(const loom_model *m, float *buf, model_grads *g) {
    memset(g, 0, sizeof *g);
    decoder_bind(&m->cfg, &m->table, buf, &g->dec);
    if (m->img.patch_size > 0) patch_bind(&m->pcfg, &m->table, buf, &g->patch);
    if (m->aud.stack > 0) audio_enc_bind(&m->acfg, &m->table, buf, &g->audio);
}

char *model_config_to_json(const loom_model *m) {
    char *dec = decoder_config_to_json(&m->cfg);
    if (!dec) return NULL;
    cJSON *o = cJSON_Parse(dec);
    free(dec);
    if (!o) return NULL;
    if (m->img.patch_size > 0) {
        cJSON_AddNumberToObject(o, "patch_size", m->img.patch_size);
        cJSON_AddNumberToObject(o, "max_patch_rows", m->img.max_patch_rows);
        cJSON_AddNumberToObject(o, "max_patch_cols", m->img.max_patch_cols);
    }
    if (m->aud.stack > 0) cJSON_AddNumberToObject(o, "audio_stack", m->aud.stack);
    if (m->aud.stack > 0 && m->aud.encoder != AUDIO_ENC_STACK) { /* stack: no key, as before */
        cJSON_AddStringToObject(o, "audio_encoder", audio_enc_kind_name(m->aud.encoder));
        cJSON_AddNumberToObject(o, "audio_conv_channels", m->aud.channels);
    }
    if (m->gen.n_codes > 0) {
        char *vj = vq_config_to_json(&m->vqc);
        cJSON *v = vj ? cJSON_Parse(vj) : NULL;
        free(vj);
        if (!v) {
            cJSON_Delete(o);
            return NULL;
        }
        cJSON_AddItemToObject(o, "vq", v);
        cJSON_AddNumberToObject(o, "code_base", m->gen.code_base);
        cJSON_AddNumberToObject(o, "gen_rows", m->gen.rows);
        cJSON_AddNumberToObject(o, "gen_cols", m->gen.cols);
    }
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return s;
}

/* Reads the image and audio input keys of a config JSON; absent keys mean no
 * such input (absent "audio_encoder": the stack encoder). */
static int input_config_from_json(const char *json, model_image_config *img,
                                  model_audio_config *aud, loom_error *err) {
    memset(img, 0, sizeof *img);
    memset(aud, 0, sizeof *aud);
    cJSON *o = cJSON_Parse(json);
    if (!o) return loom_error_set(err, "config: not JSON");
    const char *keys[5] = {"patch_size", "max_patch_rows", "max_patch_cols", "audio_stack",
                           "audio_conv_channels"};
    int32_t *dst[5] = {&img->patch_size, &img->max_patch_rows, &img->max_patch_cols, &aud->stack,
                       &aud->channels};
    const int32_t hi[5] = {4096, 4096, 4096, 4096, AUDIO_ENC_MAX_CHANNELS};
    int rc = 0;
    for (int i = 0; i < 5 && !rc; i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, keys[i]);
        if (!v) continue;
        if (!cJSON_IsNumber(v) || v->valuedouble < 0 || v->valuedouble > hi[i] ||
            v->valuedouble != (double)(int32_t)v->valuedouble)
            rc = loom_error_set(err, "config: \"%s\" must be an integer in [0, %d]", keys[i], hi[i]);
        else
            *dst[i] = (int32_t)v->valuedouble;
    }
    const cJSON *enc = cJSON_GetObjectItemCaseSensitive(o, "audio_encoder");
    if (!rc && enc) {
        const int kind = cJSON_IsString(enc) ? audio_enc_kind_from_name(enc->valuestring) : -1;
        if (kind < 0)
            rc = loom_error_set(err, "config: \"audio_encoder\" must be \"stack\" or \"conv\"");
        else if (aud->stack == 0)
            rc = loom_error_set(err, "config: \"audio_encoder\" without \"audio_stack\"");
        else
            aud->encoder = kind;
    }
    /* the conv encoder's width goes with it (its own check says what is wrong) */
    if (!rc && aud->encoder == AUDIO_ENC_STACK &&
        cJSON_GetObjectItemCaseSensitive(o, "audio_conv_channels"))
        rc = loom_error_set(err, "config: \"audio_conv_channels\" without \"audio_encoder\": \"conv\"");
    cJSON_Delete(o);
    return rc;
}

/* The image-output keys of a config JSON ("vq", "code_base", "gen_rows",
 * "gen_cols"), attached to m; absent "vq" means no image output. */
static int gen_config_from_json(loom_model *m, const char *json, loom_error *err) {
    cJSON *o = cJSON_Parse(json);
    if (!o) return loom_error_set(err, "config: not JSON");
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, "vq");
    int rc = 0;
    if (v) {
        const char *keys[3] = {"code_base", "gen_rows", "gen_cols"};
        int32_t val[3] = {0};
        for (int i = 0; i < 3 && !rc; i++) {
            const cJSON *k = cJSON_GetObjectItemCaseSensitive(o, keys[i]);
            if (!cJSON_IsNumber(k) || k->valuedouble < 0 || k->valuedouble > (1 << 24) ||
                k->valuedouble != (double)(int32_t)k->valuedouble)
                rc = loom_error_set(err, "config: \"%s\" must be an integer in [0, 2^24]", keys[i]);
            else
                val[i] = (int32_t)k->valuedouble;
        }
        char *vj = rc ? NULL : cJSON_PrintUnformatted(v);
        vq_config vc;
        if (!rc && !vj) rc = loom_error_set(err, "out of memory");
        if (!rc && vq_config_from_json(vj, &vc, err)) rc = loom_error_wrap(err, "config: vq");
        if (!rc) rc = model_attach_vq(m, &vc, val[0], val[1], val[2], err);
        free(vj);
    }
    cJSON_Delete(o);
    return rc;
}

void model_embed(const loom_model *m, const fusion_batch *fb, float *x0, float *scratch) {
    const int64_t C = m->cfg.d_model, BT = (int64_t)fb->B * fb->T;
    for (int64_t i = 0; i < BT; i++) {
        int32_t t = fb->tokens[i];
        if (t >= 0) memcpy(x0 + i * C, m->w.tok_emb + (size_t)t * C, (size_t)C * sizeof(float));
    }
    if (fb->n_patches > 0 && m->img.patch_size > 0) {
        patch_forward(&m->pcfg, &m->pw, fb->patches, fb->n_patches, scratch, C);
        for (int64_t p = 0; p < fb->n_patches; p++)
            memcpy(x0 + fb->patch_pos[p] * C, scratch + p * C, (size_t)C * sizeof(float));
    }
    if (fb->n_audio > 0 && m->aud.stack > 0) {
        /* scratch: the encoded rows (n_audio, C), then the encoder's own */
        audio_enc_encode(&m->acfg, &m->aw, fb->audio, fb->audio_pos, fb->n_audio, scratch, C,
                         scratch + fb->n_audio * C);
        for (int64_t p = 0; p < fb->n_audio; p++)
            memcpy(x0 + fb->audio_pos[p] * C, scratch + p * C, (size_t)C * sizeof(float));
    }
}

void model_embed_backward(const loom_model *m, model_grads *g, const fusion_batch *fb,
                          const float *dx0, float *scratch) {
    const int64_t C = m->cfg.d_model, BT = (int64_t)fb->B * fb->T;
    for (int64_t i = 0; i < BT; i++) {
        int32_t t = fb->tokens[i];
        if (t < 0) continue;
        float *row = g->dec.tok_emb + (size_t)t * C;
        const float *d = dx0 + i * C;
        for (int64_t j = 0; j < C; j++) row[j] += d[j];
    }
    if (fb->n_patches > 0 && m->img.patch_size > 0) {
        for (int64_t p = 0; p < fb->n_patches; p++)
            memcpy(scratch + p * C, dx0 + fb->patch_pos[p] * C, (size_t)C * sizeof(float));
        patch_backward(&m->pcfg, &m->pw, &g->patch, fb->patches, fb->n_patches, scratch, C);
    }
    if (fb->n_audio > 0 && m->aud.stack > 0) {
        for (int64_t p = 0; p < fb->n_audio; p++)
            memcpy(scratch + p * C, dx0 + fb->audio_pos[p] * C, (size_t)C * sizeof(float));
        audio_enc_encode_backward(&m->acfg, &m->aw, &g->audio, fb->audio, fb->audio_pos,
                                  fb->n_audio, scratch, C, scratch + fb->n_audio * C);
    }
}

size_t model_embed_scratch_floats(const loom_model *m, int64_t max_patches, int64_t max_audio) {
    if (m->img.patch_size <= 0 || max_patches < 0) max_patches = 0;
    if (m->aud.stack <= 0 || max_audio < 0) max_audio = 0;
    const size_t C = (size_t)m->cfg.d_model;
    const size_t enc = max_audio > 0 ? audio_enc_scratch_floats(&m->acfg, max_audio) : 0;
    size_t patches, audio; /* patches: their rows; audio: its rows, then the encoder's part */
    if (enc == SIZE_MAX || loom_mul_size((size_t)max_patches, C, &patches) ||
        loom_mul_size((size_t)max_audio, C, &audio) || loom_add_size(audio, enc, &audio))
        return SIZE_MAX;
    return patches > audio ? patches : audio;
}

void model_free(loom_model *m) {
    if (!m) return;
    tokenizer_free(m->tok);
    params_free(&m->table);
    free(m->params);
    decoder_q8_free(m->q8);
    params_free(&m->vq_table);
    params_free(&m->vq_state);
    free(m->vq_params);
    free(m->vq_state_buf);
    free(m->train_json);
    free(m);
}

int model_add_tensors(const loom_model *m, st_writer *w, const char *prefix, const float *buf,
                      loom_error *err) {
    if (m->q8 && (prefix[0] || buf != m->params))
        return loom_error_set(err, "a quantized model has no training state");
    if (params_write(&m->table, w, prefix, buf, err)) return -1;
    return m->q8 ? decoder_q8_write(&m->cfg, m->q8, w, err) : 0;
}

int model_read_tensors(const loom_model *m, const st_file *f, const char *prefix, float *buf,
                       loom_error *err) {
    if (m->q8 && (prefix[0] || buf != m->params))
        return loom_error_set(err, "a quantized model has no training state");
    if (params_read(&m->table, f, prefix, buf, err)) return -1;
    return m->q8 ? decoder_q8_read(&m->cfg, m->q8, f, err) : 0;
}

int model_attach_vq(loom_model *m, const vq_config *vc, int32_t code_base, int32_t rows,
                    int32_t cols, loom_error *err) {
    if (m->gen.n_codes > 0) return loom_error_set(err, "the model already has a VQ head");
    if (vq_config_check(vc, err)) return loom_error_wrap(err, "vq");
    const int32_t tok_v = m->tok ? tokenizer_vocab_size(m->tok) : 0;
    if (code_base < tok_v || (int64_t)code_base + vc->codes > m->cfg.vocab_size)
        return loom_error_set(err, "image codes [%d, %lld) must follow the tokenizer's %d tokens "
                              "inside the vocabulary (%d)", code_base,
                              (long long)code_base + vc->codes, tok_v, m->cfg.vocab_size);
    const int32_t S = vq_stride(vc);
    if (rows < 1 || cols < 1 || (int64_t)rows * S > VQ_MAX_SIDE || (int64_t)cols * S > VQ_MAX_SIDE)
        return loom_error_set(err, "generated image grid %dx%d out of range", rows, cols);
    if (vq_register(vc, &m->vq_table, &m->vq_state, err)) goto fail;
    m->vq_params = floats_alloc(m->vq_table.total ? m->vq_table.total : 1);
    m->vq_state_buf = floats_alloc(m->vq_state.total ? m->vq_state.total : 1);
    if (!m->vq_params || !m->vq_state_buf) {
        loom_error_set(err, "out of memory");
        goto fail;
    }
    m->vqc = *vc;
    vq_bind(vc, &m->vq_table, m->vq_params, &m->vq_state, m->vq_state_buf, &m->vqw);
    m->gen = (model_gen_config){.n_codes = vc->codes, .code_base = code_base, .rows = rows, .cols = cols};
    return 0;
fail:
    params_free(&m->vq_table);
    params_free(&m->vq_state);
    free(m->vq_params);
    free(m->vq_state_buf);
    m->vq_params = m->vq_state_buf = NULL;
    return -1;
}

int32_t model_gen_height(const loom_model *m) {
    return m->gen.n_codes > 0 ? m->gen.rows * vq_stride(&m->vqc) : 0;
}

int32_t model_gen_width(const loom_model *m) {
    return m->gen.n_codes > 0 ? m->gen.cols * vq_stride(&m->vqc) : 0;
}

int model_decode_codes(const loom_model *m, const int32_t *codes, uint8_t *rgb, loom_error *err) {
    if (m->gen.n_codes <= 0) return loom_error_set(err, "this model has no image output");
    const int32_t H = model_gen_height(m), W = model_gen_width(m);
    for (int64_t i = 0; i < (int64_t)m->gen.rows * m->gen.cols; i++)
        if (codes[i] < 0 || codes[i] >= m->gen.n_codes)
            return loom_error_set(err, "image code %d out of range [0, %d)", codes[i], m->gen.n_codes);
    vq_acts *a = vq_acts_new(&m->vqc, 1, H, W, err);
    float *px = floats_alloc((size_t)H * W * 3);
    int rc = -1;
    if (!a || !px) {
        if (a) loom_error_set(err, "out of memory");
    } else if (!vq_decode(&m->vqc, &m->vqw, a, codes, 1, m->gen.rows, m->gen.cols, px, err)) {
        vq_pixels_to_rgb(rgb, px, (int64_t)H * W * 3);
        rc = 0;
    }
    free(px);
    vq_acts_free(a);
    return rc;
}

int model_encode_images(const loom_model *m, const uint8_t *rgb, int32_t n, int32_t H, int32_t W,
                        int32_t *codes, loom_error *err) {
    if (m->gen.n_codes <= 0) return loom_error_set(err, "this model has no image output");
    if (n < 1 || H < 1 || W < 1) return loom_error_set(err, "encode: bad sizes");
    vq_acts *a = vq_acts_new(&m->vqc, n, H, W, err);
    size_t count;
    if (!a) return -1;
    if (loom_mul_size((size_t)n * (size_t)H, (size_t)W * 3, &count)) {
        vq_acts_free(a);
        return loom_error_set(err, "encode: too many pixels");
    }
    float *px = floats_alloc(count);
    int rc = -1;
    if (!px) {
        loom_error_set(err, "out of memory");
    } else {
        vq_pixels_from_rgb(px, rgb, (int64_t)count);
        rc = vq_encode(&m->vqc, &m->vqw, a, px, n, H, W, codes, err);
    }
    free(px);
    vq_acts_free(a);
    return rc;
}

int model_add_vq_tensors(const loom_model *m, st_writer *w, loom_error *err) {
    if (m->gen.n_codes <= 0) return 0;
    if (params_write(&m->vq_table, w, "", m->vq_params, err)) return -1;
    return params_write(&m->vq_state, w, "", m->vq_state_buf, err);
}

int model_read_vq_tensors(loom_model *m, const st_file *f, loom_error *err) {
    if (m->gen.n_codes <= 0) return 0;
    if (params_read(&m->vq_table, f, "", m->vq_params, err)) return -1;
    return params_read(&m->vq_state, f, "", m->vq_state_buf, err);
}

int model_add_metadata(const loom_model *m, st_writer *w, loom_error *err) {
    if (st_writer_meta(w, "format", MODEL_FORMAT, err)) return -1;
    char *cfg = model_config_to_json(m);
    if (!cfg) return loom_error_set(err, "out of memory");
    int rc = st_writer_meta(w, "config", cfg, err);
    free(cfg);
    if (rc) return -1;
    if (m->tok) {
        char *tj = tokenizer_to_json(m->tok, err);
        if (!tj) return -1;
        rc = st_writer_meta(w, "tokenizer", tj, err);
        free(tj);
        if (rc) return -1;
    }
    if (m->train_json && st_writer_meta(w, "train", m->train_json, err)) return -1;
    return 0;
}

/* Values the tensors of (cfg, img, aud) hold (their numel summed: the table's
 * total also counts the padding that aligns each tensor, which the file does
 * not store), without allocating them; -1 with err set if the config is invalid. */
static int64_t param_floats(const decoder_config *cfg, const model_image_config *img,
                            const model_audio_config *aud, loom_error *err) {
    param_table t;
    memset(&t, 0, sizeof t);
    patch_config pc = {.patch = img->patch_size, .d_model = cfg->d_model};
    audio_enc_config ac = audio_config(aud, cfg->d_model);
    int rc = decoder_config_check(cfg, err) || decoder_register(cfg, &t, err) ||
             (img->patch_size > 0 && (patch_config_check(&pc, err) || patch_register(&pc, &t, err))) ||
             (aud->stack > 0 && (audio_enc_config_check(&ac, err) || audio_enc_register(&ac, &t, err)));
    int64_t n = rc ? -1 : 0;
    for (int32_t i = 0; i < t.n && !rc; i++) n += (int64_t)t.info[i].numel;
    params_free(&t);
    return n;
}

loom_model *model_from_metadata(const st_file *f, loom_error *err) {
    const char *format = st_meta(f, "format");
    if (!format || strcmp(format, MODEL_FORMAT) != 0)
        return loom_error_set(err, "not a loom model (metadata format is %s%s%s, want %s)",
                              format ? "\"" : "", format ? format : "missing",
                              format ? "\"" : "", MODEL_FORMAT),
               NULL;
    const char *cj = st_meta(f, "config");
    if (!cj) return loom_error_set(err, "no config in metadata"), NULL;
    decoder_config cfg;
    model_image_config img;
    model_audio_config aud;
    if (decoder_config_from_json(cj, &cfg, err)) return NULL;
    if (input_config_from_json(cj, &img, &aud, err)) return NULL;
    /* A hostile config may claim terabytes: the file must hold at least the
     * F32 (and for a quantized model I8) tensor bytes the config needs before
     * anything that size is allocated. */
    int64_t need = param_floats(&cfg, &img, &aud, err), need_i8, n_scales;
    if (need < 0) return NULL;
    decoder_q8_counts(&cfg, &need_i8, &n_scales);
    need += n_scales;
    int64_t have = 0, have_i8 = 0;
    for (size_t i = 0; i < st_count(f); i++) {
        const st_tensor *t = st_at(f, i);
        if (t->dtype == ST_F32) have += t->numel;
        if (t->dtype == ST_I8) have_i8 += t->numel;
    }
    if (need > have)
        return loom_error_set(err, "the config needs %lld parameters but the file holds %lld F32 values",
                              (long long)need, (long long)have),
               NULL;
    if (need_i8 > have_i8)
        return loom_error_set(err, "the quantized config needs %lld int8 weights but the file holds %lld I8 values",
                              (long long)need_i8, (long long)have_i8),
               NULL;
    tokenizer *tok = NULL;
    const char *tj = st_meta(f, "tokenizer");
    if (tj) {
        tok = tokenizer_from_json(tj, strlen(tj), err);
        if (!tok) return loom_error_wrap(err, "tokenizer"), NULL;
    }
    loom_model *m = model_new_ex(&cfg, &img, &aud, tok, err);
    if (!m) return NULL;
    if (gen_config_from_json(m, cj, err)) {
        model_free(m);
        return NULL;
    }
    const char *train = st_meta(f, "train");
    if (train && !(m->train_json = strdup(train))) {
        model_free(m);
        return loom_error_set(err, "out of memory"), NULL;
    }
    return m;
}

loom_model *model_load(const char *path, loom_error *err) {
    st_file *f = st_open(path, err);
    if (!f) return NULL;
    loom_model *m = model_from_metadata(f, err);
    if (m && (model_read_tensors(m, f, "", m->params, err) || model_read_vq_tensors(m, f, err))) {
        model_free(m);
        m = NULL;
    }
    st_close(f);
    return m;
}

loom_model *model_quantize(const loom_model *src, int32_t group, int head, loom_error *err) {
    if (src->q8) return loom_error_set(err, "the model is already quantized"), NULL;
    decoder_config qc = src->cfg;
    qc.quant_group = group;
    qc.quant_head = head ? 1 : 0;
    if (decoder_config_check(&qc, err)) return NULL;
    tokenizer *tok = NULL;
    if (src->tok) {
        char *tj = tokenizer_to_json(src->tok, err);
        tok = tj ? tokenizer_from_json(tj, strlen(tj), err) : NULL;
        free(tj);
        if (!tok) return NULL;
    }
    loom_model *m = model_new_ex(&qc, &src->img, &src->aud, tok, err);
    if (!m) return NULL;
    /* every fp32 tensor the quantized model keeps, by name */
    for (int32_t i = 0; i < m->table.n; i++) {
        const param_info *d = &m->table.info[i], *p = params_find(&src->table, d->name);
        if (!p || p->numel != d->numel) {
            loom_error_set(err, "quantize: tensor %s differs between the models", d->name);
            goto fail;
        }
        memcpy(m->params + d->offset, src->params + p->offset, p->numel * sizeof(float));
    }
    if (decoder_q8_quantize(&qc, m->q8, &src->w, err)) goto fail;
    if (src->gen.n_codes > 0) {
        if (model_attach_vq(m, &src->vqc, src->gen.code_base, src->gen.rows, src->gen.cols, err))
            goto fail;
        memcpy(m->vq_params, src->vq_params, src->vq_table.total * sizeof(float));
        memcpy(m->vq_state_buf, src->vq_state_buf, src->vq_state.total * sizeof(float));
    }
    if (src->train_json && !(m->train_json = strdup(src->train_json))) {
        loom_error_set(err, "out of memory");
        goto fail;
    }
    return m;
fail:
    model_free(m);
    return NULL;
}

int model_save(const loom_model *m, const char *path, loom_error *err) {
    st_writer *w = st_writer_new();
    if (!w) return loom_error_set(err, "out of memory");
    int rc = model_add_metadata(m, w, err);
    if (!rc) rc = model_add_tensors(m, w, "", m->params, err);
    if (!rc) rc = model_add_vq_tensors(m, w, err);
    if (!rc) rc = st_writer_save(w, path, err);
    st_writer_free(w);
    return rc;
}
