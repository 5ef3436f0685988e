// The study table of index.html: filter, sort and page the rows of data/studies.js (window.MMDX_REPORT).
// Plain browser JavaScript, no library: the report opens from disk without a network.
(function () {
  "use strict";
  const data = window.MMDX_REPORT;
  const $ = (id) => document.getElementById(id);
  const state = { key: "p", descending: true, page: 0, rows: [] };

  const select = $("f-observation");
  for (const name of data.observations) select.add(new Option(name, name));

  const cell = (row, key) => {
    const name = select.value;
    if (key === "p") return row.p[name];
    if (key === "d") return row.d[name];
    if (key === "u") return row.u[name];
    if (key === "positives") return row.positives.join(", ");
    return row[key];
  };
  const number = (input) => (input.value === "" ? null : Number(input.value));

  function filter() {
    const decision = $("f-decision").value, status = $("f-status").value;
    const pmin = number($("f-pmin")), umin = number($("f-umin"));
    const text = $("f-text").value.toLowerCase();
    const name = select.value;
    state.rows = data.rows.filter((row) =>
      (!decision || row.d[name] === decision) &&
      (!status || row.status === status) &&
      (pmin === null || (row.p[name] !== undefined && row.p[name] >= pmin)) &&
      (umin === null || (row.u[name] !== undefined && row.u[name] >= umin)) &&
      (!text || row.id.toLowerCase().includes(text)));
    sort();
  }

  function sort() {
    const sign = state.descending ? -1 : 1;
    state.rows.sort((a, b) => {
      const x = cell(a, state.key), y = cell(b, state.key);
      if (x === y) return 0;
      if (x === undefined || x === "") return 1;  // missing values last either way
      if (y === undefined || y === "") return -1;
      return (x < y ? -1 : 1) * sign;
    });
    for (const th of document.querySelectorAll("#studies th")) {
      th.className = th.dataset.key === state.key ? (state.descending ? "sorted-desc" : "sorted-asc") : "";
    }
    state.page = 0;
    draw();
  }

  function text(value) {
    return value === undefined ? "" : typeof value === "number" ? value.toFixed(4) : String(value);
  }

  function draw() {
    const size = data.pageSize, pages = Math.max(1, Math.ceil(state.rows.length / size));
    state.page = Math.min(state.page, pages - 1);
    const body = document.querySelector("#studies tbody");
    body.replaceChildren();
    for (const row of state.rows.slice(state.page * size, (state.page + 1) * size)) {
      const tr = body.insertRow();
      tr.className = row.status;
      tr.dataset.study = row.id;
      const link = document.createElement("a");
      link.href = row.page;
      link.textContent = row.id;
      tr.insertCell().append(link);
      for (const key of ["status", "p", "d", "u", "positives", "reason"]) {
        const td = tr.insertCell();
        td.className = "c-" + key;
        const value = cell(row, key);
        td.textContent = text(value);
        if (typeof value === "number") td.dataset.value = String(value);
      }
    }
    $("count").textContent = state.rows.length + " of " + data.rows.length + " rows (scored and failed studies, skipped files)";
    $("page").textContent = "page " + (state.page + 1) + " of " + pages;
    $("prev").disabled = state.page === 0;
    $("next").disabled = state.page >= pages - 1;
  }

  for (const th of document.querySelectorAll("#studies th")) {
    th.addEventListener("click", () => {
      state.descending = th.dataset.key === state.key ? !state.descending : th.dataset.key === "p" || th.dataset.key === "u";
      state.key = th.dataset.key;
      sort();
    });
  }
  for (const id of ["f-observation", "f-decision", "f-pmin", "f-umin", "f-status", "f-text"]) {
    $(id).addEventListener("input", filter);
    $(id).addEventListener("change", filter);
  }
  $("prev").addEventListener("click", () => { state.page -= 1; draw(); });
  $("next").addEventListener("click", () => { state.page += 1; draw(); });
  filter();
})();
