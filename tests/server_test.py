#!/usr/bin/env python3
"""server_test.py: `loom serve` against its contract, over loopback HTTP.

Starts the server on a free port with the shipped model and checks:
  - every route answers in OpenAI's shape (chat, streamed chat, images, transcriptions,
    models, health, the page);
  - the server and the CLI give the same answers for the same input (ask, caption, listen,
    spoken ask) and the same PNG bytes for the same prompt and seed (imagine);
  - the bad-request matrix: each row's exact status and error message;
  - /health answers while every slot is busy; the server is alive at the end.

Usage: server_test.py LOOM_BINARY REPO_DIR   (exit status 0 = pass)
"""
import base64
import http.client
import json
import os
import subprocess
import sys
import tempfile
import threading
import time

LOOM, REPO = sys.argv[1], sys.argv[2]
MODEL = os.path.join(REPO, "models", "loom-shapes.safetensors")
EX = os.path.join(REPO, "examples")
failures = []


def check(name, ok, detail=""):
    print(("ok   " if ok else "FAIL ") + name + ("" if ok else ": " + detail))
    if not ok:
        failures.append(name)


def start(*extra):
    err = tempfile.TemporaryFile(mode="w+")
    p = subprocess.Popen([LOOM, "serve", "-m", MODEL, "--port", "0", *extra], stdout=subprocess.PIPE,
                         stderr=err, text=True)
    p.err = err
    line = p.stdout.readline()
    if "http://" not in line:
        p.kill()
        p.wait()
        err.seek(0)
        sys.exit("server did not start: " + line + err.read())
    port = int(line.rsplit(":", 1)[1].split("/")[0])
    return p, port


def request(port, method, path, body=None, ctype=None, headers=None, timeout=120):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    h = dict(headers or {})
    if ctype:
        h["Content-Type"] = ctype
    if isinstance(body, str):
        body = body.encode()
    c.request(method, path, body=body, headers=h)
    r = c.getresponse()
    data = r.read()
    c.close()
    return r.status, r.getheader("Content-Type") or "", data


def post_json(port, path, obj):
    return request(port, "POST", path, json.dumps(obj), "application/json")


def cli(*args):
    r = subprocess.run([LOOM, *args], capture_output=True, text=True)
    return r.stdout.strip()


def b64file(path):
    with open(path, "rb") as f:
        return base64.b64encode(f.read()).decode()


def image_part(path):
    return {"type": "image_url", "image_url": {"url": "data:image/png;base64," + b64file(path)}}


def audio_part(path):
    return {"type": "input_audio", "input_audio": {"data": b64file(path), "format": "wav"}}


def chat(port, parts, **kw):
    return post_json(port, "/v1/chat/completions", {"messages": [{"role": "user", "content": parts}], **kw})


def multipart(fields):
    boundary = "loomtestboundary7d3f"
    out = b""
    for name, (filename, data) in fields.items():
        out += b"--" + boundary.encode() + b"\r\n"
        disp = 'Content-Disposition: form-data; name="%s"' % name
        if filename:
            disp += '; filename="%s"' % filename
        out += disp.encode() + b"\r\n"
        if filename:
            out += b"Content-Type: application/octet-stream\r\n"
        out += b"\r\n" + data + b"\r\n"
    out += b"--" + boundary.encode() + b"--\r\n"
    return "multipart/form-data; boundary=" + boundary, out


def sse_text(data):
    """The concatenated deltas of a server-sent event stream, its finish reason, and whether it ended."""
    text, finish, done = "", None, False
    for ev in data.decode().split("\n\n"):
        if not ev.startswith("data: "):
            continue
        payload = ev[6:]
        if payload == "[DONE]":
            done = True
            continue
        j = json.loads(payload)
        assert j["object"] == "chat.completion.chunk"
        if not j["choices"]:  # the usage chunk
            continue
        ch = j["choices"][0]
        text += ch["delta"].get("content", "")
        finish = ch["finish_reason"] or finish
    return text, finish, done


