/* loom: the command-line front end.
 *
 *   loom train    --data FILE -o MODEL [options]     train a model
 *   loom generate [-m MODEL] -p PROMPT [options]     continue a prompt
 *   loom info     MODEL                              config, parameters, tensors
 *   loom quantize -m MODEL -o OUT [--group 32]       an int8 copy for inference
 *   loom data     shapes-text --n N [-o FILE]        generated corpora
 *   loom bench    [options]                          time training and generation
 *
 * Errors print as "loom: <what>: <why>" and exit nonzero.
 */
#include <cjson/cJSON.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "core/q8.h"
#include "core/safetensors.h"
#include "loom.h"
#include "model/model.h"
#include "train/train.h"
#include "train/vq_train.h"

#define DEFAULT_MODEL "models/loom-text.safetensors"

/* ------------------------------------------------------------------------ */
/* train */

static void train_usage(FILE *f) {
    train_options d = train_default_options();
    fprintf(f,
            "usage: loom train --data FILE -o MODEL [options]\n"
            "\n"
            "Trains a byte-level BPE tokenizer and a decoder on FILE: a text file (one document\n"
            "per line), JSONL ({\"text\": ...} or {\"prompt\": ..., \"answer\": ...} per line,\n"
            "with an optional \"image\": PATH; with prompts the loss counts only the answer),\n"
            "or \"shapes\": Shapes World scenes generated on the fly (captions and questions;\n"
            "evaluation on the test split). Checkpoints go to MODEL.ckpt and\n"
            "the loss log to MODEL.log.csv; --resume continues a stopped run exactly.\n"
            "\n"
            "data and output:\n"
            "  --data FILE|shapes   training data (required)\n"
            "  -o, --out MODEL      output model (required)\n"
            "  --config FILE        JSON object of these options (keys without dashes, '-' as '_');\n"
            "                       flags given on the command line override it\n"
            "  --ckpt PATH          checkpoint path (default MODEL.ckpt)\n"
            "  --log PATH           CSV log (default MODEL.log.csv)\n"
            "  --resume             continue from the checkpoint if it exists\n"
            "  --stop-after N       checkpoint and stop after N steps of this run\n"
            "  --caption-asks X     with --data shapes: share of the caption rows that go on\n"
            "                       with questions, the caption in context (what ask\n"
            "                       --caption-first does at inference; default 0)\n"
            "  --question-weights T=W,..  with --data shapes: draw question types in proportion\n"
            "                       to these weights (others 1; types: color shape_at\n"
            "                       count_all count_shape count_color exists where size;\n"
            "                       default: uniformly among the askable types)\n"
            "  --caption-noise X    with --data shapes: chance that an object's color word in\n"
            "                       a caption row's input is swapped for another color (the\n"
            "                       targets stay true: shapes are read off the image; default 0)\n"
            "model:\n"
            "  --vocab N            tokenizer vocabulary incl. 288 specials+bytes (default %d)\n"
            "  --d-model N          width (default %d)\n"
            "  --layers N           layers (default %d)\n"
            "  --heads N            attention heads (default %d)\n"
            "  --kv-heads N         key/value heads, divides heads (default %d)\n"
            "  --d-ff N             SwiGLU hidden size (default %d)\n"
            "  --window N           sliding attention window, 0 = full (default 0)\n"
            "  --untied             separate LM head instead of tied embeddings\n"
            "  --patch N            image patch size P, for data with images (default %d)\n"
            "  --max-patch-rows N   patch budget: larger images are downscaled (default %d)\n"
            "  --max-patch-cols N   (default %d)\n"
            "optimization:\n"
            "  --batch N            sequences per micro-batch (default %d)\n"
            "  --seq N              sequence length (default %d)\n"
            "  --accum N            micro-batches per step (default 1)\n"
            "  --steps N            optimizer steps (default %" PRId64 ")\n"
            "  --warmup N           warmup steps (default %" PRId64 ")\n"
            "  --lr X               peak learning rate (default %g)\n"
            "  --min-lr X           final learning rate of the cosine (default %g)\n"
            "  --wd X               AdamW weight decay (default %g)\n"
            "  --clip X             clip gradients to this global norm, 0 = off (default %g)\n"
            "  --eval-every N       evaluate every N steps (default %" PRId64 ")\n"
            "  --eval-batches N     batches per evaluation (default %" PRId64 ")\n"
            "  --eval-frac X        fraction of records held out (default %g)\n"
            "  --ckpt-every N       checkpoint every N steps (default %" PRId64 ")\n"
            "  -s, --seed N         seed for init and data order (default 1)\n"
            "  -t, --threads N      threads (default: all cores)\n"
            "  -q, --quiet          no progress line\n"
            "image output:\n"
            "  --vq FILE            give the model image output with this VQ (from --vq-only);\n"
            "                       with --data shapes, rows also teach prompt -> image codes\n"
            "  --init MODEL         start from MODEL's weights, tokenizer and image output\n"
            "                       (architecture too; audio input is added for --speech);\n"
            "                       MODEL may also be a training checkpoint (MODEL.ckpt)\n"
            "  --grow-layers N      with --init: deepen its decoder to N layers; the new ones,\n"
            "                       spread evenly, copy the layer before them with zero output\n"
            "                       projections, so training starts from the same function\n"
            "audio input:\n"
            "  --speech FILE        with --data shapes: spoken prompts and questions (the\n"
            "                       manifest of `loom data speech`); a share of rows is spoken\n"
            "  --speech-frac X      share of the rows that are spoken (default %g): a third\n"
            "                       transcripts, a third spoken questions, a third spoken\n"
            "                       prompts -> image codes (models with image output)\n"
            "  --spoken-questions X share of the spoken rows that are spoken questions (default:\n"
            "                       a third); the rest split evenly\n"
            "  --audio-stack N      log-mel frames (10 ms) per audio position (default %d)\n"
            "  --audio-encoder E    stack: the stacked frames through one linear layer (default);\n"
            "                       conv: whisper's stem, log2(stack) conv1d layers (kernel 3,\n"
            "                       stride 2) with GELU, then a linear layer (stack a power of 2)\n"
            "  --audio-conv-channels N  width of the conv stem (default: d_model)\n"
            "VQ image autoencoder (the image-output head):\n"
            "  --vq-only            train it instead of a transformer (--data shapes); -o VQ file\n"
            "  --vq-channels LIST   channels per stride-2 level (default 64,128,128: stride 8)\n"
            "  --vq-codes K         codebook size (default %d)\n"
            "  --vq-dim D           code dimension (default %d)\n"
            "  --vq-res N           residual blocks (default %d)\n"
            "  --vq-beta X          commitment weight (default %g)\n"
            "  --vq-side N          training images are N x N (default %d)\n"
            "  --vq-restart X       restart codes whose EMA count falls below X (default %g)\n",
            d.model.vocab_size, d.model.d_model, d.model.n_layers, d.model.n_heads,
            d.model.n_kv_heads, d.model.d_ff, d.image.patch_size, d.image.max_patch_rows,
            d.image.max_patch_cols, d.batch, d.seq, d.steps, d.warmup, d.lr, d.min_lr,
            d.weight_decay, d.grad_clip, d.eval_every, d.eval_batches, d.eval_frac, d.ckpt_every,
            (double)d.speech_frac, d.audio.stack, d.vq.codes, d.vq.code_dim, d.vq.res_blocks, (double)d.vq.beta, d.vq_side, (double)d.vq_restart);
}

