#include "train/train.h"

#include <cjson/cJSON.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/clock.h"
#include "core/log.h"
#include "core/safetensors.h"
#include "core/threads.h"
#include "model/model.h"
#include "train/adamw.h"
#include "train/ckpt.h"
#include "train/data.h"
#include "train/source.h"
#include "train/vq_train.h"

train_options train_default_options(void) {
    train_options o;
    memset(&o, 0, sizeof o);
    o.model = decoder_default_config();
    o.model.vocab_size = 1024;
    o.batch = 16;
    o.seq = 128;
    o.accum = 1;
    o.steps = 1000;
    o.warmup = 50;
    o.lr = 1e-3f;
    o.min_lr = 1e-4f;
    o.weight_decay = 0.1f;
    o.beta1 = 0.9f;
    o.beta2 = 0.95f;
    o.grad_clip = 1.0f;
    o.eval_every = 100;
    o.eval_batches = 8;
    o.ckpt_every = 200;
    o.eval_frac = 0.05f;
    o.seed = 1;
    o.image.patch_size = 8;
    o.image.max_patch_rows = 8;
    o.image.max_patch_cols = 8;
    o.audio.stack = 8;
    o.speech_frac = 0.3f;
    o.spoken_questions = -1.0f;
    o.vq = vq_default_config();
    o.vq_side = 64;
    o.vq_restart = 1.0f;
    return o;
}


/* The recipe: everything that determines the run, stored in checkpoints and
 * in the final model's metadata. */
static char *recipe_json(const train_options *o, int64_t step) {
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "data", o->data);
    cJSON_AddNumberToObject(j, "batch", o->batch);
    cJSON_AddNumberToObject(j, "seq", o->seq);
    cJSON_AddNumberToObject(j, "accum", o->accum);
    cJSON_AddNumberToObject(j, "steps", (double)o->steps);
    cJSON_AddNumberToObject(j, "warmup", (double)o->warmup);
    cJSON_AddNumberToObject(j, "lr", ckpt_short_float(o->lr));
    cJSON_AddNumberToObject(j, "min_lr", ckpt_short_float(o->min_lr));
    cJSON_AddNumberToObject(j, "weight_decay", ckpt_short_float(o->weight_decay));
    cJSON_AddNumberToObject(j, "beta1", ckpt_short_float(o->beta1));
    cJSON_AddNumberToObject(j, "beta2", ckpt_short_float(o->beta2));
    cJSON_AddNumberToObject(j, "grad_clip", ckpt_short_float(o->grad_clip));
    cJSON_AddNumberToObject(j, "eval_frac", ckpt_short_float(o->eval_frac));
    cJSON_AddNumberToObject(j, "seed", (double)o->seed);
    cJSON_AddNumberToObject(j, "step", (double)step);
    char *s = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    return s;
}

typedef struct trainer {
    loom_model *m;
    float *grads, *mo, *vo;  /* (table.total) */
    model_grads g;
    int64_t step;            /* optimizer steps done */
    loom_rng rng;            /* data sampling */
} trainer;

static int ckpt_save(const trainer *tr, const train_options *o, const char *path, loom_error *err) {
    st_writer *w = st_writer_new();
    if (!w) return loom_error_set(err, "out of memory");
    char state[CKPT_STATE_MAX];
    ckpt_state_format(state, tr->step, &tr->rng);
    char *recipe = recipe_json(o, tr->step);
    int rc = model_add_metadata(tr->m, w, err);
    if (!rc) rc = st_writer_meta(w, "trainer", state, err);
    if (!rc) rc = st_writer_meta(w, "recipe", recipe ? recipe : "{}", err);
    if (!rc) rc = model_add_tensors(tr->m, w, "", tr->m->params, err);
    if (!rc) rc = model_add_vq_tensors(tr->m, w, err);
    if (!rc) rc = model_add_tensors(tr->m, w, "adam.m.", tr->mo, err);
    if (!rc) rc = model_add_tensors(tr->m, w, "adam.v.", tr->vo, err);
    if (!rc) rc = st_writer_save(w, path, err);
    free(recipe);
    st_writer_free(w);
    return rc;
}

