/* test_speech.c: speech synthesis (data/speech.h): plausible audio for train
 * and held-out voices, trimming, determinism (also across threads), voices
 * that differ, rate, disjoint variant splits, every accent and variant
 * speaking, refused inputs, and a timing printout. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "data/speech.h"

static const char *const TEXTS[2] = {"a small blue square in the center", "how many objects are there?"};

static double now_seconds(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static void synth_or_die(const speech_voice *v, const char *text, loom_audio *a) {
    loom_error err = {{0}};
    if (speech_synth(v, text, a, &err)) fail_msg("speech_synth(\"%s\"): %s", text, err.msg);
}

static double rms(const loom_audio *a) {
    double s = 0;
    for (int64_t i = 0; i < a->n; i++) s += (double)a->samples[i] * a->samples[i];
    return sqrt(s / (double)a->n);
}

static int same_audio(const loom_audio *a, const loom_audio *b) {
    return a->n == b->n && !memcmp(a->samples, b->samples, (size_t)a->n * sizeof *a->samples);
}

static speech_voice make_voice(const char *accent, const char *variant, int rate, int pitch, int range) {
    speech_voice v;
    memset(&v, 0, sizeof v);
    snprintf(v.accent, sizeof v.accent, "%s", accent);
    snprintf(v.variant, sizeof v.variant, "%s", variant);
    v.rate = rate;
    v.pitch = pitch;
    v.range = range;
    return v;
}

/* Nonempty, 0.5..6 s, finite, RMS above a floor; the sound starts and ends
 * within the trim margin (plus the resampler's few samples) of the ends. */
static void check_plausible(const loom_audio *a, const char *what) {
    const double sec = (double)a->n / AUDIO_RATE, r = rms(a);
    int64_t first = -1, last = -1;
    for (int64_t i = 0; i < a->n; i++) {
        if (!isfinite(a->samples[i])) fail_msg("%s: sample %lld is not finite", what, (long long)i);
        if (fabsf(a->samples[i]) >= SPEECH_TRIM_LEVEL) {
            if (first < 0) first = i;
            last = i;
        }
    }
    const int64_t margin = (int64_t)(SPEECH_TRIM_MARGIN * AUDIO_RATE) + 32;
    printf("speech: %-48s %.2f s, rms %.3f, sound from %.3f s to %.3f s before the end\n", what, sec, r,
           (double)first / AUDIO_RATE, (double)(a->n - 1 - last) / AUDIO_RATE);
    assert_true(a->n > 0);
    assert_true(sec >= 0.5 && sec <= 6.0);
    assert_true(r > 0.02);
    assert_true(first >= 0 && first <= margin);
    assert_true(a->n - 1 - last <= margin);
}

static void test_train_and_heldout(void **state) {
    (void)state;
    for (int split = SPEECH_TRAIN; split <= SPEECH_HELDOUT; split++) {
        loom_rng rng;
        rng_seed(&rng, 7);
        speech_voice v;
        speech_voice_sample((enum speech_split)split, &rng, &v);
        char name[SPEECH_VOICE_FORMAT_MAX];
        assert_true(speech_voice_format(&v, name, sizeof name) > 0);
        assert_int_equal(speech_variant_split(v.variant), split);
        for (int t = 0; t < 2; t++) {
            loom_audio a;
            synth_or_die(&v, TEXTS[t], &a);
            char what[160];
            snprintf(what, sizeof what, "%s: \"%.20s\"", name, TEXTS[t]);
            check_plausible(&a, what);
            audio_free(&a);
        }
    }
}

static void test_deterministic(void **state) {
    (void)state;
    /* Klatt and breathy variants use noise; each must still repeat exactly,
     * also after other voices have spoken in between. */
    const speech_voice vs[3] = {make_voice("en-us", "m3", 160, 50, 40), make_voice("en-gb", "klatt2", 150, 40, 60),
                                make_voice("en-gb-scotland", "f5", 180, 60, 50)};
    loom_audio first[3];
    for (int i = 0; i < 3; i++) synth_or_die(&vs[i], TEXTS[0], &first[i]);
    for (int i = 2; i >= 0; i--) {
        loom_audio again;
        synth_or_die(&vs[i], TEXTS[0], &again);
        assert_true(same_audio(&first[i], &again));
        audio_free(&again);
    }
    for (int i = 0; i < 3; i++) audio_free(&first[i]);
}

