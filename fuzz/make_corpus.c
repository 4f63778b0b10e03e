/* make_corpus.c: writes the binary seed files of fuzz/corpus/ (the JSON and
 * JSONL seeds are written by hand). Built with the harnesses; run it from the
 * repository root to regenerate them:
 *
 *     build-fuzz/fuzz/make_corpus fuzz/corpus
 *
 * Every seed is small (a few KB) and deterministic:
 *   image/        PNG (RGB, grey+alpha, RGBA, 16-bit, palette, one larger than the
 *                 8 x 8-patch budget each way), JPEG, BMP, TGA (RLE), GIF, PPM, PGM,
 *                 and examples/scene3.png
 *   audio/        WAV (16-bit 16 kHz, u8 8 kHz, float 44.1 kHz stereo, 48 kHz,
 *                 3 channels, too short for a spectrogram), FLAC, OGG/Vorbis, AIFF
 *   safetensors/  loom models with d_model 2 (image + audio input; text only; int8; with a
 *                 VQ head) and a plain file of every dtype with metadata */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sndfile.h>

#include "core/safetensors.h"
#include "fusion/tokenizer.h"
#include "model/model.h"

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmissing-prototypes"
#pragma GCC diagnostic ignored "-Wshadow"
#pragma GCC diagnostic ignored "-Wsign-compare"
#define STB_IMAGE_WRITE_IMPLEMENTATION
#define STB_IMAGE_WRITE_STATIC
#include <stb_image_write.h>
#pragma GCC diagnostic pop

static const char *g_out;

static void die(const char *what, const char *why) {
    fprintf(stderr, "make_corpus: %s: %s\n", what, why ? why : "failed");
    exit(1);
}

static const char *out_path(const char *sub, const char *name) {
    static char path[4096];
    snprintf(path, sizeof path, "%s/%s/%s", g_out, sub, name);
    return path;
}

static void write_bytes(const char *path, const void *p, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(p, 1, n, f) != n || fclose(f) != 0) die(path, "cannot write");
}

/* A smooth RGB(A) test pattern with a hard-edged square in it. */
static uint8_t *pattern(int w, int h, int comp) {
    uint8_t *p = malloc((size_t)w * h * comp);
    if (!p) die("pattern", "out of memory");
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            for (int c = 0; c < comp; c++) {
                int in = x > w / 4 && x < 3 * w / 4 && y > h / 4 && y < 3 * h / 4;
                int v = c == 3 ? (in ? 255 : x * 255 / (w > 1 ? w - 1 : 1))
                               : (in ? 40 * (c + 1) : (x * 17 + y * 29 + c * 80) & 255);
                p[((size_t)y * w + x) * comp + c] = (uint8_t)v;
            }
    return p;
}

/* ---- hand-built PNGs (16-bit, palette): stb_image_write only writes 8-bit direct colour ---- */

static uint32_t crc32_of(const uint8_t *p, size_t n, uint32_t crc) {
    crc = ~crc;
    for (size_t i = 0; i < n; i++) {
        crc ^= p[i];
        for (int k = 0; k < 8; k++) crc = (crc >> 1) ^ (0xedb88320u & (0u - (crc & 1)));
    }
    return ~crc;
}

static size_t put_chunk(uint8_t *out, const char *type, const uint8_t *data, uint32_t n) {
    out[0] = (uint8_t)(n >> 24), out[1] = (uint8_t)(n >> 16), out[2] = (uint8_t)(n >> 8), out[3] = (uint8_t)n;
    memcpy(out + 4, type, 4);
    if (n) memcpy(out + 8, data, n);
    uint32_t c = crc32_of(out + 4, 4 + (size_t)n, 0);
    out[8 + n] = (uint8_t)(c >> 24), out[9 + n] = (uint8_t)(c >> 16), out[10 + n] = (uint8_t)(c >> 8);
    out[11 + n] = (uint8_t)c;
    return 12 + (size_t)n;
}

