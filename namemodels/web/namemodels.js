// namemodels.js: run a namemodels bundle (`namemodels export NAME --format bundle`, or a site's
// models/NAME/) in a browser or in Node, with onnxruntime-web. Each step follows the bundle's
// FORMAT.md; conformance.json holds the expected results, and the tests compare this file with Python.
//
//   import { load } from "./namemodels.js";
//   const surnames = await load("models/surnames/");
//   const answer = await surnames.predict("Dvořák");   // {label, probability, top, logprobs, ...}
//
// Imports "onnxruntime-web" and "any-ascii" (0.3.3, the version of the Python package's anyascii):
// the site's import map says where they are; Node finds them in node_modules.
import * as ort from "onnxruntime-web";
import anyAscii from "any-ascii";

ort.env.wasm.numThreads = 1;   // threads need a cross-origin isolated page; one thread is fast enough here

const is = (re) => (ch) => re.test(ch);
const isLetter = is(/^\p{L}$/u), isMark = is(/^\p{M}$/u), isMn = is(/^\p{Mn}$/u);
const isPunct = is(/^\p{P}$/u), isSpaceSep = is(/^\p{Zs}$/u);
const isAsciiLetter = is(/^[A-Za-z]$/);

/** A name that cannot be encoded (the message says why). */
export class NameError extends Error {}

/** How a name becomes token ids: tokenizer.json, FORMAT.md section 1. */
export class Tokenizer {
  constructor(spec) {
    this.spec = spec;
    this.strip = new Set(spec.strip.map((u) => String.fromCodePoint(parseInt(u.slice(2), 16))));
    this.allowed = new Set(spec.allowed);
    this.table = spec.fold_table;
    this.stoi = new Map(spec.vocab.map((c, i) => [c, i]));
  }

  // fold_table, NFKD, combining marks (Mn) dropped, fold_table again
  fold(ch) {
    const table = (s) => [...s].map((c) => this.table[c] ?? c).join("");
    return table([...table(ch).normalize("NFKD")].filter((c) => !isMn(c)).join(""));
  }

  allAllowed(s) { return [...s].every((c) => this.allowed.has(c)); }

  /** {normalized, transliterated, ids} of `name`, or a NameError. */
  encode(name) {
    let chars = [...String(name)];
    let a = 0, b = chars.length;
    while (a < b && this.strip.has(chars[a])) a++;
    while (b > a && this.strip.has(chars[b - 1])) b--;
    chars = chars.slice(a, b);
    if (!chars.length) throw new NameError("empty name: give a name such as 'Dostoevsky'");
    if (chars.length > this.spec.max_raw_length)
      throw new NameError(`name is ${chars.length} characters long; the limit is ${this.spec.max_length}`);
    let out = "", transliterated = false, after = false;
    for (const ch of chars) {
      if (this.allowed.has(ch)) { out += ch; after = false; continue; }
      if (isSpaceSep(ch)) { out += " "; after = false; continue; }
      if (isMark(ch) && after) {
        const t = anyAscii(ch);
        if (this.allAllowed(t)) { out += t; continue; }
      } else if (isMn(ch)) continue;
      const folded = isLetter(ch) || isPunct(ch) ? this.fold(ch) : "";
      if (folded && this.allAllowed(folded)) { out += folded; after = false; continue; }
      if (isLetter(ch)) {
        const t = anyAscii(ch);
        if (t && this.allAllowed(t)) { out += t; transliterated = after = true; continue; }
      }
      const code = "U+" + ch.codePointAt(0).toString(16).toUpperCase().padStart(4, "0");
      throw new NameError(`'${name}' has a character that is not part of a name: ${code} ('${ch}')`);
    }
    out = out.split(" ").filter(Boolean).join(" ");
    if (![...out].some(isAsciiLetter)) throw new NameError(`'${name}' has no letters: give a name such as 'Dostoevsky'`);
    if (out.length > this.spec.max_length)
      throw new NameError(`name is ${out.length} characters long; the limit is ${this.spec.max_length}`);
    const normalized = this.spec.lowercase ? out.toLowerCase() : out;
    const ids = [...normalized].map((c) => this.stoi.get(c) ?? this.spec.unk_id);
    return { normalized, transliterated, ids };
  }
}