/* Applies one option; returns 1 if it consumed a value, 0 if not, -1 on error. */
/* --question-weights "count_shape=3,color=0.5": weights of the named
 * question types (0..100), the others 1. */
static int parse_qweights(const char *flag, const char *val, train_options *o) {
    float w[SHAPES_N_QTYPES];
    for (int t = 0; t < SHAPES_N_QTYPES; t++) w[t] = 1.0f;
    const char *p = val;
    while (*p) {
        const char *eq = strchr(p, '=');
        char name[32];
        if (!eq || eq == p || (size_t)(eq - p) >= sizeof name) goto bad;
        memcpy(name, p, (size_t)(eq - p));
        name[eq - p] = '\0';
        const int t = shapes_qtype_from_name(name);
        char *end;
        errno = 0;
        const double x = strtod(eq + 1, &end);
        if (t < 0 || end == eq + 1 || errno || !(x >= 0 && x <= 100) || (*end && *end != ',')) goto bad;
        w[t] = (float)x;
        p = *end ? end + 1 : end;
    }
    memcpy(o->qweight, w, sizeof w);
    o->has_qweight = 1;
    return 0;
bad:
    fprintf(stderr, "loom: %s: want TYPE=WEIGHT,... with types %s and weights 0 to 100: \"%s\"\n", flag,
            "color shape_at count_all count_shape count_color exists where size", val);
    return -1;
}