static int ckpt_load(trainer *tr, const char *path, loom_error *err) {
    st_file *f = st_open(path, err);
    if (!f) return -1;
    int rc = -1;
    tr->m = model_from_metadata(f, err);
    if (!tr->m) goto done;
    if (tr->m->cfg.quant_group > 0) {
        loom_error_set(err, "%s: a quantized (int8) model cannot be trained; resume from the fp32 "
                       "checkpoint", path);
        goto done;
    }
    size_t n = tr->m->table.total;
    tr->grads = floats_alloc(n);
    tr->mo = floats_alloc(n);
    tr->vo = floats_alloc(n);
    if (!tr->grads || !tr->mo || !tr->vo) {
        loom_error_set(err, "out of memory");
        goto done;
    }
    if (model_read_tensors(tr->m, f, "", tr->m->params, err) || model_read_vq_tensors(tr->m, f, err) ||
        model_read_tensors(tr->m, f, "adam.m.", tr->mo, err) ||
        model_read_tensors(tr->m, f, "adam.v.", tr->vo, err))
        goto done;
    if (ckpt_state_parse(st_meta(f, "trainer"), path, &tr->step, &tr->rng, err)) goto done;
    rc = 0;
done:
    st_close(f);
    return rc;
}

/* One forward + backward over a filled fusion batch; returns the loss. */
static float train_micro_step(trainer *tr, decoder_acts *a, fusion_batch *fb, float *scratch,
                              float loss_scale) {
    const loom_model *m = tr->m;
    model_embed(m, fb, a->x0, scratch);
    float loss = decoder_forward(&m->cfg, &m->w, a, fb->B, fb->T, fb->targets);
    decoder_backward(&m->cfg, &m->w, &tr->g.dec, a, fb->B, fb->T, fb->targets, loss_scale);
    model_embed_backward(m, &tr->g, fb, a->dx0, scratch);
    return loss;
}

static int evaluate(trainer *tr, train_source *src, decoder_acts *a, fusion_batch *fb,
                    float *scratch, int64_t nbatches, float *out, loom_error *err) {
    double sum = 0.0;
    for (int64_t i = 0; i < nbatches; i++) {
        if (source_eval_batch(src, tr->m, i, fb, err)) return -1;
        model_embed(tr->m, fb, a->x0, scratch);
        sum += decoder_forward(&tr->m->cfg, &tr->m->w, a, fb->B, fb->T, fb->targets);
    }
    *out = nbatches ? (float)(sum / (double)nbatches) : 0.0f;
    return 0;
}

static void fmt_duration(char *buf, size_t n, double s) {
    if (s < 0 || !isfinite(s)) s = 0;
    long t = (long)s;
    if (t >= 3600) snprintf(buf, n, "%ldh%02ldm", t / 3600, (t / 60) % 60);
    else snprintf(buf, n, "%ldm%02lds", t / 60, t % 60);
}

/* Copies every tensor of src that m has under the same name: whole when the
 * shapes match, the leading rows when only the first dimension grew (the
 * embedding and head of a vocabulary extended by image codes). */
static int copy_weights(loom_model *m, const loom_model *src, loom_error *err) {
    for (int32_t i = 0; i < m->table.n; i++) {
        const param_info *d = &m->table.info[i];
        const param_info *p = params_find(&src->table, d->name);
        if (!p) continue;
        int same_tail = p->ndim == d->ndim;
        for (int32_t k = 1; k < d->ndim && same_tail; k++) same_tail = p->shape[k] == d->shape[k];
        if (!same_tail || p->shape[0] > d->shape[0])
            return loom_error_set(err, "--init: tensor %s has another shape in the initial model", d->name);
        memcpy(m->params + d->offset, src->params + p->offset, p->numel * sizeof(float));
    }
    return 0;
}