/* raw: the unfiltered scanlines (h rows of row_bytes); palette: n_pal RGB entries or NULL */
static void write_png_raw(const char *path, int w, int h, int depth, int color_type,
                          const uint8_t *raw, size_t row_bytes, const uint8_t *palette, int n_pal) {
    size_t filt_len = (row_bytes + 1) * (size_t)h;
    uint8_t *filt = malloc(filt_len);
    if (!filt) die(path, "out of memory");
    for (int y = 0; y < h; y++) {
        filt[(size_t)y * (row_bytes + 1)] = 0;
        memcpy(filt + (size_t)y * (row_bytes + 1) + 1, raw + (size_t)y * row_bytes, row_bytes);
    }
    int zlen = 0;
    uint8_t *z = stbi_zlib_compress(filt, (int)filt_len, &zlen, 8);
    free(filt);
    if (!z) die(path, "zlib");
    uint8_t *png = malloc((size_t)zlen + 3 * 256 + 128);
    if (!png) die(path, "out of memory");
    size_t at = 0;
    memcpy(png, "\x89PNG\r\n\x1a\n", 8), at = 8;
    uint8_t ihdr[13] = {0, 0, 0, (uint8_t)w, 0, 0, 0, (uint8_t)h, (uint8_t)depth, (uint8_t)color_type, 0, 0, 0};
    at += put_chunk(png + at, "IHDR", ihdr, 13);
    if (palette) at += put_chunk(png + at, "PLTE", palette, (uint32_t)n_pal * 3);
    at += put_chunk(png + at, "IDAT", z, (uint32_t)zlen);
    at += put_chunk(png + at, "IEND", NULL, 0);
    write_bytes(path, png, at);
    STBIW_FREE(z);
    free(png);
}

static void make_images(void) {
    const char *d = "image";
    uint8_t *p = pattern(12, 10, 3);
    if (!stbi_write_png(out_path(d, "rgb-12x10.png"), 12, 10, 3, p, 12 * 3)) die("png", NULL);
    free(p);
    p = pattern(9, 9, 2);
    if (!stbi_write_png(out_path(d, "grey-alpha-9x9.png"), 9, 9, 2, p, 9 * 2)) die("png", NULL);
    free(p);
    p = pattern(7, 11, 4);
    if (!stbi_write_png(out_path(d, "rgba-7x11.png"), 7, 11, 4, p, 7 * 4)) die("png", NULL);
    free(p);
    /* larger than the 64 x 64-pixel budget: downscaled, wide and tall */
    p = pattern(100, 40, 3);
    if (!stbi_write_png(out_path(d, "wide-100x40.png"), 100, 40, 3, p, 100 * 3)) die("png", NULL);
    free(p);
    p = pattern(20, 130, 1);
    if (!stbi_write_png(out_path(d, "tall-grey-20x130.png"), 20, 130, 1, p, 20)) die("png", NULL);
    free(p);
    p = pattern(16, 16, 3);
    if (!stbi_write_jpg(out_path(d, "rgb-16x16.jpg"), 16, 16, 3, p, 75)) die("jpg", NULL);
    free(p);
    p = pattern(7, 5, 3);
    if (!stbi_write_bmp(out_path(d, "rgb-7x5.bmp"), 7, 5, 3, p)) die("bmp", NULL);
    free(p);
    p = pattern(6, 6, 4);
    if (!stbi_write_tga(out_path(d, "rgba-rle-6x6.tga"), 6, 6, 4, p)) die("tga", NULL);
    free(p);

    /* 16-bit RGB PNG, 5 x 4 */
    uint8_t raw16[4 * 5 * 6];
    for (size_t i = 0; i < sizeof raw16; i++) raw16[i] = (uint8_t)(i * 53 + 7);
    write_png_raw(out_path(d, "rgb16-5x4.png"), 5, 4, 16, 2, raw16, 5 * 6, NULL, 0);
    /* 4-bit palette PNG, 6 x 3 */
    uint8_t pal[4 * 3] = {0, 0, 0, 255, 0, 0, 0, 255, 255, 255, 255, 255};
    uint8_t raw4[3 * 3];
    for (size_t i = 0; i < sizeof raw4; i++) raw4[i] = (uint8_t)(((i % 4) << 4) | ((i + 1) % 4));
    write_png_raw(out_path(d, "palette4-6x3.png"), 6, 3, 4, 3, raw4, 3, pal, 4);

    /* GIF89a, 2 x 2, 2-color global table, LZW min code size 2 */
    static const uint8_t gif[] = {
        'G', 'I', 'F', '8', '9', 'a', 2, 0, 2, 0, 0x80, 0, 0,
        0xff, 0x00, 0x00, 0x00, 0x00, 0xff,              /* red, blue */
        0x2c, 0, 0, 0, 0, 2, 0, 2, 0, 0,                 /* image descriptor */
        0x02, 0x03, 0x44, 0x02, 0x05, 0x00,              /* LZW: clear 0 1 1 0 end */
        0x3b};
    write_bytes(out_path(d, "palette-2x2.gif"), gif, sizeof gif);

    char pnm[64 + 9 * 9 * 3];
    int n = snprintf(pnm, sizeof pnm, "P6\n9 9\n255\n");
    for (int i = 0; i < 9 * 9 * 3; i++) pnm[n + i] = (char)(i * 37);
    write_bytes(out_path(d, "rgb-9x9.ppm"), pnm, (size_t)n + 9 * 9 * 3);
    n = snprintf(pnm, sizeof pnm, "P5\n# a comment\n5 3\n255\n");
    for (int i = 0; i < 15; i++) pnm[n + i] = (char)(i * 17);
    write_bytes(out_path(d, "grey-5x3.pgm"), pnm, (size_t)n + 15);
}

