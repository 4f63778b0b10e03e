/* test_train.c: the training loop and its data.
 *
 *   resume      a run stopped at step 5 (and again at step 9) and resumed
 *               ends with the same parameters, bit for bit, and the same loss
 *               log as an uninterrupted run at the same thread count.
 *   checkpoint  the checkpoint written at the stop loads and says step 5.
 *   loss mask   {"prompt","answer"} records: targets are -1 through the
 *               position that predicts <sep>, then the answer and <eos>;
 *               right padding is <pad> with target -1.
 *   sampling    packed windows are slices of the token stream; record
 *               batches are whole records.
 *   bad input   missing file, directory, empty file, JSONL lines that are not
 *               objects or lack text: -1, with the file (and line) named.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <cjson/cJSON.h>
#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/log.h"
#include "core/rng.h"
#include "core/safetensors.h"
#include "data/shapes.h"
#include "fusion/tokenizer.h"
#include "model/model.h"
#include "train/ckpt.h"
#include "train/data.h"
#include "train/source.h"
#include "train/train.h"

static char g_dir[1024]; /* scratch directory for this run, removed at the end */

static void path_in(char *buf, size_t cap, const char *name) { snprintf(buf, cap, "%s/%s", g_dir, name); }

static void write_file(const char *path, const char *text) {
    FILE *f = fopen(path, "wb");
    if (!f) fail_msg("cannot create %s", path);
    size_t n = strlen(text);
    if (n) assert_int_equal(fwrite(text, 1, n, f), n);
    assert_int_equal(fclose(f), 0);
}

static char *read_text(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) fail_msg("cannot open %s", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    buf[n] = '\0';
    if (len) *len = (size_t)n;
    return buf;
}

static int file_exists(const char *p) {
    struct stat st;
    return stat(p, &st) == 0;
}

/* Silences the trainer's info lines; keeps warnings and errors. */
static void quiet_log(loom_log_level level, const char *msg, void *user) {
    (void)user;
    if (level >= LOOM_LOG_WARN) fprintf(stderr, "%s\n", msg);
}

/* n Shapes World captions, one per line. */
static void write_captions(const char *path, int n, uint64_t seed) {
    FILE *f = fopen(path, "wb");
    if (!f) fail_msg("cannot create %s", path);
    loom_rng rng;
    rng_seed(&rng, seed);
    char line[512];
    for (int i = 0; i < n; i++) {
        shapes_scene s;
        shapes_scene_sample(&rng, &s);
        assert_true(shapes_caption(&s, line, sizeof line) > 0);
        fprintf(f, "%s\n", line);
    }
    assert_int_equal(fclose(f), 0);
}

/* ---- resume reproduces an uninterrupted run ---- */

static train_options tiny_options(const char *data, const char *out) {
    train_options o = train_default_options();
    o.data = data;
    o.out = out;
    o.model.vocab_size = 320;
    o.model.d_model = 32;
    o.model.n_layers = 2;
    o.model.n_heads = 4;
    o.model.n_kv_heads = 2;
    o.model.d_ff = 64;
    o.model.max_seq = 32;
    o.batch = 4;
    o.seq = 32;
    o.steps = 12;
    o.warmup = 2;
    o.lr = 3e-3f;
    o.min_lr = 3e-4f;
    o.eval_every = 4;
    o.eval_batches = 2;
    o.eval_frac = 0.1f;
    o.ckpt_every = 0;
    o.seed = 3;
    o.threads = 2;
    o.quiet = 1;
    return o;
}

static void run_train(const train_options *o) {
    loom_error err = {{0}};
    if (train_run(o, &err)) fail_msg("train_run %s: %s", o->out, err.msg);
}

/* The CSV log with the tok_per_s column (the 5th) blanked: everything else
 * must match exactly. Also returns the number of data lines. */
