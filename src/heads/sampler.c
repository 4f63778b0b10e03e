#include "heads/sampler.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct { float p; int32_t id; } prob_id;

static int by_prob_desc(const void *a, const void *b) {
    const prob_id *x = a, *y = b;
    if (x->p != y->p) return x->p < y->p ? 1 : -1;
    return x->id - y->id;
}

int32_t sampler_sample(const float *logits, int32_t V, const uint8_t *allowed, sampler_params p,
                       loom_rng *rng, float *scratch) {
    int32_t best = -1;
    for (int32_t i = 0; i < V; i++)
        if ((!allowed || allowed[i]) && (best < 0 || logits[i] > logits[best])) best = i;
    if (best < 0 || p.temp <= 0.0f) return best;

    /* softmax at temperature over the allowed ids, sorted by probability */
    prob_id *pi = (prob_id *)scratch;  /* 2*V floats hold V pairs */
    int32_t n = 0;
    float maxv = logits[best];
    double sum = 0.0;
    for (int32_t i = 0; i < V; i++) {
        if (allowed && !allowed[i]) continue;
        float e = expf((logits[i] - maxv) / p.temp);
        pi[n].p = e;
        pi[n].id = i;
        sum += e;
        n++;
    }
    qsort(pi, (size_t)n, sizeof *pi, by_prob_desc);
    if (p.top_k > 0 && p.top_k < n) {
        sum = 0.0;
        for (int32_t i = 0; i < p.top_k; i++) sum += pi[i].p;
        n = p.top_k;
    }
    if (p.top_p > 0.0f && p.top_p < 1.0f) {
        double acc = 0.0, keep = p.top_p * sum;
        int32_t k = 0;
        while (k < n) {
            acc += pi[k].p;
            k++;
            if (acc >= keep) break;
        }
        n = k;
        sum = acc;
    }
    double r = (double)rng_uniform(rng) * sum, acc = 0.0;
    for (int32_t i = 0; i < n; i++) {
        acc += pi[i].p;
        if (r < acc) return pi[i].id;
    }
    return pi[n - 1].id;
}