/* ---- audio ---- */

static void write_audio(const char *name, int format, int rate, int channels, int frames, double hz) {
    SF_INFO info = {.samplerate = rate, .channels = channels, .format = format};
    SNDFILE *f = sf_open(out_path("audio", name), SFM_WRITE, &info);
    if (!f) die(name, sf_strerror(NULL));
    float *x = malloc((size_t)frames * channels * sizeof *x);
    if (!x) die(name, "out of memory");
    for (int i = 0; i < frames; i++)
        for (int c = 0; c < channels; c++)
            x[(size_t)i * channels + c] = (float)(0.5 * sin(6.283185307179586 * hz * (c + 1) * i / rate));
    if (sf_writef_float(f, x, frames) != frames) die(name, sf_strerror(f));
    sf_close(f);
    free(x);
}

static void make_audio(void) {
    write_audio("pcm16-16k-mono.wav", SF_FORMAT_WAV | SF_FORMAT_PCM_16, 16000, 1, 800, 440);
    write_audio("u8-8k-mono.wav", SF_FORMAT_WAV | SF_FORMAT_PCM_U8, 8000, 1, 800, 300);
    write_audio("float-44k1-stereo.wav", SF_FORMAT_WAV | SF_FORMAT_FLOAT, 44100, 2, 441, 1000);
    write_audio("pcm16-48k-mono.wav", SF_FORMAT_WAV | SF_FORMAT_PCM_16, 48000, 1, 960, 2000);
    write_audio("pcm16-16k-3ch.wav", SF_FORMAT_WAV | SF_FORMAT_PCM_16, 16000, 3, 400, 500);
    write_audio("too-short-100.wav", SF_FORMAT_WAV | SF_FORMAT_PCM_16, 16000, 1, 100, 440);
    write_audio("pcm16-16k.flac", SF_FORMAT_FLAC | SF_FORMAT_PCM_16, 16000, 1, 1600, 440);
    write_audio("vorbis-16k.ogg", SF_FORMAT_OGG | SF_FORMAT_VORBIS, 16000, 1, 1600, 440);
    write_audio("pcm16-22k05.aiff", SF_FORMAT_AIFF | SF_FORMAT_PCM_16, 22050, 1, 700, 440);
}

/* ---- models ---- */

static tokenizer *tiny_tokenizer(void) {
    static const char *docs[] = {"a red circle", "a red square", "a blue circle"};
    size_t lens[3] = {12, 12, 13};
    tokenizer_train_params p = tokenizer_train_default_params();
    p.vocab_size = TOKENIZER_MERGE_BASE + 6;
    loom_error err = {{0}};
    tokenizer *t = tokenizer_train(docs, lens, 3, p, &err);
    if (!t) die("tokenizer", err.msg);
    return t;
}