static int train_apply(train_options *o, const char *flag, const char *val) {
    int64_t n;
#define NEED_VAL() if (!val) { fprintf(stderr, "loom: train: %s needs a value\n", flag); return -1; }
#define INT_OPT(name, field, lo, hi) \
    if (!strcmp(flag, name)) { NEED_VAL(); if (cli_int(flag, val, lo, hi, &n)) return -1; o->field = n; return 1; }
#define FLT_OPT(name, field, lo, hi) \
    if (!strcmp(flag, name)) { NEED_VAL(); if (cli_float(flag, val, lo, hi, &o->field)) return -1; return 1; }
    if (!strcmp(flag, "--data")) { NEED_VAL(); o->data = val; return 1; }
    if (!strcmp(flag, "-o") || !strcmp(flag, "--out")) { NEED_VAL(); o->out = val; return 1; }
    if (!strcmp(flag, "--ckpt")) { NEED_VAL(); o->ckpt = val; return 1; }
    if (!strcmp(flag, "--log")) { NEED_VAL(); o->log = val; return 1; }
    if (!strcmp(flag, "--resume")) { o->resume = 1; return 0; }
    if (!strcmp(flag, "--untied")) { o->model.tie_embeddings = 0; return 0; }
    if (!strcmp(flag, "-q") || !strcmp(flag, "--quiet")) { o->quiet = 1; return 0; }
    if (!strcmp(flag, "--vq-only")) { o->vq_only = 1; return 0; }
    if (!strcmp(flag, "--vq")) { NEED_VAL(); o->vq_file = val; return 1; }
    if (!strcmp(flag, "--init")) { NEED_VAL(); o->init = val; return 1; }
    if (!strcmp(flag, "--speech")) { NEED_VAL(); o->speech = val; return 1; }
    INT_OPT("--audio-stack", audio.stack, 1, AUDIO_ENC_MAX_STACK)
    if (!strcmp(flag, "--audio-encoder")) {
        NEED_VAL();
        const int kind = audio_enc_kind_from_name(val);
        if (kind < 0) {
            fprintf(stderr, "loom: train: --audio-encoder: want stack or conv, not \"%s\"\n", val);
            return -1;
        }
        o->audio.encoder = kind;
        return 1;
    }
    INT_OPT("--audio-conv-channels", audio.channels, 1, AUDIO_ENC_MAX_CHANNELS)
    FLT_OPT("--speech-frac", speech_frac, 0, 1)
    FLT_OPT("--spoken-questions", spoken_questions, 0, 1)
    FLT_OPT("--caption-asks", caption_asks, 0, 1)
    FLT_OPT("--caption-noise", caption_noise, 0, 1)
    if (!strcmp(flag, "--question-weights")) {
        NEED_VAL();
        return parse_qweights(flag, val, o) ? -1 : 1;
    }
    if (!strcmp(flag, "--vq-channels")) {
        NEED_VAL();
        /* "64,128,128": one count per stride-2 level */
        int32_t k = 0;
        const char *p = val;
        while (*p) {
            char *end;
            long c = strtol(p, &end, 10);
            if (end == p || c < 1 || c > VQ_MAX_CHANNELS || k == VQ_MAX_LEVELS || (*end && *end != ',')) {
                fprintf(stderr, "loom: %s: want 1 to %d channel counts in [1, %d] like 64,128,128: \"%s\"\n",
                        flag, VQ_MAX_LEVELS, VQ_MAX_CHANNELS, val);
                return -1;
            }
            o->vq.channels[k++] = (int32_t)c;
            p = *end ? end + 1 : end;
        }
        if (k == 0) {
            fprintf(stderr, "loom: %s: no channel counts\n", flag);
            return -1;
        }
        o->vq.n_levels = k;
        return 1;
    }
    INT_OPT("--vq-codes", vq.codes, 2, VQ_MAX_CODES)
    INT_OPT("--vq-dim", vq.code_dim, 1, VQ_MAX_CHANNELS)
    INT_OPT("--vq-res", vq.res_blocks, 0, VQ_MAX_RES_BLOCKS)
    INT_OPT("--vq-side", vq_side, 1, 1024)
    FLT_OPT("--vq-beta", vq.beta, 0, 100)
    FLT_OPT("--vq-restart", vq_restart, 0, 1e9)
    INT_OPT("--vocab", model.vocab_size, 289, 1 << 20)
    INT_OPT("--d-model", model.d_model, 2, 16384)
    INT_OPT("--layers", model.n_layers, 1, 256)
    INT_OPT("--grow-layers", grow_layers, 1, 256)
    INT_OPT("--heads", model.n_heads, 1, 1024)
    INT_OPT("--kv-heads", model.n_kv_heads, 1, 1024)
    INT_OPT("--d-ff", model.d_ff, 1, 65536)
    INT_OPT("--window", model.window, 0, 8192)
    INT_OPT("--patch", image.patch_size, 1, 64)
    INT_OPT("--max-patch-rows", image.max_patch_rows, 1, 1024)
    INT_OPT("--max-patch-cols", image.max_patch_cols, 1, 1024)
    INT_OPT("--batch", batch, 1, 65536)
    INT_OPT("--seq", seq, 2, 8192)
    INT_OPT("--accum", accum, 1, 65536)
    INT_OPT("--steps", steps, 1, INT64_C(1) << 40)
    INT_OPT("--warmup", warmup, 0, INT64_C(1) << 40)
    INT_OPT("--eval-every", eval_every, 0, INT64_C(1) << 40)
    INT_OPT("--eval-batches", eval_batches, 0, 1 << 20)
    INT_OPT("--ckpt-every", ckpt_every, 0, INT64_C(1) << 40)
    INT_OPT("--stop-after", stop_after, 0, INT64_C(1) << 40)
    INT_OPT("-t", threads, 0, 1024)
    INT_OPT("--threads", threads, 0, 1024)
    FLT_OPT("--lr", lr, 0, 10)
    FLT_OPT("--min-lr", min_lr, 0, 10)
    FLT_OPT("--wd", weight_decay, 0, 10)
    FLT_OPT("--clip", grad_clip, 0, 1e9)
    FLT_OPT("--eval-frac", eval_frac, 0, 0.5)
    if (!strcmp(flag, "-s") || !strcmp(flag, "--seed")) {
        NEED_VAL();
        if (cli_int(flag, val, 0, INT64_MAX, &n)) return -1;
        o->seed = (uint64_t)n;
        return 1;
    }
#undef INT_OPT
#undef FLT_OPT
#undef NEED_VAL
    fprintf(stderr, "loom: train: unknown option %s (see loom train --help)\n", flag);
    return -1;
}

