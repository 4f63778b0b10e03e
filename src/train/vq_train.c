#include "train/vq_train.h"

#include <cjson/cJSON.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/log.h"
#include "core/safetensors.h"
#include "core/threads.h"
#include "data/shapes.h"
#include "data/shapes_analyze.h"
#include "train/adamw.h"
#include "train/ckpt.h"

typedef struct vq_trainer {
    vq_config c;
    param_table pt, st;       /* trained tensors, codebook + EMA state */
    float *params, *state;    /* (pt.total), (st.total) */
    float *grads, *mo, *vo;   /* (pt.total) */
    vq_weights w, g;
    int64_t step;
    loom_rng rng;             /* data, restarts */
} vq_trainer;

static void trainer_free(vq_trainer *t) {
    params_free(&t->pt);
    params_free(&t->st);
    free(t->params), free(t->state), free(t->grads), free(t->mo), free(t->vo);
    memset(t, 0, sizeof *t);
}

/* Registers the tables for t->c and allocates every buffer. */
static int trainer_alloc(vq_trainer *t, loom_error *err) {
    if (vq_register(&t->c, &t->pt, &t->st, err)) return -1;
    const size_t n = t->pt.total, ns = t->st.total;
    t->params = floats_alloc(n), t->grads = floats_alloc(n);
    t->mo = floats_alloc(n), t->vo = floats_alloc(n), t->state = floats_alloc(ns);
    if (!t->params || !t->grads || !t->mo || !t->vo || !t->state)
        return loom_error_set(err, "out of memory");
    vq_bind(&t->c, &t->pt, t->params, &t->st, t->state, &t->w);
    vq_bind(&t->c, &t->pt, t->grads, NULL, NULL, &t->g);
    return 0;
}

static char *recipe_json(const train_options *o, int64_t step) {
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "data", o->data);
    cJSON_AddNumberToObject(j, "batch", o->batch);
    cJSON_AddNumberToObject(j, "vq_side", o->vq_side);
    cJSON_AddNumberToObject(j, "vq_restart", ckpt_short_float(o->vq_restart));
    cJSON_AddNumberToObject(j, "steps", (double)o->steps);
    cJSON_AddNumberToObject(j, "warmup", (double)o->warmup);
    cJSON_AddNumberToObject(j, "lr", ckpt_short_float(o->lr));
    cJSON_AddNumberToObject(j, "min_lr", ckpt_short_float(o->min_lr));
    cJSON_AddNumberToObject(j, "weight_decay", ckpt_short_float(o->weight_decay));
    cJSON_AddNumberToObject(j, "grad_clip", ckpt_short_float(o->grad_clip));
    cJSON_AddNumberToObject(j, "seed", (double)o->seed);
    cJSON_AddNumberToObject(j, "step", (double)step);
    char *s = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    return s;
}

/* The VQ file, or (with_optimizer) a checkpoint that also holds the AdamW
 * moments and the trainer's step and rng. */
static int save(const vq_trainer *t, const train_options *o, const char *path, int with_optimizer,
                loom_error *err) {
    st_writer *w = st_writer_new();
    if (!w) return loom_error_set(err, "out of memory");
    char *cfg = vq_config_to_json(&t->c), *recipe = recipe_json(o, t->step);
    char state[CKPT_STATE_MAX];
    ckpt_state_format(state, t->step, &t->rng);
    int rc = cfg && recipe ? 0 : loom_error_set(err, "out of memory");
    if (!rc) rc = st_writer_meta(w, "format", VQ_FILE_FORMAT, err);
    if (!rc) rc = st_writer_meta(w, "vq", cfg, err);
    if (!rc) rc = st_writer_meta(w, "train", recipe, err);
    if (!rc) rc = params_write(&t->pt, w, "", t->params, err);
    if (!rc) rc = params_write(&t->st, w, "", t->state, err);
    if (!rc && with_optimizer) {
        rc = st_writer_meta(w, "trainer", state, err);
        if (!rc) rc = params_write(&t->pt, w, "adam.m.", t->mo, err);
        if (!rc) rc = params_write(&t->pt, w, "adam.v.", t->vo, err);
    }
    if (!rc) rc = st_writer_save(w, path, err);
    free(cfg);
    free(recipe);
    st_writer_free(w);
    return rc;
}