/* A new model for a fresh run: tokenizer (learned from the data, or the
 * --init model's), decoder and image input from the options (or --init),
 * image output from --vq, weights random then overwritten by --init's. */
static int new_model(trainer *tr, const train_options *o, train_source *src, loom_error *err) {
    double t0 = clock_now_s();
    loom_model *init = NULL;
    tokenizer *tok = NULL;
    vq_config vc = {0};
    param_table vpt, vst;
    float *vp = NULL, *vs = NULL;
    int rc = -1;
    memset(&vpt, 0, sizeof vpt);
    memset(&vst, 0, sizeof vst);
    if (o->init) {
        if (!(init = model_load(o->init, err))) return loom_error_wrap(err, "--init %s", o->init);
        if (init->cfg.quant_group > 0) {
            loom_error_set(err, "--init %s: a quantized (int8) model cannot be trained; start from "
                           "the fp32 model it was quantized from", o->init);
            goto done;
        }
        char *tj = init->tok ? tokenizer_to_json(init->tok, err) : NULL;
        if (!tj) {
            if (!init->tok) loom_error_set(err, "--init %s: the model has no tokenizer", o->init);
            goto done;
        }
        tok = tokenizer_from_json(tj, strlen(tj), err);
        free(tj);
        if (!tok) goto done;
    } else {
        /* byte-level BPE learned from the training documents */
        char **docs = NULL;
        size_t *lens = NULL, nd = 0;
        if (!source_tokenizer_docs(src, &docs, &lens, &nd, err)) {
            tokenizer_train_params tp = tokenizer_train_default_params();
            tp.vocab_size = o->model.vocab_size;
            tok = tokenizer_train((const char *const *)docs, lens, nd, tp, err);
            if (!tok) loom_error_wrap(err, "tokenizer");
        }
        if (src->kind == SOURCE_SHAPES)  /* generated strings are owned here */
            for (size_t i = 0; i < nd; i++) free(docs[i]);
        free(docs);
        free(lens);
        if (!tok) goto done;
        loom_log(LOOM_LOG_INFO, "loom: tokenizer: %d tokens learned in %.1fs",
                 tokenizer_vocab_size(tok), clock_now_s() - t0);
    }
    if (o->vq_file && vq_file_load(o->vq_file, &vc, &vpt, &vp, &vst, &vs, err)) {
        loom_error_wrap(err, "--vq");
        goto done;
    }
    /* image output: --vq's head, else the --init model's */
    const loom_model *vq_from = !o->vq_file && init && init->gen.n_codes > 0 ? init : NULL;
    if (vq_from) vc = vq_from->vqc;
    const int have_vq = o->vq_file || vq_from;
    decoder_config cfg = init ? init->cfg : o->model;
    if (init && o->grow_layers > 0) {
        if (o->grow_layers < init->cfg.n_layers) {
            loom_error_set(err, "--grow-layers %d: the --init model already has %d layers", o->grow_layers,
                           init->cfg.n_layers);
            goto done;
        }
        cfg.n_layers = o->grow_layers;
    }
    const int32_t tok_v = tokenizer_vocab_size(tok);
    cfg.vocab_size = tok_v + (have_vq ? vc.codes : 0);
    if (cfg.max_seq < o->seq) cfg.max_seq = o->seq;
    model_image_config img = init ? init->img : o->image;
    if (!init && !source_is_multimodal(src)) img.patch_size = 0;
    model_audio_config aud = init ? init->aud : (model_audio_config){0};
    const int add_audio = aud.stack == 0 && source_has_audio(src);
    if (add_audio) {
        aud = o->audio;
        if (aud.encoder == AUDIO_ENC_CONV && aud.channels == 0) aud.channels = cfg.d_model;
    }
    if (aud.stack > 0) {
        const audio_enc_config ac = {.stack = aud.stack, .kind = aud.encoder, .channels = aud.channels};
        if (aud.encoder == AUDIO_ENC_CONV)
            loom_log(LOOM_LOG_INFO, "loom: audio input%s: %d frames per position, conv stem "
                     "(%d stride-2 layers of %d channels, GELU) + linear", add_audio ? "" : " (--init's)",
                     aud.stack, audio_enc_conv_layers(&ac), aud.channels);
        else
            loom_log(LOOM_LOG_INFO, "loom: audio input%s: %d frames per position, stacked + linear",
                     add_audio ? "" : " (--init's)", aud.stack);
    }
    tr->m = model_new_ex(&cfg, &img, &aud, tok, err);
    tok = NULL; /* owned by the model now, even on failure */
    if (!tr->m) goto done;
    model_init_random(tr->m, o->seed);
    if (have_vq) {
        /* the generation target: 64 x 64 pixels (DESIGN), at least one code */
        const int32_t S = vq_stride(&vc), r = 64 / S > 0 ? 64 / S : 1;
        if (model_attach_vq(tr->m, &vc, tok_v, r, r, err)) goto done;
        memcpy(tr->m->vq_params, vq_from ? vq_from->vq_params : vp, tr->m->vq_table.total * sizeof(float));
        memcpy(tr->m->vq_state_buf, vq_from ? vq_from->vq_state_buf : vs,
               tr->m->vq_state.total * sizeof(float));
    }
    if (init && copy_weights(tr->m, init, err)) goto done;
    if (init && cfg.n_layers > init->cfg.n_layers) {
        if (decoder_grow_layers(&init->cfg, &init->w, &tr->m->cfg, &tr->m->w, err)) goto done;
        loom_log(LOOM_LOG_INFO, "loom: --init's %d layers grown to %d (the new ones are copies whose "
                 "output projections start at zero)", init->cfg.n_layers, cfg.n_layers);
    }
    rc = 0;
done:
    tokenizer_free(tok);
    model_free(init);
    params_free(&vpt), params_free(&vst);
    free(vp), free(vs);
    return rc;
}

