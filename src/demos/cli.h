/* cli.h: helpers shared by the loom command's subcommands. */
#ifndef LOOM_DEMOS_CLI_H
#define LOOM_DEMOS_CLI_H

#include <stdint.h>

/* Prints "loom: what: why" to stderr; returns 1 (the exit status). */
int cli_fail(const char *what, const char *why);
/* Parse a whole-string integer / finite number in [lo, hi]; print and return -1 if not. */
int cli_int(const char *flag, const char *s, int64_t lo, int64_t hi, int64_t *out);
int cli_float(const char *flag, const char *s, double lo, double hi, float *out);

int cmd_bench(int argc, char **argv);
int cmd_data(int argc, char **argv);
int cmd_caption(int argc, char **argv);
int cmd_ask(int argc, char **argv);
int cmd_eval(int argc, char **argv);

#endif
