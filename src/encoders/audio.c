#include "encoders/audio.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <samplerate.h>
#include <sndfile.h>

/* ---- libsndfile reading from memory ---- */

typedef struct mem_io {
    const unsigned char *p;
    sf_count_t len, at;
} mem_io;

static sf_count_t mem_len(void *u) { return ((mem_io *)u)->len; }

static sf_count_t mem_seek(sf_count_t off, int whence, void *u) {
    mem_io *m = u;
    sf_count_t to = whence == SEEK_SET ? off : whence == SEEK_CUR ? m->at + off : m->len + off;
    if (to < 0 || to > m->len) return -1;
    m->at = to;
    return to;
}

static sf_count_t mem_read(void *dst, sf_count_t n, void *u) {
    mem_io *m = u;
    if (n < 0) return 0;
    if (n > m->len - m->at) n = m->len - m->at;
    memcpy(dst, m->p + m->at, (size_t)n);
    m->at += n;
    return n;
}

static sf_count_t mem_write(const void *src, sf_count_t n, void *u) {
    (void)src, (void)n, (void)u;
    return 0;
}

static sf_count_t mem_tell(void *u) { return ((mem_io *)u)->at; }

/* ---- downmix and resampling ---- */

int audio_from_frames(const float *frames, int64_t n_frames, int32_t channels, int32_t rate,
                      loom_audio *a, loom_error *err) {
    memset(a, 0, sizeof *a);
    if (channels < 1 || channels > AUDIO_MAX_CHANNELS)
        return loom_error_set(err, "%d channels (at most %d)", channels, AUDIO_MAX_CHANNELS);
    if (rate < AUDIO_MIN_RATE || rate > AUDIO_MAX_RATE)
        return loom_error_set(err, "sample rate %d Hz outside [%d, %d]", rate, AUDIO_MIN_RATE, AUDIO_MAX_RATE);
    if (n_frames < 1) return loom_error_set(err, "no samples");
    if (n_frames / rate > AUDIO_MAX_SECONDS)
        return loom_error_set(err, "%.0f seconds long; audio is limited to %d seconds",
                              (double)n_frames / rate, AUDIO_MAX_SECONDS);
    float *mono = malloc((size_t)n_frames * sizeof *mono);
    if (!mono) return loom_error_set(err, "out of memory");
    for (int64_t i = 0; i < n_frames; i++) {
        double s = 0.0;
        for (int32_t c = 0; c < channels; c++) {
            float v = frames[i * channels + c];
            if (!isfinite(v)) {
                free(mono);
                return loom_error_set(err, "sample %lld of channel %d is not a finite number",
                                      (long long)i, c);
            }
            s += v;
        }
        mono[i] = (float)(s / channels);
    }
    if (rate == AUDIO_RATE) {
        a->samples = mono;
        a->n = n_frames;
        return 0;
    }
    const double ratio = (double)AUDIO_RATE / rate;
    const int64_t cap = (int64_t)ceil((double)n_frames * ratio) + 16;
    float *out = malloc((size_t)cap * sizeof *out);
    if (!out) {
        free(mono);
        return loom_error_set(err, "out of memory");
    }
    SRC_DATA d = {.data_in = mono, .data_out = out, .input_frames = (long)n_frames,
                  .output_frames = (long)cap, .src_ratio = ratio, .end_of_input = 1};
    int e = src_simple(&d, SRC_SINC_BEST_QUALITY, 1);
    free(mono);
    if (e) {
        free(out);
        return loom_error_set(err, "resampling: %s", src_strerror(e));
    }
    if (d.output_frames_gen < 1) {
        free(out);
        return loom_error_set(err, "too short to resample to %d Hz", AUDIO_RATE);
    }
    a->samples = out;
    a->n = d.output_frames_gen;
    return 0;
}

/* 1 if libsndfile's parse log says a WAV "data" or AIFF "SSND" chunk is
 * shorter than its header claims ("data : 2304000000 (should be 4000)"):
 * libsndfile then quietly plays what is there; loom calls the file truncated. */
static int chunk_truncated(SNDFILE *sf) {
    char log[4096];
    log[0] = '\0';
    sf_command(sf, SFC_GET_LOG_INFO, log, (int)sizeof log);
    log[sizeof log - 1] = '\0';
    for (const char *line = log; line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL) {
        const char *end = strchr(line, '\n');
        size_t n = end ? (size_t)(end - line) : strlen(line);
        int chunk = strncmp(line, "data", 4) == 0 || strncmp(line, "SSND", 4) == 0;
        for (size_t i = 0; chunk && i + 10 <= n; i++)
            if (memcmp(line + i, "(should be", 10) == 0) return 1;
    }
    return 0;
}

