// node tests/web/browser_check.mjs URL NAMES_JSON OUT_JSON [SCREENSHOT]: drive the site at URL in the
// system Chromium (puppeteer-core): type each name of NAMES_JSON key by key, read what the page shows
// (data attributes), check the encoder and the generator in the page, time the page; write OUT_JSON.
import { readFileSync, writeFileSync } from "node:fs";
import puppeteer from "puppeteer-core";

const [url, namesFile, outFile, screenshot] = process.argv.slice(2);
const names = JSON.parse(readFileSync(namesFile, "utf-8"));
const browser = await puppeteer.launch({
  executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium", headless: true,
  args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
});
const result = { console: [] };
try {
  const page = await browser.newPage();
  page.on("console", (m) => { if (m.type() === "error") result.console.push(m.text()); });
  page.on("pageerror", (e) => result.console.push(String(e)));
  await page.setViewport({ width: 820, height: 900 });
  await page.goto(url, { waitUntil: "load" });
  await page.waitForFunction(() => document.body.dataset.firstPredictionMs || document.body.dataset.state === "error", { timeout: 60000 });
  result.firstPredictionMs = Number(await page.evaluate(() => document.body.dataset.firstPredictionMs));
  result.startState = await page.evaluate(() => ({ state: document.body.dataset.state, status: document.getElementById("status").textContent }));

  // the encoder in the browser's own Unicode tables, on every bundle's conformance names
  result.encoder = await page.evaluate(async () => {
    const report = {};
    for (const [name, m] of Object.entries(window.namemodels.models)) {
      const conf = await (await fetch(`models/${name}/conformance.json`)).json();
      const bad = [];
      for (const c of conf.cases) {
        let got;
        try { got = m.tokenizer.encode(c.input); } catch (e) { got = { error: e.message }; }
        if (JSON.stringify([got.normalized, got.transliterated, got.ids]) !== JSON.stringify([c.normalized, c.transliterated, c.ids])) bad.push(c.input);
      }
      for (const r of conf.refused) { try { m.tokenizer.encode(r.input); bad.push(r.input); } catch (e) { /* refused */ } }
      report[name] = { cases: conf.cases.length, refused: conf.refused.length, mismatches: bad };
    }
    return report;
  });

  // generators: teacher-forced next-token log-probabilities against conformance.json, and a sample
  result.generators = await page.evaluate(async () => {
    const report = {};
    for (const [name, m] of Object.entries(window.namemodels.models)) {
      if (m.graph !== "step") continue;
      const conf = await (await fetch(`models/${name}/conformance.json`)).json();
      const spec = m.tokenizer.spec;
      let err = 0, rows = 0;
      for (const c of conf.cases.slice(0, 40)) {
        const seq = [spec.bos_id, ...c.ids, spec.eos_id];
        let state = null;
        for (let t = 0; t < seq.length - 1; t++) {
          const out = await m.step([seq[t]], state, c.category ?? 0);
          state = out.state;
          err = Math.max(err, Math.abs(out.logprobs[0][seq[t + 1]] - c.next_token_logprobs[t]));
          rows++;
        }
      }
      let s = 1;   // a fixed random stream: the same names on every run
      const sample = await m.generate({ n: 6, temperature: 0.8, prefix: "Ma", category: m.manifest.inputs.category ? m.labels[0] : null,
        random: () => ((s = (s * 16807) % 2147483647) / 2147483647) });
      report[name] = { maxAbsErr: err, rows, sample };
    }
    return report;
  });

  // type each name key by key; the page answers on every keystroke
  result.names = [];
  for (const name of names) {
    await page.$eval("#name", (el) => { el.value = ""; });
    if (/[\t\n\r]/.test(name)) {   // keys that would leave the field: set the value, as a paste does
      await page.$eval("#name", (el, v) => { el.value = v; el.dispatchEvent(new Event("input")); }, name);
    } else {
      await page.type("#name", name);
    }
    await page.waitForFunction((v) => document.body.dataset.updated === v, { timeout: 20000 }, name);
    result.names.push(await page.evaluate(() => ({
      value: document.getElementById("name").value, state: document.body.dataset.state,
      out: { ...document.getElementById("out").dataset }, sex: { ...document.getElementById("sex").dataset } })));
  }

  // 50 keystrokes, each waited for: keystroke (the input event's time stamp) to updated page
  const text = "Wolfeschlegelsteinhausenbergerdorff Papadopoulos Ivanova".slice(0, 50);
  await page.$eval("#name", (el) => { el.value = ""; });
  result.keystrokeMs = [];
  for (let i = 0; i < text.length; i++) {
    const before = Number(await page.evaluate(() => document.body.dataset.updates));
    await page.keyboard.type(text[i]);
    await page.waitForFunction((n) => Number(document.body.dataset.updates) > n, { timeout: 20000 }, before);
    result.keystrokeMs.push(Number(await page.evaluate(() => document.body.dataset.updateMs)));
  }

  if (screenshot) {
    await page.$eval("#name", (el) => { el.value = ""; });
    await page.type("#name", "Dvořák");
    await page.waitForFunction(() => document.getElementById("belief-row").dataset.name === "Dvořák", { timeout: 20000 });
    await page.screenshot({ path: screenshot, fullPage: true });
  }
} finally {
  await browser.close();
}
writeFileSync(outFile, JSON.stringify(result));