/* --config FILE: a JSON object whose keys are option names. Strings it holds
 * stay alive for the whole run (the parsed tree is kept). */
static int train_apply_config(train_options *o, const char *path, cJSON **keep) {
    FILE *f = fopen(path, "rb");
    if (!f) return cli_fail(path, strerror(errno)) ? -1 : -1;
    char *buf = malloc(1 << 20);
    size_t n = buf ? fread(buf, 1, (1 << 20) - 1, f) : 0;
    fclose(f);
    if (!buf) return cli_fail(path, "out of memory") ? -1 : -1;
    buf[n] = '\0';
    cJSON *j = cJSON_Parse(buf);
    free(buf);
    if (!cJSON_IsObject(j)) {
        cJSON_Delete(j);
        return cli_fail(path, "not a JSON object") ? -1 : -1;
    }
    *keep = j;
    const cJSON *it;
    cJSON_ArrayForEach(it, j) {
        char flag[128], val[64];
        snprintf(flag, sizeof flag, "--%s", it->string);
        for (char *p = flag + 2; *p; p++)
            if (*p == '_') *p = '-';
        const char *v = NULL;
        if (cJSON_IsString(it)) v = it->valuestring;
        else if (cJSON_IsNumber(it)) {
            if (it->valuedouble == floor(it->valuedouble) && fabs(it->valuedouble) < 1e15)
                snprintf(val, sizeof val, "%.0f", it->valuedouble);
            else snprintf(val, sizeof val, "%.9g", it->valuedouble);
            v = val;
        } else if (cJSON_IsBool(it)) {
            if (!cJSON_IsTrue(it)) continue;
        } else {
            fprintf(stderr, "loom: %s: \"%s\": value must be a string, number or true\n", path, it->string);
            return -1;
        }
        if (train_apply(o, flag, v) < 0) {
            fprintf(stderr, "loom: %s: in key \"%s\"\n", path, it->string);
            return -1;
        }
    }
    return 0;
}

