#include "server/api.h"

#include <cjson/cJSON.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <omp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "core/utf8.h"
#include "encoders/audio.h"
#include "encoders/image.h"
#include "heads/png.h"
#include "model/imagine_check.h"
#include "model/infer.h"
#include "server/b64.h"
#include "server/multipart.h"
#include "server/stepper.h"

struct api_server {
    const loom_model *m;
    api_params p;
    char model_id[128];
    int64_t created;          /* unix time the server started */
    loom_infer **slots;       /* (p.slots) */
    stepper *stepper;         /* the slots' answers decode together (continuous batching) */
    uint8_t *busy;            /* (p.slots) */
    int32_t n_busy;
    uint64_t next_id;         /* response ids */
    pthread_mutex_t mu;
    pthread_cond_t freed;
};

/* A streamed chat answer: chunks are rendered into buf and read out of it. */
struct api_stream {
    api_server *s;
    int32_t slot;             /* -1 once released */
    char id[48];
    int64_t created;
    int include_usage;
    int state;                /* STREAM_* */
    char *buf;
    size_t len, off, cap;
};
enum { STREAM_ROLE, STREAM_CONTENT, STREAM_END };

api_params api_default_params(void) {
    return (api_params){.model_path = "model", .model_id = NULL, .slots = 1, .slot_threads = 1,
                        .step_threads = 1, .max_images = 8,
                        .max_tries = IMAGINE_MAX_TRIES};
}

api_server *api_server_new(const loom_model *m, const api_params *p, loom_error *err) {
    if (p->slots < 1 || p->slots > 256) return loom_error_set(err, "slots must be 1 to 256"), NULL;
    if (p->slot_threads < 1) return loom_error_set(err, "slot threads must be >= 1"), NULL;
    if (p->step_threads < 1) return loom_error_set(err, "step threads must be >= 1"), NULL;
    if (p->max_images < 1 || p->max_images > API_MAX_IMAGES)
        return loom_error_set(err, "max images must be 1 to %d", API_MAX_IMAGES), NULL;
    if (p->max_tries < 1 || p->max_tries > IMAGINE_MAX_TRIES)
        return loom_error_set(err, "max tries must be 1 to %d", IMAGINE_MAX_TRIES), NULL;
    api_server *s = calloc(1, sizeof *s);
    if (!s) return loom_error_set(err, "out of memory"), NULL;
    s->m = m;
    s->p = *p;
    s->created = (int64_t)time(NULL);
    if (p->model_id) {
        snprintf(s->model_id, sizeof s->model_id, "%s", p->model_id);
    } else {
        const char *base = strrchr(p->model_path, '/');
        snprintf(s->model_id, sizeof s->model_id, "%s", base ? base + 1 : p->model_path);
        char *dot = strrchr(s->model_id, '.');
        if (dot && dot != s->model_id) *dot = '\0';
    }
    s->slots = calloc((size_t)p->slots, sizeof *s->slots);
    s->busy = calloc((size_t)p->slots, 1);
    if (!s->slots || !s->busy) {
        loom_error_set(err, "out of memory");
        goto fail;
    }
    for (int32_t i = 0; i < p->slots; i++)
        if (!(s->slots[i] = infer_new(m, err))) goto fail;
    if (!(s->stepper = stepper_new(m, p->slots, p->step_threads, err))) goto fail;
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->freed, NULL);
    return s;
fail:
    if (s->slots)
        for (int32_t i = 0; i < p->slots; i++) infer_free(s->slots[i]);
    free(s->slots);
    free(s->busy);
    free(s);
    return NULL;
}

void api_server_free(api_server *s) {
    if (!s) return;
    stepper_free(s->stepper);
    for (int32_t i = 0; i < s->p.slots; i++) infer_free(s->slots[i]);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->freed);
    free(s->slots);
    free(s->busy);
    free(s);
}

const char *api_server_model_id(const api_server *s) { return s->model_id; }

/* Waits for a free slot; the calling thread then runs with the slot's threads. */
static int32_t slot_acquire(api_server *s, uint64_t *id) {
    pthread_mutex_lock(&s->mu);
    while (s->n_busy == s->p.slots) pthread_cond_wait(&s->freed, &s->mu);
    int32_t k = 0;
    while (s->busy[k]) k++;
    s->busy[k] = 1;
    s->n_busy++;
    *id = ++s->next_id;
    pthread_mutex_unlock(&s->mu);
    omp_set_num_threads(s->p.slot_threads); /* this thread's OpenMP team size */
    return k;
}

static void slot_release(api_server *s, int32_t k) {
    stepper_leave(s->stepper, s->slots[k]);
    pthread_mutex_lock(&s->mu);
    s->busy[k] = 0;
    s->n_busy--;
    pthread_cond_signal(&s->freed);
    pthread_mutex_unlock(&s->mu);
}

