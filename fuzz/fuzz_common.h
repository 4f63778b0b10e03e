/* fuzz_common.h: what every harness shares. Define FUZZ_NAME (the harness's
 * name, for messages) before including it.
 *
 *   fail(what, why)   prints "FUZZ_NAME: what: why" and aborts, so libFuzzer
 *                     keeps the input: for a property the code must never break
 *   fuzz_setup()      one thread, and no log output (a hostile input makes the
 *                     library warn; millions of executions should not print)
 */
#ifndef LOOM_FUZZ_COMMON_H
#define LOOM_FUZZ_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "core/log.h"
#include "core/threads.h"

#ifndef FUZZ_NAME
#error "define FUZZ_NAME before including fuzz_common.h"
#endif

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fuzz_quiet(loom_log_level level, const char *msg, void *user) {
    (void)level, (void)msg, (void)user;
}

static void fail(const char *what, const char *why) {
    fprintf(stderr, "%s: %s: %s\n", FUZZ_NAME, what, why ? why : "");
    abort();
}

static void fuzz_setup(void) {
    loom_threads_set(1);
    loom_log_set(fuzz_quiet, NULL);
}

#endif
