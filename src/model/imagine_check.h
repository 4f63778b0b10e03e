/* imagine_check.h: drawing with a self-check. The model that draws can also
 * caption, so after each draw it reads its own image back: the decoded pixels
 * go in as an image, the caption comes out (decoded image-contrastively,
 * IMAGINE_CHECK_CONTRAST), and when that caption describes a
 * scene that answers the prompt (data/shapes_prompt.h: exactly the stated
 * objects, each with every stated attribute) the image is kept. Otherwise it
 * draws again with another seed, up to `tries` images, and keeps the first
 * draw when none passes. The check is the model's own reading, so it can be
 * wrong both ways; `loom eval imagine --tries N` measures what it buys with the
 * independent scene analyzer (data/shapes_analyze.h) as the judge.
 *
 * Prompts outside the Shapes World grammar (and spoken prompts heard
 * directly, which have no text) cannot be checked: one draw, as
 * infer_imagine_input.
 *
 * Usage:
 *
 *     imagine_check_result res;
 *     if (imagine_checked(inf, &in, &params, 4, codes, rgb, &res, &err)) ...
 *     // codes and rgb (model_gen_height x model_gen_width x 3) hold the kept image;
 *     // res.draws images were drawn, res.passed says whether the kept one passed
 */
#ifndef LOOM_MODEL_IMAGINE_CHECK_H
#define LOOM_MODEL_IMAGINE_CHECK_H

#include <stdint.h>

#include "core/error.h"
#include "heads/png.h"
#include "model/infer.h"

/* The drawing defaults of every front end (loom imagine, its eval, the
 * server): the settings `loom eval imagine` measured best (README). */
#define IMAGINE_DEFAULT_TEMP 0.7f
#define IMAGINE_DEFAULT_CFG 3.0f
#define IMAGINE_DEFAULT_TRIES 8
#define IMAGINE_MAX_TRIES 64 /* the server's limit */
/* The read-back caption decodes image-contrastively (infer_input.contrast):
 * with the stage-6 model, 100 prompts of each kind, up to 4 draws: 82.3% of
 * scenes right against 80.0% with plain captions (held-out combinations 78
 * against 74), and fewer wrong passes (6.0% against 6.7%). */
#define IMAGINE_CHECK_CONTRAST 0.5f

typedef struct imagine_check_result {
    int32_t draws;    /* images drawn, 1..tries */
    int     checked;  /* 1 if the prompt could be checked */
    int     passed;   /* 1 if the kept image's read-back caption answers the prompt */
    char    caption[INFER_PIECE_MAX];    /* the kept image's read-back caption ("" unchecked) */
    char    transcript[INFER_PIECE_MAX]; /* a transcribed spoken prompt's transcript, else "" */
} imagine_check_result;

/* The seed of draw k (0-based) of an image whose first draw uses seed: seed
 * itself for k = 0, then seeds far from seed + 1, seed + 2, ... (which a
 * caller drawing several images gives its later images). */
uint64_t imagine_try_seed(uint64_t seed, int32_t k);

/* Draws in (as infer_imagine_input, p->seed for the first draw) up to tries
 * times (tries >= 1), keeping the first image whose read-back caption answers
 * the prompt, else the first. Writes the kept image's codes (rows * cols) and
 * pixels (model_gen_height x model_gen_width x 3 bytes). Uses inf for the
 * captions too, so infer_transcript(inf) is not the prompt's afterwards: read
 * res->transcript. Returns 0, or -1 with err set. */
int imagine_checked(loom_infer *inf, const infer_input *in, const infer_imagine_params *p, int32_t tries,
                    int32_t *codes, uint8_t *rgb, imagine_check_result *res, loom_error *err);

/* The tEXt chunks of an imagined PNG, the same from every front end (so
 * `loom imagine` and the server write the same bytes): what was asked ("prompt",
 * or "audio" naming the audio file), seed, model, temperature, cfg and tries,
 * then "read back" (the kept image's caption) when the prompt could be checked
 * and "transcript" for a transcribed spoken prompt. text points into meta and
 * into the arguments, which must outlive it. */
typedef struct imagine_meta {
    png_text text[8];
    int32_t  n;
    char     seed[24], temp[32], cfg[32], tries[16];
} imagine_meta;
void imagine_meta_fill(imagine_meta *meta, const infer_input *in, const char *asked, const char *model,
                       const infer_imagine_params *p, int32_t tries, const imagine_check_result *res);

#endif
