/* test_audio.c: audio decoding (encoders/audio.h): downmix and resampling on
 * known signals, the formats libsndfile writes, and the refusal of bad
 * files (0 bytes, truncated, no samples, NaN samples, absurd lengths). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <sndfile.h>

#include "encoders/audio.h"
#include "encoders/audio_enc.h"
#include "encoders/proj.h"
#include "encoders/mel.h"

#define PI 3.14159265358979323846

static char g_dir[] = "/tmp/loom_test_audio_XXXXXX";

static void path_in(char *buf, size_t cap, const char *name) { snprintf(buf, cap, "%s/%s", g_dir, name); }

/* Writes frames (n, channels) at rate in the given format; returns the path. */
static void write_sound(const char *path, const float *frames, int64_t n, int channels, int rate,
                        int format) {
    SF_INFO info = {.samplerate = rate, .channels = channels, .format = format};
    SNDFILE *f = sf_open(path, SFM_WRITE, &info);
    if (!f) fail_msg("cannot write %s: %s", path, sf_strerror(NULL));
    assert_int_equal(sf_writef_float(f, frames, n), n);
    sf_close(f);
}

static float *tone(int64_t n, int channels, int rate, double hz, double amp, int opposite) {
    float *x = malloc((size_t)n * channels * sizeof *x);
    for (int64_t i = 0; i < n; i++)
        for (int c = 0; c < channels; c++)
            x[i * channels + c] = (float)((opposite && c == 1 ? -amp : amp) * sin(2 * PI * hz * i / rate));
    return x;
}

static void test_stereo_44k_to_16k(void **state) {
    (void)state;
    loom_error err = {{0}};
    char path[256];
    path_in(path, sizeof path, "stereo.wav");
    float *x = tone(44100, 2, 44100, 1000.0, 0.5, 0);
    write_sound(path, x, 44100, 2, 44100, SF_FORMAT_WAV | SF_FORMAT_FLOAT);
    free(x);
    loom_audio a;
    assert_int_equal(audio_load_file(path, &a, &err), 0);
    assert_true(llabs(a.n - 16000) <= 2);
    /* away from the edges the result is the 1 kHz sine at 16 kHz */
    double worst = 0;
    for (int64_t i = 500; i < a.n - 500; i++)
        worst = fmax(worst, fabs(a.samples[i] - 0.5 * sin(2 * PI * 1000.0 * i / 16000)));
    printf("audio: 44.1 kHz stereo sine -> 16 kHz mono: max error %.2e\n", worst);
    assert_true(worst < 2e-3);
    audio_free(&a);
}

static void test_downmix_averages(void **state) {
    (void)state;
    loom_error err = {{0}};
    /* opposite channels cancel; equal channels keep their level */
    float *x = tone(1600, 2, 16000, 440.0, 0.8, 1);
    loom_audio a;
    assert_int_equal(audio_from_frames(x, 1600, 2, 16000, &a, &err), 0);
    assert_int_equal(a.n, 1600);
    for (int64_t i = 0; i < a.n; i++) assert_true(fabsf(a.samples[i]) < 1e-7f);
    audio_free(&a);
    free(x);
    x = tone(1600, 3, 16000, 440.0, 0.8, 0);
    assert_int_equal(audio_from_frames(x, 1600, 3, 16000, &a, &err), 0);
    for (int64_t i = 0; i < a.n; i++) assert_true(fabsf(a.samples[i] - x[i * 3]) < 1e-6f);
    audio_free(&a);
    free(x);
}

static void test_formats(void **state) {
    (void)state;
    loom_error err = {{0}};
    static const struct { const char *name; int format; int rate; } fm[] = {
        {"a.flac", SF_FORMAT_FLAC | SF_FORMAT_PCM_16, 22050},
        {"a.ogg", SF_FORMAT_OGG | SF_FORMAT_VORBIS, 48000},
        {"a16.wav", SF_FORMAT_WAV | SF_FORMAT_PCM_16, 8000},
    };
    for (size_t k = 0; k < sizeof fm / sizeof fm[0]; k++) {
        char path[256];
        path_in(path, sizeof path, fm[k].name);
        float *x = tone(fm[k].rate, 1, fm[k].rate, 500.0, 0.3, 0);
        write_sound(path, x, fm[k].rate, 1, fm[k].rate, fm[k].format);
        free(x);
        loom_audio a;
        if (audio_load_file(path, &a, &err)) fail_msg("%s: %s", fm[k].name, err.msg);
        assert_true(llabs(a.n - 16000) <= 64); /* one second, whatever the codec's padding */
        /* energy of a 0.3 sine: 0.045 (lossy codecs: loose) */
        double e = 0;
        for (int64_t i = 2000; i < 14000; i++) e += (double)a.samples[i] * a.samples[i];
        e /= 12000;
        printf("audio: %s (%d Hz): %lld samples at 16 kHz, mean square %.4f\n", fm[k].name,
               fm[k].rate, (long long)a.n, e);
        assert_true(fabs(e - 0.045) < 0.005);
        audio_free(&a);
    }
}