static int cmd_train(int argc, char **argv) {
    train_options o = train_default_options();
    cJSON *keep = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            train_usage(stdout);
            return 0;
        }
        if (!strcmp(argv[i], "--config")) {
            if (i + 1 >= argc) return cli_fail("train", "--config needs a value");
            if (train_apply_config(&o, argv[i + 1], &keep)) {
                cJSON_Delete(keep);
                return 1;
            }
        }
    }
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--config")) {
            i++;
            continue;
        }
        int r = train_apply(&o, argv[i], i + 1 < argc ? argv[i + 1] : NULL);
        if (r < 0) {
            cJSON_Delete(keep);
            return 1;
        }
        i += r;
    }
    int rc = 0;
    if (!o.data || !o.out) {
        train_usage(stderr);
        rc = cli_fail("train", "--data and -o are required");
    } else {
        loom_error err = {{0}};
        if (train_run(&o, &err)) rc = cli_fail("train", err.msg);
    }
    cJSON_Delete(keep);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* generate */

static void generate_usage(FILE *f) {
    fprintf(f,
            "usage: loom generate [-m MODEL] -p PROMPT [options]\n"
            "\n"
            "Continues PROMPT with the model and prints the text as it is generated.\n"
            "\n"
            "  -m, --model FILE     model (default %s)\n"
            "  -p, --prompt TEXT    prompt (raw text; \"<img>\" etc. stay text)\n"
            "  -n, --n-predict N    most tokens to generate (default 128)\n"
            "  --temp X             temperature, 0 = greedy (default 0.8)\n"
            "  --top-k N            sample from the K most likely tokens, 0 = off (default 40)\n"
            "  --top-p X            nucleus sampling, 1 = off (default 0.95)\n"
            "  -s, --seed N         sampling seed (default 1)\n"
            "  -t, --threads N      threads (default: all cores)\n",
            DEFAULT_MODEL);
}

static int print_piece(const char *piece, size_t len, void *user) {
    (void)user;
    fwrite(piece, 1, len, stdout);
    fflush(stdout);
    return 0;
}