/* ---- responses ---------------------------------------------------------- */

static void respond_json(api_response *r, int status, cJSON *obj) {
    r->status = status;
    r->content_type = "application/json";
    r->body = cJSON_PrintUnformatted(obj);
    cJSON_Delete(obj);
    if (!r->body) {
        static const char oom[] = "{\"error\":{\"message\":\"out of memory\",\"type\":\"server_error\",\"param\":null,\"code\":null}}";
        r->status = 500;
        r->body = strdup(oom);
    }
    r->len = r->body ? strlen(r->body) : 0;
}

static cJSON *error_object(int status, const char *message, const char *param, const char *code) {
    cJSON *o = cJSON_CreateObject(), *e = cJSON_AddObjectToObject(o, "error");
    cJSON_AddStringToObject(e, "message", message);
    cJSON_AddStringToObject(e, "type", status >= 500 ? "server_error" : "invalid_request_error");
    if (param) cJSON_AddStringToObject(e, "param", param);
    else cJSON_AddNullToObject(e, "param");
    if (code) cJSON_AddStringToObject(e, "code", code);
    else cJSON_AddNullToObject(e, "code");
    return o;
}

/* msg may quote client bytes (cut anywhere by a %.Ns): the JSON stays valid UTF-8. */
static void respond_message(api_response *r, int status, const char *param, const char *code, char *msg) {
    const size_t n = strlen(msg), bad = utf8_invalid_at(msg, n);
    if (bad < n) msg[bad] = '\0';
    respond_json(r, status, error_object(status, msg, param, code));
}

static void respond_error(api_response *r, int status, const char *param, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void respond_error(api_response *r, int status, const char *param, const char *fmt, ...) {
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    respond_message(r, status, param, NULL, msg);
}

void api_error_response(api_response *r, int status, const char *message) {
    char msg[1024];
    snprintf(msg, sizeof msg, "%s", message);
    memset(r, 0, sizeof *r);
    respond_message(r, status, NULL, NULL, msg);
}

void api_response_free(api_response *r) {
    free(r->body);
    api_stream_free(r->stream);
    memset(r, 0, sizeof *r);
}

/* ---- request helpers ------------------------------------------------------ */

/* "application/json" with optional parameters (charset). */
static int is_json(const char *ctype) {
    static const char want[] = "application/json";
    if (!ctype || strncasecmp(ctype, want, sizeof want - 1)) return 0;
    const char c = ctype[sizeof want - 1];
    return c == '\0' || c == ';' || c == ' ';
}

/* The body as a JSON object, or an error response. */
static cJSON *parse_body(const api_request *rq, api_response *r) {
    if (!is_json(rq->content_type)) {
        respond_error(r, 415, NULL, "want Content-Type application/json, got %s",
                      rq->content_type ? rq->content_type : "none");
        return NULL;
    }
    if (utf8_invalid_at((const char *)rq->body, rq->len) < rq->len) {
        respond_error(r, 400, NULL, "the body is not valid UTF-8");
        return NULL;
    }
    const char *end = NULL;
    cJSON *j = cJSON_ParseWithLengthOpts((const char *)rq->body, rq->len, &end, 0);
    if (!j) {
        respond_error(r, 400, NULL, "malformed JSON at byte %td", end ? end - (const char *)rq->body : 0);
        return NULL;
    }
    if (!cJSON_IsObject(j)) {
        cJSON_Delete(j);
        respond_error(r, 400, NULL, "the body must be a JSON object");
        return NULL;
    }
    return j;
}

/* An optional integer field in [lo, hi]: 0 ok (absent leaves *out), -1 error response. */
static int get_int(const cJSON *o, const char *key, int64_t lo, int64_t hi, int64_t *out, api_response *r) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!v || cJSON_IsNull(v)) return 0;
    const double d = cJSON_IsNumber(v) ? v->valuedouble : NAN;
    if (!(d >= (double)lo && d <= (double)hi) || d != floor(d)) {
        respond_error(r, 400, key, "%s must be an integer from %" PRId64 " to %" PRId64, key, lo, hi);
        return -1;
    }
    *out = (int64_t)d;
    return 0;
}

static int get_float(const cJSON *o, const char *key, double lo, double hi, float *out, api_response *r) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!v || cJSON_IsNull(v)) return 0;
    const double d = cJSON_IsNumber(v) ? v->valuedouble : NAN;
    if (!(d >= lo && d <= hi)) {
        respond_error(r, 400, key, "%s must be a number from %g to %g", key, lo, hi);
        return -1;
    }
    *out = (float)d;
    return 0;
}

/* A boolean field; absent or null leaves *out as it is (as get_int). */
static int get_bool(const cJSON *o, const char *key, int *out, api_response *r) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!v || cJSON_IsNull(v)) return 0;
    if (!cJSON_IsBool(v)) {
        respond_error(r, 400, key, "%s must be true or false", key);
        return -1;
    }
    *out = cJSON_IsTrue(v);
    return 0;
}

