#include "model/model.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "core/safetensors.h"

loom_model *model_new(const decoder_config *cfg, tokenizer *tok, loom_error *err) {
    return model_new_ex(cfg, NULL, tok, err);
}

loom_model *model_new_ex(const decoder_config *cfg, const model_image_config *img, tokenizer *tok,
                         loom_error *err) {
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
    if (decoder_register(cfg, &m->table, err)) goto fail;
    if (m->img.patch_size > 0 && patch_register(&m->pcfg, &m->table, err)) goto fail;
    m->params = floats_alloc(m->table.total);
    if (!m->params) {
        loom_error_set(err, "out of memory for %zu parameters", m->table.total);
        goto fail;
    }
    decoder_bind(cfg, &m->table, m->params, &m->w);
    if (m->img.patch_size > 0) patch_bind(&m->pcfg, &m->table, m->params, &m->pw);
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
}

void model_bind_grads(const loom_model *m, float *buf, model_grads *g) {
    memset(g, 0, sizeof *g);
    decoder_bind(&m->cfg, &m->table, buf, &g->dec);
    if (m->img.patch_size > 0) patch_bind(&m->pcfg, &m->table, buf, &g->patch);
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
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return s;
}

/* Reads the image keys of a config JSON; absent keys mean a text-only model. */
static int image_config_from_json(const char *json, model_image_config *img, loom_error *err) {
    memset(img, 0, sizeof *img);
    cJSON *o = cJSON_Parse(json);
    if (!o) return loom_error_set(err, "config: not JSON");
    const char *keys[3] = {"patch_size", "max_patch_rows", "max_patch_cols"};
    int32_t *dst[3] = {&img->patch_size, &img->max_patch_rows, &img->max_patch_cols};
    int rc = 0;
    for (int i = 0; i < 3 && !rc; i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, keys[i]);
        if (!v) continue;
        if (!cJSON_IsNumber(v) || v->valuedouble < 0 || v->valuedouble > 4096 ||
            v->valuedouble != (double)(int32_t)v->valuedouble)
            rc = loom_error_set(err, "config: \"%s\" must be an integer in [0, 4096]", keys[i]);
        else
            *dst[i] = (int32_t)v->valuedouble;
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
}

void model_free(loom_model *m) {
    if (!m) return;
    tokenizer_free(m->tok);
    params_free(&m->table);
    free(m->params);
    free(m->train_json);
    free(m);
}

int model_add_tensors(const loom_model *m, st_writer *w, const char *prefix, const float *buf,
                      loom_error *err) {
    for (int32_t i = 0; i < m->table.n; i++) {
        const param_info *p = &m->table.info[i];
        char name[PARAM_NAME_MAX + 64];
        snprintf(name, sizeof name, "%s%s", prefix, p->name);
        if (st_writer_add(w, name, ST_F32, p->ndim, p->shape, buf + p->offset, err)) return -1;
    }
    return 0;
}

int model_read_tensors(const loom_model *m, const st_file *f, const char *prefix, float *buf,
                       loom_error *err) {
    for (int32_t i = 0; i < m->table.n; i++) {
        const param_info *p = &m->table.info[i];
        char name[PARAM_NAME_MAX + 64];
        snprintf(name, sizeof name, "%s%s", prefix, p->name);
        if (st_read_f32(f, name, p->ndim, p->shape, buf + p->offset, err)) return -1;
    }
    return 0;
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
    if (decoder_config_from_json(cj, &cfg, err)) return NULL;
    if (image_config_from_json(cj, &img, err)) return NULL;
    tokenizer *tok = NULL;
    const char *tj = st_meta(f, "tokenizer");
    if (tj) {
        tok = tokenizer_from_json(tj, strlen(tj), err);
        if (!tok) return loom_error_wrap(err, "tokenizer"), NULL;
    }
    loom_model *m = model_new_ex(&cfg, &img, tok, err);
    if (!m) return NULL;
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
    if (m && model_read_tensors(m, f, "", m->params, err)) {
        model_free(m);
        m = NULL;
    }
    st_close(f);
    return m;
}

int model_save(const loom_model *m, const char *path, loom_error *err) {
    st_writer *w = st_writer_new();
    if (!w) return loom_error_set(err, "out of memory");
    int rc = model_add_metadata(m, w, err);
    if (!rc) rc = model_add_tensors(m, w, "", m->params, err);
    if (!rc) rc = st_writer_save(w, path, err);
    st_writer_free(w);
    return rc;
}