static int read_config(const st_file *f, const char *path, vq_config *c, loom_error *err) {
    const char *format = st_meta(f, "format"), *cj = st_meta(f, "vq");
    if (!format || strcmp(format, VQ_FILE_FORMAT) != 0 || !cj)
        return loom_error_set(err, "%s: not a loom VQ file (want metadata format \"%s\" and \"vq\")",
                              path, VQ_FILE_FORMAT);
    if (vq_config_from_json(cj, c, err)) return loom_error_wrap(err, "%s: vq", path);
    return 0;
}

static int load_checkpoint(vq_trainer *t, const char *path, loom_error *err) {
    st_file *f = st_open(path, err);
    if (!f) return -1;
    int rc = read_config(f, path, &t->c, err);
    if (!rc) rc = trainer_alloc(t, err);
    if (!rc) rc = params_read(&t->pt, f, "", t->params, err);
    if (!rc) rc = params_read(&t->st, f, "", t->state, err);
    if (!rc) rc = params_read(&t->pt, f, "adam.m.", t->mo, err);
    if (!rc) rc = params_read(&t->pt, f, "adam.v.", t->vo, err);
    if (!rc) rc = ckpt_state_parse(st_meta(f, "trainer"), path, &t->step, &t->rng, err);
    st_close(f);
    return rc;
}

int vq_file_load(const char *path, vq_config *c, param_table *params, float **params_buf,
                 param_table *state, float **state_buf, loom_error *err) {
    memset(params, 0, sizeof *params);
    memset(state, 0, sizeof *state);
    *params_buf = *state_buf = NULL;
    st_file *f = st_open(path, err);
    if (!f) return -1;
    int rc = read_config(f, path, c, err);
    if (!rc) rc = vq_register(c, params, state, err);
    if (!rc) {
        *params_buf = floats_alloc(params->total ? params->total : 1);
        *state_buf = floats_alloc(state->total ? state->total : 1);
        if (!*params_buf || !*state_buf) rc = loom_error_set(err, "out of memory");
    }
    if (!rc) rc = params_read(params, f, "", *params_buf, err);
    if (!rc) rc = params_read(state, f, "", *state_buf, err);
    st_close(f);
    if (rc) {
        params_free(params), params_free(state);
        free(*params_buf), free(*state_buf);
        *params_buf = *state_buf = NULL;
    }
    return rc;
}

/* B jittered scenes of a split, side x side, as pixels in [-1, 1]; rgb is
 * scratch (B, side, side, 3) and keeps the 8-bit images; scenes (may be
 * NULL) gets the scenes. */
static int render_batch(enum shapes_split split, loom_rng *rng, int32_t B, int32_t side,
                        uint8_t *rgb, float *pixels, shapes_scene *scenes, loom_error *err) {
    const size_t img = (size_t)side * side * 3;
    for (int32_t b = 0; b < B; b++) {
        shapes_scene sc;
        shapes_scene_sample_split(&sc, split, rng);
        if (shapes_scene_layout(&sc, side, side, rng, err) || shapes_render(&sc, rgb + b * img, rng, err))
            return -1;
        if (scenes) scenes[b] = sc;
    }
    vq_pixels_from_rgb(pixels, rgb, (int64_t)B * (int64_t)img);
    return 0;
}

/* Held-out evaluation: n_batches x B test-split scenes (fixed seeds).
 * PSNR over all of them, the fraction the analyzer reads back exactly from
 * the reconstruction, and the number of distinct codes they use. */
typedef struct vq_eval { double psnr, analyzer; int32_t codes_used; } vq_eval;