/* "model", when given, must name the served model. */
static int check_model(api_server *s, const char *model, api_response *r) {
    if (!model || !strcmp(model, s->model_id)) return 0;
    char msg[512];
    snprintf(msg, sizeof msg, "the model '%.200s' does not exist; this server serves '%s'", model, s->model_id);
    respond_message(r, 404, "model", "model_not_found", msg);
    return -1;
}

/* base64 text into a malloc'd buffer, or an error response naming what. */
static uint8_t *decode_b64(const char *s, size_t n, size_t *len, const char *what, api_response *r) {
    uint8_t *out = malloc(n / 4 * 3 + 3);
    if (!out) {
        respond_error(r, 500, NULL, "out of memory");
        return NULL;
    }
    size_t bad = 0;
    const int64_t k = b64_decode(s, n, out, &bad);
    if (k < 0) {
        free(out);
        respond_error(r, 400, what, "%s: bad base64 at character %zu", what, bad);
        return NULL;
    }
    if (k == 0) {
        free(out);
        respond_error(r, 400, what, "%s: empty", what);
        return NULL;
    }
    *len = (size_t)k;
    return out;
}

/* ---- chat completions ---------------------------------------------------- */

typedef struct chat_input {
    char *prompt;             /* text parts joined by spaces */
    size_t prompt_len;
    loom_image image;
    loom_audio audio;
    int has_image, has_audio;
} chat_input;

static void chat_input_free(chat_input *c) {
    free(c->prompt);
    image_free(&c->image);
    audio_free(&c->audio);
}

static int append_text(chat_input *c, const char *t, api_response *r) {
    const size_t n = strlen(t), add = n + (c->prompt_len ? 1 : 0);
    char *p = realloc(c->prompt, c->prompt_len + add + 1);
    if (!p) return respond_error(r, 500, NULL, "out of memory"), -1;
    c->prompt = p;
    if (c->prompt_len) p[c->prompt_len++] = ' ';
    memcpy(p + c->prompt_len, t, n + 1);
    c->prompt_len += n;
    return 0;
}

static int image_part(chat_input *c, const cJSON *part, api_response *r) {
    const cJSON *iu = cJSON_GetObjectItemCaseSensitive(part, "image_url");
    const cJSON *url = cJSON_IsString(iu) ? iu : cJSON_GetObjectItemCaseSensitive(iu, "url");
    if (!cJSON_IsString(url)) return respond_error(r, 400, "image_url", "image_url needs a \"url\" string"), -1;
    if (c->has_image) return respond_error(r, 400, "image_url", "one image per request"), -1;
    const char *u = url->valuestring;
    if (strncmp(u, "data:", 5))
        return respond_error(r, 400, "image_url",
                             "image_url must be a data: URL (data:image/png;base64,...); this server fetches nothing"), -1;
    const char *comma = strchr(u, ',');
    if (!comma || comma - u < 12 || strncmp(comma - 7, ";base64", 7))
        return respond_error(r, 400, "image_url", "image_url: want a base64 data URL (data:<type>;base64,<data>)"), -1;
    size_t len = 0;
    uint8_t *bytes = decode_b64(comma + 1, strlen(comma + 1), &len, "image_url", r);
    if (!bytes) return -1;
    loom_error err = {{0}};
    const int rc = image_load_memory(bytes, len, "image_url", &c->image, &err);
    free(bytes);
    if (rc) return respond_error(r, 400, "image_url", "%s", err.msg), -1;
    c->has_image = 1;
    return 0;
}

static int audio_part(chat_input *c, const cJSON *part, api_response *r) {
    const cJSON *ia = cJSON_GetObjectItemCaseSensitive(part, "input_audio");
    const cJSON *data = cJSON_GetObjectItemCaseSensitive(ia, "data");
    if (!cJSON_IsString(data)) return respond_error(r, 400, "input_audio", "input_audio needs a base64 \"data\" string"), -1;
    if (c->has_audio) return respond_error(r, 400, "input_audio", "one audio part per request"), -1;
    size_t len = 0;
    uint8_t *bytes = decode_b64(data->valuestring, strlen(data->valuestring), &len, "input_audio", r);
    if (!bytes) return -1;
    loom_error err = {{0}};
    const int rc = audio_load_memory(bytes, len, "input_audio", &c->audio, &err);
    free(bytes);
    if (rc) return respond_error(r, 400, "input_audio", "%s", err.msg), -1;
    c->has_audio = 1;
    return 0;
}

