/* cli.h: helpers shared by the loom command's subcommands. */
#ifndef LOOM_DEMOS_CLI_H
#define LOOM_DEMOS_CLI_H

#include <stdint.h>

/* Prints "loom: what: why" to stderr (just "loom: why" when why already starts
 * with "what:"); returns 1 (the exit status). */
int cli_fail(const char *what, const char *why);
/* Parse a whole-string integer / finite number in [lo, hi]; print and return -1 if not. */
int cli_int(const char *flag, const char *s, int64_t lo, int64_t hi, int64_t *out);
int cli_float(const char *flag, const char *s, double lo, double hi, float *out);
/* --spoken MODE: "transcribe" 1, "direct" 0; prints and returns -1 otherwise. */
int cli_spoken(const char *s, int *transcribe);
#define CLI_SPOKEN_HELP \
    "  --spoken MODE        how a spoken question or prompt reaches the model:\n" \
    "                       transcribe (default: transcribed first by the same model,\n" \
    "                       then used as typed text) or direct (the audio positions)\n"

/* A table-driven option parser: options anywhere among the positional
 * arguments, "--" ends options, -h/--help returns 1 (print usage).
 *
 *     int64_t n = 8; const char *model = DEFAULT; int verbose = 0;
 *     const cli_opt opts[] = {
 *         {"-m", "--model", CLI_STR, &model},
 *         {NULL, "--n", CLI_INT, &n, 1, 1000},
 *         {"-v", "--verbose", CLI_FLAG, &verbose},
 *         {0}};
 *     int rc = cli_parse("eval", argc, argv, opts, pos, &n_pos);  // pos: argc entries,
 *                                                              // or NULL: none allowed
 */
typedef enum cli_kind { CLI_FLAG, CLI_STR, CLI_INT, CLI_FLOAT } cli_kind;
typedef struct cli_opt {
    const char *short_name, *long_name; /* either may be NULL */
    cli_kind kind;
    void *dst;                          /* int*, const char**, int64_t*, float* */
    double lo, hi;                      /* range of CLI_INT / CLI_FLOAT values */
} cli_opt;
/* 0 parsed, 1 help asked, -1 error (printed). */
int cli_parse(const char *cmd, int argc, char **argv, const cli_opt *opts, char **pos,
              int *n_pos);

/* The model caption, ask, imagine, listen, eval and serve use without -m. */
#define CLI_SHAPES_MODEL "models/loom-shapes.safetensors"

/* --contrast A (caption, ask, eval): infer_input.contrast */
#define CLI_CONTRAST_MIN (-10.0f)
#define CLI_CONTRAST_MAX 10.0f
#define CLI_CONTRAST_HELP \
    "  --contrast A         image-contrastive decoding: each token from (1+A) l - A l0,\n" \
    "                       l the logits with the image, l0 without it, so the text's\n" \
    "                       habits count less than the image (default 0: off)\n"

/* Loads a model and an inference context for it (inf may be NULL: none),
 * or prints why not ("loom: PATH: ...") and returns NULL. need: CLI_NEED_* bits. */
struct loom_model;
struct loom_infer;
enum { CLI_NEED_IMAGE_IN = 1, CLI_NEED_IMAGE_OUT = 2, CLI_NEED_AUDIO_IN = 4 };
struct loom_model *cli_load_model(const char *path, int need, struct loom_infer **inf);

int cmd_bench(int argc, char **argv);
int cmd_data(int argc, char **argv);
int cmd_caption(int argc, char **argv);
int cmd_ask(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_imagine(int argc, char **argv);
int cmd_eval_imagine(int argc, char **argv);
int cmd_listen(int argc, char **argv);
int cmd_data_speech(int argc, char **argv);
int cmd_eval_listen(int argc, char **argv);
int cmd_serve(int argc, char **argv);
int cmd_quantize(int argc, char **argv);

#endif