static char *log_without_speed(const char *path, int *lines) {
    char *text = read_text(path, NULL);
    char *out = malloc(strlen(text) + 1);
    assert_non_null(out);
    size_t o = 0;
    int col = 0;
    *lines = -1; /* the header */
    for (const char *p = text; *p; p++) {
        if (*p == '\n') {
            col = 0;
            (*lines)++;
        } else if (*p == ',') {
            col++;
        } else if (col == 4) {
            continue;
        }
        out[o++] = *p;
    }
    out[o] = '\0';
    free(text);
    return out;
}

static int64_t ckpt_step(const char *path) {
    loom_error err = {{0}};
    st_file *f = st_open(path, &err);
    if (!f) fail_msg("open checkpoint %s: %s", path, err.msg);
    const char *state = st_meta(f, "trainer");
    assert_non_null(state);
    cJSON *j = cJSON_Parse(state);
    const cJSON *step = cJSON_GetObjectItemCaseSensitive(j, "step");
    assert_true(cJSON_IsNumber(step));
    int64_t s = (int64_t)step->valuedouble;
    /* optimizer moments are there, with the same tensors as the model */
    assert_non_null(st_find(f, "adam.m.decoder.wq"));
    assert_non_null(st_find(f, "adam.v.decoder.tok_emb"));
    cJSON_Delete(j);
    st_close(f);
    return s;
}

static void test_resume_bit_exact(void **state) {
    (void)state;
    char data[1200], dir_a[1200], dir_b[1200], out_a[1300], out_b[1300], ckpt_b[1400];
    char log_a[1400], log_b[1400];
    path_in(data, sizeof data, "captions.txt");
    write_captions(data, 400, 17);
    path_in(dir_a, sizeof dir_a, "a");
    path_in(dir_b, sizeof dir_b, "b");
    assert_int_equal(mkdir(dir_a, 0700), 0);
    assert_int_equal(mkdir(dir_b, 0700), 0);
    snprintf(out_a, sizeof out_a, "%s/model.safetensors", dir_a);
    snprintf(out_b, sizeof out_b, "%s/model.safetensors", dir_b);
    snprintf(ckpt_b, sizeof ckpt_b, "%s.ckpt", out_b);
    snprintf(log_a, sizeof log_a, "%s.log.csv", out_a);
    snprintf(log_b, sizeof log_b, "%s.log.csv", out_b);

    /* uninterrupted */
    train_options oa = tiny_options(data, out_a);
    run_train(&oa);

    /* stopped at 5 */
    train_options ob = tiny_options(data, out_b);
    ob.stop_after = 5;
    run_train(&ob);
    assert_false(file_exists(out_b));
    assert_true(file_exists(ckpt_b));
    assert_int_equal(ckpt_step(ckpt_b), 5);
    int lines;
    char *lb = log_without_speed(log_b, &lines);
    assert_int_equal(lines, 5);
    free(lb);
    /* the checkpoint is also a loadable model */
    loom_error err = {{0}};
    loom_model *mc = model_load(ckpt_b, &err);
    if (!mc) fail_msg("model_load %s: %s", ckpt_b, err.msg);
    assert_non_null(mc->tok);
    assert_int_equal(mc->cfg.d_model, 32);
    assert_int_equal(mc->cfg.n_layers, 2);
    model_free(mc);

    /* resumed, stopped again at 9, resumed to the end */
    ob.resume = 1;
    ob.stop_after = 4;
    run_train(&ob);
    assert_int_equal(ckpt_step(ckpt_b), 9);
    ob.stop_after = 0;
    run_train(&ob);
    assert_int_equal(ckpt_step(ckpt_b), 12);

    /* parameters, bit for bit */
    loom_model *ma = model_load(out_a, &err);
    if (!ma) fail_msg("model_load %s: %s", out_a, err.msg);
    loom_model *mb = model_load(out_b, &err);
    if (!mb) fail_msg("model_load %s: %s", out_b, err.msg);
    assert_int_equal(ma->table.total, mb->table.total);
    size_t differ = 0;
    for (size_t i = 0; i < ma->table.total; i++)
        differ += memcmp(&ma->params[i], &mb->params[i], sizeof(float)) != 0;
    printf("resume: %zu of %zu parameters differ between the uninterrupted and the stopped+resumed run (must be 0)\n",
           differ, ma->table.total);
    assert_int_equal(differ, 0);
    /* training moved the parameters away from the init */
    loom_model *m0 = model_new(&ma->cfg, NULL, &err);
    assert_non_null(m0);
    model_init_random(m0, oa.seed);
    assert_memory_not_equal(m0->params, ma->params, ma->table.total * sizeof(float));
    model_free(m0);
    /* same tokenizer */
    char *ta = tokenizer_to_json(ma->tok, &err), *tb = tokenizer_to_json(mb->tok, &err);
    assert_string_equal(ta, tb);
    free(ta);
    free(tb);
    model_free(ma);
    model_free(mb);

    /* the logs: every column but tok/s, exactly */
    int la, lbn;
    char *ca = log_without_speed(log_a, &la), *cb = log_without_speed(log_b, &lbn);
    printf("resume: logs have %d and %d lines\n", la, lbn);
    assert_int_equal(la, 12);
    assert_int_equal(lbn, 12);
    assert_string_equal(ca, cb);
    /* evaluation ran at steps 4, 8 and 12 */
    assert_non_null(strstr(ca, "\n4,"));
    const char *l4 = strstr(ca, "\n4,"), *e4 = strchr(l4 + 1, '\n');
    assert_true(e4 && e4[-1] != ',');
    free(ca);
    free(cb);

    /* the whole model files are identical too (same recipe metadata) */
    size_t na, nb;
    char *fa = read_text(out_a, &na), *fb = read_text(out_b, &nb);
    assert_int_equal(na, nb);
    assert_memory_equal(fa, fb, na);
    free(fa);
    free(fb);
}