static void save_model(loom_model *m, const char *name) {
    loom_error err = {{0}};
    model_init_random(m, 7);
    if (model_save(m, out_path("safetensors", name), &err)) die(name, err.msg);
    model_free(m);
}

static void make_models(void) {
    loom_error err = {{0}};
    decoder_config cfg = decoder_default_config();
    cfg.d_model = 2, cfg.n_layers = 1, cfg.n_heads = 1, cfg.n_kv_heads = 1, cfg.d_ff = 2;
    cfg.max_seq = 32, cfg.tie_embeddings = 1;

    tokenizer *tok = tiny_tokenizer();
    cfg.vocab_size = tokenizer_vocab_size(tok);
    model_image_config img = {.patch_size = 2, .max_patch_rows = 2, .max_patch_cols = 3};
    model_audio_config aud = {.stack = 1};
    loom_model *m = model_new_ex(&cfg, &img, &aud, tok, &err);
    if (!m) die("image+audio model", err.msg);
    save_model(m, "model-image-audio.safetensors");

    cfg.tie_embeddings = 0;
    cfg.window = 4;
    m = model_new(&cfg, tiny_tokenizer(), &err);
    if (!m) die("text model", err.msg);
    save_model(m, "model-text-untied.safetensors");

    /* an int8 copy (loom quantize) of a tiny tied model: q8 tensors, their scales, the q8 head */
    cfg.tie_embeddings = 1;
    m = model_new(&cfg, tiny_tokenizer(), &err);
    if (!m) die("q8 model", err.msg);
    model_init_random(m, 7);
    loom_model *q = model_quantize(m, 32, 1, &err);
    if (!q || model_save(q, out_path("safetensors", "model-q8.safetensors"), &err)) die("model-q8.safetensors", err.msg);
    model_free(q);
    model_free(m);

    tok = tiny_tokenizer();
    vq_config vc = {.n_levels = 1, .channels = {2}, .res_blocks = 0, .code_dim = 2, .codes = 4,
                    .beta = 0.25f, .ema_decay = 0.99f};
    cfg.tie_embeddings = 1, cfg.window = 0;
    cfg.vocab_size = tokenizer_vocab_size(tok) + vc.codes;
    img.max_patch_rows = img.max_patch_cols = 1;
    m = model_new_ex(&cfg, &img, NULL, tok, &err);
    if (!m || model_attach_vq(m, &vc, cfg.vocab_size - vc.codes, 1, 1, &err)) die("vq model", err.msg);
    save_model(m, "model-vq.safetensors");

    /* not a model: one tensor of every dtype, a scalar, an empty tensor, metadata */
    st_writer *w = st_writer_new();
    static const uint8_t bytes[64] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};
    const st_dtype dt[] = {ST_F32, ST_F16, ST_BF16, ST_F64, ST_I8, ST_U8, ST_I16, ST_I32, ST_I64, ST_BOOL};
    int64_t shape[2] = {2, 2}, empty[2] = {0, 3};
    char name[32];
    for (size_t i = 0; i < sizeof dt / sizeof *dt; i++) {
        snprintf(name, sizeof name, "t.%s", st_dtype_name(dt[i]));
        if (st_writer_add(w, name, dt[i], 2, shape, bytes, &err)) die(name, err.msg);
    }
    if (st_writer_add(w, "scalar", ST_F32, 0, NULL, bytes, &err) ||
        st_writer_add(w, "empty", ST_F32, 2, empty, NULL, &err) ||
        st_writer_meta(w, "format", "pt", &err) || st_writer_meta(w, "note", "every dtype", &err) ||
        st_writer_save(w, out_path("safetensors", "dtypes.safetensors"), &err))
        die("dtypes.safetensors", err.msg);
    st_writer_free(w);
}

static void copy_file(const char *from, const char *to) {
    FILE *f = fopen(from, "rb");
    if (!f) die(from, "cannot open");
    uint8_t buf[65536];
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    write_bytes(to, buf, n);
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: make_corpus OUT_DIR (run from the repository root: fuzz/corpus)\n");
        return 2;
    }
    g_out = argv[1];
    make_images();
    copy_file(LOOM_SOURCE_DIR "/examples/scene3.png", out_path("image", "scene3.png"));
    make_audio();
    make_models();
    return 0;
}
