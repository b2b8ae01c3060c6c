// node tests/web/encoder_check.mjs BUNDLE...: namemodels.js's encoder against each bundle's conformance.json
// (normalized, transliterated, ids of every case; every refused input refused). Prints a JSON report.
import { readFileSync } from "node:fs";
import { Tokenizer } from "../../namemodels/web/namemodels.js";

const report = {};
for (const dir of process.argv.slice(2)) {
  const tok = new Tokenizer(JSON.parse(readFileSync(`${dir}/tokenizer.json`, "utf-8")));
  const conf = JSON.parse(readFileSync(`${dir}/conformance.json`, "utf-8"));
  const mismatches = [];
  for (const c of conf.cases) {
    let got;
    try { got = tok.encode(c.input); } catch (e) { got = { error: e.message }; }
    const want = { normalized: c.normalized, transliterated: c.transliterated, ids: c.ids };
    if (JSON.stringify({ normalized: got.normalized, transliterated: got.transliterated, ids: got.ids }) !== JSON.stringify(want))
      mismatches.push({ input: c.input, want, got });
  }
  for (const r of conf.refused) {
    try { mismatches.push({ input: r.input, want: "refused", got: tok.encode(r.input) }); } catch (e) { /* refused, as it should be */ }
  }
  report[dir] = { cases: conf.cases.length, refused: conf.refused.length, transliterated: conf.cases.filter((c) => c.transliterated).length, mismatches };
}
console.log(JSON.stringify(report));