static int cmd_generate(int argc, char **argv) {
    const char *model = DEFAULT_MODEL, *prompt = NULL;
    struct loom_sampling_params sp = loom_sampling_default_params();
    struct loom_context_params cp = loom_context_default_params();
    int64_t n;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            generate_usage(stdout);
            return 0;
        }
        int takes = strcmp(a, "-m") == 0 || !strcmp(a, "--model") || !strcmp(a, "-p") ||
                    !strcmp(a, "--prompt") || !strcmp(a, "-n") || !strcmp(a, "--n-predict") ||
                    !strcmp(a, "--temp") || !strcmp(a, "--top-k") || !strcmp(a, "--top-p") ||
                    !strcmp(a, "-s") || !strcmp(a, "--seed") || !strcmp(a, "-t") ||
                    !strcmp(a, "--threads");
        if (!takes) {
            fprintf(stderr, "loom: generate: unknown option %s (see loom generate --help)\n", a);
            return 1;
        }
        if (!v) {
            fprintf(stderr, "loom: generate: %s needs a value\n", a);
            return 1;
        }
        i++;
        if (!strcmp(a, "-m") || !strcmp(a, "--model")) model = v;
        else if (!strcmp(a, "-p") || !strcmp(a, "--prompt")) prompt = v;
        else if (!strcmp(a, "-n") || !strcmp(a, "--n-predict")) {
            if (cli_int(a, v, 0, 1 << 20, &n)) return 1;
            sp.n_predict = (int32_t)n;
        } else if (!strcmp(a, "--temp")) {
            if (cli_float(a, v, 0, 100, &sp.temp)) return 1;
        } else if (!strcmp(a, "--top-k")) {
            if (cli_int(a, v, 0, 1 << 20, &n)) return 1;
            sp.top_k = (int32_t)n;
        } else if (!strcmp(a, "--top-p")) {
            if (cli_float(a, v, 0, 1, &sp.top_p)) return 1;
        } else if (!strcmp(a, "-s") || !strcmp(a, "--seed")) {
            if (cli_int(a, v, 0, INT64_MAX, &n)) return 1;
            sp.seed = (uint64_t)n;
        } else {
            if (cli_int(a, v, 0, 1024, &n)) return 1;
            cp.n_threads = (int32_t)n;
        }
    }
    if (!prompt) {
        generate_usage(stderr);
        return cli_fail("generate", "-p PROMPT is required");
    }
    char err[512];
    loom_context *ctx = loom_init_from_file(model, cp, err, sizeof err);
    if (!ctx) return cli_fail("generate", err);
    fwrite(prompt, 1, strlen(prompt), stdout);
    int32_t r = loom_generate(ctx, prompt, strlen(prompt), sp, print_piece, NULL);
    printf("\n");
    int rc = 0;
    if (r < 0) rc = cli_fail("generate", loom_last_error(ctx));
    loom_free(ctx);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* info */

static void print_table(const param_table *t) {
    for (int32_t i = 0; i < t->n; i++) {
        const param_info *p = &t->info[i];
        printf("  %-32s F32 [", p->name);
        for (int32_t d = 0; d < p->ndim; d++) printf("%s%" PRId64, d ? ", " : "", p->shape[d]);
        printf("]\n");
    }
}

/* An int8 tensor of a quantized model: (NL, N, KP) or (N, KP) when NL is 0;
 * K < KP: rows of K values padded with zeros. */
static void print_q8_tensor(const char *name, const char *suffix, const char *dtype, int64_t NL,
                            int64_t N, int64_t KP, int64_t K) {
    char full[PARAM_NAME_MAX + 16];
    snprintf(full, sizeof full, "%s%s", name, suffix);
    printf("  %-32s %s [", full, dtype);
    if (NL) printf("%" PRId64 ", ", NL);
    printf("%" PRId64 ", %" PRId64 "]", N, KP);
    if (K && K < KP) printf(" (rows of %" PRId64 ", zero-padded)", K);
    printf("\n");
}

