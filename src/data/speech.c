/* speech.c: spoken training data (speech.h): voices, their names, and
 * synthesis by the espeak-ng program (a child process per utterance; see
 * speech.h for why not libespeak-ng in this process). */
#define _GNU_SOURCE /* pipe2 */
#include "data/speech.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/utf8.h"

extern char **environ;

#ifndef LOOM_ESPEAK_NG_PROGRAM
#define LOOM_ESPEAK_NG_PROGRAM "espeak-ng"
#endif

/* espeak-ng's own English voices (lang/gmw). The name espeak-ng knows a voice
 * by is the accent, except en-gb: its file is "en", and "en-gb+<variant>"
 * silently drops the variant. */
const char *const speech_accents[SPEECH_N_ACCENTS] = {
    "en-gb", "en-us", "en-gb-scotland", "en-gb-x-gbclan", "en-gb-x-rp", "en-gb-x-gbcwmd", "en-029",
};
static const char *const espeak_voice_names[SPEECH_N_ACCENTS] = {
    "en", "en-us", "en-gb-scotland", "en-gb-x-gbclan", "en-gb-x-rp", "en-gb-x-gbcwmd", "en-029",
};

/* Chosen from voices/!v for speech that stays clear: no whisper, croak,
 * robot or echo-heavy variants; of near-copies (linda/belinda,
 * john/norbert/"Mr serious", klatt/klatt6) only one. klatt* change the
 * synthesizer (Klatt formant synthesis), the rest the speaker. */
const char *const speech_variants_train[SPEECH_N_VARIANTS_TRAIN] = {
    "", "m1", "m2", "m3", "m5", "m6", "m7", "Andy", "max", "paul", /* male */
    "f1", "f2", "f4", "f5", "Annie",                               /* female */
    "klatt", "klatt2", "klatt4",                                   /* Klatt synthesizer */
};
const char *const speech_variants_heldout[SPEECH_N_VARIANTS_HELDOUT] = {
    "m4", "john", "f3", "linda", "klatt3",
};

#define ESPEAK_TIMEOUT_SECONDS 60
/* Largest WAV accepted from espeak-ng: AUDIO_MAX_SECONDS at its 22050 Hz. */
#define ESPEAK_MAX_WAV_BYTES ((size_t)AUDIO_MAX_SECONDS * 22050 * 2 + 4096)

/* ---- voices ------------------------------------------------------------------ */

static void copy_name(char *dst, size_t cap, const char *src) {
    snprintf(dst, cap, "%s", src);
}

void speech_voice_sample(enum speech_split split, loom_rng *rng, speech_voice *v) {
    memset(v, 0, sizeof *v);
    const char *const *variants = split == SPEECH_HELDOUT ? speech_variants_heldout : speech_variants_train;
    const uint32_t n_variants = split == SPEECH_HELDOUT ? SPEECH_N_VARIANTS_HELDOUT : SPEECH_N_VARIANTS_TRAIN;
    copy_name(v->accent, sizeof v->accent, speech_accents[rng_below(rng, SPEECH_N_ACCENTS)]);
    copy_name(v->variant, sizeof v->variant, variants[rng_below(rng, n_variants)]);
    v->rate = SPEECH_RATE_MIN + (int32_t)rng_below(rng, SPEECH_RATE_MAX - SPEECH_RATE_MIN + 1);
    v->pitch = SPEECH_PITCH_MIN + (int32_t)rng_below(rng, SPEECH_PITCH_MAX - SPEECH_PITCH_MIN + 1);
    v->range = SPEECH_RANGE_MIN + (int32_t)rng_below(rng, SPEECH_RANGE_MAX - SPEECH_RANGE_MIN + 1);
}

int speech_variant_split(const char *variant) {
    if (!variant) return -1;
    for (int i = 0; i < SPEECH_N_VARIANTS_TRAIN; i++)
        if (!strcmp(variant, speech_variants_train[i])) return SPEECH_TRAIN;
    for (int i = 0; i < SPEECH_N_VARIANTS_HELDOUT; i++)
        if (!strcmp(variant, speech_variants_heldout[i])) return SPEECH_HELDOUT;
    return -1;
}

static int terminated(const char *s, size_t cap) { return memchr(s, 0, cap) != NULL; }

int speech_voice_format(const speech_voice *v, char *out, size_t cap) {
    if (!v || !out || cap == 0) return -1;
    if (!terminated(v->accent, sizeof v->accent) || !terminated(v->variant, sizeof v->variant)) {
        out[0] = 0;
        return -1;
    }
    int n = snprintf(out, cap, "%s%s%s rate %d pitch %d range %d", v->accent, v->variant[0] ? "+" : "",
                     v->variant, (int)v->rate, (int)v->pitch, (int)v->range);
    if (n < 0 || (size_t)n >= cap) {
        out[0] = 0;
        return -1;
    }
    return n;
}

