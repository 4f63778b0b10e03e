#!/usr/bin/env bash
# bench/serve_load.sh: caption requests per second against `loom serve` on loopback.
#
#   bench/serve_load.sh [-d SECONDS] [-c CONNECTIONS] [-m MODEL] [--parallel N] [-- SERVE_FLAGS...]
#
# Starts the server on a free loopback port with MODEL (default the shipped model),
# then wrk (Debian's wrk) sends the same caption request (examples/scene0.png as a
# data: URL, POST /v1/chat/completions) over C keep-alive connections for D seconds.
# Prints requests/s, latency and every error (socket errors, non-2xx answers);
# the exit status is nonzero if any request failed. Loopback only; bounded in time.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=10 conns=8 model=models/loom-shapes.safetensors parallel=""
while [ $# -gt 0 ]; do
    case "$1" in
        -d) secs="$2"; shift 2 ;;
        -c) conns="$2"; shift 2 ;;
        -m) model="$2"; shift 2 ;;
        --parallel) parallel="--parallel $2"; shift 2 ;;
        --) shift; parallel="$parallel $*"; break ;;
        *) echo "usage: bench/serve_load.sh [-d SECONDS] [-c CONNECTIONS] [-m MODEL] [--parallel N] [-- SERVE_FLAGS...]" >&2; exit 2 ;;
    esac
done
command -v wrk >/dev/null || { echo "serve_load: wrk is missing (scripts/bootstrap.sh installs it)" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; rm -rf "$tmp"' EXIT
build/loom serve -m "$model" --port 0 $parallel > "$tmp/serve.out" 2> "$tmp/serve.err" &
pid=$!
for _ in $(seq 100); do grep -q "http://" "$tmp/serve.out" 2>/dev/null && break; sleep 0.1; done
url=$(grep -o 'http://[0-9.]*:[0-9]*/' "$tmp/serve.out") || { cat "$tmp/serve.err" >&2; exit 1; }
printf '{"messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"data:image/png;base64,%s"}}]}]}' \
    "$(base64 -w0 examples/scene0.png)" > "$tmp/body.json"
cat > "$tmp/caption.lua" <<LUA
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local f = io.open("$tmp/body.json", "rb")
wrk.body = f:read("*a")
f:close()
local bad = 0
function response(status, headers, body)
  if status ~= 200 then bad = bad + 1 end
end
LUA
echo "server: $(head -1 "$tmp/serve.out")"
echo "load: caption of examples/scene0.png, $conns connections, ${secs} s"
out=$(wrk -t 2 -c "$conns" -d "${secs}s" --timeout 30s --latency -s "$tmp/caption.lua" "${url}v1/chat/completions")
echo "$out"
rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
non2xx=$(echo "$out" | awk '/Non-2xx/ {print $NF}')
sockerr=$(echo "$out" | awk '/Socket errors/ {n = 0; for (i = 1; i <= NF; i++) if ($i ~ /^[0-9]+,?$/) n += $i; print n}')
# how much the answers shared decoding steps (continuous batching)
hostport=${url#http://}
hostport=${hostport%/}
python3 - "$hostport" <<'PY' || true
import http.client, json, sys
host, port = sys.argv[1].rsplit(":", 1)
c = http.client.HTTPConnection(host, int(port), timeout=10)
c.request("GET", "/health")
h = json.loads(c.getresponse().read())
print("decode: %d shared steps ran %d tokens (mean batch %.2f)" % (h["decode_steps"], h["decode_rows"], h["decode_rows"] / max(1, h["decode_steps"])))
PY
echo "serve: ${rps} caption requests/s, $((${non2xx:-0} + ${sockerr:-0})) errors"
[ "${non2xx:-0}" = 0 ] && [ "${sockerr:-0}" = 0 ]