int audio_load_memory(const void *buf, size_t len, const char *name, loom_audio *a,
                      loom_error *err) {
    memset(a, 0, sizeof *a);
    if (!name) name = "<memory>";
    if (len == 0) return loom_error_set(err, "%s: empty file", name);
    if (len > AUDIO_MAX_FILE_BYTES)
        return loom_error_set(err, "%s: %zu bytes; audio files are limited to %zu", name, len,
                              AUDIO_MAX_FILE_BYTES);
    mem_io m = {.p = buf, .len = (sf_count_t)len, .at = 0};
    SF_VIRTUAL_IO io = {mem_len, mem_seek, mem_read, mem_write, mem_tell};
    SF_INFO info;
    memset(&info, 0, sizeof info);
    SNDFILE *sf = sf_open_virtual(&io, SFM_READ, &info, &m);
    if (!sf) return loom_error_set(err, "%s: not a readable audio file (libsndfile: %s)", name, sf_strerror(NULL));
    /* the limits, before any sample buffer */
    int rc = 0;
    if (chunk_truncated(sf))
        rc = loom_error_set(err, "%s: truncated (its header promises more audio data than the file holds)", name);
    else if (info.channels < 1 || info.channels > AUDIO_MAX_CHANNELS)
        rc = loom_error_set(err, "%s: %d channels (at most %d)", name, info.channels, AUDIO_MAX_CHANNELS);
    else if (info.samplerate < AUDIO_MIN_RATE || info.samplerate > AUDIO_MAX_RATE)
        rc = loom_error_set(err, "%s: sample rate %d Hz outside [%d, %d]", name, info.samplerate,
                            AUDIO_MIN_RATE, AUDIO_MAX_RATE);
    else if (info.frames <= 0)
        rc = loom_error_set(err, "%s: no samples", name);
    else if (info.frames / info.samplerate > AUDIO_MAX_SECONDS)
        rc = loom_error_set(err, "%s: %.0f seconds long; audio is limited to %d seconds", name,
                            (double)info.frames / info.samplerate, AUDIO_MAX_SECONDS);
    if (rc) {
        sf_close(sf);
        return -1;
    }
    /* frames is the header's claim, an estimate for some formats and a lie in a hostile
     * file (a 76-byte FLAC header claims 590 s of 8 channels at 640 kHz: 12 GB of floats;
     * fuzz/fuzz_audio.c). Read what is there, at most the limit (+1 frame to notice a
     * longer stream), into a buffer that grows with what actually decodes. */
    const int64_t max_frames = (int64_t)AUDIO_MAX_SECONDS * info.samplerate + 1;
    const int64_t want = info.frames < max_frames ? info.frames : max_frames;
    const size_t ch = (size_t)info.channels;
    int64_t cap = want < info.samplerate ? want : info.samplerate; /* 1 s, then doubling */
    float *frames = malloc((size_t)cap * ch * sizeof *frames);
    sf_count_t got = 0;
    while (frames) {
        if (got == cap) {
            if (cap >= want) break;
            const int64_t nc = cap < want - cap ? 2 * cap : want;
            float *nf = realloc(frames, (size_t)nc * ch * sizeof *frames);
            if (!nf) {
                free(frames);
                frames = NULL;
                break;
            }
            frames = nf;
            cap = nc;
        }
        const sf_count_t r = sf_readf_float(sf, frames + (size_t)got * ch, (sf_count_t)(cap - got));
        if (r <= 0) break;
        got += r;
    }
    if (!frames) {
        sf_close(sf);
        return loom_error_set(err, "%s: out of memory", name);
    }
    int sf_err = sf_error(sf);
    const char *why = sf_err ? sf_strerror(sf) : NULL;
    if (got <= 0) rc = loom_error_set(err, "%s: no samples could be decoded%s%s", name, why ? ": " : "", why ? why : "");
    else if (got >= max_frames)
        rc = loom_error_set(err, "%s: longer than %d seconds", name, AUDIO_MAX_SECONDS);
    sf_close(sf);
    if (!rc && audio_from_frames(frames, got, info.channels, info.samplerate, a, err))
        rc = loom_error_wrap(err, "%s", name);
    free(frames);
    return rc;
}

int audio_load_file(const char *path, loom_audio *a, loom_error *err) {
    memset(a, 0, sizeof *a);
    struct stat st;
    if (stat(path, &st) != 0) return loom_error_set(err, "%s: %s", path, strerror(errno));
    if (!S_ISREG(st.st_mode)) return loom_error_set(err, "%s: not a regular file", path);
    if (st.st_size == 0) return loom_error_set(err, "%s: empty file", path);
    if ((uint64_t)st.st_size > AUDIO_MAX_FILE_BYTES)
        return loom_error_set(err, "%s: %lld bytes; audio files are limited to %zu", path,
                              (long long)st.st_size, AUDIO_MAX_FILE_BYTES);
    FILE *f = fopen(path, "rb");
    if (!f) return loom_error_set(err, "%s: %s", path, strerror(errno));
    size_t len = (size_t)st.st_size;
    unsigned char *buf = malloc(len);
    size_t got = buf ? fread(buf, 1, len, f) : 0;
    fclose(f);
    if (!buf) return loom_error_set(err, "%s: out of memory", path);
    if (got != len) {
        free(buf);
        return loom_error_set(err, "%s: read failed", path);
    }
    int rc = audio_load_memory(buf, len, path, a, err);
    free(buf);
    return rc;
}

void audio_free(loom_audio *a) {
    if (!a) return;
    free(a->samples);
    memset(a, 0, sizeof *a);
}