/* The espeak-ng name of v's accent and variant ("en-us+m3"), or -1 with the
 * reason if v is not one of the module's voices. */
static int voice_check(const speech_voice *v, char *name, size_t cap, loom_error *err) {
    if (!terminated(v->accent, sizeof v->accent) || !terminated(v->variant, sizeof v->variant))
        return loom_error_set(err, "speech voice: accent or variant is not a terminated string");
    int accent = -1;
    for (int i = 0; i < SPEECH_N_ACCENTS; i++)
        if (!strcmp(v->accent, speech_accents[i])) accent = i;
    if (accent < 0)
        return loom_error_set(err, "speech voice: unknown accent \"%s\" (en-gb, en-us, en-gb-scotland, "
                                   "en-gb-x-gbclan, en-gb-x-rp, en-gb-x-gbcwmd or en-029)", v->accent);
    if (speech_variant_split(v->variant) < 0)
        return loom_error_set(err, "speech voice: unknown variant \"%s\"", v->variant);
    if (v->rate < SPEECH_RATE_LIMIT_MIN || v->rate > SPEECH_RATE_LIMIT_MAX)
        return loom_error_set(err, "speech voice: rate %d words per minute outside [%d, %d]", (int)v->rate,
                              SPEECH_RATE_LIMIT_MIN, SPEECH_RATE_LIMIT_MAX);
    if (v->pitch < 0 || v->pitch > 99 || v->range < 0 || v->range > 99)
        return loom_error_set(err, "speech voice: pitch %d or range %d outside [0, 99]", (int)v->pitch,
                              (int)v->range);
    snprintf(name, cap, "%s%s%s", espeak_voice_names[accent], v->variant[0] ? "+" : "", v->variant);
    return 0;
}

/* ---- text -------------------------------------------------------------------- */

/* 0 if text is speakable: 1..SPEECH_MAX_TEXT_BYTES bytes of UTF-8 (no
 * overlong forms, surrogates or code points past U+10FFFF), not only spaces,
 * no control characters but tab, newline and carriage return (espeak-ng reads
 * 0x01 as the start of an embedded command). */
static int text_check(const char *text, loom_error *err) {
    if (!text) return loom_error_set(err, "speech: text is NULL");
    const size_t len = strnlen(text, SPEECH_MAX_TEXT_BYTES + 1);
    if (len > SPEECH_MAX_TEXT_BYTES)
        return loom_error_set(err, "speech: text is %zu bytes long; at most %d are spoken", strlen(text),
                              SPEECH_MAX_TEXT_BYTES);
    const size_t bad = utf8_invalid_at(text, len);
    if (bad < len) return loom_error_set(err, "speech: text is not UTF-8 (byte %zu)", bad);
    int blank = 1;
    for (size_t i = 0; i < len; i++) {
        const unsigned c = (unsigned char)text[i];
        if ((c < 0x20 && c != '\t' && c != '\n' && c != '\r') || c == 0x7f)
            return loom_error_set(err, "speech: text has the control character 0x%02x at byte %zu", c, i);
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r') blank = 0;
    }
    if (blank) return loom_error_set(err, "speech: text is empty");
    return 0;
}

/* ---- running espeak-ng ------------------------------------------------------- */

/* First line of the child's stderr, for messages ("" if none). */
static const char *first_line(char *s) {
    s[strcspn(s, "\r\n")] = 0;
    return s;
}

/* Runs argv (argv[0] the program) with stdin /dev/null; returns its stdout
 * (malloc'd, *len bytes) or NULL with the reason in err (naming `what`). */