/* ---- JSONL prompt/answer records: the loss mask ---- */

static const tokenizer *byte_tokenizer(void) {
    static tokenizer *t;
    if (!t) {
        loom_error err = {{0}};
        t = tokenizer_from_merges(NULL, 0, &err);
        if (!t) fail_msg("tokenizer: %s", err.msg);
    }
    return t;
}

#define B_(c) (TOKENIZER_BYTE_BASE + (unsigned char)(c))

static void test_jsonl_loss_mask(void **state) {
    (void)state;
    char path[1200];
    path_in(path, sizeof path, "qa.jsonl");
    /* blank lines and CRLF are fine; the 5th record is 10 tokens, one longer
     * than the 9 that fit T = 8, and is skipped; the 4th is exactly 9 */
    write_file(path,
               "{\"prompt\": \"ab\", \"answer\": \"xyz\"}\n"
               "\n"
               "{\"text\": \"hello\"}\r\n"
               "{\"prompt\": \"\", \"answer\": \"q\"}\n"
               "{\"prompt\": \"<sep>\", \"answer\": \"k\"}\n"
               "{\"prompt\": \"<sep>\", \"answer\": \"kk\"}\n");
    loom_error err = {{0}};
    raw_corpus rc;
    if (raw_corpus_load(path, &rc, &err)) fail_msg("raw_corpus_load: %s", err.msg);
    assert_int_equal(rc.n, 5);
    assert_string_equal(rc.prompt[0], "ab");
    assert_string_equal(rc.text[0], "xyz");
    assert_null(rc.prompt[1]);
    assert_string_equal(rc.text[1], "hello");
    assert_non_null(rc.prompt[2]);
    assert_int_equal(rc.prompt_len[2], 0);

    const int32_t T = 8;
    corpus c;
    if (corpus_build(&c, &rc, 0, rc.n, byte_tokenizer(), T, &err)) fail_msg("corpus_build: %s", err.msg);
    assert_int_equal(c.packed, 0);
    assert_int_equal(c.n, 4);

    const int32_t P = TOKEN_PAD, BOS = TOKEN_BOS, SEP = TOKEN_SEP, EOS = TOKEN_EOS;
    /* <bos> a b <sep> x y z <eos> */
    const int32_t want_tok[4][8] = {
        {BOS, B_('a'), B_('b'), SEP, B_('x'), B_('y'), B_('z'), P},
        {BOS, B_('h'), B_('e'), B_('l'), B_('l'), B_('o'), P, P},
        {BOS, SEP, B_('q'), P, P, P, P, P},
        /* the prompt "<sep>" is 5 bytes of text, never the special token */
        {BOS, B_('<'), B_('s'), B_('e'), B_('p'), B_('>'), SEP, B_('k')},
    };
    const int32_t want_tgt[4][8] = {
        {-1, -1, -1, B_('x'), B_('y'), B_('z'), EOS, -1},
        {B_('h'), B_('e'), B_('l'), B_('l'), B_('o'), EOS, -1, -1},
        {-1, B_('q'), EOS, -1, -1, -1, -1, -1}, /* shorter than its 3 tokens: padded */
        {-1, -1, -1, -1, -1, -1, B_('k'), EOS},
    };
    int32_t tokens[4 * 8], targets[4 * 8];
    corpus_batch_at(&c, 0, 4, T, tokens, targets);
    for (int r = 0; r < 4; r++)
        for (int t = 0; t < T; t++) {
            if (tokens[r * T + t] != want_tok[r][t] || targets[r * T + t] != want_tgt[r][t])
                fail_msg("record %d position %d: token %d target %d, want %d %d", r, t, tokens[r * T + t],
                         targets[r * T + t], want_tok[r][t], want_tgt[r][t]);
        }

    /* random batches are whole records */
    loom_rng rng;
    rng_seed(&rng, 5);
    int seen[4] = {0};
    for (int i = 0; i < 50; i++) {
        int32_t tk[8], tg[8];
        corpus_sample(&c, &rng, 1, T, tk, tg);
        int match = -1;
        for (int r = 0; r < 4; r++)
            if (!memcmp(tk, want_tok[r], sizeof tk) && !memcmp(tg, want_tgt[r], sizeof tg)) match = r;
        if (match < 0) fail_msg("corpus_sample drew a row that is no record");
        seen[match]++;
    }
    for (int r = 0; r < 4; r++) assert_true(seen[r] > 0);
    corpus_free(&c);
    raw_corpus_free(&rc);
}