const int64 = (values, dims) => new ort.Tensor("int64", BigInt64Array.from(values, (v) => BigInt(v)), dims);

async function fetchJSON(url) {
  const r = await fetch(url);
  if (!r.ok) throw new Error(`${url}: HTTP ${r.status}`);
  return r.json();
}

/** Load the bundle at `url` (a folder URL ending in "/"): a Classifier or a Generator. */
export async function load(url, { fetchBytes } = {}) {
  const base = url.endsWith("/") ? url : url + "/";
  const manifest = await fetchJSON(base + "bundle.json");
  const tokenizer = new Tokenizer(await fetchJSON(base + "tokenizer.json"));
  const table = manifest.files["name_table.json"] ? await fetchJSON(base + "name_table.json") : null;
  const rules = manifest.files["answer.json"] ? await fetchJSON(base + "answer.json") : null;
  const bytes = fetchBytes ? await fetchBytes(base + "model.onnx")
    : new Uint8Array(await (await fetch(base + "model.onnx")).arrayBuffer());
  const session = await ort.InferenceSession.create(bytes, { executionProviders: ["wasm"] });
  const Kind = manifest.graph === "classifier" ? Classifier : Generator;
  return new Kind(manifest, tokenizer, session, table, rules);
}

class Model {
  constructor(manifest, tokenizer, session, table) {
    Object.assign(this, { manifest, tokenizer, session, labels: manifest.labels, name: manifest.model });
    this.queue = Promise.resolve();   // one run at a time per session
  }
  run(feeds) {
    const next = this.queue.then(() => this.session.run(feeds));
    this.queue = next.catch(() => {});
    return next;
  }
}

/** A classifier bundle: language of a surname, sex of a first name. */
export class Classifier extends Model {
  constructor(manifest, tokenizer, session, table, rules) {
    super(manifest, tokenizer, session, table);
    this.table = table;
    this.rules = rules ?? { temperature: 1, scripts: [], letters: null };
    this.index = table ? new Map(table.names.map((k, i) => [k, i])) : new Map();
  }

  /** The network's log-probabilities (arrays of numbers, labels order) for lists of token ids. */
  async logprobs(idLists) {
    const T = Math.max(...idLists.map((ids) => ids.length));
    const flat = idLists.flatMap((ids) => [...ids, ...new Array(T - ids.length).fill(this.tokenizer.spec.pad_id)]);
    const out = await this.run({ ids: int64(flat, [idLists.length, T]), lengths: int64(idLists.map((x) => x.length), [idLists.length]) });
    const data = out.logprobs.data, C = this.labels.length;
    return idLists.map((_, r) => Array.from(data.subarray(r * C, (r + 1) * C)));
  }

  /** The normalized key of the name as typed written with answer.json's respellings (Müller: Mueller),
   *  or undefined (none of those letters, or it does not encode). */
  respelledKey(typed) {
    const R = this.rules.respellings;
    const chars = [...String(typed).normalize("NFC")];
    if (!R || !chars.some((ch) => Object.hasOwn(R, ch))) return undefined;
    try { return this.tokenizer.encode(chars.map((ch) => (Object.hasOwn(R, ch) ? R[ch] : ch)).join("")).normalized; }
    catch (err) { return undefined; }
  }

