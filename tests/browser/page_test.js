// page_test.js: the demo page of `loom serve` in a real headless Chromium (Debian's), driven
// with playwright-core: upload an image, ask a typed question, caption it, ask a spoken
// question, draw an image, see an error; every answer must equal the CLI's for the same input.
// Saves a screenshot.
//
// Usage: node page_test.js LOOM_BINARY REPO_DIR SCREENSHOT.png
"use strict";
const { chromium } = require("playwright-core");
const { spawn, execFileSync } = require("child_process");
const path = require("path");
const fs = require("fs");

const [loom, repo, shot] = process.argv.slice(2);
const model = path.join(repo, "models", "loom-shapes.safetensors");
const scene = path.join(repo, "examples", "scene1.png");
const wav = path.join(repo, "examples", "question.wav");
let failures = 0;

function check(name, ok, detail) {
  console.log((ok ? "ok   " : "FAIL ") + name + (ok ? "" : ": " + detail));
  if (!ok) failures++;
}
const cli = (...args) => execFileSync(loom, args, { encoding: "utf8" }).trim();

function startServer() {
  return new Promise((resolve, reject) => {
    const p = spawn(loom, ["serve", "-m", model, "--port", "0", "-t", "2"], { stdio: ["ignore", "pipe", "inherit"] });
    let out = "";
    p.stdout.on("data", (d) => {
      out += d;
      const m = out.match(/http:\/\/127\.0\.0\.1:(\d+)\//);
      if (m) resolve({ p, url: m[0] });
    });
    p.on("exit", (code) => reject(new Error("server exited: " + code + " " + out)));
  });
}

/* Waits until an answer has finished streaming (the Ask button is enabled again). */
async function answer(page) {
  await page.waitForFunction(() => !document.getElementById("send").disabled);
  return { text: await page.textContent("#answer"), error: await page.textContent("#ask-error") };
}

(async () => {
  const { p, url } = await startServer();
  const browser = await chromium.launch({
    executablePath: process.env.LOOM_CHROMIUM || "/usr/bin/chromium",
    args: ["--no-sandbox", "--disable-gpu"],
  });
  try {
    const page = await browser.newPage({ viewport: { width: 1000, height: 560 } });
    const external = [];
    page.on("request", (r) => { if (!r.url().startsWith(url) && !r.url().startsWith("data:")) external.push(r.url()); });
    page.setDefaultTimeout(60000);
    await page.goto(url);
    await page.waitForFunction(() => document.getElementById("model").textContent.includes("loom-shapes"));
    check("page shows the served model", true);

    // no image yet: a clear message
    await page.fill("#question", "how many objects are there?");
    await page.click("#send");
    let a = await answer(page);
    check("asking without an image says so", a.error === "choose an image first", JSON.stringify(a));

    await page.setInputFiles("#image", scene);
    await page.waitForSelector("#drop img");
    for (const q of ["how many objects are there?", "what color is the circle?"]) {
      await page.fill("#question", q);
      await page.click("#send");
      a = await answer(page);
      const want = cli("ask", "-m", model, "--image", scene, "-p", q);
      check(`typed question "${q}": page = CLI ("${want}")`, a.text === want && a.error === "", JSON.stringify(a));
    }
    await page.click("#caption");
    a = await answer(page);
    const cap = cli("caption", "-m", model, scene);
    check("caption button: page = CLI", a.text === cap, JSON.stringify(a) + " vs " + cap);

    await page.setInputFiles("#audio-file", wav);
    await page.waitForFunction(() => document.getElementById("audio-state").textContent.includes("question.wav"));
    a = await answer(page);
    const spoken = cli("ask", "-m", model, "--image", scene, "--audio", wav);
    check(`spoken question: page = CLI ("${spoken}")`, a.text === spoken, JSON.stringify(a));

    // a broken image file gets the server's message, not a crash
    const bad = path.join(path.dirname(shot), "not-an-image.png");
    fs.writeFileSync(bad, "<html>not a png</html>");
    await page.setInputFiles("#image", { name: "broken.png", mimeType: "image/png", buffer: fs.readFileSync(bad) });
    await page.waitForSelector("#drop img");
    await page.click("#caption");
    a = await answer(page);
    check("a broken image shows the server's error", a.error.includes("image_url") && a.text === "", JSON.stringify(a));
    await page.setInputFiles("#image", scene);
    await page.waitForSelector("#drop img");
    await page.fill("#question", "how many objects are there?");
    await page.click("#send");
    a = await answer(page);
    await page.screenshot({ path: shot });
    check("screenshot saved", fs.existsSync(shot), shot);

    await page.click("#tab-imagine");
    await page.fill("#prompt", "a large red circle at the top left");
    await page.click("#draw");
    await page.waitForSelector("#drawn img");
    const size = await page.evaluate(async () => {
      const img = document.querySelector("#drawn img");
      await img.decode();
      return [img.naturalWidth, img.naturalHeight];
    });
    check("imagine tab shows a 64 x 64 image", size[0] === 64 && size[1] === 64, JSON.stringify(size));
    await page.screenshot({ path: shot.replace(/\.png$/, "-imagine.png") });
    check("the page requested nothing from elsewhere", external.length === 0, external.join(" "));
  } catch (e) {
    check("page test ran to the end", false, e.stack || String(e));
  } finally {
    await browser.close();
    p.kill("SIGTERM");
  }
  console.log(failures + " failure(s)");
  process.exit(failures ? 1 : 0);
})();
