/* loom serve: the demo web page and an OpenAI-compatible API (server/api.h)
 * over HTTP (server/http.h), until SIGINT or SIGTERM. */
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "core/threads.h"
#include "model/imagine_check.h"
#include "model/infer.h"
#include "model/model.h"
#include "server/api.h"
#include "server/http.h"


static void serve_usage(FILE *f) {
    http_params h = http_default_params();
    api_params a = api_default_params();
    fprintf(f,
            "usage: loom serve [-m MODEL] [--host ADDR] [--port N] [-t N] [options]\n"
            "\n"
            "Serves the demo page at http://ADDR:PORT/ and an OpenAI-compatible API:\n"
            "POST /v1/chat/completions (text, image_url data: URLs, input_audio; stream),\n"
            "POST /v1/images/generations, POST /v1/audio/transcriptions, GET /v1/models,\n"
            "GET /health. Stops on Ctrl-C (SIGINT) or SIGTERM.\n"
            "\n"
            "  -m, --model FILE     model (default %s)\n"
            "  --host ADDR          numeric address to listen on (default %s)\n"
            "  --port N             port, 0 = any free one (default %d)\n"
            "  -t, --threads N      cores to use in all (default: all cores)\n"
            "  --parallel N         requests answered at once (default: 4 per thread); each\n"
            "                       reads its prompt on max(1, threads/N) cores, then decodes\n"
            "                       in the shared step; more wait for a free slot\n"
            "  --decode-threads N   threads of the decoding step the answers share\n"
            "                       (continuous batching; default: half the threads, at\n"
            "                       least one: the other half read prompts)\n"
            CLI_SPOKEN_HELP
            "  --max-images N       most images one generation request may ask for (default %d)\n"
            "  --max-tries N        most draws per image a generation request may ask for,\n"
            "                       1 to %d (default %d); a request without \"tries\" gets\n"
            "                       the lesser of %d and this\n"
            "  --max-body BYTES     largest request body (default %lld)\n"
            "  --max-connections N  open connections at most (default %d)\n"
            "  --model-id NAME      the model's name in the API (default: file name)\n",
            CLI_SHAPES_MODEL, h.host, h.port, a.max_images, IMAGINE_MAX_TRIES, a.max_tries, IMAGINE_DEFAULT_TRIES,
            (long long)h.max_body, h.max_connections);
}

int cmd_serve(int argc, char **argv) {
    http_params hp = http_default_params();
    api_params ap = api_default_params();
    const char *model = CLI_SHAPES_MODEL, *model_id = NULL, *spoken = "transcribe";
    int64_t threads = 0, parallel = 0, decode_threads = 0, port = hp.port, max_body = hp.max_body, max_conn = hp.max_connections;
    int64_t max_images = ap.max_images, max_tries = ap.max_tries;
    const cli_opt opts[] = {
        {"-m", "--model", CLI_STR, &model, 0, 0},
        {NULL, "--host", CLI_STR, &hp.host, 0, 0},
        {NULL, "--port", CLI_INT, &port, 0, 65535},
        {"-t", "--threads", CLI_INT, &threads, 0, 1024},
        {NULL, "--parallel", CLI_INT, &parallel, 0, 256},
        {NULL, "--decode-threads", CLI_INT, &decode_threads, 0, 1024},
        {NULL, "--max-images", CLI_INT, &max_images, 1, API_MAX_IMAGES},
        {NULL, "--max-tries", CLI_INT, &max_tries, 1, IMAGINE_MAX_TRIES},
        {NULL, "--max-body", CLI_INT, &max_body, 1024, (double)(INT64_C(1) << 40)},
        {NULL, "--max-connections", CLI_INT, &max_conn, 1, 65536},
        {NULL, "--model-id", CLI_STR, &model_id, 0, 0},
        {NULL, "--spoken", CLI_STR, &spoken, 0, 0},
        {0}};
    int n_pos = 0, prc = cli_parse("serve", argc, argv, opts, NULL, &n_pos);
    if (prc == 1) serve_usage(stdout);
    if (prc) return prc < 0 ? 1 : 0;
    int transcribe = 1;
    if (cli_spoken(spoken, &transcribe)) return 1;
    ap.spoken_direct = !transcribe;
    const int cores = loom_threads_set((int)threads);
    if (parallel <= 0) parallel = 4 * (int64_t)cores < 256 ? 4 * (int64_t)cores : 256;
    ap.model_path = model;
    ap.max_images = (int32_t)max_images;
    ap.max_tries = (int32_t)max_tries;
    ap.model_id = model_id;
    ap.slots = (int32_t)parallel;
    ap.slot_threads = cores / (int32_t)parallel > 0 ? cores / (int32_t)parallel : 1;
    ap.step_threads = decode_threads > 0 ? (int32_t)decode_threads : (cores / 2 > 0 ? cores / 2 : 1);
    hp.port = (int32_t)port;
    hp.max_body = max_body;
    hp.max_connections = (int32_t)max_conn;

    loom_model *m = cli_load_model(model, 0, NULL);
    if (!m) return 1;
    /* the server's threads inherit this mask: the signals reach only sigwait below */
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGINT);
    sigaddset(&stop, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop, NULL);
    signal(SIGPIPE, SIG_IGN); /* a client that leaves mid-answer is not our end */
    loom_error err = {{0}};
    api_server *api = api_server_new(m, &ap, &err);
    http_server *h = api ? http_start(api, &hp, &err) : NULL;
    if (!h) {
        api_server_free(api);
        model_free(m);
        return cli_fail("serve", err.msg);
    }
    const int v6 = strchr(hp.host, ':') != NULL;
    printf("loom: serving %s as \"%s\" on http://%s%s%s:%d/ (%d slot%s x %d thread%s, decoding on %d)\n",
           model, api_server_model_id(api), v6 ? "[" : "", hp.host, v6 ? "]" : "", http_port(h), ap.slots,
           ap.slots == 1 ? "" : "s", ap.slot_threads, ap.slot_threads == 1 ? "" : "s", ap.step_threads);
    fflush(stdout);
    int sig = 0;
    sigwait(&stop, &sig);
    fprintf(stderr, "loom: serve: %s, stopping\n", sig == SIGINT ? "SIGINT" : "SIGTERM");
    http_stop(h);
    api_server_free(api);
    model_free(m);
    return 0;
}