  /** The whole answer (FORMAT.md section 2, answer.json): calibration, the name table's counts (and
   *  recent counts), the marked letters and the script of the name as typed. */
  combine(normalized, logp, typed = "") {
    const C = this.labels.length, dense = (pairs) => { const n = new Array(C).fill(0); for (const [j, c] of pairs) n[j] = c; return n; };
    // 1. p = softmax(logp / T)
    const T = this.rules.temperature;
    let lp = logp;
    if (T !== 1) {
      const z = logp.map((v) => v / T), top = Math.max(...z);
      const lse = top + Math.log(z.reduce((s, v) => s + Math.exp(v - top), 0));
      lp = z.map((v) => v - lse);
    }
    // P = (n + strength P) / (N + strength), rows without counts unchanged
    const update = (n, strength) => {
      const N = n.reduce((s, x) => s + x, 0);
      if (N > 0) lp = lp.map((v, c) => Math.log(n[c] + strength * Math.exp(v)) - Math.log(N + strength));
      return N;
    };
    // 2-3. the name table (the name's row and its other spelling's, counts added), then its recent counts
    const rows = [...new Set([this.index.get(normalized), this.index.get(this.respelledKey(typed))])].filter((r) => r !== undefined);
    const summed = (counts) => { const n = new Array(C).fill(0); for (const r of rows) for (const [j, c] of counts[r]) n[j] += c; return n; };
    let source = "model", count = 0, recent = null, letters = null, scripts = null, kept = null;
    if (rows.length) {
      count = update(summed(this.table.counts), this.table.alpha);
      source = "data";
      if (this.table.recent) recent = { span: `${this.table.recent.since}-${this.table.recent.until}`, count: update(summed(this.table.recent.counts), this.table.recent.beta) };
    }
    const chars = [...String(typed).normalize("NFC").toLowerCase()];
    // 4. marked letters of the name as typed: a likelihood ratio; A = the labels of L.lines, the others neutral
    const L = this.rules.letters;
    if (L) {
      const found = [...new Set(chars.filter((ch) => Object.hasOwn(L.counts, ch)))].sort();
      if (found.length) {
        const lines = dense(L.lines), total = L.lines.reduce((s, [, n]) => s + n, 0);
        for (const ch of found) {
          const m = dense(L.counts[ch]), q = m.reduce((s, x) => s + x, 0) / total;
          lp = lp.map((v, c) => (lines[c] > 0 ? v + Math.log((m[c] + L.k * q) / (lines[c] + L.k)) - Math.log(q) : v));
        }
        const top = Math.max(...lp), lse = top + Math.log(lp.reduce((s, v) => s + Math.exp(v - top), 0));
        lp = lp.map((v) => v - lse);
        letters = found;
      }
    }
    // 5. scripts: the labels common to every script the name is written in
    const marked = this.rules.scripts.filter((s) => [...String(typed)].some((ch) => {
      const cp = ch.codePointAt(0);
      return s.ranges.some(([lo, hi]) => lo <= cp && cp <= hi);
    }));
    if (marked.length) {
      scripts = marked.map((s) => s.script);
      kept = marked.map((s) => s.labels).reduce((a, b) => a.filter((l) => b.includes(l)));
      if (kept.length) {
        const keep = this.labels.map((l) => kept.includes(l));
        const top = Math.max(...lp.filter((_, c) => keep[c]));
        const lse = top + Math.log(lp.reduce((s, v, c) => s + (keep[c] ? Math.exp(v - top) : 0), 0));
        lp = lp.map((v, c) => (keep[c] ? v - lse : -Infinity));
      } else kept = null;
    }
    return { logprobs: lp, source, count, recent, letters, scripts, kept };
  }

  /** The answer for one name: label, probability, top-k labels, and everything on the way. */
  async predict(name, { top = 3 } = {}) {
    const enc = this.tokenizer.encode(name);
    const [modelLogprobs] = await this.logprobs([enc.ids]);
    return this.answer(name, enc, modelLogprobs, top);
  }

  answer(name, enc, modelLogprobs, top = 3) {
    const fin = this.combine(enc.normalized, modelLogprobs, String(name).trim());
    const order = fin.logprobs.map((lp, i) => i).sort((i, j) => fin.logprobs[j] - fin.logprobs[i]);
    const ranked = order.slice(0, top ?? order.length).map((i) => ({ label: this.labels[i], logprob: fin.logprobs[i], probability: Math.exp(fin.logprobs[i]) }));
    return { name, ...enc, modelLogprobs, ...fin, label: ranked[0].label, probability: ranked[0].probability, top: ranked };
  }