typedef struct {
    speech_voice v;
    loom_audio a[2];
    int rc;
} thread_job;

static void *thread_main(void *p) {
    thread_job *j = p;
    loom_error err = {{0}};
    j->rc = 0;
    for (int t = 0; t < 2; t++) j->rc |= speech_synth(&j->v, TEXTS[t], &j->a[t], &err);
    return NULL;
}

static void test_threads(void **state) {
    (void)state;
    thread_job jobs[2] = {{.v = make_voice("en-us", "f2", 170, 55, 50)},
                          {.v = make_voice("en-029", "paul", 140, 45, 30)}};
    pthread_t th[2];
    for (int i = 0; i < 2; i++) assert_int_equal(pthread_create(&th[i], NULL, thread_main, &jobs[i]), 0);
    for (int i = 0; i < 2; i++) pthread_join(th[i], NULL);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(jobs[i].rc, 0);
        for (int t = 0; t < 2; t++) {
            loom_audio serial;
            synth_or_die(&jobs[i].v, TEXTS[t], &serial);
            assert_true(same_audio(&serial, &jobs[i].a[t]));
            audio_free(&serial);
            audio_free(&jobs[i].a[t]);
        }
    }
}

static void test_voices_differ(void **state) {
    (void)state;
    const speech_voice a = make_voice("en-us", "m3", 160, 50, 50), b = make_voice("en-us", "f1", 160, 50, 50),
                       c = make_voice("en-us", "m3", 160, 70, 50), d = make_voice("en-us", "m3", 160, 50, 90),
                       e = make_voice("en-gb-x-rp", "m3", 160, 50, 50);
    loom_audio aa, other;
    synth_or_die(&a, TEXTS[1], &aa);
    const speech_voice *others[4] = {&b, &c, &d, &e};
    for (int i = 0; i < 4; i++) {
        synth_or_die(others[i], TEXTS[1], &other);
        assert_false(same_audio(&aa, &other));
        audio_free(&other);
    }
    audio_free(&aa);
}

static void test_rate(void **state) {
    (void)state;
    speech_voice v = make_voice("en-gb", "m1", 200, 50, 50);
    loom_audio fast, slow;
    synth_or_die(&v, TEXTS[0], &fast);
    v.rate = 120;
    synth_or_die(&v, TEXTS[0], &slow);
    printf("speech: rate 200: %.2f s, rate 120: %.2f s\n", (double)fast.n / AUDIO_RATE, (double)slow.n / AUDIO_RATE);
    assert_true(fast.n < slow.n * 0.8);
    audio_free(&fast);
    audio_free(&slow);
}