static unsigned char *run_capture(char *const argv[], const char *what, size_t max_bytes, size_t *len,
                                  loom_error *err) {
    *len = 0;
    int out[2] = {-1, -1}, errp[2] = {-1, -1};
    if (pipe2(out, O_CLOEXEC) || pipe2(errp, O_CLOEXEC)) {
        loom_error_set(err, "%s: pipe: %s", what, strerror(errno));
        if (out[0] >= 0) close(out[0]), close(out[1]);
        return NULL;
    }
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t attr;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, out[1], 1);
    posix_spawn_file_actions_adddup2(&fa, errp[1], 2);
    posix_spawnattr_init(&attr);
    sigset_t none, pipe_only;
    sigemptyset(&none);
    sigemptyset(&pipe_only);
    sigaddset(&pipe_only, SIGPIPE);
    posix_spawnattr_setsigmask(&attr, &none);
    posix_spawnattr_setsigdefault(&attr, &pipe_only);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    pid_t pid;
    int e = posix_spawnp(&pid, argv[0], &fa, &attr, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&attr);
    close(out[1]);
    close(errp[1]);
    if (e) {
        close(out[0]);
        close(errp[0]);
        loom_error_set(err, "%s: cannot run %s: %s (is the espeak-ng package installed?)", what, argv[0],
                       strerror(e));
        return NULL;
    }

    size_t cap = 1 << 16, n = 0;
    unsigned char *buf = malloc(cap);
    char msg[256] = {0};
    size_t n_msg = 0;
    const char *fail = buf ? NULL : "out of memory";
    const double deadline = clock_now_s() + ESPEAK_TIMEOUT_SECONDS;
    struct pollfd fds[2] = {{.fd = out[0], .events = POLLIN}, {.fd = errp[0], .events = POLLIN}};
    while (!fail && (fds[0].fd >= 0 || fds[1].fd >= 0)) {
        const double left = deadline - clock_now_s();
        if (left <= 0) {
            fail = "timed out";
            break;
        }
        int r = poll(fds, 2, (int)(left * 1000) + 1);
        if (r < 0) {
            if (errno == EINTR) continue;
            fail = "poll failed";
            break;
        }
        if (fds[0].fd >= 0 && fds[0].revents) {
            if (n == cap) {
                size_t grown = cap * 2 > max_bytes ? max_bytes : cap * 2;
                unsigned char *b = grown > cap ? realloc(buf, grown) : NULL;
                if (!b) {
                    fail = grown > cap ? "out of memory" : "output too long";
                    break;
                }
                buf = b;
                cap = grown;
            }
            ssize_t got = read(fds[0].fd, buf + n, cap - n);
            if (got > 0) n += (size_t)got;
            else if (got == 0 || errno != EINTR) close(fds[0].fd), fds[0].fd = -1;
        }
        if (fds[1].fd >= 0 && fds[1].revents) {
            char tmp[512];
            ssize_t got = read(fds[1].fd, tmp, sizeof tmp);
            if (got > 0) {
                size_t keep = sizeof msg - 1 - n_msg;
                if (keep > (size_t)got) keep = (size_t)got;
                memcpy(msg + n_msg, tmp, keep);
                n_msg += keep;
            } else if (got == 0 || errno != EINTR) {
                close(fds[1].fd), fds[1].fd = -1;
            }
        }
    }
    if (fds[0].fd >= 0) close(fds[0].fd);
    if (fds[1].fd >= 0) close(fds[1].fd);
    if (fail) kill(pid, SIGKILL);
    int status = 0;
    pid_t w;
    while ((w = waitpid(pid, &status, 0)) < 0 && errno == EINTR) {}
    /* w < 0 with ECHILD: the caller reaps children itself (SIGCHLD ignored or
     * a handler); the output is then judged on its own. */
    if (!fail && w == pid && !(WIFEXITED(status) && WEXITSTATUS(status) == 0)) {
        if (WIFEXITED(status))
            loom_error_set(err, "%s: espeak-ng failed (exit status %d)%s%s", what, WEXITSTATUS(status),
                           n_msg ? ": " : "", first_line(msg));
        else
            loom_error_set(err, "%s: espeak-ng was killed by signal %d", what, WTERMSIG(status));
        free(buf);
        return NULL;
    }
    if (fail) {
        loom_error_set(err, "%s: espeak-ng: %s", what, fail);
        free(buf);
        return NULL;
    }
    *len = n;
    return buf;
}