/* In a corpus with prompts, a record longer than the context is skipped
 * wherever it stands, before or after the first prompt record. */
static void test_long_records_any_order(void **state) {
    (void)state;
    const char *files[2] = {
        "{\"text\": \"much too long for eight\"}\n{\"prompt\": \"a\", \"answer\": \"b\"}\n"
        "{\"text\": \"ok\"}\n",
        "{\"prompt\": \"a\", \"answer\": \"b\"}\n{\"text\": \"much too long for eight\"}\n"
        "{\"text\": \"ok\"}\n",
    };
    for (int i = 0; i < 2; i++) {
        char path[1200];
        path_in(path, sizeof path, i ? "order1.jsonl" : "order0.jsonl");
        write_file(path, files[i]);
        loom_error err = {{0}};
        raw_corpus rc;
        if (raw_corpus_load(path, &rc, &err)) fail_msg("raw_corpus_load: %s", err.msg);
        corpus c;
        if (corpus_build(&c, &rc, 0, rc.n, byte_tokenizer(), 8, &err)) fail_msg("corpus_build: %s", err.msg);
        printf("long text record %s the first prompt: %zu of 3 records kept (want 2)\n", i ? "after" : "before", c.n);
        assert_int_equal(c.packed, 0);
        assert_int_equal(c.n, 2);
        for (size_t r = 0; r < c.n; r++) assert_true(c.len[r] <= 9);
        corpus_free(&c);
        raw_corpus_free(&rc);
    }
}