/* The last user message's parts into c. */
static int chat_parse(api_server *s, const cJSON *j, chat_input *c, api_response *r) {
    const cJSON *msgs = cJSON_GetObjectItemCaseSensitive(j, "messages");
    if (!cJSON_IsArray(msgs) || cJSON_GetArraySize(msgs) == 0)
        return respond_error(r, 400, "messages", "messages must be a non-empty array"), -1;
    const cJSON *user = NULL, *m;
    cJSON_ArrayForEach(m, msgs) {
        const cJSON *role = cJSON_GetObjectItemCaseSensitive(m, "role");
        if (!cJSON_IsObject(m) || !cJSON_IsString(role))
            return respond_error(r, 400, "messages", "each message needs a \"role\" string"), -1;
        if (!strcmp(role->valuestring, "user")) user = m;
    }
    if (!user) return respond_error(r, 400, "messages", "no message with role \"user\""), -1;
    const cJSON *content = cJSON_GetObjectItemCaseSensitive(user, "content");
    if (cJSON_IsString(content)) return append_text(c, content->valuestring, r);
    if (!cJSON_IsArray(content))
        return respond_error(r, 400, "content", "content must be a string or an array of parts"), -1;
    const cJSON *part;
    cJSON_ArrayForEach(part, content) {
        const cJSON *type = cJSON_GetObjectItemCaseSensitive(part, "type");
        if (!cJSON_IsString(type)) return respond_error(r, 400, "content", "each content part needs a \"type\""), -1;
        const char *t = type->valuestring;
        if (!strcmp(t, "text")) {
            const cJSON *text = cJSON_GetObjectItemCaseSensitive(part, "text");
            if (!cJSON_IsString(text)) return respond_error(r, 400, "content", "a text part needs a \"text\" string"), -1;
            if (append_text(c, text->valuestring, r)) return -1;
        } else if (!strcmp(t, "image_url")) {
            if (!s->m->img.patch_size) return respond_error(r, 400, "image_url", "this model has no image input"), -1;
            if (image_part(c, part, r)) return -1;
        } else if (!strcmp(t, "input_audio")) {
            if (s->m->aud.stack <= 0) return respond_error(r, 400, "input_audio", "this model has no audio input"), -1;
            if (audio_part(c, part, r)) return -1;
        } else {
            return respond_error(r, 400, "content", "unknown content part type \"%.64s\" (want text, image_url or input_audio)", t), -1;
        }
    }
    return 0;
}

static const char *finish_name(infer_finish f) { return f == INFER_FINISH_STOP ? "stop" : "length"; }

static cJSON *usage_object(const loom_infer *inf) {
    cJSON *u = cJSON_CreateObject();
    const int32_t p = infer_prompt_tokens(inf), c = infer_answer_tokens(inf);
    cJSON_AddNumberToObject(u, "prompt_tokens", p);
    cJSON_AddNumberToObject(u, "completion_tokens", c);
    cJSON_AddNumberToObject(u, "total_tokens", p + c);
    return u;
}

static cJSON *chunk_object(const api_stream *st, const api_server *s) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "id", st->id);
    cJSON_AddStringToObject(o, "object", "chat.completion.chunk");
    cJSON_AddNumberToObject(o, "created", (double)st->created);
    cJSON_AddStringToObject(o, "model", s->model_id);
    return o;
}

/* One choice with a delta (content may be NULL) and a finish reason (or null). */
static cJSON *chunk_choice(cJSON *o, const char *role, const char *content, const char *finish) {
    cJSON *choices = cJSON_AddArrayToObject(o, "choices"), *ch = cJSON_CreateObject();
    cJSON_AddItemToArray(choices, ch);
    cJSON_AddNumberToObject(ch, "index", 0);
    cJSON *d = cJSON_AddObjectToObject(ch, "delta");
    if (role) cJSON_AddStringToObject(d, "role", role);
    if (content) cJSON_AddStringToObject(d, "content", content);
    if (finish) cJSON_AddStringToObject(ch, "finish_reason", finish);
    else cJSON_AddNullToObject(ch, "finish_reason");
    return o;
}

static int stream_put(api_stream *st, const char *s, size_t n) {
    if (st->len + n > st->cap) {
        size_t cap = st->cap ? st->cap * 2 : 4096;
        while (cap < st->len + n) cap *= 2;
        char *b = realloc(st->buf, cap);
        if (!b) return -1;
        st->buf = b;
        st->cap = cap;
    }
    memcpy(st->buf + st->len, s, n);
    st->len += n;
    return 0;
}

/* "data: <json>\n\n"; consumes o. */
static int stream_event(api_stream *st, cJSON *o) {
    char *j = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    if (!j) return -1;
    const int rc = stream_put(st, "data: ", 6) || stream_put(st, j, strlen(j)) || stream_put(st, "\n\n", 2);
    free(j);
    return rc ? -1 : 0;
}

static void stream_release(api_stream *st) {
    if (st->slot >= 0) slot_release(st->s, st->slot);
    st->slot = -1;
}