static void test_splits_disjoint(void **state) {
    (void)state;
    /* sampled variants: which list index was seen, per split */
    int seen[2][SPEECH_N_VARIANTS_TRAIN] = {{0}};
    int accents[SPEECH_N_ACCENTS] = {0};
    for (int split = SPEECH_TRAIN; split <= SPEECH_HELDOUT; split++) {
        loom_rng rng;
        rng_seed(&rng, 1234 + (uint64_t)split);
        const char *const *list = split ? speech_variants_heldout : speech_variants_train;
        const int n_list = split ? SPEECH_N_VARIANTS_HELDOUT : SPEECH_N_VARIANTS_TRAIN;
        for (int k = 0; k < 1000; k++) {
            speech_voice v;
            speech_voice_sample((enum speech_split)split, &rng, &v);
            assert_int_equal(speech_variant_split(v.variant), split);
            int found = -1;
            for (int i = 0; i < n_list; i++)
                if (!strcmp(v.variant, list[i])) found = i;
            assert_true(found >= 0);
            seen[split][found]++;
            for (int i = 0; i < SPEECH_N_ACCENTS; i++)
                if (!strcmp(v.accent, speech_accents[i])) accents[i]++;
            assert_true(v.rate >= SPEECH_RATE_MIN && v.rate <= SPEECH_RATE_MAX);
            assert_true(v.pitch >= SPEECH_PITCH_MIN && v.pitch <= SPEECH_PITCH_MAX);
            assert_true(v.range >= SPEECH_RANGE_MIN && v.range <= SPEECH_RANGE_MAX);
        }
        for (int i = 0; i < n_list; i++) assert_true(seen[split][i] > 0); /* every variant is used */
    }
    for (int i = 0; i < SPEECH_N_ACCENTS; i++) assert_true(accents[i] > 0);
    /* no variant sampled in one split is in the other's list */
    for (int i = 0; i < SPEECH_N_VARIANTS_TRAIN; i++)
        for (int j = 0; j < SPEECH_N_VARIANTS_HELDOUT; j++)
            if (seen[0][i] && seen[1][j]) assert_string_not_equal(speech_variants_train[i], speech_variants_heldout[j]);
    /* the same seed gives the same voices */
    loom_rng r1, r2;
    rng_seed(&r1, 99);
    rng_seed(&r2, 99);
    for (int k = 0; k < 100; k++) {
        speech_voice a, b;
        speech_voice_sample(SPEECH_TRAIN, &r1, &a);
        speech_voice_sample(SPEECH_TRAIN, &r2, &b);
        assert_memory_equal(&a, &b, sizeof a);
    }
}

/* Every accent (with a train variant) and every variant (with an accent)
 * produces plausible speech. */
static void test_every_accent_and_variant(void **state) {
    (void)state;
    char what[160];
    for (int i = 0; i < SPEECH_N_ACCENTS; i++) {
        speech_voice v = make_voice(speech_accents[i], "m2", 170, 50, 50);
        loom_audio a;
        synth_or_die(&v, TEXTS[1], &a);
        snprintf(what, sizeof what, "accent %s", speech_accents[i]);
        check_plausible(&a, what);
        audio_free(&a);
    }
    for (int split = 0; split < 2; split++) {
        const int n = split ? SPEECH_N_VARIANTS_HELDOUT : SPEECH_N_VARIANTS_TRAIN;
        for (int i = 0; i < n; i++) {
            const char *var = split ? speech_variants_heldout[i] : speech_variants_train[i];
            speech_voice v = make_voice(speech_accents[i % SPEECH_N_ACCENTS], var, 170, 50, 50);
            loom_audio a;
            synth_or_die(&v, TEXTS[0], &a);
            snprintf(what, sizeof what, "%s variant %s (%s)", split ? "held-out" : "train", var[0] ? var : "none",
                     v.accent);
            check_plausible(&a, what);
            audio_free(&a);
        }
    }
}

static void test_format(void **state) {
    (void)state;
    char out[SPEECH_VOICE_FORMAT_MAX];
    speech_voice v = make_voice("en-us", "m3", 160, 50, 40);
    assert_int_equal(speech_voice_format(&v, out, sizeof out), 35);
    assert_string_equal(out, "en-us+m3 rate 160 pitch 50 range 40");
    v = make_voice("en-gb-x-gbcwmd", "", 210, 0, 99);
    assert_true(speech_voice_format(&v, out, sizeof out) > 0);
    assert_string_equal(out, "en-gb-x-gbcwmd rate 210 pitch 0 range 99");
    assert_int_equal(speech_voice_format(&v, out, 10), -1);
    /* the longest names fit the documented size */
    v = make_voice("en-gb-x-gbcwmd", "klatt2", -2147483647 - 1, -2147483647 - 1, -2147483647 - 1);
    memset(v.accent, 'x', sizeof v.accent - 1);
    memset(v.variant, 'y', sizeof v.variant - 1);
    assert_true(speech_voice_format(&v, out, sizeof out) > 0);
}