  /** How the belief moves: the network's answer after each character of the normalized name. */
  async beliefs(name) {
    const enc = this.tokenizer.encode(name);
    const prefixes = enc.ids.map((_, i) => enc.ids.slice(0, i + 1));
    const rows = await this.logprobs(prefixes);
    return rows.map((lp, i) => ({ char: enc.normalized[i], ...this.answer(name, { ...enc, ids: prefixes[i], normalized: enc.normalized.slice(0, i + 1) }, lp, 1) }));
  }

  /** Sex of a first name, for a model whose labels are M and F: {sex, probability, ...}. */
  async gender(name) {
    if (!(this.labels.includes("M") && this.labels.includes("F"))) throw new Error(`${this.name} is not a gender model (labels ${this.labels})`);
    const a = await this.predict(name, { top: 2 });
    return { ...a, sex: a.label };
  }
}

/** A generator bundle: one decoding step per run; new names at a temperature, from a prefix. */
export class Generator extends Model {
  zeroState(batch) {
    const s = {};
    for (const [k, { layers, width }] of Object.entries(this.manifest.state)) s[k] = new ort.Tensor("float32", new Float32Array(layers * batch * width), [layers, batch, width]);
    return s;
  }

  /** One step: tokens (ids) with state (null: zeros) and category (0: none, i + 1: label i). */
  async step(tokens, state, category = 0) {
    const B = tokens.length, feeds = { token: int64(tokens, [B]), ...(state ?? this.zeroState(B)) };
    if (this.manifest.inputs.category) feeds.category = int64(Array.isArray(category) ? category : new Array(B).fill(category), [B]);
    const out = await this.run(feeds);
    const V = this.tokenizer.spec.vocab.length, data = out.logprobs.data;
    const next = {};
    for (const k of Object.keys(this.manifest.state)) next[k] = out[`${k}_out`];
    return { logprobs: tokens.map((_, b) => data.subarray(b * V, (b + 1) * V)), state: next };
  }