/* Renders the next event(s) into the buffer. */
static void stream_advance(api_stream *st) {
    api_server *s = st->s;
    st->len = st->off = 0;
    if (st->state == STREAM_ROLE) {
        st->state = STREAM_CONTENT;
        if (stream_event(st, chunk_choice(chunk_object(st, s), "assistant", "", NULL))) goto fail;
        return;
    }
    if (st->state != STREAM_CONTENT) return;
    loom_infer *inf = s->slots[st->slot];
    char piece[INFER_PIECE_MAX];
    loom_error err = {{0}};
    for (;;) {
        const int64_t n = stepper_next(s->stepper, inf, piece, &err);
        if (n > 0) {
            if (stream_event(st, chunk_choice(chunk_object(st, s), NULL, piece, NULL))) goto fail;
            return;
        }
        if (n == 0) continue;
        if (n == INFER_DONE) break;
        /* a failure mid-answer: tell the client in the stream, then end it */
        if (stream_event(st, error_object(500, err.msg, NULL, NULL))) goto fail;
        st->state = STREAM_END;
        stream_release(st);
        stream_put(st, "data: [DONE]\n\n", 14);
        return;
    }
    if (stream_event(st, chunk_choice(chunk_object(st, s), NULL, NULL, finish_name(infer_answer_finish(inf)))))
        goto fail;
    if (st->include_usage) {
        cJSON *o = chunk_object(st, s);
        cJSON_AddArrayToObject(o, "choices");
        cJSON_AddItemToObject(o, "usage", usage_object(inf));
        if (stream_event(st, o)) goto fail;
    }
    if (stream_put(st, "data: [DONE]\n\n", 14)) goto fail;
    st->state = STREAM_END;
    stream_release(st);
    return;
fail: /* out of memory: end the stream where it is */
    st->len = st->off = 0;
    st->state = STREAM_END;
    stream_release(st);
}

size_t api_stream_read(api_stream *st, char *buf, size_t cap) {
    while (st->off == st->len) {
        if (st->state == STREAM_END) return 0;
        stream_advance(st);
    }
    const size_t n = st->len - st->off < cap ? st->len - st->off : cap;
    memcpy(buf, st->buf + st->off, n);
    st->off += n;
    return n;
}

void api_stream_free(api_stream *st) {
    if (!st) return;
    stream_release(st);
    free(st->buf);
    free(st);
}

/* infer_answer_input through the stepper: the whole answer into out (cap bytes). */
static int64_t answer_whole(api_server *s, loom_infer *inf, const infer_input *in, char *out,
                            size_t cap, loom_error *err) {
    out[0] = '\0';
    if (infer_answer_begin(inf, in, INFER_ANSWER_MAX_TOKENS, err)) return -1;
    size_t used = 0;
    char piece[INFER_PIECE_MAX];
    for (;;) {
        const int64_t pl = stepper_next(s->stepper, inf, piece, err);
        if (pl == INFER_DONE) return (int64_t)used;
        if (pl < 0) return -1;
        size_t k = (size_t)pl < cap - 1 - used ? (size_t)pl : cap - 1 - used;
        while (k > 0 && k < (size_t)pl && ((unsigned char)piece[k] & 0xC0) == 0x80) k--;
        memcpy(out + used, piece, k);
        used += k;
        out[used] = '\0';
    }
}