/* text-only corpora are packed; windows are slices of the stream */
static void test_packed_windows(void **state) {
    (void)state;
    char path[1200];
    path_in(path, sizeof path, "packed.txt");
    write_captions(path, 30, 2);
    loom_error err = {{0}};
    raw_corpus rc;
    if (raw_corpus_load(path, &rc, &err)) fail_msg("raw_corpus_load: %s", err.msg);
    assert_int_equal(rc.n, 30);
    const int32_t T = 16, B = 8;
    corpus c;
    if (corpus_build(&c, &rc, 0, rc.n, byte_tokenizer(), T, &err)) fail_msg("corpus_build: %s", err.msg);
    assert_int_equal(c.packed, 1);
    assert_int_equal(c.n, 30);
    /* the stream: <bos> text <eos> per record */
    for (size_t r = 0; r < c.n; r++) {
        assert_int_equal(c.tokens[c.off[r]], TOKEN_BOS);
        assert_int_equal(c.tokens[c.off[r] + (size_t)c.len[r] - 1], TOKEN_EOS);
        assert_int_equal(c.len[r], (int32_t)rc.text_len[r] + 2);
    }
    int32_t tokens[8 * 16], targets[8 * 16];
    loom_rng rng;
    rng_seed(&rng, 6);
    for (int rep = 0; rep < 20; rep++) {
        corpus_sample(&c, &rng, B, T, tokens, targets);
        for (int b = 0; b < B; b++) {
            const int32_t *tk = tokens + b * T, *tg = targets + b * T;
            int found = 0;
            for (size_t s = 0; s + (size_t)T < c.n_tokens && !found; s++)
                found = !memcmp(c.tokens + s, tk, (size_t)T * sizeof *tk) &&
                        !memcmp(c.tokens + s + 1, tg, (size_t)T * sizeof *tg);
            if (!found) fail_msg("window %d of batch %d is not a slice of the stream", b, rep);
        }
    }
    /* too short for one window */
    corpus c2;
    assert_int_equal(corpus_build(&c2, &rc, 0, 1, byte_tokenizer(), 4096, &err), -1);
    assert_non_null(strstr(err.msg, "fewer than one window"));
    corpus_free(&c);
    raw_corpus_free(&rc);
}

/* ---- bad corpora ---- */

static void expect_bad(const char *path, const char *needle) {
    loom_error err = {{0}};
    raw_corpus rc;
    memset(&rc, 0x5a, sizeof rc);
    assert_int_equal(raw_corpus_load(path, &rc, &err), -1);
    if (!strstr(err.msg, path)) fail_msg("message does not name %s: '%s'", path, err.msg);
    if (needle && !strstr(err.msg, needle)) fail_msg("expected '%s' in '%s'", needle, err.msg);
    assert_int_equal(rc.n, 0); /* nothing to free, nothing leaked */
    raw_corpus_free(&rc);
    printf("rejected: %s\n", err.msg);
}

static void test_bad_corpora(void **state) {
    (void)state;
    char p[1200];
    path_in(p, sizeof p, "does-not-exist.txt");
    expect_bad(p, "No such file");
    path_in(p, sizeof p, "a-directory.jsonl");
    assert_int_equal(mkdir(p, 0700), 0);
    expect_bad(p, "directory");
    assert_int_equal(rmdir(p), 0);
    path_in(p, sizeof p, "empty.txt");
    write_file(p, "");
    expect_bad(p, "no records");
    path_in(p, sizeof p, "blank.txt");
    write_file(p, "\n\r\n\n");
    expect_bad(p, "no records");
    path_in(p, sizeof p, "not-object.jsonl");
    write_file(p, "{\"text\": \"fine\"}\n[1, 2]\n");
    expect_bad(p, ":2:");
    path_in(p, sizeof p, "not-json.jsonl");
    write_file(p, "{\"text\": \"fine\"}\n\n{\"text\": \"ok\"}\nthis is text\n");
    expect_bad(p, ":4:");
    path_in(p, sizeof p, "no-text.jsonl");
    write_file(p, "{\"text\": \"fine\"}\n{\"txt\": \"typo\"}\n");
    expect_bad(p, ":2:");
    path_in(p, sizeof p, "number-text.jsonl");
    write_file(p, "{\"text\": 5}\n");
    expect_bad(p, ":1:");
    path_in(p, sizeof p, "prompt-only.jsonl");
    write_file(p, "{\"text\": \"a\"}\n{\"text\": \"b\"}\n{\"prompt\": \"no answer\"}\n");
    expect_bad(p, ":3:");
    /* train_run passes the message on */
    path_in(p, sizeof p, "does-not-exist.txt");
    char out[1300];
    snprintf(out, sizeof out, "%s/never.safetensors", g_dir);
    train_options o = tiny_options(p, out);
    loom_error err = {{0}};
    assert_int_equal(train_run(&o, &err), -1);
    assert_non_null(strstr(err.msg, p));
    assert_false(file_exists(out));
}