static void write_bytes(const char *path, const void *p, size_t n) {
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    if (n) assert_int_equal(fwrite(p, 1, n, f), n);
    fclose(f);
}

static void expect_refused(const char *path, const char *why) {
    loom_error err = {{0}};
    loom_audio a;
    assert_int_equal(audio_load_file(path, &a, &err), -1);
    if (!strstr(err.msg, why)) fail_msg("%s: message \"%s\" lacks \"%s\"", path, err.msg, why);
    assert_null(a.samples);
    assert_true(strstr(err.msg, path) != NULL);
}

static void test_bad_files(void **state) {
    (void)state;
    char path[256], good[256];
    path_in(path, sizeof path, "empty.wav");
    write_bytes(path, "", 0);
    expect_refused(path, "empty");
    path_in(path, sizeof path, "page.wav");
    write_bytes(path, "<html>not audio</html>", 22);
    expect_refused(path, "not a readable audio file");
    path_in(path, sizeof path, "missing.wav");
    expect_refused(path, "No such file");
    expect_refused(g_dir, "not a regular file");
    /* truncated: a valid WAV cut inside its header */
    path_in(good, sizeof good, "good.wav");
    float *x = tone(1600, 1, 16000, 300.0, 0.5, 0);
    write_sound(good, x, 1600, 1, 16000, SF_FORMAT_WAV | SF_FORMAT_PCM_16);
    free(x);
    FILE *f = fopen(good, "rb");
    unsigned char buf[64];
    assert_int_equal(fread(buf, 1, sizeof buf, f), sizeof buf);
    fclose(f);
    path_in(path, sizeof path, "cut.wav");
    write_bytes(path, buf, 30);
    expect_refused(path, "not a readable audio file");
    /* a WAV with no samples */
    path_in(path, sizeof path, "zero.wav");
    write_sound(path, NULL, 0, 1, 16000, SF_FORMAT_WAV | SF_FORMAT_PCM_16);
    expect_refused(path, "no samples");
    /* NaN samples (float WAV) */
    float nan_frames[4] = {0.1f, NAN, 0.2f, 0.3f};
    path_in(path, sizeof path, "nan.wav");
    write_sound(path, nan_frames, 4, 1, 16000, SF_FORMAT_WAV | SF_FORMAT_FLOAT);
    expect_refused(path, "not a finite number");
    /* a header claiming 10 hours at 16 kHz: refused before the samples are read */
    unsigned char hdr[44];
    memcpy(hdr, buf, 44);
    uint32_t data = 16000u * 2u * 3600u * 10u; /* bytes of 16-bit mono */
    memcpy(hdr + 40, &data, 4);
    uint32_t riff = data + 36;
    memcpy(hdr + 4, &riff, 4);
    path_in(path, sizeof path, "long.wav");
    unsigned char *big = calloc(1, 44 + 3200);
    memcpy(big, hdr, 44);
    write_bytes(path, big, 44 + 3200);
    free(big);
    loom_error err = {{0}};
    loom_audio a;
    int rc = audio_load_file(path, &a, &err);
    printf("audio: 10-hour header on a 0.1 s file: %s\n", rc ? err.msg : "accepted (header clamped to the file)");
    if (rc == 0) {
        assert_true(a.n <= 1700); /* libsndfile clamped it: only what is there was read */
        audio_free(&a);
    }
    /* absurd lengths through the frames entry point: refused before allocating */
    assert_int_equal(audio_from_frames(NULL, (int64_t)16000 * 3600 * 10, 1, 16000, &a, &err), -1);
    assert_non_null(strstr(err.msg, "limited to"));
    assert_int_equal(audio_from_frames(nan_frames, 4, 0, 16000, &a, &err), -1);
    assert_int_equal(audio_from_frames(nan_frames, 4, 1, 10, &a, &err), -1);
}