static void chat_completions(api_server *s, const api_request *rq, api_response *r) {
    cJSON *j = parse_body(rq, r);
    if (!j) return;
    chat_input c = {0};
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(j, "model");
    const cJSON *opts = cJSON_GetObjectItemCaseSensitive(j, "stream_options");
    const int32_t ctx = s->m->cfg.max_seq;
    int64_t max_tokens = INFER_ANSWER_MAX_TOKENS, n = 1;
    float contrast = 0.0f;
    int stream = 0, first = 0;
    if (model && !cJSON_IsString(model)) {
        respond_error(r, 400, "model", "model must be a string");
        goto done;
    }
    if (get_bool(j, "stream", &stream, r) || get_bool(j, "caption_first", &first, r) ||
        check_model(s, model ? model->valuestring : NULL, r) ||
        get_int(j, "max_tokens", 1, ctx, &max_tokens, r) ||
        get_int(j, "max_completion_tokens", 1, ctx, &max_tokens, r) || get_int(j, "n", 1, 1, &n, r) ||
        get_float(j, "contrast", -10, 10, &contrast, r) || chat_parse(s, j, &c, r))
        goto done;
    if (first && contrast != 0.0f) {
        respond_error(r, 400, "caption_first", "caption_first does not go with contrast");
        goto done;
    }
    infer_input in = {.image = c.has_image ? &c.image : NULL, .audio = c.has_audio ? &c.audio : NULL,
                      .prompt = c.prompt, .prompt_len = c.prompt_len,
                      .spoken = s->p.spoken_direct ? INFER_SPOKEN_DIRECT : INFER_SPOKEN_TRANSCRIBE,
                      .caption_first = first, .contrast = contrast};
    if (!in.image && !in.audio && !c.prompt_len) {
        respond_error(r, 400, "messages", "the user message is empty: give text, an image or audio");
        goto done;
    }
    uint64_t id = 0;
    const int32_t k = slot_acquire(s, &id);
    loom_infer *inf = s->slots[k];
    loom_error err = {{0}};
    if (infer_answer_begin(inf, &in, (int32_t)max_tokens, &err)) {
        slot_release(s, k);
        respond_error(r, 400, "messages", "%s", err.msg);
        goto done;
    }
    char cid[48];
    snprintf(cid, sizeof cid, "chatcmpl-%" PRIx64 "-%" PRIu64, (uint64_t)s->created, id);
    if (stream) {
        api_stream *st = calloc(1, sizeof *st);
        if (!st) {
            slot_release(s, k);
            respond_error(r, 500, NULL, "out of memory");
            goto done;
        }
        st->s = s;
        st->slot = k;
        snprintf(st->id, sizeof st->id, "%s", cid);
        st->created = (int64_t)time(NULL);
        st->include_usage = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(opts, "include_usage"));
        st->state = STREAM_ROLE;
        r->status = 200;
        r->content_type = "text/event-stream";
        r->stream = st;
        goto done;
    }
    /* the whole answer */
    char *answer = NULL, piece[INFER_PIECE_MAX];
    size_t used = 0;
    int failed = 0;
    for (;;) {
        const int64_t pl = stepper_next(s->stepper, inf, piece, &err);
        if (pl == INFER_DONE) break;
        if (pl < 0) {
            failed = 1;
            break;
        }
        char *a = realloc(answer, used + (size_t)pl + 1);
        if (!a) {
            failed = 1;
            snprintf(err.msg, sizeof err.msg, "out of memory");
            break;
        }
        answer = a;
        memcpy(answer + used, piece, (size_t)pl + 1);
        used += (size_t)pl;
    }
    if (failed) {
        slot_release(s, k);
        free(answer);
        respond_error(r, 500, NULL, "%s", err.msg);
        goto done;
    }
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "id", cid);
    cJSON_AddStringToObject(o, "object", "chat.completion");
    cJSON_AddNumberToObject(o, "created", (double)time(NULL));
    cJSON_AddStringToObject(o, "model", s->model_id);
    cJSON *choices = cJSON_AddArrayToObject(o, "choices"), *ch = cJSON_CreateObject();
    cJSON_AddItemToArray(choices, ch);
    cJSON_AddNumberToObject(ch, "index", 0);
    cJSON *msg = cJSON_AddObjectToObject(ch, "message");
    cJSON_AddStringToObject(msg, "role", "assistant");
    cJSON_AddStringToObject(msg, "content", answer ? answer : "");
    cJSON_AddStringToObject(ch, "finish_reason", finish_name(infer_answer_finish(inf)));
    cJSON_AddItemToObject(o, "usage", usage_object(inf));
    slot_release(s, k);
    free(answer);
    respond_json(r, 200, o);
done:
    chat_input_free(&c);
    cJSON_Delete(j);
}

/* ---- image generations --------------------------------------------------- */

