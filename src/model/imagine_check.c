/* imagine_check.c: draw, read back, redraw (imagine_check.h). */
#include "model/imagine_check.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/shapes.h"
#include "data/shapes_prompt.h"
#include "encoders/image.h"

uint64_t imagine_try_seed(uint64_t seed, int32_t k) {
    if (k == 0) return seed;
    /* splitmix64's finalizer over (seed, k): no small offset of seed */
    uint64_t z = seed + 0x9e3779b97f4a7c15ull * (uint64_t)k;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* The text the first draw answered, copied to buf (later requests on inf
 * overwrite infer's): the typed prompt, or for a transcribed spoken prompt
 * what infer.c made of it. NULL when there is none (a spoken prompt heard
 * directly). */
static const char *drawn_text(const loom_infer *inf, const infer_input *in, char *buf, size_t cap) {
    const char *text = in->prompt ? in->prompt : "";
    size_t n = in->prompt ? in->prompt_len : 0;
    if (in->audio) {
        if (in->spoken != INFER_SPOKEN_TRANSCRIBE) return NULL;
        text = infer_heard_prompt(inf);
        n = strlen(text);
    }
    if (n + 1 > cap) return NULL;
    memcpy(buf, text, n);
    buf[n] = '\0';
    return buf;
}

/* 1 if the model's caption of rgb answers q, 0 if not, -1 on error. */
static int reads_back(loom_infer *inf, const shapes_prompt *q, uint8_t *rgb, int32_t W, int32_t H,
                      char *caption, size_t cap, loom_error *err) {
    const loom_image img = {.width = W, .height = H, .rgb = rgb};
    const infer_input in = {.image = &img, .contrast = IMAGINE_CHECK_CONTRAST};
    if (infer_answer_input(inf, &in, INFER_ANSWER_MAX_TOKENS, caption, cap, err) < 0) return -1;
    shapes_scene seen;
    loom_error perr = {{0}};
    if (shapes_scene_from_caption(caption, &seen, &perr)) return 0; /* not a caption: no */
    return shapes_prompt_matches(q, &seen);
}

int imagine_checked(loom_infer *inf, const infer_input *in, const infer_imagine_params *p, int32_t tries,
                    int32_t *codes, uint8_t *rgb, imagine_check_result *res, loom_error *err) {
    const loom_model *m = infer_model(inf);
    memset(res, 0, sizeof *res);
    if (tries < 1) return loom_error_set(err, "imagine: tries must be at least 1, not %d", tries);
    if (infer_imagine_input(inf, in, p, codes, err) || model_decode_codes(m, codes, rgb, err)) return -1;
    res->draws = 1;
    snprintf(res->transcript, sizeof res->transcript, "%s", infer_transcript(inf));
    char text[INFER_PIECE_MAX];
    shapes_prompt q;
    loom_error perr = {{0}};
    const char *t = drawn_text(inf, in, text, sizeof text);
    if (!t || shapes_prompt_parse(t, &q, &perr)) return 0; /* nothing to check against */
    res->checked = 1;
    const int32_t H = model_gen_height(m), W = model_gen_width(m), nc = m->gen.rows * m->gen.cols;
    int ok = reads_back(inf, &q, rgb, W, H, res->caption, sizeof res->caption, err);
    if (ok != 0 || tries == 1) {
        res->passed = ok > 0;
        return ok < 0 ? -1 : 0;
    }
    /* keep the first draw for when none passes; redraw from the text */
    int32_t *codes0 = malloc((size_t)nc * sizeof *codes0);
    uint8_t *rgb0 = malloc((size_t)W * H * 3);
    char *caption0 = malloc(sizeof res->caption);
    int rc = -1;
    if (!codes0 || !rgb0 || !caption0) {
        loom_error_set(err, "out of memory");
        goto done;
    }
    memcpy(codes0, codes, (size_t)nc * sizeof *codes0);
    memcpy(rgb0, rgb, (size_t)W * H * 3);
    memcpy(caption0, res->caption, sizeof res->caption);
    const infer_input again = {.prompt = t, .prompt_len = strlen(t)};
    for (int32_t k = 1; k < tries; k++) {
        infer_imagine_params pk = *p;
        pk.seed = imagine_try_seed(p->seed, k);
        if (infer_imagine_input(inf, &again, &pk, codes, err) || model_decode_codes(m, codes, rgb, err)) goto done;
        res->draws = k + 1;
        ok = reads_back(inf, &q, rgb, W, H, res->caption, sizeof res->caption, err);
        if (ok < 0) goto done;
        if (ok) {
            res->passed = 1;
            rc = 0;
            goto done;
        }
    }
    memcpy(codes, codes0, (size_t)nc * sizeof *codes0);
    memcpy(rgb, rgb0, (size_t)W * H * 3);
    memcpy(res->caption, caption0, sizeof res->caption);
    rc = 0;
done:
    free(codes0);
    free(rgb0);
    free(caption0);
    return rc;
}

void imagine_meta_fill(imagine_meta *meta, const infer_input *in, const char *asked, const char *model,
                       const infer_imagine_params *p, int32_t tries, const imagine_check_result *res) {
    snprintf(meta->seed, sizeof meta->seed, "%" PRIu64, p->seed);
    snprintf(meta->temp, sizeof meta->temp, "%g", (double)p->sampling.temp);
    snprintf(meta->cfg, sizeof meta->cfg, "%g", (double)p->cfg_scale);
    snprintf(meta->tries, sizeof meta->tries, "%" PRId32, tries);
    png_text *t = meta->text;
    int32_t n = 0;
    t[n++] = (png_text){in->audio ? "audio" : "prompt", asked};
    t[n++] = (png_text){"seed", meta->seed};
    t[n++] = (png_text){"model", model};
    t[n++] = (png_text){"temperature", meta->temp};
    t[n++] = (png_text){"cfg", meta->cfg};
    t[n++] = (png_text){"tries", meta->tries};
    if (res->checked) t[n++] = (png_text){"read back", res->caption};
    if (in->audio && in->spoken == INFER_SPOKEN_TRANSCRIBE) t[n++] = (png_text){"transcript", res->transcript};
    meta->n = n;
}
