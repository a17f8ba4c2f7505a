// recsys dashboard: one module, no build step. Pages are hash routes (#/search?q=..., #/item/ID,
// #/user/ID, #/visitor?items=..., #/jobs) drawn from the JSON API of this same server.

const KEY_MODE = document.body.dataset.keyMode; // "all" | "training" | "none" (see dashboard.py)
const KEY_SLOT = "recsys.apiKey"; // sessionStorage: this tab only, never a URL or a cookie
const COLUMN_N = 8;
const main = document.getElementById("main");

// ---- the API -------------------------------------------------------------------------------
class ApiError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

const apiKey = () => sessionStorage.getItem(KEY_SLOT) || "";

async function api(path, body) {
  const headers = { Accept: "application/json" };
  if (apiKey()) headers["X-API-Key"] = apiKey();
  const init = { headers };
  if (body !== undefined) {
    init.method = "POST";
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch (err) {
    throw new ApiError(0, `the server did not answer (${err.message})`);
  }
  const text = await response.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { data = null; }
  if (!response.ok) {
    const message = data?.error?.message || `${response.status} ${response.statusText}`;
    if (response.status === 401) {
      sessionStorage.removeItem(KEY_SLOT);
      updateKeyButton();
    }
    throw new ApiError(response.status, message);
  }
  return data;
}

// Ask for the key in a dialog; resolves true when one was given.
function askForKey(why, error) {
  const dialog = document.getElementById("key-dialog");
  const input = document.getElementById("key-input");
  const errorLine = document.getElementById("key-error");
  document.getElementById("key-why").textContent = why;
  errorLine.hidden = !error;
  errorLine.textContent = error || "";
  input.value = "";
  return new Promise((resolve) => {
    const done = (given) => {
      dialog.removeEventListener("close", onClose);
      document.getElementById("key-cancel").onclick = null;
      resolve(given);
    };
    const onClose = () => {
      if (dialog.returnValue === "ok" && input.value) {
        sessionStorage.setItem(KEY_SLOT, input.value);
        updateKeyButton();
        done(true);
      } else done(false);
    };
    dialog.addEventListener("close", onClose);
    document.getElementById("key-cancel").onclick = () => dialog.close("cancel");
    dialog.returnValue = "";
    dialog.showModal();
    input.focus();
  });
}

// Call the API, asking for the key first when this call needs one, and again when it is refused.
async function keyed(call, { always = KEY_MODE === "all", why = "This server asks for its API key." } = {}) {
  if (always && KEY_MODE !== "none" && !apiKey() && !(await askForKey(why))) {
    throw new ApiError(401, "an API key is needed (the X-API-Key header)");
  }
  try {
    return await call();
  } catch (err) {
    if (err.status === 401 && KEY_MODE !== "none" && (await askForKey(why, err.message))) {
      return call();
    }
    throw err;
  }
}

function updateKeyButton() {
  document.getElementById("forget-key").hidden = !apiKey();
}

// ---- small DOM helpers ----------------------------------------------------------------------
function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") node.className = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

// replaceChildren, skipping the null/false that conditional parts leave
function setChildren(node, ...children) {
  node.replaceChildren(...children.flat(Infinity).filter((c) => c !== null && c !== undefined && c !== false));
}

function showAlert(message) {
  const alert = document.getElementById("alert");
  alert.hidden = !message;
  alert.textContent = message || "";
}

function fail(where, err) {
  // errors are shown where they happened, never swallowed
  where.replaceChildren(el("p", { class: "error", role: "alert" }, err.message || String(err)));
  where.dataset.state = "error";
}

const fmt = {
  int: (n) => (n ?? 0).toLocaleString("en"),
  num: (n, digits = 3) => (n === null || n === undefined ? "—" : Number(n).toFixed(digits)),
  price: (p) => (p === null || p === undefined ? "" : `$${Number(p).toFixed(2)}`),
  bytes: (b) => {
    const units = ["B", "KB", "MB", "GB"];
    let i = 0;
    while (b >= 1024 && i < units.length - 1) { b /= 1024; i += 1; }
    return `${b.toFixed(i ? 1 : 0)} ${units[i]}`;
  },
  age: (s) => {
    if (s < 90) return `${Math.round(s)} s`;
    if (s < 5400) return `${Math.round(s / 60)} min`;
    if (s < 129600) return `${Math.round(s / 3600)} h`;
    return `${Math.round(s / 86400)} d`;
  },
  date: (iso) => (iso ? iso.replace("T", " ").replace(/(\.\d+)?\+00:00$/, " UTC") : "—"),
};

const itemHref = (id) => `#/item/${encodeURIComponent(id)}`;

// Product images come through this server (GET /items/{id}/image): an <img> cannot send the key
// header, so with protect_all they are fetched and shown from blob: URLs.
function productImage(itemId, alt) {
  const img = el("img", { alt: alt || "", loading: "lazy", width: 160, height: 160 });
  const src = `/items/${encodeURIComponent(itemId)}/image`;
  img.addEventListener("error", () => { img.removeAttribute("src"); img.classList.add("missing"); }, { once: true });
  if (KEY_MODE === "all") {
    fetch(src, { headers: { "X-API-Key": apiKey() } })
      .then((r) => (r.ok ? r.blob() : null))
      .then((blob) => { if (blob) img.src = URL.createObjectURL(blob); })
      .catch(() => {});
  } else {
    img.src = src;
  }
  return img;
}

function card(line, extra) {
  return el("li", { class: "card", "data-item": line.item_id },
    productImage(line.item_id, ""),
    el("div", { class: "body" },
      el("a", { class: "title", href: itemHref(line.item_id) }, line.title || line.item_id),
      el("span", { class: "meta" }, [fmt.price(line.price), line.category].filter(Boolean).join(" · ") || line.item_id),
      el("span", { class: "meta" }, `score ${fmt.num(line.score)}`),
      extra));
}

function because(line) {
  return line.because && line.because.length
    ? el("span", { class: "meta because" }, `because you rated ${line.because.slice(0, 2).join(", ")}`)
    : null;
}

function recommendationColumn(title, recs) {
  const list = el("ol", {},
    recs.items.map((line) => el("li", { "data-item": line.item_id },
      el("a", { href: itemHref(line.item_id) }, line.title || line.item_id),
      el("span", { class: "meta" },
        `score ${fmt.num(line.score)}`,
        line.model && line.model !== recs.model ? ` · from ${line.model}` : "",
        line.price !== null && line.price !== undefined ? ` · ${fmt.price(line.price)}` : ""),
      because(line))));
  return [
    el("h3", {}, title, " ", el("span", { class: "tag" }, recs.model_version || "")),
    recs.items.length ? list : el("p", { class: "muted" }, "nothing to show"),
    recs.message ? el("p", { class: "muted" }, recs.message) : null,
  ];
}

// A column per model, each filled when its answer comes (one slow model does not hold the rest).
function modelColumns(models, fetchOne) {
  const wrap = el("div", { class: "columns" });
  const pending = models.map(([name, title]) => {
    const column = el("section", { class: "column", "data-model": name, "aria-busy": "true" },
      el("h3", {}, title), el("p", { class: "muted" }, "loading…"));
    wrap.append(column);
    return fetchOne(name)
      .then((recs) => { setChildren(column, recommendationColumn(title, recs)); column.dataset.state = "done"; })
      .catch((err) => { column.replaceChildren(el("h3", {}, title), el("p", { class: "error" }, err.message)); column.dataset.state = "error"; })
      .finally(() => column.removeAttribute("aria-busy"));
  });
  return { wrap, done: Promise.all(pending) };
}

// The recommenders this server has a live version of, and whether ss is there.
async function trainedModels() {
  const status = await api("/status");
  const kinds = Object.entries(status.models || {});
  return {
    status,
    recommenders: kinds.filter(([k, v]) => v && k !== "ss").map(([k]) => k),
    semantic: Boolean(status.models?.ss),
  };
}

// uPlot (51 KB) is loaded by the overview only: the other pages start their calls sooner.
let chartLibrary = null;
function loadCharts() {
  chartLibrary ||= new Promise((resolve) => {
    const version = new URL(import.meta.url).search; // the assets' digest, as the page links them
    const script = el("script", { src: `/ui/vendor/uplot.min.js${version}` });
    script.addEventListener("load", () => resolve(true));
    script.addEventListener("error", () => resolve(false)); // drawChart says "charts unavailable"
    document.head.append(script);
  });
  return chartLibrary;
}

// Chart boxes are laid out first and drawn after, so each canvas takes its box's final width.
function chartBox(container, title) {
  const box = el("figure", { class: "chart" }, el("figcaption", {}, el("h3", {}, title)));
  container.append(box);
  return box;
}

function drawChart(box, opts, data) {
  if (!window.uPlot || !data[0].length) {
    box.append(el("p", { class: "muted" }, data[0].length ? "charts unavailable" : "no data yet"));
    return;
  }
  const width = Math.max(240, box.clientWidth - 20);
  new window.uPlot({ width, height: 220, legend: { show: false }, ...opts }, data, box);
}

// ---- pages ---------------------------------------------------------------------------------
async function overviewPage() {
  main.append(el("h1", {}, "Overview"));
  const [status, evaluations, stats] = await Promise.all([
    api("/status"), api("/evaluations/latest"), api("/stats"), loadCharts()]);
  const store = status.store;
  main.append(el("section", { "aria-label": "store" }, el("div", { class: "stats" },
    [["products", store.products], ["ratings", store.ratings], ["users", store.users], ["rated items", store.rated_items]]
      .map(([label, value]) => el("div", { class: "stat" }, el("b", {}, fmt.int(value)), el("span", {}, label))),
    el("div", { class: "stat" }, el("b", {}, fmt.date(store.last_ingest_at)), el("span", {}, "last ingest")))));

  // a model's metrics: those its manifest holds (train --evaluate), else the last evaluate report's
  const report = evaluations.evaluation;
  const metricsOf = (kind, info) => {
    const own = Object.entries(info.metrics || {}).map(([m, v]) => `${m} ${typeof v === "number" ? fmt.num(v) : v}`);
    const evaluated = report?.models?.[kind];
    if (!own.length && evaluated) own.push(`NDCG@${report.k} ${fmt.num(evaluated.ndcg)}`, `recall@${report.k} ${fmt.num(evaluated.recall)}`);
    return own.join(", ") || "—";
  };
  main.append(el("h2", {}, "Models"));
  const rows = Object.entries(status.models || {}).map(([kind, info]) => el("tr", { "data-kind": kind },
    el("td", {}, kind),
    ...(info
      ? [el("td", {}, info.version), el("td", { class: "num" }, fmt.age(info.age_seconds)),
         el("td", { class: "num" }, fmt.bytes(info.size_bytes)),
         el("td", { class: "num" }, info.training_seconds != null ? `${fmt.num(info.training_seconds, 1)} s` : "—"),
         el("td", {}, metricsOf(kind, info))]
      : [el("td", { colspan: 5, class: "muted" }, status.refused?.[kind] ? `refused: ${status.refused[kind]}` : "not trained")])));
  main.append(el("div", { class: "table-wrap" }, el("table", {},
    el("thead", {}, el("tr", {}, ["kind", "version", "age", "size", "training", "metrics"].map((h) => el("th", {}, h)))),
    el("tbody", {}, rows))));

  const evalSection = el("section", { "aria-label": "evaluation" }, el("h2", {}, "Evaluation"));
  const charts = el("div", { class: "charts" });
  main.append(evalSection, el("h2", {}, "The data"), charts);
  const ndcgBox = evaluations.evaluation ? chartBox(charts, `NDCG@${evaluations.evaluation.k} per model`) : null;
  const tailBox = chartBox(charts, "Ratings per item by popularity rank (log–log)");
  const monthBox = chartBox(charts, "Ratings per month");
  const valueBox = chartBox(charts, "Rating values");
  renderEvaluation(evalSection, evaluations, ndcgBox);
  drawChart(tailBox, {
    scales: { x: { distr: 3, time: false }, y: { distr: 3 } },
    axes: [{ label: "rank" }, { label: "ratings" }],
    series: [{ label: "rank" }, { label: "ratings", stroke: "#2456c7", width: 2 }],
  }, [stats.long_tail.x, stats.long_tail.y]);
  drawChart(monthBox, {
    series: [{}, { label: "ratings", stroke: "#1f7a3a", fill: "rgba(31,122,58,0.12)", width: 2 }],
    axes: [{}, { label: "ratings" }],
  }, [stats.ratings_per_month.x, stats.ratings_per_month.y]);
  drawChart(valueBox, {
    scales: { x: { time: false } },
    series: [{ label: "rating" }, { label: "ratings", stroke: "#8a4fc7", fill: "rgba(138,79,199,0.2)", paths: window.uPlot?.paths.bars({ size: [0.6] }) }],
    axes: [{ label: "rating" }, { label: "ratings" }],
  }, [stats.rating_histogram.x, stats.rating_histogram.y]);
}

function renderEvaluation(section, evaluations, ndcgBox) {
  const report = evaluations.evaluation;
  if (!report) {
    section.append(el("p", { class: "muted" }, "No evaluation yet: run `recsys evaluate` (all models side by side)."));
  } else {
    const k = report.k;
    section.append(el("p", { class: "muted" },
      `${report.split_description}; ${fmt.int(report.evaluated_users)} users evaluated; ${fmt.date(evaluations.evaluated_at)}`));
    const metrics = ["ndcg", "recall", "precision", "map", "coverage"];
    section.append(el("div", { class: "table-wrap" }, el("table", { id: "evaluation" },
      el("thead", {}, el("tr", {}, el("th", {}, "model"), metrics.map((m) => el("th", { class: "num" }, `${m.toUpperCase()}@${k}`)), el("th", { class: "num" }, "fit"))),
      el("tbody", {}, Object.entries(report.models).map(([name, m]) => el("tr", {},
        el("td", {}, name === report.best ? `${name} (best)` : name),
        metrics.map((key) => el("td", { class: "num" }, fmt.num(m[key]))),
        el("td", { class: "num" }, `${fmt.num(m.fit_seconds, 1)} s`)))))));
    const names = Object.keys(report.models);
    drawChart(ndcgBox, {
      scales: { x: { time: false, range: [-0.5, names.length - 0.5] }, y: { range: [0, null] } },
      axes: [{ values: (u, ticks) => ticks.map((t) => names[t] ?? ""), splits: () => names.map((_, i) => i) }, { label: `NDCG@${k}` }],
      series: [{}, { label: "NDCG", stroke: "#2456c7", fill: "rgba(36,86,199,0.3)", paths: window.uPlot?.paths.bars({ size: [0.6] }) }],
    }, [names.map((_, i) => i), names.map((n) => report.models[n].ndcg)]);
  }
  const tuning = evaluations.tuning;
  if (tuning && tuning.models) {
    section.append(el("h3", {}, `Tuning (${fmt.date(tuning.created_at)})`), el("div", { class: "table-wrap" }, el("table", { id: "tuning" },
      el("thead", {}, el("tr", {}, ["model", "validation NDCG", "parameters"].map((h) => el("th", {}, h)))),
      el("tbody", {}, Object.entries(tuning.models).map(([name, entry]) => el("tr", {},
        el("td", {}, name === tuning.best ? `${name} (best)` : name),
        el("td", { class: "num" }, fmt.num(entry.validation_ndcg)),
        el("td", {}, JSON.stringify(entry.params || {}))))))));
  }
}

async function searchPage(params) {
  main.append(el("h1", {}, "Search"));
  const query = params.get("q") || "";
  const mode = params.get("mode") || "";
  const category = params.get("category") || "";
  const input = el("input", { type: "search", name: "q", value: query, placeholder: "e.g. wireless earbuds", "aria-label": "query", required: true });
  const modeSelect = el("select", { name: "mode", "aria-label": "mode" },
    ["", "semantic", "keyword", "hybrid"].map((m) => el("option", { value: m, selected: m === mode }, m || "default mode")));
  const categorySelect = el("select", { name: "category", "aria-label": "category" }, el("option", { value: "" }, "any category"));
  if (category) categorySelect.append(el("option", { value: category, selected: true }, category));
  const form = el("form", { class: "row", role: "search", onsubmit: (e) => {
    e.preventDefault();
    const next = new URLSearchParams({ q: input.value.trim() });
    if (modeSelect.value) next.set("mode", modeSelect.value);
    if (categorySelect.value) next.set("category", categorySelect.value);
    location.hash = `#/search?${next}`;
  } }, el("label", {}, "Query", input), el("label", {}, "Mode", modeSelect), el("label", {}, "Category", categorySelect),
  el("button", { class: "primary", type: "submit" }, "Search"));
  const results = el("section", { id: "results", "aria-live": "polite" });
  main.append(form, results);
  // the category choices come after the results: they must not delay them
  const fillCategories = () => api("/categories?limit=200").then((list) => {
    for (const c of list) if (c.name !== category) categorySelect.append(el("option", { value: c.name }, `${c.name} (${fmt.int(c.products)})`));
  }).catch((err) => showAlert(`categories: ${err.message}`));
  if (!query) { input.focus(); await fillCategories(); return; }
  results.append(el("p", { class: "muted" }, "searching…"));
  const body = { query, top_k: 24 };
  if (mode) body.mode = mode;
  if (category) body.category = category;
  const hits = await api("/search", body);
  results.replaceChildren(
    el("p", { class: "muted" }, `${hits.hits.length} results · ${hits.mode} · index ${hits.model_version || "none"}`, hits.message ? ` · ${hits.message}` : ""),
    el("ul", { class: "cards" }, hits.hits.map((hit) => card(hit))));
  results.dataset.state = "done";
  await fillCategories();
}

async function itemPage(itemId) {
  const [product, models] = await Promise.all([api(`/items/${encodeURIComponent(itemId)}`), trainedModels()]);
  main.append(el("h1", {}, product.title || product.item_id));
  const fields = [
    ["item id", product.item_id], ["price", fmt.price(product.price)], ["category", product.main_category],
    ["store", product.store], ["average rating", product.average_rating != null ? `${product.average_rating} (${fmt.int(product.rating_count)} in the catalog)` : null],
    ["ratings here", fmt.int(product.ratings)], ["categories", product.categories.join(" › ")],
    ...Object.entries(product.details || {}).slice(0, 12).map(([k, v]) => [k, typeof v === "object" ? JSON.stringify(v) : v]),
  ].filter(([, v]) => v !== null && v !== undefined && v !== "");
  main.append(el("section", { class: "item", "aria-label": "product" },
    productImage(product.item_id, product.title || ""),
    el("div", {},
      product.in_catalog ? null : el("p", { class: "muted" }, "Known only from ratings: not in the catalog."),
      el("dl", {}, fields.map(([k, v]) => [el("dt", {}, k), el("dd", {}, String(v))])),
      product.features.length ? [el("h3", {}, "Features"), el("ul", {}, product.features.slice(0, 10).map((f) => el("li", {}, String(f))))] : null,
      product.description.length ? [el("h3", {}, "Description"), el("p", {}, product.description.map(String).join(" ").slice(0, 800))] : null)));
  main.append(el("h2", {}, "Similar items"));
  const columns = models.recommenders.map((kind) => [kind, kind]);
  if (models.semantic) columns.push(["ss", "ss (semantically similar)"]);
  if (!columns.length) {
    main.append(el("p", { class: "muted" }, "No model is trained yet: start one on the Jobs page."));
      return;
  }
  const { wrap, done } = modelColumns(columns, (kind) => kind === "ss"
    ? api("/search/similar", { item_id: itemId, n: COLUMN_N })
    : api("/recommendations/similar", { item_id: itemId, n: COLUMN_N, model: kind }));
  main.append(wrap);
  await done;
}

function userForm(current) {
  const input = el("input", { type: "text", name: "user", value: current || "", placeholder: "a user id", "aria-label": "user id", required: true });
  return el("form", { class: "row", onsubmit: (e) => { e.preventDefault(); location.hash = `#/user/${encodeURIComponent(input.value.trim())}`; } },
    el("label", {}, "User", input), el("button", { class: "primary", type: "submit" }, "Show"));
}

async function userPage(userId) {
  main.append(el("h1", {}, userId ? `User ${userId}` : "Users"), userForm(userId));
  if (!userId) {
    main.append(el("p", { class: "muted" }, "Enter a user id to see their ratings beside each model's picks, or try the ",
      el("a", { href: "#/visitor" }, "new-visitor mode"), "."));
    return;
  }
  const [history, models] = await Promise.all([
    api(`/users/${encodeURIComponent(userId)}/ratings?limit=50`), trainedModels()]);
  const historyBox = el("section", { class: "column", "aria-label": "history" },
    el("h3", {}, `History (${fmt.int(history.total)} ratings, newest first)`),
    el("ol", { class: "history" }, history.ratings.map((r) => el("li", { "data-item": r.item_id },
      el("span", { class: "tag" }, `${r.rating}★`),
      el("span", {}, el("a", { href: itemHref(r.item_id) }, r.title || r.item_id),
        el("span", { class: "meta" }, ` ${r.rated_at.slice(0, 10)}`))))),
    history.total > history.ratings.length ? el("p", { class: "muted" }, `and ${fmt.int(history.total - history.ratings.length)} older`) : null);
  const picks = el("section", { "aria-label": "picks" }, el("h2", {}, "Picks"));
  main.append(el("div", { class: "split" }, historyBox, picks));
  if (!models.recommenders.length) {
    picks.append(el("p", { class: "muted" }, "No model is trained yet."));
      return;
  }
  const { wrap, done } = modelColumns(models.recommenders.map((k) => [k, k]),
    (kind) => api("/recommendations/user", { user_id: userId, n: COLUMN_N, model: kind, explain: true }));
  picks.append(wrap);
  await done;
}

// A new visitor: picks from items chosen on the page (fold-in), kept in the URL (#/visitor?items=a,b).
async function visitorPage(params) {
  const chosen = (params.get("items") || "").split(",").filter(Boolean);
  const setChosen = (items) => { location.hash = items.length ? `#/visitor?items=${items.map(encodeURIComponent).join(",")}` : "#/visitor"; };
  main.append(el("h1", {}, "New visitor"),
    el("p", { class: "muted" }, "Pick a few products a visitor liked; each model folds them in and recommends."));
  const input = el("input", { type: "search", placeholder: "find products to add", "aria-label": "find products" });
  const found = el("ul", { class: "cards", id: "found" });
  const form = el("form", { class: "row", role: "search", onsubmit: async (e) => {
    e.preventDefault();
    if (!input.value.trim()) return;
    found.replaceChildren(el("li", { class: "muted" }, "searching…"));
    try {
      const hits = await api("/search", { query: input.value.trim(), top_k: 8 });
      found.replaceChildren(...hits.hits.map((hit) => card(hit,
        el("button", { type: "button", disabled: chosen.includes(hit.item_id), onclick: () => setChosen([...chosen, hit.item_id]) },
          chosen.includes(hit.item_id) ? "added" : "add"))));
    } catch (err) { fail(found, err); }
  } }, el("label", {}, "Products", input), el("button", { type: "submit" }, "Find"));
  const chosenList = el("ul", { id: "chosen" }, chosen.map((id) => el("li", {},
    el("a", { href: itemHref(id) }, id), " ",
    el("button", { type: "button", "aria-label": `remove ${id}`, onclick: () => setChosen(chosen.filter((c) => c !== id)) }, "remove"))));
  main.append(form, found, el("h2", {}, `Chosen (${chosen.length})`), chosenList);
  if (!chosen.length) { input.focus(); return; }
  const models = await trainedModels();
  main.append(el("h2", {}, "Picks"));
  const { wrap, done } = modelColumns(models.recommenders.map((k) => [k, k]),
    (kind) => api("/recommendations/user", { user_id: "dashboard-visitor", item_ids: chosen, n: COLUMN_N, model: kind, explain: true }));
  main.append(wrap);
  await done;
}

let polling = null;

async function jobsPage() {
  main.append(el("h1", {}, "Training jobs"));
  const why = "Training needs this server's API key.";
  const needsKey = KEY_MODE !== "none";
  const { status } = await trainedModels();
  const kinds = Object.keys(status.models || {});
  const kindSelect = el("select", { name: "model_type", "aria-label": "model" }, kinds.map((k) => el("option", { value: k }, k)));
  const force = el("input", { type: "checkbox", name: "force" });
  const current = el("section", { id: "job", "aria-live": "polite" });
  const history = el("section", { id: "job-history" });
  const form = el("form", { class: "row", onsubmit: async (e) => {
    e.preventDefault();
    showAlert("");
    try {
      const job = await keyed(() => api("/training", { model_type: kindSelect.value, force_retrain: force.checked }), { always: needsKey, why });
      watchJob(job, current, history);
    } catch (err) { fail(current, err); }
  } }, el("label", {}, "Model", kindSelect), el("label", { class: "check" }, el("span", {}, "force retrain"), force),
  el("button", { class: "primary", type: "submit", id: "start-training" }, "Start training"));
  main.append(form, current, el("h2", {}, "History"), history);
  await showHistory(history, needsKey, why);
}

async function showHistory(box, needsKey = KEY_MODE !== "none", why = "Training needs this server's API key.") {
  try {
    const list = await keyed(() => api("/training?limit=20"), { always: needsKey, why });
    box.replaceChildren(list.jobs.length ? el("div", { class: "table-wrap" }, el("table", {},
      el("thead", {}, el("tr", {}, ["job", "model", "state", "created", "seconds", "version / error"].map((h) => el("th", {}, h)))),
      el("tbody", {}, list.jobs.map((job) => el("tr", { "data-job": job.id },
        el("td", {}, job.id.slice(0, 8)), el("td", {}, job.kind),
        el("td", { class: `state-${job.state}` }, job.state), el("td", {}, fmt.date(job.created_at)),
        el("td", { class: "num" }, job.seconds != null ? fmt.num(job.seconds, 1) : "—"),
        el("td", {}, job.error ? job.error.message : (job.version || "")))))))
      : el("p", { class: "muted" }, "No training jobs yet."));
  } catch (err) { fail(box, err); }
}

function watchJob(job, box, history) {
  if (polling) clearTimeout(polling);
  const render = (j) => {
    const progress = j.progress ? el("progress", { class: "progress", max: j.progress.total, value: j.progress.done }) : null;
    setChildren(box, el("h2", {}, `Job ${j.id.slice(0, 8)}: ${j.kind}`),
      el("p", { "data-job-state": j.state }, el("span", { class: `state-${j.state}` }, j.state),
        j.progress ? ` · step ${j.progress.done} of ${j.progress.total}` : "",
        j.seconds != null ? ` · ${fmt.num(j.seconds, 1)} s` : ""),
      progress,
      j.version ? el("p", {}, j.skipped ? `nothing changed: version ${j.version} stays` : `published version ${j.version}`) : null,
      j.message ? el("p", { class: "muted" }, j.message) : null,
      j.error ? el("p", { class: "error", role: "alert" }, `${j.error.code}: ${j.error.message}`) : null);
  };
  render(job);
  const poll = async () => {
    if (!location.hash.startsWith("#/jobs")) return; // left the page
    try {
      const j = await keyed(() => api(`/training/${job.id}`), { always: KEY_MODE !== "none" });
      render(j);
      if (j.state === "queued" || j.state === "running") polling = setTimeout(poll, 700);
      else await showHistory(history);
    } catch (err) { fail(box, err); }
  };
  polling = setTimeout(poll, 500);
}

// ---- the router ------------------------------------------------------------------------------
const routes = [
  [/^#?\/?$/, "overview", () => overviewPage()],
  [/^#\/search$/, "search", (m, params) => searchPage(params)],
  [/^#\/item\/(.+)$/, null, (m) => itemPage(decodeURIComponent(m[1]))],
  [/^#\/user(?:\/(.*))?$/, "user", (m) => userPage(m[1] ? decodeURIComponent(m[1]) : "")],
  [/^#\/visitor$/, "visitor", (m, params) => visitorPage(params)],
  [/^#\/jobs$/, "jobs", () => jobsPage()],
];

let navigation = 0;

async function render() {
  const current = ++navigation;
  const [path, query] = (location.hash || "#/").split("?");
  const params = new URLSearchParams(query || "");
  showAlert("");
  main.replaceChildren();
  delete main.dataset.state;
  const route = routes.find(([pattern]) => pattern.test(path));
  for (const link of document.querySelectorAll("[data-nav]")) {
    if (route && link.dataset.nav === route[1]) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  if (!route) {
    main.append(el("h1", {}, "Not found"), el("p", {}, el("a", { href: "#/" }, "Back to the overview")));
    return;
  }
  document.title = `${route[1] || "item"} · recsys`;
  try {
    await keyed(() => {
      main.replaceChildren(); // a retry with the key starts the page afresh
      return route[2](path.match(route[0]), params);
    });
    if (current === navigation) main.dataset.state = "done"; // what tests and benchmarks wait for
  } catch (err) {
    if (current !== navigation) return; // a newer page is showing
    main.dataset.state = "error";
    main.append(el("p", { class: "error", role: "alert" }, err.message));
  }
  // move focus to the new page for keyboard and screen-reader users, unless a field took it
  if (current === navigation && document.activeElement === document.body) main.focus({ preventScroll: true });
}

document.getElementById("forget-key").addEventListener("click", () => {
  sessionStorage.removeItem(KEY_SLOT);
  updateKeyButton();
  render();
});
window.addEventListener("hashchange", render);
updateKeyButton();
render();
