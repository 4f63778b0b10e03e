/* loom quantize: an int8 copy of a model for inference.
 *
 *   loom quantize -m IN.safetensors -o OUT.safetensors [--group 32] [--head]
 *
 * The decoder's matrices (attention q/k/v/o, MLP gate/up/down; with --head the
 * LM head too) become int8 with one fp32 scale per group of G inputs
 * (core/q8.h); norms, embeddings, the image and audio projectors and the VQ
 * head stay fp32. Prints each quantized tensor's error against its fp32
 * weights.
 */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

#include "cli.h"
#include "core/q8.h"
#include "model/model.h"

static void quantize_usage(FILE *f) {
    fprintf(f,
            "usage: loom quantize -m IN -o OUT [--group G] [--head]\n"
            "\n"
            "Writes an int8 copy of model IN to OUT for inference: the decoder's attention and\n"
            "MLP matrices are stored as int8 with one fp32 scale per G consecutive inputs\n"
            "(symmetric, scale = max|w| / 127), and run as int8 dot products (AVX2, or AVX-512\n"
            "VNNI where the CPU has it). Everything else stays fp32. A quantized model answers,\n"
            "draws and listens like any other, but cannot be trained. Prints each tensor's\n"
            "quantization error.\n"
            "\n"
            "  -m, --model FILE     the fp32 model (required)\n"
            "  -o, --out FILE       the quantized model (required)\n"
            "  --group G            inputs per scale: a multiple of 32 in [%d, %d] (default 32)\n"
            "  --head               quantize the LM head too (a copy of the embedding when tied)\n",
            Q8_GROUP_MIN, Q8_GROUP_MAX);
}

/* One tensor's line: shape, max |w|, max |w - q d|, and the error's RMS
 * relative to the weights' RMS. */
static void report_tensor(const decoder_q8_info *t, int32_t G) {
    const int64_t rows = (t->NL ? t->NL : 1) * t->N, ng = t->KP / G;
    float *row = malloc((size_t)t->K * sizeof(float));
    double wmax = 0.0, emax = 0.0, w2 = 0.0, e2 = 0.0;
    for (int64_t r = 0; row && r < rows; r++) {
        q8_dequantize(row, t->m->q + r * t->KP, t->m->d + r * ng, 1, t->K, G);
        for (int64_t k = 0; k < t->K; k++) {
            const double w = t->fp32[r * t->K + k], e = fabs(w - row[k]);
            wmax = fmax(wmax, fabs(w));
            emax = fmax(emax, e);
            w2 += w * w;
            e2 += e * e;
        }
    }
    char shape[64];
    if (t->NL) snprintf(shape, sizeof shape, "[%" PRId64 ", %" PRId64 ", %" PRId64 "]", t->NL, t->N, t->K);
    else snprintf(shape, sizeof shape, "[%" PRId64 ", %" PRId64 "]", t->N, t->K);
    printf("  %-18s %-16s %-6s %9.4f %11.2e %12.2e\n", t->name, shape,
           t->KP == t->K ? "" : "padded", wmax, emax, w2 > 0 ? sqrt(e2 / w2) : 0.0);
    free(row);
}

static double file_mb(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 ? (double)st.st_size / 1e6 : 0.0;
}

int cmd_quantize(int argc, char **argv) {
    const char *in = NULL, *out = NULL;
    int64_t group = 32;
    int head = 0;
    const cli_opt opts[] = {
        {"-m", "--model", CLI_STR, &in, 0, 0},
        {"-o", "--out", CLI_STR, &out, 0, 0},
        {NULL, "--group", CLI_INT, &group, Q8_GROUP_MIN, Q8_GROUP_MAX},
        {NULL, "--head", CLI_FLAG, &head, 0, 0},
        {0}};
    int n_pos = 0, prc = cli_parse("quantize", argc, argv, opts, NULL, &n_pos);
    if (prc == 1) quantize_usage(stdout);
    if (prc) return prc < 0 ? 1 : 0;
    if (!in || !out) {
        quantize_usage(stderr);
        return cli_fail("quantize", "-m IN and -o OUT are required");
    }
    loom_error err = {{0}};
    if (q8_group_check(group, &err)) return cli_fail("quantize", err.msg);
    loom_model *src = model_load(in, &err);
    if (!src) return cli_fail(in, err.msg);
    loom_model *q = model_quantize(src, (int32_t)group, head, &err);
    if (!q) {
        model_free(src);
        return cli_fail(in, err.msg);
    }
    printf("loom quantize: %s -> %s: int8, one scale per %" PRId64 " inputs, LM head %s\n", in, out,
           group, head ? "int8" : "fp32");
    printf("  %-18s %-16s %-6s %9s %11s %12s\n", "tensor", "shape", "", "max |w|", "max |w-qd|",
           "rms err/rms w");
    decoder_q8_info t;
    for (int i = 0; decoder_q8_tensor(&q->cfg, i, q->q8, &src->w, &t); i++) report_tensor(&t, (int32_t)group);
    int rc = 0;
    if (model_save(q, out, &err)) rc = cli_fail(out, err.msg);
    else printf("file: %.1f MB -> %.1f MB\n", file_mb(in), file_mb(out));
    model_free(q);
    model_free(src);
    return rc;
}