static uint32_t le32(const unsigned char *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static uint16_t le16(const unsigned char *p) { return (uint16_t)(p[0] | p[1] << 8); }

/* The 16-bit PCM samples of espeak-ng's WAV output: *pcm points into wav,
 * (*n_frames, *channels) interleaved. The data chunk's size is 0x7ffff000
 * when espeak-ng writes to a pipe; the data then runs to the end. */
static int wav_pcm16(const unsigned char *wav, size_t len, const unsigned char **pcm, int64_t *n_frames,
                     int32_t *channels, int32_t *rate, loom_error *err) {
    if (len < 12 || memcmp(wav, "RIFF", 4) || memcmp(wav + 8, "WAVE", 4))
        return loom_error_set(err, "not a WAV file (%zu bytes)", len);
    int have_fmt = 0;
    for (size_t at = 12; at + 8 <= len;) {
        const uint32_t size = le32(wav + at + 4);
        const size_t body = at + 8, avail = len - body;
        if (!memcmp(wav + at, "fmt ", 4)) {
            if (size < 16 || avail < 16) return loom_error_set(err, "WAV format chunk is truncated");
            const uint16_t format = le16(wav + body), ch = le16(wav + body + 2), bits = le16(wav + body + 14);
            const uint32_t sr = le32(wav + body + 4);
            if (format != 1 || bits != 16 || ch < 1 || ch > AUDIO_MAX_CHANNELS || sr > AUDIO_MAX_RATE)
                return loom_error_set(err, "WAV is not 16-bit PCM (format %u, %u bits, %u channels, %u Hz)",
                                      format, bits, ch, sr);
            *channels = ch;
            *rate = (int32_t)sr;
            have_fmt = 1;
        } else if (!memcmp(wav + at, "data", 4)) {
            if (!have_fmt) return loom_error_set(err, "WAV data before its format");
            const size_t bytes = size < avail ? size : avail;
            *pcm = wav + body;
            *n_frames = (int64_t)(bytes / (2 * (size_t)*channels));
            return 0;
        }
        if (size > avail) break;
        at = body + size + (size & 1);
    }
    return loom_error_set(err, "WAV has no data");
}

/* ---- synthesis --------------------------------------------------------------- */

int speech_synth(const speech_voice *v, const char *text, loom_audio *a, loom_error *err) {
    memset(a, 0, sizeof *a);
    char name[64], what[SPEECH_VOICE_FORMAT_MAX + 16];
    if (!v) return loom_error_set(err, "speech: voice is NULL");
    if (voice_check(v, name, sizeof name, err) || text_check(text, err)) return -1;
    char vname[SPEECH_VOICE_FORMAT_MAX];
    speech_voice_format(v, vname, sizeof vname);
    snprintf(what, sizeof what, "speech (%s)", vname);

    /* Rate and pitch as options (espeak_SetParameter), the range as an
     * embedded command in front of the text (the program has no option for
     * it): "\001<range>R ". "--" keeps a text that starts with '-' a text. */
    char rate[16], pitch[16], body[SPEECH_MAX_TEXT_BYTES + 16];
    snprintf(rate, sizeof rate, "%d", (int)v->rate);
    snprintf(pitch, sizeof pitch, "%d", (int)v->pitch);
    snprintf(body, sizeof body, "\001%dR %s", (int)v->range, text);
    char *argv[] = {LOOM_ESPEAK_NG_PROGRAM, "-v", name, "-s", rate, "-p", pitch, "-b", "1", "--stdout", "--",
                    body, NULL};
    size_t len;
    unsigned char *wav = run_capture(argv, what, ESPEAK_MAX_WAV_BYTES, &len, err);
    if (!wav) return -1;

    const unsigned char *pcm = NULL;
    int64_t n = 0;
    int32_t ch = 1, sr = 0;
    if (wav_pcm16(wav, len, &pcm, &n, &ch, &sr, err)) {
        free(wav);
        return loom_error_wrap(err, "%s: espeak-ng output", what);
    }
    /* Trim: the first and last frames with a sample at or above the level,
     * widened by the margin where there is silence to keep. */
    const int level = (int)(SPEECH_TRIM_LEVEL * 32768.0f + 0.5f);
    int64_t first = -1, last = -1;
    for (int64_t i = 0; i < n; i++)
        for (int32_t c = 0; c < ch; c++) {
            const int s = (int16_t)le16(pcm + 2 * (i * ch + c));
            if (s >= level || s <= -level) {
                if (first < 0) first = i;
                last = i;
            }
        }
    if (first < 0) {
        free(wav);
        return loom_error_set(err, "%s: espeak-ng produced no sound for the text", what);
    }
    const int64_t margin = (int64_t)(SPEECH_TRIM_MARGIN * (float)sr + 0.5f);
    const int64_t start = first > margin ? first - margin : 0;
    const int64_t end = last + 1 + margin < n ? last + 1 + margin : n;
    float *frames = malloc((size_t)(end - start) * (size_t)ch * sizeof *frames);
    if (!frames) {
        free(wav);
        return loom_error_set(err, "%s: out of memory", what);
    }
    for (int64_t i = 0; i < (end - start) * ch; i++)
        frames[i] = (float)(int16_t)le16(pcm + 2 * (start * ch + i)) / 32768.0f;
    free(wav);
    int rc = audio_from_frames(frames, end - start, ch, sr, a, err);
    free(frames);
    if (rc) return loom_error_wrap(err, "%s", what);
    return 0;
}
