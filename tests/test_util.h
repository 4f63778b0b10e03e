/* test_util.h: helpers the C tests share. Include after <cmocka.h>. */
#ifndef LOOM_TESTS_TEST_UTIL_H
#define LOOM_TESTS_TEST_UTIL_H

#include <stdio.h>
#include <stdlib.h>

#include "model/model.h"

/* The shipped model's path: $LOOM_MODEL, else models/loom-shapes.safetensors
 * in the source tree. */
static inline const char *test_shipped_model_path(void) {
    static char buf[4096];
    const char *env = getenv("LOOM_MODEL");
    if (env) return env;
    snprintf(buf, sizeof buf, "%s/models/loom-shapes.safetensors", LOOM_SOURCE_DIR);
    return buf;
}

/* The shipped model, loaded; fails the test when it cannot be. */
static inline loom_model *test_load_shipped_model(void) {
    loom_error err = {{0}};
    const char *path = test_shipped_model_path();
    loom_model *m = model_load(path, &err);
    if (!m) fail_msg("%s: %s", path, err.msg);
    return m;
}

#endif