def main():
    proc, port = start("--parallel", "2", "-t", "2")
    try:
        run(port)
    finally:
        proc.terminate()
        try:
            rc = proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            rc = -9
        proc.err.seek(0)
        check("SIGTERM stops the server cleanly (exit 0)", rc == 0, "exit %s; its stderr:\n%s" % (rc, proc.err.read()[-6000:]))
    # a small body limit: a too-large body is refused before it is read;
    # the generation limits of the command line
    proc, port = start("--max-body", "4096", "-t", "1", "--max-images", "2", "--max-tries", "3")
    try:
        st, _, body = post_json(port, "/v1/images/generations", {"prompt": "a red circle", "n": 3})
        check("400 for n over --max-images", st == 400 and b"n must be an integer from 1 to 2" in body, "%d %s" % (st, body[:200]))
        st, _, body = post_json(port, "/v1/images/generations", {"prompt": "a red circle", "tries": 4})
        check("400 for tries over --max-tries", st == 400 and b"tries must be an integer from 1 to 3" in body,
              "%d %s" % (st, body[:200]))
        st, _, body = post_json(port, "/v1/chat/completions", {"messages": [{"role": "user", "content": "x" * 10000}]})
        check("413 for a body over --max-body", st == 413 and b"larger than the server's limit of 4096 bytes" in body,
              "%d %s" % (st, body[:200]))
        # chunked upload (no Content-Length) over the limit
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        c.putrequest("POST", "/v1/chat/completions")
        c.putheader("Content-Type", "application/json")
        c.putheader("Transfer-Encoding", "chunked")
        c.endheaders()
        for _ in range(3):
            chunk = b"x" * 3000
            c.send(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        c.send(b"0\r\n\r\n")
        r = c.getresponse()
        check("413 for a chunked body over --max-body", r.status == 413, "%d" % r.status)
        c.close()
        st, _, _ = request(port, "GET", "/health")
        check("serving after refusing large bodies", st == 200)
    finally:
        proc.terminate()
        proc.wait(timeout=20)
    # continuous batching: concurrent answers share decoding steps and equal the CLI's
    proc, port = start("--parallel", "6", "-t", "2")
    try:
        batched(port)
    finally:
        proc.terminate()
        proc.wait(timeout=20)
    print("%d failure(s)" % len(failures))
    sys.exit(1 if failures else 0)


def run(port):
    # ---- routes -------------------------------------------------------------------
    st, ct, body = request(port, "GET", "/health")
    h = json.loads(body)
    check("GET /health", st == 200 and h["status"] == "ok" and h["slots"] == 2, body)
    st, ct, body = request(port, "GET", "/v1/models")
    m = json.loads(body)
    check("GET /v1/models", st == 200 and m["object"] == "list" and m["data"][0]["id"] == "loom-shapes"
          and m["data"][0]["capabilities"] == {"image_input": True, "audio_input": True, "image_output": True}, body)
    st, ct, body = request(port, "GET", "/")
    check("GET / serves the page", st == 200 and ct.startswith("text/html") and b"<title>loom</title>" in body, ct)
    check("the page loads nothing from elsewhere", b"src=\"http" not in body and b"href=\"http" not in body)

    # ---- the same answers as the CLI ------------------------------------------------
    scene = os.path.join(EX, "scene1.png")
    for q in ["how many objects are there?", "what color is the circle?", "is there a square?"]:
        st, _, body = chat(port, [image_part(scene), {"type": "text", "text": q}])
        j = json.loads(body)
        want = cli("ask", "-m", MODEL, "--image", scene, "-p", q)
        got = j["choices"][0]["message"]["content"] if st == 200 else None
        check("ask %r: server = CLI (%r)" % (q, want), st == 200 and got == want and j["object"] == "chat.completion"
              and j["choices"][0]["finish_reason"] == "stop" and j["usage"]["completion_tokens"] >= 1, body[:300])
    for i in range(4):
        img = os.path.join(EX, "scene%d.png" % i)
        st, _, body = chat(port, [image_part(img)])
        want = cli("caption", "-m", MODEL, img)
        got = json.loads(body)["choices"][0]["message"]["content"] if st == 200 else None
        check("caption scene%d: server = CLI" % i, got == want, "%r vs %r" % (got, want))
    # image-contrastive decoding: the same as loom caption --contrast
    img = os.path.join(EX, "scene2.png")
    st, _, body = chat(port, [image_part(img)], contrast=0.5)
    want = cli("caption", "-m", MODEL, "--contrast", "0.5", img)
    got = json.loads(body)["choices"][0]["message"]["content"] if st == 200 else None
    check("caption with contrast 0.5: server = CLI (%r)" % want, got == want, "%r vs %r" % (got, want))
    # caption first: the same as loom ask --caption-first
    q = "how many objects are there?"
    st, _, body = chat(port, [image_part(img), {"type": "text", "text": q}], caption_first=True)
    want = cli("ask", "-m", MODEL, "--caption-first", "--image", img, "-p", q)
    got = json.loads(body)["choices"][0]["message"]["content"] if st == 200 else None
    check("ask with caption_first: server = CLI (%r)" % want, got == want, "%r vs %r" % (got, want))
    # null is the default for every optional field (OpenAI's clients send it): not streamed, direct
    want = cli("ask", "-m", MODEL, "--image", img, "-p", q)
    st, _, body = chat(port, [image_part(img), {"type": "text", "text": q}], stream=None, caption_first=None)
    j = json.loads(body) if st == 200 else {}
    check("stream and caption_first null: the defaults (%r)" % want, j.get("object") == "chat.completion"
          and j["choices"][0]["message"]["content"] == want, body[:300])
    # streamed: the deltas add up to the same answer
    st, ct, body = chat(port, [image_part(scene)], stream=True, stream_options={"include_usage": True})
    text, finish, done = sse_text(body)
    want = cli("caption", "-m", MODEL, scene)
    check("streamed caption = CLI, ends with [DONE]", st == 200 and ct.startswith("text/event-stream") and text == want
          and finish == "stop" and done and b'"usage"' in body, "%r vs %r" % (text, want))
    st, _, body = chat(port, [image_part(scene)], max_tokens=3)
    j = json.loads(body)
    check("max_tokens 3 stops with finish_reason length", st == 200 and j["choices"][0]["finish_reason"] == "length"
          and j["usage"]["completion_tokens"] == 3, body[:300])
    # spoken question, transcription
    wav = os.path.join(EX, "question.wav")
    st, _, body = chat(port, [image_part(scene), audio_part(wav)])
    want = cli("ask", "-m", MODEL, "--image", scene, "--audio", wav)
    got = json.loads(body)["choices"][0]["message"]["content"] if st == 200 else None
    check("spoken ask: server = CLI (%r)" % want, got == want, "%r" % got)
    ctype, form = multipart({"file": ("question.wav", open(wav, "rb").read()), "model": (None, b"loom-shapes")})
    st, _, body = request(port, "POST", "/v1/audio/transcriptions", form, ctype)
    want = cli("listen", "-m", MODEL, wav)
    check("transcription: server = CLI (%r)" % want, st == 200 and json.loads(body)["text"] == want, body[:200])
    ctype, form = multipart({"file": ("question.wav", open(wav, "rb").read()), "response_format": (None, b"text")})
    st, ct, body = request(port, "POST", "/v1/audio/transcriptions", form, ctype)
    check("transcription as text", st == 200 and ct.startswith("text/plain") and body.decode() == want + "\n", body[:200])
    # images: the same PNG bytes as loom imagine with the same prompt and seed
    prompt = "a large red circle at the top left"
    st, _, body = post_json(port, "/v1/images/generations", {"prompt": prompt, "seed": 5, "n": 2})
    j = json.loads(body)
    with tempfile.TemporaryDirectory() as d:
        out = os.path.join(d, "out.png")
        cli("imagine", "-m", MODEL, "-p", prompt, "-s", "5", "-n", "2", "-o", out)
        for k in range(2):
            want = open(os.path.join(d, "out-%d.png" % (k + 1)), "rb").read()
            got = base64.b64decode(j["data"][k]["b64_json"]) if st == 200 else b""
            check("image %d: server PNG = loom imagine PNG (%d bytes)" % (k + 1, len(want)), got == want)

    # ---- the bad-request matrix: (name, method, path, body, content type, status, message part)
    good_img = image_part(scene)
    rows = [
        ("unknown route", "GET", "/v1/nope", None, None, 404, "no route /v1/nope"),
        ("wrong method on chat", "GET", "/v1/chat/completions", None, None, 405, "takes POST, not GET"),
        ("wrong method on health", "POST", "/health", "{}", "application/json", 405, "takes GET, not POST"),
        ("wrong content type", "POST", "/v1/chat/completions", "{}", "text/plain", 415, "want Content-Type application/json"),
        ("no content type", "POST", "/v1/chat/completions", "{}", None, 415, "want Content-Type application/json, got none"),
        ("malformed JSON", "POST", "/v1/chat/completions", '{"messages": [', "application/json", 400, "malformed JSON"),
        ("empty body", "POST", "/v1/chat/completions", "", "application/json", 400, "malformed JSON"),
        ("JSON not an object", "POST", "/v1/chat/completions", "[1,2]", "application/json", 400, "must be a JSON object"),
        ("invalid UTF-8 body", "POST", "/v1/chat/completions", b'{"messages":[{"role":"user","content":"\xff\xfe"}]}',
         "application/json", 400, "not valid UTF-8"),
        ("no messages", "POST", "/v1/chat/completions", "{}", "application/json", 400, "messages must be a non-empty array"),
        ("no user message", "POST", "/v1/chat/completions", '{"messages":[{"role":"system","content":"hi"}]}',
         "application/json", 400, "no message with role \\\"user\\\""),
        ("message without role", "POST", "/v1/chat/completions", '{"messages":[{"content":"hi"}]}',
         "application/json", 400, "each message needs a \\\"role\\\" string"),
        ("unknown part type", "POST", "/v1/chat/completions",
         json.dumps({"messages": [{"role": "user", "content": [{"type": "video", "video": 1}]}]}),
         "application/json", 400, "unknown content part type \\\"video\\\""),
        ("bad base64 image", "POST", "/v1/chat/completions",
         json.dumps({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBO*!"}}]}]}),
         "application/json", 400, "image_url: bad base64 at character 4"),
        ("image URL not data:", "POST", "/v1/chat/completions",
         json.dumps({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "http://example.com/a.png"}}]}]}),
         "application/json", 400, "must be a data: URL"),
        ("not an image", "POST", "/v1/chat/completions",
         json.dumps({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:image/png;base64," + base64.b64encode(b"<html>hello</html>").decode()}}]}]}),
         "application/json", 400, "image_url"),
        ("truncated PNG", "POST", "/v1/chat/completions",
         json.dumps({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:image/png;base64," + base64.b64encode(open(scene, "rb").read()[:200]).decode()}}]}]}),
         "application/json", 400, "image_url"),
        ("two images", "POST", "/v1/chat/completions",
         json.dumps({"messages": [{"role": "user", "content": [good_img, good_img]}]}), "application/json", 400, "one image per request"),
        ("bad base64 audio", "POST", "/v1/chat/completions",
         json.dumps({"messages": [{"role": "user", "content": [{"type": "input_audio", "input_audio": {"data": "UklGR=!", "format": "wav"}}]}]}),
         "application/json", 400, "input_audio: bad base64"),
        ("audio that is not audio", "POST", "/v1/chat/completions",
         json.dumps({"messages": [{"role": "user", "content": [{"type": "input_audio", "input_audio": {"data": base64.b64encode(b"just some text, no sound").decode(), "format": "wav"}}]}]}),
         "application/json", 400, "input_audio"),
        ("empty user message", "POST", "/v1/chat/completions",
         json.dumps({"messages": [{"role": "user", "content": []}]}), "application/json", 400, "the user message is empty"),
        ("prompt longer than the context", "POST", "/v1/chat/completions",
         json.dumps({"messages": [{"role": "user", "content": "a red circle " * 400}]}), "application/json", 400, "the context holds"),
        ("max_tokens 0", "POST", "/v1/chat/completions",
         json.dumps({"messages": [{"role": "user", "content": "hi"}], "max_tokens": 0}), "application/json", 400, "max_tokens must be an integer"),
        ("max_tokens a string", "POST", "/v1/chat/completions",
         json.dumps({"messages": [{"role": "user", "content": "hi"}], "max_tokens": "9"}), "application/json", 400, "max_tokens must be an integer"),
        ("n 2 for chat", "POST", "/v1/chat/completions",
         json.dumps({"messages": [{"role": "user", "content": "hi"}], "n": 2}), "application/json", 400, "n must be an integer from 1 to 1"),
        ("unknown model", "POST", "/v1/chat/completions",
         json.dumps({"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}), "application/json", 404, "the model 'gpt-4o' does not exist"),
        ("stream not a boolean", "POST", "/v1/chat/completions",
         json.dumps({"messages": [{"role": "user", "content": "hi"}], "stream": "yes"}), "application/json", 400, "stream must be true or false"),
        ("image prompt missing", "POST", "/v1/images/generations", "{}", "application/json", 400, "prompt must be a string"),
        ("image size unsupported", "POST", "/v1/images/generations", '{"prompt":"a red circle","size":"1024x1024"}',
         "application/json", 400, "draws 64x64 images only"),
        ("image url format", "POST", "/v1/images/generations", '{"prompt":"a red circle","response_format":"url"}',
         "application/json", 400, "response_format must be b64_json"),
        ("too many images", "POST", "/v1/images/generations", '{"prompt":"a red circle","n":1000}',
         "application/json", 400, "n must be an integer from 1 to 8"),
        ("contrast not a number", "POST", "/v1/chat/completions",
         json.dumps({"messages": [{"role": "user", "content": "hi"}], "contrast": "high"}), "application/json", 400,
         "contrast must be a number"),
        ("caption_first not a boolean", "POST", "/v1/chat/completions",
         json.dumps({"messages": [{"role": "user", "content": "hi"}], "caption_first": 1}), "application/json", 400,
         "caption_first must be true or false"),
        ("caption_first with contrast", "POST", "/v1/chat/completions",
         json.dumps({"messages": [{"role": "user", "content": "hi"}], "caption_first": True, "contrast": 1}),
         "application/json", 400, "caption_first does not go with contrast"),
        ("image tries out of range", "POST", "/v1/images/generations", '{"prompt":"a red circle","tries":0}',
         "application/json", 400, "tries must be an integer from 1 to 64"),
        ("transcription not multipart", "POST", "/v1/audio/transcriptions", "{}", "application/json", 415, "multipart/form-data"),
        ("transcription without boundary", "POST", "/v1/audio/transcriptions", "x", "multipart/form-data", 415, "needs a boundary"),
        ("transcription without file", "POST", "/v1/audio/transcriptions", *reversed(multipart({"model": (None, b"loom-shapes")})),
         400, "needs a non-empty \\\"file\\\""),
        ("transcription of a 0-byte file", "POST", "/v1/audio/transcriptions", *reversed(multipart({"file": ("a.wav", b"")})),
         400, "needs a non-empty \\\"file\\\""),
        ("transcription of a truncated WAV", "POST", "/v1/audio/transcriptions",
         *reversed(multipart({"file": ("a.wav", open(wav, "rb").read()[:3000])})), 400, "a.wav"),
        ("multipart cut short", "POST", "/v1/audio/transcriptions", b"--b\r\nContent-Disposition: form-data; name=\"file\"\r\n\r\nabc",
         "multipart/form-data; boundary=b", 400, "ends inside a part"),
    ]
    for name, method, path, body, ctype, want_status, want_msg in rows:
        st, ct, data = request(port, method, path, body, ctype)
        ok = st == want_status and ct.startswith("application/json") and want_msg.encode() in data
        try:
            j = json.loads(data)
            ok = ok and set(j["error"]) == {"message", "type", "param", "code"}
        except (ValueError, KeyError, TypeError):
            ok = False
        check("matrix: %s -> %d" % (name, want_status), ok, "%d %s %s" % (st, ct, data[:300]))

    # ---- concurrency: /health answers while both slots are busy --------------------
    results = []

    def slow():
        st, _, _ = post_json(port, "/v1/images/generations", {"prompt": "a small blue square", "n": 8})
        results.append(st)

    threads = [threading.Thread(target=slow) for _ in range(3)]
    for t in threads:
        t.start()
    time.sleep(0.3)
    t0 = time.time()
    st, _, body = request(port, "GET", "/health")
    dt = time.time() - t0
    busy = json.loads(body)["busy"] if st == 200 else -1
    check("/health answers in %.0f ms while %d slot(s) are busy" % (dt * 1e3, busy), st == 200 and dt < 0.5, body)
    for t in threads:
        t.join()
    check("queued requests all complete", results == [200, 200, 200], str(results))
    # a client that leaves in the middle of a stream frees its slot
    for _ in range(3):
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        c.request("POST", "/v1/chat/completions", json.dumps({"stream": True, "messages": [{"role": "user", "content": [good_img]}]}),
                  {"Content-Type": "application/json"})
        r = c.getresponse()
        r.read(50)
        c.close()
    time.sleep(0.5)
    st, _, body = request(port, "GET", "/health")
    check("slots freed after clients left mid-stream", st == 200 and json.loads(body)["busy"] == 0, body)
    st, _, body = chat(port, [good_img])
    check("still answering at the end", st == 200, body[:200])


def batched(port):
    jobs = []
    for i in range(4):
        img = os.path.join(EX, "scene%d.png" % i)
        jobs.append(([image_part(img)], cli("caption", "-m", MODEL, img)))
        q = "what color is the circle?" if i % 2 else "how many objects are there?"
        jobs.append(([image_part(img), {"type": "text", "text": q}], cli("ask", "-m", MODEL, "--image", img, "-p", q)))
    jobs.append(([audio_part(os.path.join(EX, "prompt.wav"))], cli("listen", "-m", MODEL, os.path.join(EX, "prompt.wav"))))
    jobs = jobs * 2
    got = [None] * len(jobs)

    def one(k):
        parts = jobs[k][0]
        if k % 3 == 0:  # some streamed
            st, _, body = chat(port, parts, stream=True)
            got[k] = sse_text(body)[0] if st == 200 else "HTTP %d" % st
        else:
            st, _, body = chat(port, parts)
            got[k] = json.loads(body)["choices"][0]["message"]["content"] if st == 200 else "HTTP %d" % st

    threads = [threading.Thread(target=one, args=(k,)) for k in range(len(jobs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    same = sum(g == j[1] for g, j in zip(got, jobs))
    bad = [(g, j[1]) for g, j in zip(got, jobs) if g != j[1]]
    st, _, body = request(port, "GET", "/health")
    h = json.loads(body)
    mean = h["decode_rows"] / max(1, h["decode_steps"])
    check("%d concurrent answers = CLI (6 slots)" % len(jobs), same == len(jobs), str(bad[:3]))
    check("they shared decoding steps: %d steps ran %d tokens (mean batch %.2f)" % (h["decode_steps"], h["decode_rows"], mean),
          mean > 1.2, body)


if __name__ == "__main__":
    main()