static int evaluate(vq_trainer *t, vq_acts *a, int64_t n_batches, int32_t B, int32_t side,
                    uint8_t *rgb, uint8_t *rec, float *pixels, int32_t *codes, vq_eval *out,
                    loom_error *err) {
    const int32_t S = vq_stride(&t->c), r = side / S;
    const size_t img = (size_t)side * side * 3;
    uint8_t *used = calloc((size_t)t->c.codes, 1);
    shapes_scene *scenes = malloc((size_t)B * sizeof *scenes);
    double se = 0.0;
    int64_t right = 0, total = 0;
    int rc = used && scenes ? 0 : loom_error_set(err, "out of memory");
    for (int64_t i = 0; i < n_batches && !rc; i++) {
        loom_rng rng;
        shapes_split_rng(&rng, SHAPES_SPLIT_TEST, 0x7a5e0000ull + (uint64_t)i);
        rc = render_batch(SHAPES_SPLIT_TEST, &rng, B, side, rgb, pixels, scenes, err);
        if (!rc) rc = vq_encode(&t->c, &t->w, a, pixels, B, side, side, codes, err);
        if (!rc) rc = vq_decode(&t->c, &t->w, a, codes, B, r, r, pixels, err);
        if (rc) break;
        vq_pixels_to_rgb(rec, pixels, (int64_t)B * (int64_t)img);
        for (int64_t k = 0; k < (int64_t)B * r * r; k++) used[codes[k]] = 1;
        for (size_t k = 0; k < (size_t)B * img; k++) {
            double d = (double)rgb[k] - (double)rec[k];
            se += d * d;
        }
        for (int32_t b = 0; b < B; b++) {
            int ok = shapes_analyze_reads_back(rec + b * img, side, side, &scenes[b], err);
            if (ok < 0) {
                rc = -1;
                break;
            }
            right += ok;
            total++;
        }
    }
    if (!rc) {
        double mse = se / ((double)total * (double)img);
        out->psnr = mse > 0 ? 10.0 * log10(255.0 * 255.0 / mse) : INFINITY;
        out->analyzer = total ? (double)right / (double)total : 0.0;
        out->codes_used = 0;
        for (int32_t k = 0; k < t->c.codes; k++) out->codes_used += used[k];
    }
    free(used);
    free(scenes);
    return rc;
}