  /** `n` new names: each reads <bos> and `prefix`, then draws from softmax(logprobs / temperature)
   *  until <eos> or maxLength characters. `category`: a label (conditioned models) or null. */
  async generate({ n = 5, temperature = 0.8, prefix = "", category = null, maxLength = 32, random = Math.random } = {}) {
    const spec = this.tokenizer.spec;
    const start = spec.lowercase ? prefix.toLowerCase() : prefix;
    for (const c of start) if (!this.tokenizer.stoi.has(c) || c.startsWith("<")) throw new NameError(`start prefix '${prefix}' has a character the model cannot generate: '${c}'`);
    if (start && !isAsciiLetter(start[0])) throw new NameError(`start prefix '${prefix}' begins with '${start[0]}': a name begins with a letter`);
    let cat = 0;
    if (category !== null && category !== "") {
      const i = this.labels.indexOf(category);
      if (i < 0) throw new NameError(`unknown category '${category}': one of ${this.labels.join(", ")}`);
      cat = i + 1;
    }
    const banned = new Set([spec.pad_id, spec.bos_id, spec.unk_id]);
    const names = Array.from({ length: n }, () => [...start].map((c) => this.tokenizer.stoi.get(c)));
    const done = new Array(n).fill(false);
    let { state, logprobs } = await this.step(new Array(n).fill(spec.bos_id), null, cat);
    for (let t = 0; t < start.length; t++) ({ state, logprobs } = await this.step(names.map((ids) => ids[t]), state, cat));
    while (done.some((d) => !d)) {
      const tokens = logprobs.map((lp, b) => {
        if (done[b]) return spec.eos_id;
        const id = names[b].length >= maxLength ? spec.eos_id : draw(lp, temperature, banned, random);
        if (id === spec.eos_id) done[b] = true; else names[b].push(id);
        return id;
      });
      if (done.every(Boolean)) break;
      ({ state, logprobs } = await this.step(tokens, state, cat));
    }
    return names.map((ids) => ids.map((i) => spec.vocab[i]).join("").replace(/(^|[ '-])([a-z])/g, (m, p, c) => p + c.toUpperCase()));
  }
}

// One token from softmax(logp / T) without the banned ids (the best shifted to 0 first: a tiny T is greedy).
function draw(logp, temperature, banned, random) {
  let best = -Infinity;
  logp.forEach((v, i) => { if (!banned.has(i) && v > best) best = v; });
  const w = Array.from(logp, (v, i) => (banned.has(i) ? 0 : Math.exp((v - best) / Math.max(temperature, 1e-6))));
  let r = random() * w.reduce((s, x) => s + x, 0);
  for (let i = 0; i < w.length; i++) if ((r -= w[i]) < 0 && w[i] > 0) return i;
  return w.lastIndexOf(Math.max(...w));
}

const argmax = (row) => row.reduce((best, v, i) => (v > row[best] ? i : best), 0);

/** Check a loaded model against its bundle's conformance.json (FORMAT.md section 3): the encoder on
 *  every case and refused input, the log-probabilities (a generator's: teacher-forced, step by step). */
export async function conformance(model, conf) {
  let maxAbsErr = 0, top1Mismatches = 0, rows = 0;
  const encoderMismatches = [];
  for (const c of conf.cases) {
    let e = {};
    try { e = model.tokenizer.encode(c.input); } catch (err) { /* a mismatch below */ }
    if (JSON.stringify([e.normalized, e.transliterated, e.ids]) !== JSON.stringify([c.normalized, c.transliterated, c.ids])) encoderMismatches.push(c.input);
  }
  for (const r of conf.refused) { try { model.tokenizer.encode(r.input); encoderMismatches.push(r.input); } catch (err) { /* refused */ } }
  const compare = (got, want) => {
    got.forEach((v, j) => { maxAbsErr = Math.max(maxAbsErr, Math.abs(v - want[j])); });
    if (argmax(got) !== argmax(want)) top1Mismatches++;
  };
  if (conf.graph === "classifier") {
    for (let i = 0; i < conf.cases.length; i += 64) {
      const part = conf.cases.slice(i, i + 64);
      (await model.logprobs(part.map((c) => c.ids))).forEach((row, r) => {
        const c = part[r];
        compare(row, c.logprobs);
        rows++;
        if (c.final) {   // the answer after section 2 of FORMAT.md; null: a label ruled out (-Infinity)
          const fin = model.combine(c.normalized, Array.from(c.logprobs), String(c.input).trim()).logprobs;
          const want = c.final.logprobs.map((v) => (v === null ? -Infinity : v));
          fin.forEach((v, j) => {
            const d = v === want[j] ? 0 : Math.abs(v - want[j]);
            maxAbsErr = Math.max(maxAbsErr, Number.isNaN(d) ? Infinity : d);
          });
          if (argmax(fin) !== argmax(want) || model.labels[argmax(fin)] !== c.final.label) top1Mismatches++;
          rows++;
        }
      });
    }
  } else {
    const spec = model.tokenizer.spec;
    for (const c of conf.cases) {
      const seq = [spec.bos_id, ...c.ids, spec.eos_id];
      let state = null;
      for (let t = 0; t < seq.length - 1; t++) {
        const out = await model.step([seq[t]], state, c.category ?? 0);
        state = out.state;
        if (t === 0) compare(Array.from(out.logprobs[0]), c.first_step_logprobs);
        maxAbsErr = Math.max(maxAbsErr, Math.abs(out.logprobs[0][seq[t + 1]] - c.next_token_logprobs[t]));
        rows++;
      }
    }
  }
  return { maxAbsErr, top1Mismatches, rows, encoderMismatches };
}
