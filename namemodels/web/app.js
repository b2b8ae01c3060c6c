// The page: classify the name on every keystroke, show sex and the belief per character, generate names.
// Results are also in the DOM as data attributes at full precision (the browser test reads them).
import { load } from "./namemodels.js";

const $ = (id) => document.getElementById(id);
const models = {};
let seq = 0;

function bars(el, top) {
  el.replaceChildren(...top.map((t) => {
    const row = document.createElement("div");
    row.className = "bar";
    row.innerHTML = `<span></span><div><div class="fill"></div></div><span class="p"></span>`;
    row.children[0].textContent = t.label;
    row.children[1].firstChild.style.width = `${(100 * t.probability).toFixed(1)}%`;
    row.children[2].textContent = `${(100 * t.probability).toFixed(1)}%`;
    return row;
  }));
}

function show(el, a) {   // the answer's numbers, for programs (full precision: JSON numbers round-trip)
  Object.assign(el.dataset, { name: a.name, label: a.label, logprobs: JSON.stringify(a.logprobs),
    modelLogprobs: JSON.stringify(a.modelLogprobs), ids: JSON.stringify(a.ids), normalized: a.normalized,
    source: a.source, transliterated: String(a.transliterated), error: "",
    count: String(a.count), recent: JSON.stringify(a.recent), letters: JSON.stringify(a.letters), kept: JSON.stringify(a.kept) });
}

let beliefTimer;

async function update(event) {
  const mine = ++seq, name = $("name").value;
  const t0 = event ? event.timeStamp : performance.now();
  const main = models.surnames ?? Object.values(models).find((m) => m.graph === "classifier" && m.name !== "gender");
  const gender = models.gender;
  try {
    const [a, g] = await Promise.all([main?.predict(name, { top: null }), gender?.predict(name, { top: 2 })]);
    if (mine !== seq) return;   // a later keystroke has its own update
    if (a) {
      $("out-title").textContent = `${a.label} (${a.source === "data" ? `from the data, ${a.count} ${main.table.unit ?? "names"}` : "the network"}` +
        `${a.transliterated ? `; read as "${a.normalized}"` : ""}${a.letters ? `; letters ${a.letters.join("")}` : ""}` +
        `${a.kept ? `; ${a.scripts.join("+")} script: ${a.kept.join(", ")} only` : ""})`;
      bars($("bars"), a.top.slice(0, 6));
      show($("out"), a);
    }
    if (g) { bars($("sex-bars"), g.top.map((t) => ({ ...t, label: { M: "male", F: "female" }[t.label] ?? t.label }))); show($("sex"), g); }
    $("status").textContent = "";
    document.body.dataset.state = "ok";
    clearTimeout(beliefTimer);   // the belief runs every prefix of the name: once typing pauses
    if (main) beliefTimer = setTimeout(() => belief(main, name, mine), 150);
  } catch (e) {
    if (mine !== seq) return;
    $("status").textContent = e.message;
    document.body.dataset.state = "error";
    for (const id of ["out", "sex"]) Object.assign($(id).dataset, { name, label: "", logprobs: "", error: e.message });
  }
  const ms = performance.now() - t0;
  Object.assign(document.body.dataset, { updated: name, updateMs: String(ms), updates: String(Number(document.body.dataset.updates ?? 0) + 1) });
  if (!document.body.dataset.firstPredictionMs) document.body.dataset.firstPredictionMs = String(performance.now());
}

async function belief(model, name, mine) {
  const rows = await model.beliefs(name).catch(() => null);
  if (!rows || mine !== seq) return;
  $("belief-row").replaceChildren(...rows.map((b) => {
    const cell = document.createElement("div");
    cell.className = "cell";
    cell.style.background = `rgba(74, 123, 208, ${b.probability.toFixed(2)})`;
    cell.innerHTML = `<b></b><span></span>`;
    cell.firstChild.textContent = b.char === " " ? "\u00a0" : b.char;
    cell.lastChild.textContent = `${b.label.slice(0, 6)} ${Math.round(100 * b.probability)}%`;
    return cell;
  }));
  $("belief-row").dataset.name = name;
}

function categories() {
  const m = models[$("gen-model").value];
  const names = m?.manifest.inputs.category ? ["", ...m.labels] : [""];
  $("gen-category").replaceChildren(...names.map((l) => new Option(l || "any", l)));
}

async function generate() {
  const m = models[$("gen-model").value];
  try {
    const names = await m.generate({ n: 8, temperature: Number($("gen-temperature").value), prefix: $("gen-prefix").value,
      category: $("gen-category").value || null });
    $("gen-out").replaceChildren(...names.map((n) => Object.assign(document.createElement("li"), { textContent: n })));
    $("gen-out").dataset.names = JSON.stringify(names);
  } catch (e) {
    $("gen-out").replaceChildren(Object.assign(document.createElement("li"), { textContent: e.message }));
  }
}

async function main() {
  const site = await (await fetch("models.json")).json();
  await Promise.all(site.models.map(async (m) => { models[m.name] = Object.assign(await load(m.path), { graph: m.graph }); }));
  window.namemodels = { models, load };
  const gens = site.models.filter((m) => m.graph === "step");
  if (gens.length) {
    $("gen-model").replaceChildren(...gens.map((m) => new Option(m.name, m.name)));
    categories();
    $("gen-model").addEventListener("change", categories);
    $("gen-temperature").addEventListener("input", () => { $("gen-t").textContent = $("gen-temperature").value; });
    $("gen-go").addEventListener("click", generate);
    generate();
  } else $("generate").hidden = true;
  if (!models.gender) $("sex").hidden = true;
  $("name").addEventListener("input", update);
  await update();
}

main().catch((e) => { $("status").textContent = `cannot start: ${e.message}`; document.body.dataset.state = "error"; });