int vq_train_run(const train_options *o, loom_error *err) {
    if (strcmp(o->data, "shapes") != 0)
        return loom_error_set(err, "--vq-only trains on \"shapes\" (generated scenes); got %s", o->data);
    if (o->batch < 1 || o->steps < 1) return loom_error_set(err, "batch and steps must be positive");
    char ckpt_path[4096], log_path[4096];
    if (ckpt_path_join(ckpt_path, sizeof ckpt_path, o->ckpt ? o->ckpt : o->out, o->ckpt ? "" : ".ckpt") ||
        ckpt_path_join(log_path, sizeof log_path, o->log ? o->log : o->out, o->log ? "" : ".log.csv"))
        return loom_error_set(err, "%s: path too long", o->out);
    loom_threads_set(o->threads);

    vq_trainer t;
    memset(&t, 0, sizeof t);
    vq_acts *a = NULL;
    uint8_t *rgb = NULL, *rec = NULL;
    float *pixels = NULL;
    int32_t *codes = NULL;
    FILE *logf = NULL;
    int rc = -1;
    const int32_t B = o->batch, side = o->vq_side;
    const int resumed = o->resume && ckpt_exists(ckpt_path);
    if (resumed) {
        if (load_checkpoint(&t, ckpt_path, err)) goto done;
        loom_log(LOOM_LOG_INFO, "loom: resuming from %s at step %" PRId64, ckpt_path, t.step);
    } else {
        t.c = o->vq;
        if (vq_config_check(&t.c, err) || trainer_alloc(&t, err)) goto done;
        rng_seed(&t.rng, o->seed ^ 0x7a5e7a5e7a5eull);
        vq_init_weights(&t.c, &t.w, &t.rng);
    }
    const int32_t S = vq_stride(&t.c);
    if (side < S || side % S != 0 || side > 1024) {
        loom_error_set(err, "--vq-side %d must be a multiple of the stride %d in [%d, 1024]", side, S, S);
        goto done;
    }
    const size_t img = (size_t)side * side * 3;
    const int32_t r = side / S;
    a = vq_acts_new(&t.c, B, side, side, err);
    rgb = malloc((size_t)B * img);
    rec = malloc((size_t)B * img);
    pixels = floats_alloc((size_t)B * img);
    codes = malloc((size_t)B * r * r * sizeof *codes);
    if (!a || !rgb || !rec || !pixels || !codes) {
        if (a) loom_error_set(err, "out of memory");
        goto done;
    }
    if (!resumed) {
        /* the codebook starts as k-means of the first batch's encoder outputs */
        if (render_batch(SHAPES_SPLIT_TRAIN, &t.rng, B, side, rgb, pixels, NULL, err) ||
            vq_kmeans_init(&t.c, &t.w, a, pixels, B, side, side, 10, &t.rng, err))
            goto done;
    }
    if (resumed && ckpt_log_truncate(log_path, t.step, err)) goto done;
    logf = fopen(log_path, resumed ? "a" : "w");
    if (!logf) {
        loom_error_set(err, "%s: cannot open log", log_path);
        goto done;
    }
    if (!resumed) fprintf(logf, "step,loss,mse,commit,lr,grad_norm,img_per_s,restarts,eval_psnr,eval_analyzer,codes_used\n");
    loom_log(LOOM_LOG_INFO,
             "loom: VQ autoencoder, %zu parameters + %zu codebook/EMA floats (stride %d, %d codes of %d); "
             "%dx%d Shapes World scenes, batch %d; %d threads",
             t.pt.total, t.st.total, S, t.c.codes, t.c.code_dim, side, side, B, loom_threads_get());
    const int has_eval = o->eval_every > 0 && o->eval_batches > 0;
    double t_start = clock_now_s(), t_last = t_start;
    int64_t run_steps = 0;
    while (t.step < o->steps) {
        if (render_batch(SHAPES_SPLIT_TRAIN, &t.rng, B, side, rgb, pixels, NULL, err)) goto done;
        memset(t.grads, 0, t.pt.total * sizeof(float));
        float loss;
        if (vq_forward(&t.c, &t.w, a, pixels, B, side, side, NULL, &loss, err)) goto done;
        vq_backward(&t.c, &t.w, &t.g, a, 1.0f);
        double norm = grad_clip(t.grads, t.pt.total, ckpt_short_float(o->grad_clip));
        float lr = lr_schedule(t.step, o->warmup, o->steps, o->lr, ckpt_short_float(o->min_lr));
        adamw_params ap = {.lr = lr, .beta1 = o->beta1, .beta2 = o->beta2, .eps = 1e-8f,
                           .weight_decay = o->weight_decay};
        adamw_step(&t.pt, t.params, t.grads, t.mo, t.vo, ap, t.step + 1);
        vq_ema_update(&t.c, &t.w, a);
        int32_t restarts = vq_restart_dead_codes(&t.c, &t.w, a, o->vq_restart, &t.rng);
        t.step++;
        run_steps++;
        if (!isfinite(loss)) {
            loom_error_set(err, "loss became %f at step %" PRId64 "; lower the learning rate", loss, t.step);
            goto done;
        }
        double now = clock_now_s(), ips = (double)B / (now - t_last);
        t_last = now;
        vq_eval ev = {NAN, NAN, 0};
        const int eval_now = has_eval && (t.step % o->eval_every == 0 || t.step == o->steps);
        if (eval_now && evaluate(&t, a, o->eval_batches, B, side, rgb, rec, pixels, codes, &ev, err))
            goto done;
        fprintf(logf, "%" PRId64 ",%.6f,%.6f,%.6f,%.6g,%.4f,%.1f,%d,", t.step, loss, a->mse, a->commit,
                lr, norm, ips, restarts);
        if (eval_now) fprintf(logf, "%.3f,%.4f,%d\n", ev.psnr, ev.analyzer, ev.codes_used);
        else fprintf(logf, ",,\n");
        fflush(logf);
        if (!o->quiet) {
            double avg = (now - t_start) / (double)run_steps;
            fprintf(stderr, "\rstep %6" PRId64 "/%" PRId64 " | loss %.5f | mse %.5f | lr %.2e | %5.1f img/s | restarts %3d",
                    t.step, o->steps, loss, a->mse, lr, (double)B / avg, restarts);
            if (eval_now)
                fprintf(stderr, " | eval PSNR %.2f dB, analyzer %.1f%%, %d codes\n", ev.psnr,
                        100.0 * ev.analyzer, ev.codes_used);
            fflush(stderr);
        }
        int stopping = o->stop_after > 0 && run_steps >= o->stop_after && t.step < o->steps;
        if ((o->ckpt_every > 0 && t.step % o->ckpt_every == 0) || stopping)
            if (save(&t, o, ckpt_path, 1, err)) goto done;
        if (stopping) {
            if (!o->quiet) fprintf(stderr, "\n");
            loom_log(LOOM_LOG_INFO, "loom: stopped at step %" PRId64 "; resume with --resume", t.step);
            rc = 0;
            goto done;
        }
    }
    if (!o->quiet) fprintf(stderr, "\n");
    if (save(&t, o, ckpt_path, 1, err) || save(&t, o, o->out, 0, err)) goto done;
    loom_log(LOOM_LOG_INFO, "loom: wrote %s (%" PRId64 " steps, %.1f min)", o->out, t.step,
             (clock_now_s() - t_start) / 60.0);
    rc = 0;
done:
    if (logf) fclose(logf);
    vq_acts_free(a);
    free(rgb), free(rec), free(pixels), free(codes);
    trainer_free(&t);
    return rc;
}