static void expect_refused(const speech_voice *v, const char *text, const char *needle) {
    loom_error err = {{0}};
    loom_audio a = {.n = 5, .samples = (float *)&a};
    assert_int_equal(speech_synth(v, text, &a, &err), -1);
    printf("speech: refused: %s\n", err.msg);
    assert_true(err.msg[0] != 0);
    if (needle && !strstr(err.msg, needle)) fail_msg("\"%s\" not in \"%s\"", needle, err.msg);
    assert_int_equal(a.n, 0);
    assert_null(a.samples);
}

static void test_refused(void **state) {
    (void)state;
    const speech_voice ok = make_voice("en-us", "m3", 160, 50, 50);
    expect_refused(&ok, "", "empty");
    expect_refused(&ok, " \t\n ", "empty");
    char *long_text = malloc(SPEECH_MAX_TEXT_BYTES + 2);
    memset(long_text, 'a', SPEECH_MAX_TEXT_BYTES + 1);
    long_text[SPEECH_MAX_TEXT_BYTES + 1] = 0;
    expect_refused(&ok, long_text, "1001 bytes");
    free(long_text);
    expect_refused(&ok, "hello \001" "80P there", "control");
    expect_refused(&ok, "caf\xc3", "UTF-8");
    expect_refused(&ok, "\xc0\xaf", "UTF-8"); /* overlong '/' */
    expect_refused(&ok, "...", "no sound");
    expect_refused(&ok, NULL, "NULL");
    speech_voice v = make_voice("en-xx", "m3", 160, 50, 50);
    expect_refused(&v, TEXTS[0], "accent \"en-xx\"");
    v = make_voice("en-us", "whisper", 160, 50, 50);
    expect_refused(&v, TEXTS[0], "variant \"whisper\"");
    v = make_voice("en-us", "../../x", 160, 50, 50);
    expect_refused(&v, TEXTS[0], "variant");
    v = make_voice("en-us", "m3", 60, 50, 50);
    expect_refused(&v, TEXTS[0], "rate");
    v = make_voice("en-us", "m3", 160, 100, 50);
    expect_refused(&v, TEXTS[0], "pitch");
    v = make_voice("en-us", "m3", 160, 50, -1);
    expect_refused(&v, TEXTS[0], "range");
    v = make_voice("en-us", "m3", 160, 50, 50);
    memset(v.accent, 'a', sizeof v.accent);
    expect_refused(&v, TEXTS[0], "terminated");
    /* a text that starts like an option, and non-ASCII text, are spoken */
    loom_audio a;
    synth_or_die(&ok, "-v is not an option here", &a);
    audio_free(&a);
    synth_or_die(&ok, "caf\xc3\xa9 na\xc3\xafve", &a);
    audio_free(&a);
}

static void test_timing(void **state) {
    (void)state;
    loom_rng rng;
    rng_seed(&rng, 3);
    double audio_s = 0;
    const int n = 8;
    const double t0 = now_seconds();
    for (int i = 0; i < n; i++) {
        speech_voice v;
        speech_voice_sample(i % 4 == 3 ? SPEECH_HELDOUT : SPEECH_TRAIN, &rng, &v);
        loom_audio a;
        synth_or_die(&v, TEXTS[i % 2], &a);
        audio_s += (double)a.n / AUDIO_RATE;
        audio_free(&a);
    }
    const double dt = now_seconds() - t0;
    printf("speech: %d utterances, %.1f s of audio in %.2f s: %.1f s of audio per second (%.0f ms each)\n", n,
           audio_s, dt, audio_s / dt, 1000 * dt / n);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_train_and_heldout), cmocka_unit_test(test_deterministic),
        cmocka_unit_test(test_threads),           cmocka_unit_test(test_voices_differ),
        cmocka_unit_test(test_rate),              cmocka_unit_test(test_splits_disjoint),
        cmocka_unit_test(test_every_accent_and_variant), cmocka_unit_test(test_format),
        cmocka_unit_test(test_refused),           cmocka_unit_test(test_timing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
