// weeyuga leaderboard: data.js sets window.WEEYUGA_LEADERBOARD = {columns, rows, dictionaries, runs_href}.
// A column named in `dictionaries` holds, in each row, an index into that list of its values.
// Vanilla JS and inline SVG; every value from a contribution goes in as text (escaped), never as HTML.
// Rows the catalogue marked as outliers (column `outlier`: the reason) are hidden until asked for,
// and never count in the chart's medians.
"use strict";
(function () {
  const data = window.WEEYUGA_LEADERBOARD || { columns: [], rows: [], runs_href: "." };
  const col = Object.fromEntries(data.columns.map((name, i) => [name, i]));
  const dictionaries = data.dictionaries || {};
  const decoders = data.columns.map((name) => dictionaries[name]);
  const PAGE = 200;  // rows drawn at a time: the table's layout, not the data, is what costs
  const FILTERS = [
    ["hardware_class", "Hardware class"], ["gpu_name", "GPU"], ["model", "Model"],
    ["quant", "Quant"], ["runtime", "Runtime"], ["axes", "Axis"],
  ];
  // [key, title, numeric, higher is better]
  const COLUMNS = [
    ["hardware_class", "Hardware class"], ["gpu_name", "GPU"], ["model", "Model"], ["quant", "Quant"],
    ["runtime", "Runtime"], ["axes", "Axes"],
    ["decode_tps", "Decode tok/s", true, true], ["ttft_ms", "TTFT ms", true, false],
    ["quality_score", "Quality score", true, true], ["quality_pass_rate", "Quality pass rate (95% CI)", true, true],
    ["agent_pass_rate", "Agent pass rate", true, true],
    ["device_tag", "Device"], ["started_at_utc", "Date"], ["run_path", "Run"],
  ];
  const state = { filters: {}, sort: { key: "decode_tps", dir: -1 }, shown: PAGE, view: [], showOutliers: false };
  const get = (row, key) => { const i = col[key], values = decoders[i]; return values ? values[row[i]] : row[i]; };
  const outliers = data.rows.reduce((n, row) => n + (get(row, "outlier") ? 1 : 0), 0);

  const esc = (v) => String(v).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
  const fmt = (v, digits) => (v === null || v === undefined ? "" : Number(v).toFixed(digits));

  function buildFilters() {
    const box = document.getElementById("filters");
    for (const [key, title] of FILTERS) {
      const values = new Set();  // a dictionary's values are exactly the column's: no scan of the rows
      for (const v of dictionaries[key] || data.rows.map((row) => get(row, key))) {
        if (Array.isArray(v)) v.forEach((x) => values.add(x)); else if (v !== null && v !== undefined) values.add(v);
      }
      const options = [...values].sort().map((v) => `<option value="${esc(v)}">${esc(v)}</option>`).join("");
      const label = document.createElement("label");
      label.innerHTML = `${esc(title)}<select id="filter-${key}" data-key="${key}"><option value="">all</option>${options}</select>`;
      label.querySelector("select").addEventListener("change", (e) => {
        state.filters[key] = e.target.value; state.shown = PAGE; update();
      });
      box.appendChild(label);
    }
    const toggle = document.createElement("label");
    toggle.className = "toggle";
    toggle.innerHTML = `<input type="checkbox" id="show-outliers"> show outliers (${outliers})`;
    toggle.title = "runs whose decode rate is far from comparable runs' (same hardware class, model, quant, runtime and knobs)";
    toggle.querySelector("input").addEventListener("change", (e) => {
      state.showOutliers = e.target.checked; state.shown = PAGE; update();
    });
    box.appendChild(toggle);
  }

  function buildHead() {
    const head = document.getElementById("head");
    head.innerHTML = COLUMNS.map(([key, title, numeric]) =>
      `<th data-sort="${key}" class="${numeric ? "num" : ""}" title="sort by ${esc(title)}">${esc(title)}</th>`).join("");
    head.addEventListener("click", (e) => {
      const th = e.target.closest("th");
      if (!th) return;
      const key = th.dataset.sort, spec = COLUMNS.find((c) => c[0] === key);
      const first = spec[2] && spec[3] ? -1 : 1;  // best first for a metric, A to Z for a label
      state.sort = { key, dir: state.sort.key === key ? -state.sort.dir : first };
      update();
    });
  }

  // The rows' test for the current filters, built once per update: a dictionary column is tested
  // by its codes, so 100,000 rows are compared as numbers.
  function matcher() {
    const tests = state.showOutliers ? [] : [(row) => !get(row, "outlier")];
    for (const [key, want] of Object.entries(state.filters)) {
      if (!want) continue;
      const i = col[key], values = decoders[i];
      const wanted = (v) => (Array.isArray(v) ? v.includes(want) : v === want);
      if (values) {
        const codes = new Set(values.flatMap((v, code) => (wanted(v) ? [code] : [])));
        tests.push((row) => codes.has(row[i]));
      } else {
        tests.push((row) => wanted(row[i]));
      }
    }
    return (row) => tests.every((test) => test(row));
  }

  function compare(a, b) {
    const { key, dir } = state.sort;
    const x = get(a, key), y = get(b, key);
    if (x === null || x === undefined) return (y === null || y === undefined) ? 0 : 1;  // empty cells last
    if (y === null || y === undefined) return -1;
    const sx = Array.isArray(x) ? x.join(",") : x, sy = Array.isArray(y) ? y.join(",") : y;
    return (sx < sy ? -1 : sx > sy ? 1 : 0) * dir;
  }

  function cell(row, [key, , numeric]) {
    const v = get(row, key);
    if (key === "run_path") {
      const status = get(row, "completeness") !== "complete" ? ` <span class="${esc(get(row, "completeness"))}">${esc(get(row, "completeness"))}</span>` : "";
      const mark = get(row, "outlier") ? ` <span class="outlier" title="${esc(get(row, "outlier"))}">outlier</span>` : "";
      return `<td><a href="${esc(data.runs_href + "/" + v + "/run.md")}">${esc(String(v).split("/run-").pop().slice(0, 8))}</a>${status}${mark}</td>`;
    }
    if (key === "axes") return `<td>${(v || []).map((a) => `<span class="axis">${esc(a)}</span>`).join("")}</td>`;
    if (key === "runtime") return `<td title="${esc(get(row, "engine_version") || "")} ${esc(get(row, "backend") || "")}">${esc(v || "")}</td>`;
    if (key === "started_at_utc") return `<td>${esc(String(v || "").slice(0, 10))}</td>`;
    if (key === "quality_pass_rate" && v !== null && v !== undefined) {
      const ci = `${fmt(get(row, "quality_ci_low") * 100, 0)}–${fmt(get(row, "quality_ci_high") * 100, 0)}`;
      return `<td class="num" title="95% Wilson interval over ${esc(get(row, "quality_calls"))} scenario calls">${fmt(v * 100, 0)} % (${ci})</td>`;
    }
    if (numeric) {
      const text = key.endsWith("rate") || key === "quality_score" ? (v === null ? "" : fmt(v * 100, 0) + " %") : fmt(v, 1);
      return `<td class="num${text ? "" : " empty"}">${text || "–"}</td>`;
    }
    return `<td>${esc(v === null ? "" : v)}</td>`;
  }

  function renderTable() {
    const rows = state.view.slice(0, state.shown);
    document.getElementById("rows").innerHTML = rows.map((row) =>
      `<tr data-run="${esc(get(row, "run_path"))}">${COLUMNS.map((c) => cell(row, c)).join("")}</tr>`).join("");
    for (const th of document.querySelectorAll("#head th")) {
      th.setAttribute("aria-sort", th.dataset.sort === state.sort.key ? (state.sort.dir > 0 ? "ascending" : "descending") : "none");
    }
    document.getElementById("summary").textContent =
      `${state.view.length} of ${data.rows.length} rows match` + (state.view.length > rows.length ? `; showing the first ${rows.length}` : "")
      + (outliers && !state.showOutliers ? `; ${outliers} outlier${outliers === 1 ? "" : "s"} hidden` : "");
    const more = document.getElementById("more");
    more.hidden = state.view.length <= rows.length;
  }

  function quantile(sorted, q) {
    const at = (sorted.length - 1) * q, lo = Math.floor(at), hi = Math.ceil(at);
    return sorted[lo] + (sorted[hi] - sorted[lo]) * (at - lo);
  }

  function renderChart() {
    const groups = new Map();
    for (const row of state.view) {
      const v = get(row, "decode_tps");
      if (v === null || get(row, "outlier")) continue;  // an outlier never moves a median
      const key = get(row, "hardware_class") || "unknown";
      if (!groups.has(key)) groups.set(key, []);
      groups.get(key).push(v);
    }
    const stats = [...groups].map(([name, values]) => {
      values.sort((a, b) => a - b);
      return { name, n: values.length, p25: quantile(values, 0.25), p50: quantile(values, 0.5), p75: quantile(values, 0.75) };
    }).sort((a, b) => b.p50 - a.p50).slice(0, 20);
    const box = document.getElementById("chart");
    if (!stats.length) { box.innerHTML = "<p class=\"hint\">no decode rates among the rows shown</p>"; return; }
    const labelW = 300, plotW = 560, rowH = 22, top = 6, height = top + stats.length * rowH + 24;
    const top75 = Math.max(...stats.map((s) => s.p75)) || 1;
    const magnitude = 10 ** Math.floor(Math.log10(top75 / 4));
    const step = [1, 2, 5, 10].map((m) => m * magnitude).find((s) => top75 / s <= 5);
    const max = Math.ceil(top75 * 1.05 / step) * step;
    const x = (v) => labelW + (v / max) * plotW;
    const ticks = Array.from({ length: Math.round(max / step) + 1 }, (_, i) => i * step);
    let svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${labelW + plotW + 70}" height="${height}" role="img" aria-label="decode tokens per second by hardware class">`;
    for (const t of ticks) {
      svg += `<line x1="${x(t)}" x2="${x(t)}" y1="${top}" y2="${height - 20}" stroke="#e3e7ef"/>`;
      svg += `<text x="${x(t)}" y="${height - 6}" text-anchor="middle" class="n">${+t.toPrecision(4)}</text>`;
    }
    stats.forEach((s, i) => {
      const y = top + i * rowH;
      const label = s.name.length > 44 ? s.name.slice(0, 43) + "…" : s.name;
      svg += `<text x="${labelW - 8}" y="${y + 15}" text-anchor="end"><title>${esc(s.name)}</title>${esc(label)}</text>`;
      svg += `<rect class="bar" x="${labelW}" y="${y + 4}" width="${Math.max(1, x(s.p50) - labelW)}" height="${rowH - 8}"><title>median ${s.p50.toFixed(1)} tok/s, n=${s.n}</title></rect>`;
      svg += `<line class="iqr" x1="${x(s.p25)}" x2="${x(s.p75)}" y1="${y + rowH / 2}" y2="${y + rowH / 2}"/>`;
      svg += `<text x="${x(s.p75) + 6}" y="${y + 15}" class="n">${s.p50.toFixed(1)} (n=${s.n})</text>`;
    });
    box.innerHTML = svg + "</svg>";
  }

  function update() {
    state.view = data.rows.filter(matcher());
    // the rows come best decode rate first (write_leaderboard), and filtering keeps their order
    if (state.sort.key !== "decode_tps" || state.sort.dir !== -1) state.view.sort(compare);
    renderTable();
    renderChart();
  }

  document.getElementById("more").addEventListener("click", () => { state.shown += PAGE; renderTable(); });
  document.getElementById("footer").textContent = `${data.rows.length} rows · ${data.generated_by || ""}`;
  buildFilters();
  buildHead();
  update();
  // for tests and timing: set once the first render has been laid out and painted
  requestAnimationFrame(() => setTimeout(() => {
    document.body.dataset.readyMs = performance.now().toFixed(0);
    document.body.dataset.ready = "true";
  }));
})();