/* ---- scratch directory ---- */

static void remove_tree(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return;
    char path[2048];
    for (struct dirent *e; (e = readdir(d));) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        struct stat st;
        if (lstat(path, &st) == 0 && S_ISDIR(st.st_mode)) remove_tree(path);
        else remove(path);
    }
    closedir(d);
    rmdir(dir);
}

static int setup(void **state) {
    (void)state;
    const char *base = getenv("LOOM_TEST_TMP");
    snprintf(g_dir, sizeof g_dir, "%s/train_test_XXXXXX", base && *base ? base : "/tmp");
    loom_log_set(quiet_log, NULL);
    return mkdtemp(g_dir) ? 0 : -1;
}

static int teardown(void **state) {
    (void)state;
    remove_tree(g_dir);
    tokenizer_free((tokenizer *)byte_tokenizer());
    return 0;
}

/* A run killed between checkpoints re-runs the steps after the last one:
 * on resume the log keeps only the rows up to the checkpoint's step. */
static void test_log_truncate(void **state) {
    (void)state;
    loom_error err = {{0}};
    char path[2048];
    path_in(path, sizeof path, "trunc.log.csv");
    write_file(path, "step,loss\n1,0.5\n2,0.4\n3,0.3\n4,0.2\n");
    assert_int_equal(ckpt_log_truncate(path, 2, &err), 0);
    size_t len;
    char *got = read_text(path, &len);
    assert_string_equal(got, "step,loss\n1,0.5\n2,0.4\n");
    free(got);
    path_in(path, sizeof path, "absent.log.csv");
    assert_int_equal(ckpt_log_truncate(path, 2, &err), 0); /* nothing to do */
    assert_false(file_exists(path));
}

/* --caption-asks: caption rows go on with questions about the same image
 * (the caption in context); at 0 they are the caption alone. Caption rows are
 * those whose prompt is empty (<sep> right after </img>); each answer ends
 * with an <eos> target. */