/* A VQ file (loom train --vq-only): its config, recipe and tensors. */
static int info_vq(const char *path) {
    loom_error err = {{0}};
    vq_config c;
    param_table pt, st;
    float *pb, *sb;
    if (vq_file_load(path, &c, &pt, &pb, &st, &sb, &err)) return cli_fail(path, err.msg);
    char *cj = vq_config_to_json(&c);
    st_file *f = st_open(path, &err);
    const char *train = f ? st_meta(f, "train") : NULL;
    printf("VQ file:      %s\n", path);
    printf("parameters:   %zu (+ %zu codebook and EMA floats)\n", pt.total, st.total);
    printf("config:       %s\n", cj ? cj : "?");
    if (train) printf("train:        %s\n", train);
    printf("tensors:\n");
    print_table(&pt);
    print_table(&st);
    free(cj);
    st_close(f);
    params_free(&pt), params_free(&st);
    free(pb), free(sb);
    return 0;
}

static int cmd_info(int argc, char **argv) {
    if (argc != 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
        fprintf(argc == 2 ? stdout : stderr,
                "usage: loom info FILE\n\nPrints a model's config, parameter count, tokenizer "
                "size, image input and output, training recipe and tensors (or a VQ file's).\n");
        return argc == 2 ? 0 : 1;
    }
    loom_error err = {{0}};
    st_file *f = st_open(argv[1], &err);
    if (!f) return cli_fail(argv[1], err.msg);
    const char *format = st_meta(f, "format");
    int is_vq = format && !strcmp(format, VQ_FILE_FORMAT);
    st_close(f);
    if (is_vq) return info_vq(argv[1]);
    loom_model *m = model_load(argv[1], &err);
    if (!m) return cli_fail(argv[1], err.msg);
    const decoder_config *c = &m->cfg;
    printf("model:        %s\n", argv[1]);
    printf("parameters:   %zu", m->table.total);
    if (c->quant_group > 0) { /* the int8 weights, without and with the row padding */
        int64_t n8 = 0, n8p = 0;
        decoder_q8_info t;
        for (int i = 0; decoder_q8_tensor(c, i, NULL, NULL, &t); i++) {
            n8 += (t.NL ? t.NL : 1) * t.N * t.K;
            n8p += (t.NL ? t.NL : 1) * t.N * t.KP;
        }
        printf(" fp32 + %" PRId64 " int8 (%" PRId64 " stored) and %" PRId64 " fp32 scales", n8, n8p,
               n8p / c->quant_group);
    }
    if (m->gen.n_codes > 0) printf(" (+ VQ head %zu, + %zu codebook and EMA floats)", m->vq_table.total, m->vq_state.total);
    printf("\nvocab_size:   %d (tokenizer %d", c->vocab_size, m->tok ? tokenizer_vocab_size(m->tok) : 0);
    if (m->gen.n_codes > 0) printf(", image codes %d..%d", m->gen.code_base, m->gen.code_base + m->gen.n_codes - 1);
    printf(")\n");
    printf("d_model:      %d\nn_layers:     %d\nn_heads:      %d\nn_kv_heads:   %d\n", c->d_model,
           c->n_layers, c->n_heads, c->n_kv_heads);
    printf("d_ff:         %d\nmax_seq:      %d\nwindow:       %d\nrope_theta:   %g\n", c->d_ff,
           c->max_seq, c->window, c->rope_theta);
    printf("norm_eps:     %g\ntied head:    %s\n", c->norm_eps, c->tie_embeddings ? "yes" : "no");
    if (c->quant_group > 0)
        printf("quantized:    q8: attention and MLP matrices%s int8, one fp32 scale per %d inputs "
               "(%s kernel)\n", c->quant_head ? " and the LM head" : "", c->quant_group,
               q8_kernel_name(Q8_KERNEL_AUTO));
    if (m->img.patch_size > 0)
        printf("image in:     %dx%d patches, budget %d x %d patches\n", m->img.patch_size,
               m->img.patch_size, m->img.max_patch_rows, m->img.max_patch_cols);
    if (m->aud.stack > 0 && m->aud.encoder == AUDIO_ENC_CONV)
        printf("audio in:     16 kHz log-mel (80 bins), %d frames (%d ms) per position, conv stem "
               "(%d stride-2 layers of %d channels, GELU)\n", m->aud.stack, m->aud.stack * 10,
               audio_enc_conv_layers(&m->acfg), m->aud.channels);
    else if (m->aud.stack > 0)
        printf("audio in:     16 kHz log-mel (80 bins), %d frames (%d ms) per position\n", m->aud.stack,
               m->aud.stack * 10);
    if (m->gen.n_codes > 0) {
        char *vj = vq_config_to_json(&m->vqc);
        printf("image out:    %d x %d codes of %d (%d x %d pixels); VQ %s\n", m->gen.rows, m->gen.cols,
               m->gen.n_codes, model_gen_width(m), model_gen_height(m), vj ? vj : "?");
        free(vj);
    }
    if (m->train_json) printf("train:        %s\n", m->train_json);
    printf("tensors:\n");
    print_table(&m->table);
    decoder_q8_info t;
    for (int i = 0; decoder_q8_tensor(c, i, m->q8, NULL, &t); i++) {
        print_q8_tensor(t.name, ".q8", "I8 ", t.NL, t.N, t.KP, t.K);
        print_q8_tensor(t.name, ".q8_scale", "F32", t.NL, t.N, t.KP / c->quant_group, 0);
    }
    print_table(&m->vq_table);
    print_table(&m->vq_state);
    model_free(m);
    return 0;
}