static void images_generations(api_server *s, const api_request *rq, api_response *r) {
    const loom_model *m = s->m;
    cJSON *j = parse_body(rq, r);
    if (!j) return;
    int32_t *codes = NULL;
    uint8_t *rgb = NULL;
    imagine_check_result *res = NULL;
    const cJSON *prompt = cJSON_GetObjectItemCaseSensitive(j, "prompt");
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(j, "model");
    const cJSON *size = cJSON_GetObjectItemCaseSensitive(j, "size");
    const cJSON *fmt = cJSON_GetObjectItemCaseSensitive(j, "response_format");
    int64_t n = 1, seed = 0, tries = IMAGINE_DEFAULT_TRIES < s->p.max_tries ? IMAGINE_DEFAULT_TRIES : s->p.max_tries;
    float temp = IMAGINE_DEFAULT_TEMP, cfg = IMAGINE_DEFAULT_CFG;
    if (m->gen.n_codes <= 0) {
        respond_error(r, 400, "model", "this model has no image output");
        goto done;
    }
    if (!cJSON_IsString(prompt)) {
        respond_error(r, 400, "prompt", "prompt must be a string");
        goto done;
    }
    if (model && !cJSON_IsString(model)) {
        respond_error(r, 400, "model", "model must be a string");
        goto done;
    }
    const int32_t H = model_gen_height(m), W = model_gen_width(m);
    char want[32];
    snprintf(want, sizeof want, "%dx%d", W, H);
    if (size && !cJSON_IsNull(size) && (!cJSON_IsString(size) || strcmp(size->valuestring, want))) {
        respond_error(r, 400, "size", "this model draws %s images only", want);
        goto done;
    }
    if (fmt && !cJSON_IsNull(fmt) && (!cJSON_IsString(fmt) || strcmp(fmt->valuestring, "b64_json"))) {
        respond_error(r, 400, "response_format", "response_format must be b64_json (this server keeps no files to link to)");
        goto done;
    }
    if (check_model(s, model ? model->valuestring : NULL, r) ||
        get_int(j, "n", 1, s->p.max_images, &n, r) || get_int(j, "seed", 0, INT64_C(1) << 53, &seed, r) ||
        get_float(j, "temperature", 0, 100, &temp, r) || get_float(j, "cfg", -100, 100, &cfg, r) ||
        get_int(j, "tries", 1, s->p.max_tries, &tries, r))
        goto done;
    const int32_t n_codes = m->gen.rows * m->gen.cols;
    codes = malloc((size_t)n_codes * sizeof *codes);
    rgb = malloc((size_t)W * H * 3);
    res = malloc(sizeof *res); /* two text buffers: kept off the connection thread's stack */
    if (!codes || !rgb || !res) {
        respond_error(r, 500, NULL, "out of memory");
        goto done;
    }
    cJSON *o = cJSON_CreateObject(), *data = NULL;
    cJSON_AddNumberToObject(o, "created", (double)time(NULL));
    data = cJSON_AddArrayToObject(o, "data");
    const size_t plen = strlen(prompt->valuestring);
    infer_input in = {.prompt = prompt->valuestring, .prompt_len = plen};
    uint64_t id = 0;
    const int32_t k = slot_acquire(s, &id);
    for (int64_t i = 0; i < n; i++) {
        loom_error err = {{0}};
        /* the CLI's parameters and metadata: `loom imagine -p P -s SEED` gives these bytes */
        infer_imagine_params ip = {.sampling = {.temp = temp, .top_k = 0, .top_p = 1.0f},
                                   .cfg_scale = cfg, .seed = (uint64_t)(seed + i)};
        uint8_t *png = NULL;
        size_t png_len = 0;
        int drawn = imagine_checked(s->slots[k], &in, &ip, (int32_t)tries, codes, rgb, res, &err);
        imagine_meta meta;
        if (!drawn) imagine_meta_fill(&meta, &in, prompt->valuestring, s->p.model_path, &ip, (int32_t)tries, res);
        if (drawn || png_encode(rgb, W, H, meta.text, meta.n, &png, &png_len, &err)) {
            slot_release(s, k);
            cJSON_Delete(o);
            respond_error(r, 400, "prompt", "%s", err.msg);
            goto done;
        }
        char *b64 = malloc(b64_encoded_len(png_len) + 1);
        if (b64) b64_encode(png, png_len, b64);
        free(png);
        cJSON *item = cJSON_CreateObject();
        cJSON_AddItemToArray(data, item);
        if (!b64 || !cJSON_AddStringToObject(item, "b64_json", b64)) {
            free(b64);
            slot_release(s, k);
            cJSON_Delete(o);
            respond_error(r, 500, NULL, "out of memory");
            goto done;
        }
        free(b64);
    }
    slot_release(s, k);
    respond_json(r, 200, o);
done:
    free(codes);
    free(rgb);
    free(res);
    cJSON_Delete(j);
}

/* ---- audio transcriptions ----------------------------------------------- */

static void audio_transcriptions(api_server *s, const api_request *rq, api_response *r) {
    enum { MAX_PARTS = 32 };
    multipart_part parts[MAX_PARTS];
    int32_t n = 0;
    loom_error err = {{0}};
    if (s->m->aud.stack <= 0) {
        respond_error(r, 400, "file", "this model has no audio input");
        return;
    }
    char boundary[128];
    if (multipart_boundary(rq->content_type, boundary, sizeof boundary, &err)) {
        respond_error(r, 415, NULL, "%s", err.msg);
        return;
    }
    if (multipart_parse(rq->content_type, rq->body, rq->len, parts, MAX_PARTS, &n, &err)) {
        respond_error(r, 400, NULL, "%s", err.msg);
        return;
    }
    const multipart_part *file = multipart_find(parts, n, "file");
    const multipart_part *model = multipart_find(parts, n, "model");
    const multipart_part *fmt = multipart_find(parts, n, "response_format");
    char value[128] = "";
    if (!file || file->len == 0) {
        respond_error(r, 400, "file", "the form needs a non-empty \"file\" field with the audio");
        return;
    }
    if (model) {
        snprintf(value, sizeof value, "%.*s", (int)(model->len < 127 ? model->len : 127), (const char *)model->data);
        if (check_model(s, value, r)) return;
    }
    int text = 0;
    if (fmt) {
        snprintf(value, sizeof value, "%.*s", (int)(fmt->len < 127 ? fmt->len : 127), (const char *)fmt->data);
        if (!strcmp(value, "text")) text = 1;
        else if (strcmp(value, "json")) {
            respond_error(r, 400, "response_format", "response_format must be json or text");
            return;
        }
    }
    loom_audio a = {0};
    if (audio_load_memory(file->data, file->len, file->filename[0] ? file->filename : "file", &a, &err)) {
        respond_error(r, 400, "file", "%s", err.msg);
        return;
    }
    char out[4096];
    infer_input in = {.audio = &a};
    uint64_t id = 0;
    const int32_t k = slot_acquire(s, &id);
    const int64_t len = answer_whole(s, s->slots[k], &in, out, sizeof out, &err);
    slot_release(s, k);
    audio_free(&a);
    if (len < 0) {
        respond_error(r, 400, "file", "%s", err.msg);
        return;
    }
    if (text) {
        r->status = 200;
        r->content_type = "text/plain; charset=utf-8";
        r->body = malloc((size_t)len + 2);
        if (!r->body) return respond_error(r, 500, NULL, "out of memory");
        memcpy(r->body, out, (size_t)len);
        r->body[len] = '\n';
        r->body[len + 1] = '\0';
        r->len = (size_t)len + 1;
        return;
    }
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "text", out);
    respond_json(r, 200, o);
}

