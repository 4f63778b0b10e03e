#include "model/model.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/safetensors.h"

loom_model *model_new(const decoder_config *cfg, tokenizer *tok, loom_error *err) {
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
    if (decoder_register(cfg, &m->table, err)) goto fail;
    m->params = floats_alloc(m->table.total);
    if (!m->params) {
        loom_error_set(err, "out of memory for %zu parameters", m->table.total);
        goto fail;
    }
    decoder_bind(cfg, &m->table, m->params, &m->w);
    return m;
fail:
    model_free(m);
    return NULL;
}

void model_init_random(loom_model *m, uint64_t seed) {
    loom_rng rng;
    rng_seed(&rng, seed);
    decoder_init_weights(&m->cfg, &m->w, &rng);
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
    char *cfg = decoder_config_to_json(&m->cfg);
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
    if (decoder_config_from_json(cj, &cfg, err)) return NULL;
    tokenizer *tok = NULL;
    const char *tj = st_meta(f, "tokenizer");
    if (tj) {
        tok = tokenizer_from_json(tj, strlen(tj), err);
        if (!tok) return loom_error_wrap(err, "tokenizer"), NULL;
    }
    loom_model *m = model_new(&cfg, tok, err);
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