int train_run(const train_options *o, loom_error *err) {
    if (o->vq_only) return vq_train_run(o, err);
    char ckpt_path[4096], log_path[4096];
    if (ckpt_path_join(ckpt_path, sizeof ckpt_path, o->ckpt ? o->ckpt : o->out, o->ckpt ? "" : ".ckpt") ||
        ckpt_path_join(log_path, sizeof log_path, o->log ? o->log : o->out, o->log ? "" : ".log.csv"))
        return loom_error_set(err, "%s: path too long", o->out);
    if (o->batch < 1 || o->seq < 2 || o->accum < 1 || o->steps < 1)
        return loom_error_set(err, "batch, seq, accum and steps must be positive (seq >= 2)");
    if (o->grow_layers > 0 && !o->init)
        return loom_error_set(err, "--grow-layers goes with --init (it deepens that model)");
    loom_threads_set(o->threads);

    trainer tr;
    memset(&tr, 0, sizeof tr);
    train_source src;
    fusion_batch fb;
    memset(&fb, 0, sizeof fb);
    decoder_acts *acts = NULL;
    float *scratch = NULL;
    FILE *logf = NULL;
    int rc = -1;
    if (source_open(&src, o->data, o->eval_frac, err)) return -1;
    src.speech_frac = o->speech_frac;
    src.spoken_questions = o->spoken_questions;
    src.caption_asks = o->caption_asks;
    src.caption_noise = o->caption_noise;
    src.has_qweight = o->has_qweight;
    memcpy(src.qweight, o->qweight, sizeof src.qweight);
    if (o->speech && source_add_speech(&src, o->speech, err)) {
        source_close(&src);
        return -1;
    }
    if (o->speech)
        loom_log(LOOM_LOG_INFO, "loom: speech: %zu utterances, %.0f s (%zu prompts, %zu questions)",
                 src.speech.n, src.speech.seconds, speech_bank_count(&src.speech, SPEECH_TASK_PROMPT),
                 speech_bank_count(&src.speech, SPEECH_TASK_QUESTION));

    int resumed = o->resume && ckpt_exists(ckpt_path);
    if (resumed) {
        if (ckpt_load(&tr, ckpt_path, err)) goto done;
        if (!tr.m->tok) {
            loom_error_set(err, "%s: checkpoint has no tokenizer", ckpt_path);
            goto done;
        }
        loom_log(LOOM_LOG_INFO, "loom: resuming from %s at step %" PRId64, ckpt_path, tr.step);
    } else {
        if (new_model(&tr, o, &src, err)) goto done;
        size_t n = tr.m->table.total;
        tr.grads = floats_alloc(n);
        tr.mo = floats_alloc(n);
        tr.vo = floats_alloc(n);
        if (!tr.grads || !tr.mo || !tr.vo) {
            loom_error_set(err, "out of memory");
            goto done;
        }
        rng_seed(&tr.rng, o->seed ^ 0x5eed5eed5eedull);
    }
    const decoder_config *cfg = &tr.m->cfg;
    if (o->seq > cfg->max_seq) {
        loom_error_set(err, "seq %d exceeds the model's max_seq %d", o->seq, cfg->max_seq);
        goto done;
    }
    model_bind_grads(tr.m, tr.grads, &tr.g);
    if (source_prepare(&src, tr.m, o->seq, err)) goto done;

    const int32_t B = o->batch, T = o->seq;
    const int32_t P = tr.m->img.patch_size;
    const int64_t max_patches =
        P > 0 ? (int64_t)B * tr.m->img.max_patch_rows * tr.m->img.max_patch_cols : 0;
    acts = decoder_acts_new(cfg, B, T, err);
    if (!acts) goto done;
    if (fusion_batch_init(&fb, B, T, P * P * 3, max_patches, err)) goto done;
    const int64_t max_audio = tr.m->aud.stack > 0 ? (int64_t)B * T : 0;
    if (max_audio && fusion_batch_reserve_audio(&fb, (int32_t)audio_enc_dim(&tr.m->acfg), max_audio, err))
        goto done;
    const size_t n_scratch = model_embed_scratch_floats(tr.m, max_patches, max_audio);
    scratch = n_scratch == SIZE_MAX ? NULL : floats_alloc(n_scratch ? n_scratch : 1);
    if (!scratch) {
        loom_error_set(err, "out of memory");
        goto done;
    }
    if (resumed && ckpt_log_truncate(log_path, tr.step, err)) goto done;
    logf = fopen(log_path, resumed ? "a" : "w");
    if (!logf) {
        loom_error_set(err, "%s: cannot open log", log_path);
        goto done;
    }
    if (!resumed) fprintf(logf, "step,loss,lr,grad_norm,tok_per_s,eval_loss\n");
    int has_eval = source_has_eval(&src) && o->eval_every > 0 && o->eval_batches > 0;
    loom_log(LOOM_LOG_INFO,
             "loom: model %zu parameters (d_model %d, %d layers, %d heads, %d kv heads, "
             "d_ff %d, vocab %d%s); data %s (%s%s); %d threads",
             tr.m->table.total, cfg->d_model, cfg->n_layers, cfg->n_heads, cfg->n_kv_heads,
             cfg->d_ff, cfg->vocab_size, P > 0 ? ", image patches" : "", o->data,
             src.kind == SOURCE_SHAPES ? "Shapes World, generated" :
             src.kind == SOURCE_MANIFEST ? "manifest" : "text",
             has_eval ? ", with evaluation" : "", loom_threads_get());

    const size_t np = tr.m->table.total;
    const double tok_per_step = (double)B * T * o->accum;
    double t_start = clock_now_s(), t_last = t_start;
    int64_t run_steps = 0;
    while (tr.step < o->steps) {
        memset(tr.grads, 0, np * sizeof(float));
        double loss = 0.0;
        for (int32_t micro = 0; micro < o->accum; micro++) {
            if (source_sample(&src, tr.m, &tr.rng, &fb, err)) goto done;
            loss += train_micro_step(&tr, acts, &fb, scratch, 1.0f / (float)o->accum);
        }
        loss /= o->accum;
        double norm = grad_clip(tr.grads, np, o->grad_clip);
        float lr = lr_schedule(tr.step, o->warmup, o->steps, o->lr, o->min_lr);
        adamw_params ap = {.lr = lr, .beta1 = o->beta1, .beta2 = o->beta2, .eps = 1e-8f,
                           .weight_decay = o->weight_decay};
        adamw_step(&tr.m->table, tr.m->params, tr.grads, tr.mo, tr.vo, ap, tr.step + 1);
        tr.step++;
        run_steps++;
        if (!isfinite(loss)) {
            loom_error_set(err, "loss became %f at step %" PRId64 "; lower the learning rate", loss,
                           tr.step);
            goto done;
        }
        double t = clock_now_s();
        double tps = tok_per_step / (t - t_last);
        t_last = t;
        float eval_loss = NAN;
        if (has_eval && (tr.step % o->eval_every == 0 || tr.step == o->steps))
            if (evaluate(&tr, &src, acts, &fb, scratch, o->eval_batches, &eval_loss, err)) goto done;
        fprintf(logf, "%" PRId64 ",%.6f,%.6g,%.4f,%.1f,", tr.step, loss, lr, norm, tps);
        if (isnan(eval_loss)) fprintf(logf, "\n");
        else fprintf(logf, "%.6f\n", eval_loss);
        fflush(logf);
        if (!o->quiet) {
            double avg = (t - t_start) / (double)run_steps;
            char eta[32];
            fmt_duration(eta, sizeof eta, avg * (double)(o->steps - tr.step));
            fprintf(stderr, "\rstep %6" PRId64 "/%" PRId64 " | loss %.4f | lr %.2e | norm %6.3f | %7.0f tok/s | ETA %s",
                    tr.step, o->steps, loss, lr, norm, tok_per_step / avg, eta);
            if (!isnan(eval_loss)) fprintf(stderr, " | eval %.4f\n", eval_loss);
            fflush(stderr);
        }
        int stopping = o->stop_after > 0 && run_steps >= o->stop_after && tr.step < o->steps;
        if ((o->ckpt_every > 0 && tr.step % o->ckpt_every == 0) || stopping) {
            if (ckpt_save(&tr, o, ckpt_path, err)) goto done;
        }
        if (stopping) {
            if (!o->quiet) fprintf(stderr, "\n");
            loom_log(LOOM_LOG_INFO, "loom: stopped at step %" PRId64 "; resume with --resume", tr.step);
            rc = 0;
            goto done;
        }
    }
    if (!o->quiet) fprintf(stderr, "\n");
    free(tr.m->train_json);
    tr.m->train_json = recipe_json(o, tr.step);
    if (ckpt_save(&tr, o, ckpt_path, err)) goto done;
    if (model_save(tr.m, o->out, err)) goto done;
    loom_log(LOOM_LOG_INFO, "loom: wrote %s (%" PRId64 " steps, %.1f min)", o->out, tr.step,
             (clock_now_s() - t_start) / 60.0);
    rc = 0;
done:
    if (logf) fclose(logf);
    free(scratch);
    fusion_batch_free(&fb);
    decoder_acts_free(acts);
    source_close(&src);
    free(tr.grads);
    free(tr.mo);
    free(tr.vo);
    model_free(tr.m);
    return rc;
}