/* ---- small routes --------------------------------------------------------- */

static void health(api_server *s, api_response *r) {
    pthread_mutex_lock(&s->mu);
    const int32_t busy = s->n_busy;
    pthread_mutex_unlock(&s->mu);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "status", "ok");
    cJSON_AddStringToObject(o, "model", s->model_id);
    cJSON_AddNumberToObject(o, "slots", s->p.slots);
    cJSON_AddNumberToObject(o, "busy", busy);
    int64_t steps, rows;
    stepper_counts(s->stepper, &steps, &rows);
    cJSON_AddNumberToObject(o, "decode_steps", (double)steps);  /* shared decoding steps so far */
    cJSON_AddNumberToObject(o, "decode_rows", (double)rows);    /* answers' tokens they ran */
    respond_json(r, 200, o);
}

static void models(api_server *s, api_response *r) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "object", "list");
    cJSON *data = cJSON_AddArrayToObject(o, "data"), *m = cJSON_CreateObject();
    cJSON_AddItemToArray(data, m);
    cJSON_AddStringToObject(m, "id", s->model_id);
    cJSON_AddStringToObject(m, "object", "model");
    cJSON_AddNumberToObject(m, "created", (double)s->created);
    cJSON_AddStringToObject(m, "owned_by", "loom");
    cJSON *caps = cJSON_AddObjectToObject(m, "capabilities"); /* loom's addition: what this model takes */
    cJSON_AddBoolToObject(caps, "image_input", s->m->img.patch_size > 0);
    cJSON_AddBoolToObject(caps, "audio_input", s->m->aud.stack > 0);
    cJSON_AddBoolToObject(caps, "image_output", s->m->gen.n_codes > 0);
    respond_json(r, 200, o);
}

typedef struct route {
    const char *path, *method;
    void (*post)(api_server *, const api_request *, api_response *);
} route;

void api_handle(api_server *s, const api_request *rq, api_response *r) {
    memset(r, 0, sizeof *r);
    static const route routes[] = {
        {"/v1/chat/completions", "POST", chat_completions},
        {"/v1/images/generations", "POST", images_generations},
        {"/v1/audio/transcriptions", "POST", audio_transcriptions},
        {"/health", "GET", NULL},
        {"/v1/models", "GET", NULL},
        {"/", "GET", NULL},
        {"/index.html", "GET", NULL},
    };
    const char *path = rq->path ? rq->path : "", *method = rq->method ? rq->method : "";
    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++) {
        if (strcmp(path, routes[i].path)) continue;
        const int head = !strcmp(method, "HEAD") && !routes[i].post;
        if (strcmp(method, routes[i].method) && !head) {
            r->allow = routes[i].post ? "POST" : "GET, HEAD";
            respond_error(r, 405, NULL, "%s takes %s, not %.16s", path, routes[i].method, method);
            return;
        }
        if (routes[i].post) routes[i].post(s, rq, r);
        else if (!strcmp(path, "/health")) health(s, r);
        else if (!strcmp(path, "/v1/models")) models(s, r);
        else {
            r->status = 200;
            r->content_type = "text/html; charset=utf-8";
            r->body = malloc(api_page_html_len + 1);
            if (!r->body) return respond_error(r, 500, NULL, "out of memory");
            memcpy(r->body, api_page_html, api_page_html_len + 1);
            r->len = api_page_html_len;
        }
        return;
    }
    respond_error(r, 404, NULL, "no route %.200s (see GET /v1/models, POST /v1/chat/completions, "
                                "/v1/images/generations, /v1/audio/transcriptions)", path);
}