/* ------------------------------------------------------------------------ */

static void usage(FILE *f) {
    fprintf(f,
            "usage: loom <command> [options]\n"
            "\n"
            "commands:\n"
            "  caption    describe images\n"
            "  ask        answer a question about an image, typed or spoken\n"
            "  imagine    draw the scene a prompt describes, typed or spoken\n"
            "  listen     transcribe speech\n"
            "  serve      the demo web page and an OpenAI-compatible API\n"
            "  eval       accuracy on held-out Shapes World: captions and VQA (eval),\n"
            "             image generation (eval imagine), audio input (eval listen)\n"
            "  train      train a tokenizer and model on a text or JSONL corpus\n"
            "  generate   continue a prompt with a model\n"
            "  info       show a model's config, parameters and tensors\n"
            "  quantize   write an int8 copy of a model for inference\n"
            "  data       write Shapes World data (images, captions, or speech) and manifests\n"
            "  bench      time training and generation\n"
            "\n"
            "loom <command> --help shows a command's options.\n");
}

int main(int argc, char **argv) {
    if (argc < 2) {
        usage(stderr);
        return 1;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "-h") || !strcmp(cmd, "--help") || !strcmp(cmd, "help")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(cmd, "train")) return cmd_train(argc - 1, argv + 1);
    if (!strcmp(cmd, "generate")) return cmd_generate(argc - 1, argv + 1);
    if (!strcmp(cmd, "info")) return cmd_info(argc - 1, argv + 1);
    if (!strcmp(cmd, "quantize")) return cmd_quantize(argc - 1, argv + 1);
    if (!strcmp(cmd, "bench")) return cmd_bench(argc - 1, argv + 1);
    if (!strcmp(cmd, "data")) return cmd_data(argc - 1, argv + 1);
    if (!strcmp(cmd, "caption")) return cmd_caption(argc - 1, argv + 1);
    if (!strcmp(cmd, "ask")) return cmd_ask(argc - 1, argv + 1);
    if (!strcmp(cmd, "eval")) return cmd_eval(argc - 1, argv + 1);
    if (!strcmp(cmd, "imagine")) return cmd_imagine(argc - 1, argv + 1);
    if (!strcmp(cmd, "listen")) return cmd_listen(argc - 1, argv + 1);
    if (!strcmp(cmd, "serve")) return cmd_serve(argc - 1, argv + 1);
    fprintf(stderr, "loom: %s: unknown command (see loom --help)\n", cmd);
    return 1;
}