static void test_mel_shapes(void **state) {
    (void)state;
    loom_error err = {{0}};
    float x[16000], out[MEL_BINS * 100];
    for (int i = 0; i < 16000; i++) x[i] = (float)(0.3 * sin(2 * PI * 440.0 * i / 16000));
    assert_int_equal(mel_frames(16000), 100);
    assert_int_equal(mel_compute(x, 16000, out, &err), 0);
    for (int i = 0; i < MEL_BINS * 100; i++) assert_true(isfinite(out[i]) && out[i] <= 1.5f);
    assert_int_equal(mel_compute(x, 200, out, &err), -1);
    assert_non_null(strstr(err.msg, "too short"));
}

static void test_audio_encoder(void **state) {
    (void)state;
    loom_error err = {{0}};
    /* grouping: frames[p][j*80 + m] = mel[m][p*stack + j], padded with the minimum */
    const int64_t T = 7;
    const int32_t stack = 3;
    float mel[MEL_BINS * 7], g[3 * 3 * MEL_BINS];
    for (int m = 0; m < MEL_BINS; m++)
        for (int t = 0; t < T; t++) mel[m * T + t] = (float)(m * 100 + t);
    assert_int_equal(audio_enc_positions(T, stack), 3);
    audio_enc_group(mel, T, stack, g);
    for (int p = 0; p < 3; p++)
        for (int j = 0; j < stack; j++)
            for (int m = 0; m < MEL_BINS; m++) {
                int t = p * stack + j;
                float want = t < T ? (float)(m * 100 + t) : 0.0f; /* the minimum is mel[0][0] = 0 */
                assert_true(g[(p * stack + j) * MEL_BINS + m] == want);
            }
    /* the projector against its double reference */
    audio_enc_config c = {.stack = 2, .d_model = 24};
    assert_int_equal(audio_enc_config_check(&c, &err), 0);
    param_table t = {0};
    assert_int_equal(audio_enc_register(&c, &t, &err), 0);
    float *buf = calloc(t.total, sizeof(float)), *gbuf = calloc(t.total, sizeof(float));
    float *gref = calloc(t.total, sizeof(float));
    audio_enc_weights w, gw, gr;
    audio_enc_bind(&c, &t, buf, &w);
    audio_enc_bind(&c, &t, gbuf, &gw);
    audio_enc_bind(&c, &t, gref, &gr);
    loom_rng rng;
    rng_seed(&rng, 3);
    audio_enc_init_weights(&c, &w, &rng);
    for (int j = 0; j < 24; j++) w.b[j] = 0.1f * (float)j;
    const int64_t N = 5, D = audio_enc_dim(&c);
    float *in = malloc((size_t)(N * D) * sizeof(float)), out[5 * 30], ref[5 * 30], dout[5 * 30];
    for (int64_t i = 0; i < N * D; i++) in[i] = (float)(2.0 * rng_uniform(&rng) - 1.0);
    for (int i = 0; i < 5 * 30; i++) dout[i] = (float)(2.0 * rng_uniform(&rng) - 1.0);
    audio_enc_forward(&c, &w, in, N, out, 30);
    proj_forward_ref(w.w, w.b, in, N, D, 24, ref, 30);
    for (int64_t n = 0; n < N; n++)
        for (int j = 0; j < 24; j++) assert_true(fabsf(out[n * 30 + j] - ref[n * 30 + j]) < 1e-5f);
    audio_enc_backward(&c, &gw, in, N, dout, 30);
    proj_backward_ref(gr.w, gr.b, in, N, D, 24, dout, 30);
    for (size_t i = 0; i < t.total; i++) assert_true(fabsf(gbuf[i] - gref[i]) < 1e-5f);
    /* a second of audio: 100 mel frames, 50 positions of 2 */
    float *x = tone(16000, 1, 16000, 440.0, 0.3, 0);
    loom_audio a = {.n = 16000, .samples = x};
    float *frames;
    int64_t P;
    assert_int_equal(audio_enc_prepare(&a, 2, &frames, &P, &err), 0);
    assert_int_equal(P, 50);
    free(frames);
    free(x);
    free(in), free(buf), free(gbuf), free(gref);
    params_free(&t);
}

static int setup(void **state) {
    (void)state;
    return mkdtemp(g_dir) ? 0 : -1;
}

static int teardown(void **state) {
    (void)state;
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
    return system(cmd) == 0 ? 0 : -1;
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stereo_44k_to_16k),
        cmocka_unit_test(test_downmix_averages),
        cmocka_unit_test(test_formats),
        cmocka_unit_test(test_bad_files),
        cmocka_unit_test(test_mel_shapes),
        cmocka_unit_test(test_audio_encoder),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