static void caption_rows_noisy(float asks, float noise, int *n_rows, int *n_with_questions,
                               int *n_noisy) {
    loom_error err = {{0}};
    tokenizer *tok = tokenizer_from_merges(NULL, 0, &err);
    assert_non_null(tok);
    decoder_config dc = decoder_default_config();
    dc.d_model = 16, dc.n_layers = 1, dc.n_heads = 2, dc.n_kv_heads = 1, dc.d_ff = 16;
    dc.vocab_size = tokenizer_vocab_size(tok), dc.max_seq = 256;
    model_image_config img = {.patch_size = 8, .max_patch_rows = 8, .max_patch_cols = 8};
    loom_model *m = model_new_ex(&dc, &img, NULL, tok, &err);
    assert_non_null(m);
    train_source src;
    assert_int_equal(source_open(&src, "shapes", 0.0f, &err), 0);
    src.caption_asks = asks;
    src.caption_noise = noise;
    const int32_t B = 64, T = 256;
    assert_int_equal(source_prepare(&src, m, T, &err), 0);
    fusion_batch fb;
    memset(&fb, 0, sizeof fb);
    assert_int_equal(fusion_batch_init(&fb, B, T, 8 * 8 * 3, (int64_t)B * 64, &err), 0);
    loom_rng rng;
    rng_seed(&rng, 9);
    assert_int_equal(source_sample(&src, m, &rng, &fb, &err), 0);
    *n_rows = *n_with_questions = *n_noisy = 0;
    for (int32_t b = 0; b < B; b++) {
        const int32_t *t = fb.tokens + (size_t)b * T, *y = fb.targets + (size_t)b * T;
        int32_t end = -1, eos = 0;
        for (int32_t i = 0; i < fb.len[b]; i++) {
            if (t[i] == TOKEN_IMG_END && end < 0) end = i;
            eos += y[i] == TOKEN_EOS;
        }
        if (end < 0 || t[end + 1] != TOKEN_SEP) continue; /* a question row */
        (*n_rows)++;
        *n_with_questions += eos > 1;
        /* inputs that are not the previous target: swapped color letters
         * only (byte tokens), inside the caption, each a letter for a letter */
        int differ = 0;
        for (int32_t i = end + 1; i + 1 < fb.len[b]; i++) {
            if (y[i] < 0 || t[i + 1] == y[i]) continue;
            differ = 1;
            const int32_t a = TOKENIZER_BYTE_BASE + 'a', z = TOKENIZER_BYTE_BASE + 'z';
            assert_true(t[i + 1] >= a && t[i + 1] <= z && y[i] >= a && y[i] <= z);
        }
        assert_int_equal(y[fb.len[b] - 2], TOKEN_EOS);
        *n_noisy += differ;
    }
    fusion_batch_free(&fb);
    source_close(&src);
    model_free(m);
}

static void caption_rows(float asks, int *n_rows, int *n_with_questions) {
    int noisy;
    caption_rows_noisy(asks, 0.0f, n_rows, n_with_questions, &noisy);
    assert_int_equal(noisy, 0);
}

/* --caption-noise: some caption rows read swapped color words while their
 * targets stay the true caption (checked above: only letters differ, the
 * row still ends in <eos>); at 0 no input differs from its target. Byte
 * tokens: only swaps to a color name of the same length apply here. */
static void test_caption_noise(void **state) {
    (void)state;
    int rows, asked, noisy;
    caption_rows_noisy(0.0f, 1.0f, &rows, &asked, &noisy);
    printf("caption_noise 1: %d caption rows of 64, %d with swapped colors\n", rows, noisy);
    assert_true(rows > 16);
    assert_true(noisy > 0);
    caption_rows_noisy(1.0f, 1.0f, &rows, &asked, &noisy);
    printf("caption_noise 1, caption_asks 1: %d caption rows, %d with swapped colors\n", rows, noisy);
    assert_int_equal(noisy, 0); /* captions that questions follow stay clean */
}

static void test_caption_asks(void **state) {
    (void)state;
    int rows, asked;
    caption_rows(0.0f, &rows, &asked);
    printf("caption_asks 0: %d caption rows of 64, %d with questions\n", rows, asked);
    assert_true(rows > 16);
    assert_int_equal(asked, 0);
    caption_rows(1.0f, &rows, &asked);
    printf("caption_asks 1: %d caption rows of 64, %d with questions\n", rows, asked);
    assert_true(rows > 16);
    /* all but those whose caption leaves no room for a question (byte tokens here) */
    assert_true(asked >= rows * 3 / 4);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_log_truncate),
        cmocka_unit_test(test_resume_bit_exact),
        cmocka_unit_test(test_jsonl_loss_mask),
        cmocka_unit_test(test_long_records_any_order),
        cmocka_unit_test(test_packed_windows),
        cmocka_unit_test(test_bad_corpora),
        cmocka_unit_test(test_caption_asks),
        cmocka_unit_test(test_caption_noise),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
