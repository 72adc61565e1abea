// perdure web UI: fills the pages from the JSON API and keeps them live.
// Every user value goes into the DOM as text (textContent, never innerHTML).
"use strict";

(function () {
  const body = document.body;
  const BASE = body.dataset.base || "";
  const READ_ONLY = body.dataset.readOnly === "true";
  const POLL_MS = 2000;

  function el(tag, props, children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(props || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "text") node.textContent = String(value);
      else if (key === "className") node.className = value;
      else if (key === "dataset") Object.assign(node.dataset, value);
      else node.setAttribute(key, value === true ? "" : String(value));
    }
    for (const child of children || []) {
      if (child === null || child === undefined) continue;
      node.append(typeof child === "string" ? document.createTextNode(child) : child);
    }
    return node;
  }

  async function api(path, options) {
    const response = await fetch(BASE + "/api" + path, options);
    let data = null;
    try {
      data = await response.json();
    } catch (err) {
      data = { error: response.statusText };
    }
    if (!response.ok) {
      const error = new Error((data && data.error) || response.statusText);
      error.status = response.status;
      throw error;
    }
    return data;
  }

  function instancePath(id) {
    return "/instances/" + encodeURIComponent(id);
  }

  function when(seconds) {
    if (seconds === null || seconds === undefined) return "";
    const date = new Date(seconds * 1000);
    const pad = (n, w) => String(n).padStart(w || 2, "0");
    return (
      date.getFullYear() + "-" + pad(date.getMonth() + 1) + "-" + pad(date.getDate()) +
      " " + pad(date.getHours()) + ":" + pad(date.getMinutes()) + ":" +
      pad(date.getSeconds()) + "." + pad(date.getMilliseconds(), 3)
    );
  }

  function duration(seconds) {
    if (seconds < 1) return Math.round(seconds * 1000) + " ms";
    if (seconds < 120) return seconds.toFixed(seconds < 10 ? 2 : 1) + " s";
    return (seconds / 60).toFixed(1) + " min";
  }

  function pretty(value) {
    return JSON.stringify(value, null, 2);
  }

  function badge(status) {
    return el("span", { className: "badge status-" + status, text: status });
  }

  // ------------------------------------------------------------ list page
  function listPage() {
    const params = new URLSearchParams(location.search);
    const tbody = document.querySelector("#instances tbody");
    const info = document.getElementById("list-info");
    const live = document.getElementById("live");
    const buttons = {
      first: document.getElementById("first"),
      prev: document.getElementById("prev"),
      next: document.getElementById("next"),
    };
    // The cursors of the pages visited; the last is the page shown.
    const cursors = [params.get("cursor") || null];
    let nextCursor = null;
    let last = "";

    function query() {
      const q = new URLSearchParams();
      for (const key of ["status", "name", "version", "limit"]) {
        const value = params.get(key);
        if (value) q.set(key, value);
      }
      const cursor = cursors[cursors.length - 1];
      if (cursor) q.set("cursor", cursor);
      return q;
    }

    function row(item) {
      const link = el("a", { href: BASE + instancePath(item.instance_id) }, [
        item.instance_id,
      ]);
      return el("tr", { dataset: { instanceId: item.instance_id, status: item.status } }, [
        el("td", { className: "id" }, [link]),
        el("td", { text: item.name }),
        el("td", { text: item.version }),
        el("td", {}, [badge(item.status)]),
        el("td", { text: when(item.created_at) }),
        el("td", { text: when(item.updated_at) }),
      ]);
    }

    async function load() {
      let page;
      try {
        page = await api("/instances?" + query().toString());
      } catch (err) {
        info.textContent = "Error: " + err.message;
        info.className = "info error";
        return;
      }
      const text = JSON.stringify(page);
      const number = cursors.length;
      if (text !== last) {
        last = text;
        tbody.replaceChildren(...page.items.map(row));
        if (!page.items.length) {
          tbody.append(el("tr", {}, [el("td", { colspan: 6, className: "empty", text: "No instances." })]));
        }
      }
      nextCursor = page.next_cursor;
      const more = nextCursor ? " — more on the next page" : "";
      info.className = "info";
      info.textContent =
        page.items.length + " instance" + (page.items.length === 1 ? "" : "s") +
        " on page " + number + more + ". Updated " + when(Date.now() / 1000).slice(11, 19) +
        (live.checked ? " (live)" : "");
      document.getElementById("page-no").textContent = "page " + number;
      buttons.next.disabled = !nextCursor;
      buttons.prev.disabled = cursors.length < 2;
      buttons.first.disabled = !cursors[cursors.length - 1];
    }

    function go() {
      const q = query();
      history.replaceState(null, "", q.toString() ? "?" + q.toString() : location.pathname);
      last = "";
      load();
    }

    buttons.next.addEventListener("click", () => {
      if (nextCursor) {
        cursors.push(nextCursor);
        go();
      }
    });
    buttons.prev.addEventListener("click", () => {
      if (cursors.length > 1) cursors.pop();
      else cursors[0] = null;
      go();
    });
    buttons.first.addEventListener("click", () => {
      cursors.splice(0, cursors.length, null);
      go();
    });
    load();
    setInterval(() => {
      if (live.checked && !document.hidden) load();
    }, POLL_MS);
  }

  // -------------------------------------------------------- instance page
  function instancePage() {
    const root = document.getElementById("instance");
    const id = root.dataset.instanceId;
    const enc = encodeURIComponent(id);
    const closed = new Set(); // scope paths the user collapsed
    const execSelect = document.getElementById("execution");
    let execution = null; // null: the latest
    let lastState = "";
    let lastTree = "";
    let state = null;

    function facts(s) {
      const dl = document.getElementById("facts");
      const rows = [
        ["Orchestration", s.name + (s.version ? " " + s.version : "")],
        ["Execution", String(s.execution_id)],
        ["Created", when(s.created_at)],
        ["Updated", when(s.updated_at)],
      ];
      if (s.custom_status !== null && s.custom_status !== undefined) {
        rows.push(["Custom status", JSON.stringify(s.custom_status)]);
      }
      dl.replaceChildren(
        ...rows.flatMap(([k, v]) => [el("dt", { text: k }), el("dd", { text: v })])
      );
      const status = document.getElementById("status");
      status.replaceWith(Object.assign(badge(s.status), { id: "status" }));
      if (execSelect.options.length !== s.execution_id) {
        execSelect.replaceChildren(
          ...Array.from({ length: s.execution_id }, (_, i) =>
            el("option", { value: i + 1, text: "execution " + (i + 1) })
          )
        );
        execSelect.value = String(execution || s.execution_id);
      }
      execSelect.hidden = s.execution_id < 2;
      if (!READ_ONLY) {
        document.getElementById("cancel").disabled = !["Running", "Suspended"].includes(s.status);
        document.getElementById("resume").disabled = s.status !== "Suspended";
        document.getElementById("rewind").disabled = s.status !== "Failed";
        document.getElementById("raise").disabled = !["Running", "Suspended"].includes(s.status);
      }
    }

    const MARK = {
      winner: "✓ winner",
      completed: "✓",
      done: "✓ done",
      note: "✓",
      failed: "✗ failed",
      cancelled: "✗ cancelled",
      running: "… running",
      pending: "… pending",
      buffered: "buffered (not consumed)",
      requested: "cancel requested",
      rewound: "↺ rewound",
    };

    function outcome(node) {
      let text = MARK[node.status] || node.status;
      if (node.reason) text += ": " + node.reason;
      if (node.status === "cancelled" && node.cancel_event_id) text += " (#" + node.cancel_event_id + ")";
      if (node.ignored_event_id) text += ", late result ignored (#" + node.ignored_event_id + ")";
      if (node.error) text += ": " + node.error.type + (node.error.message ? ": " + node.error.message : "");
      if ("result" in node && node.outcome_event_id) {
        text += " → " + short(node.result);
      }
      if (node.outcome_event_id && node.status !== "cancelled") text += " (#" + node.outcome_event_id + ")";
      return text;
    }

    function short(value) {
      const text = JSON.stringify(value === undefined ? null : value);
      return text.length > 80 ? text.slice(0, 77) + "..." : text;
    }

    function workNode(node) {
      const li = el("li", {
        className: "work status-" + node.status,
        dataset: { eventId: node.event_id, status: node.status },
      }, [
        el("span", { className: "eid", text: "#" + node.event_id }),
        " ",
        el("span", { className: "label", text: node.label }),
        node.shielded ? el("span", { className: "shield", text: " [shielded]" }) : null,
        " ",
        el("span", { className: "outcome", text: outcome(node) }),
      ]);
      if (node.instance_id) {
        li.append(" ", el("a", { href: BASE + instancePath(node.instance_id), text: "open" }));
      }
      if (node.error && node.error.stack) {
        li.append(el("details", { className: "stack" }, [
          el("summary", { text: "stack" }),
          el("pre", { text: node.error.stack }),
        ]));
      }
      return li;
    }

    function scopeNode(node) {
      const details = el("details", {
        className: "scope status-" + node.status,
        dataset: { path: node.path, status: node.status },
      });
      details.open = !closed.has(node.path);
      details.addEventListener("toggle", () => {
        if (details.open) closed.delete(node.path);
        else closed.add(node.path);
      });
      let mark = MARK[node.status] || node.status;
      if (node.reason) mark += ": " + node.reason;
      details.append(
        el("summary", {}, [
          el("span", { className: "label", text: node.path === "0" ? "scope 0" : "task " + node.path }),
          node.shielded ? el("span", { className: "shield", text: " [shielded]" }) : null,
          " ",
          el("span", { className: "outcome", text: mark }),
        ]),
        el("ul", {}, node.items.map((item) =>
          item.kind === "scope" ? el("li", { className: "nested" }, [scopeNode(item)]) : workNode(item)
        ))
      );
      return details;
    }

    function terminal(tree) {
      const end = tree.end;
      if (!end) return el("p", { className: "end status-running", text: "… running" });
      let text = "#" + end.event_id + " ";
      if ("output" in end) text += "✓ completed → " + short(end.output);
      else if (end.error) text += "✗ failed: " + end.error.type + ": " + end.error.message;
      else if (end.type === "OrchestrationCancelled") text += "✗ cancelled" + (end.reason ? ": " + end.reason : "");
      else text += "continued as new with " + short(end.input);
      return el("p", { className: "end status-" + tree.status, text: text });
    }

    function timeline(tree) {
      const box = document.getElementById("timeline");
      const items = tree.timeline;
      if (!items.length) {
        box.replaceChildren(el("p", { className: "info", text: "No work scheduled." }));
        return;
      }
      const start = tree.started_at;
      const now = Date.now() / 1000;
      const stop = Math.max(
        tree.ended_at || now,
        ...items.map((i) => i.ended_at || (tree.ended_at ? i.scheduled_at : now))
      );
      const span = Math.max(stop - start, 0.001);
      const rows = items.map((item) => {
        const end = item.ended_at === null ? (tree.ended_at || now) : item.ended_at;
        const bar = el("div", { className: "bar status-" + item.status });
        bar.style.left = ((item.scheduled_at - start) / span) * 100 + "%";
        bar.style.width = Math.max(((end - item.scheduled_at) / span) * 100, 0.4) + "%";
        const took = item.ended_at === null ? "pending" : duration(end - item.scheduled_at);
        bar.title = item.label + ": " + when(item.scheduled_at) + " → " +
          (item.ended_at === null ? "…" : when(item.ended_at)) + " (" + item.status + ")";
        return el("div", { className: "tl-row", dataset: { eventId: item.event_id, status: item.status } }, [
          el("div", { className: "tl-label" }, [
            el("span", { className: "eid", text: "#" + item.event_id + " " }),
            item.label,
            item.shielded ? " [shielded]" : "",
            el("span", { className: "scope-path", text: " · " + item.scope }),
          ]),
          el("div", { className: "tl-track" }, [bar]),
          el("div", { className: "tl-took status-" + item.status, text: item.status + " · " + took }),
        ]);
      });
      box.replaceChildren(
        el("div", { className: "tl-axis" }, [
          el("span", { text: when(start) }),
          el("span", { text: duration(span) }),
        ]),
        ...rows
      );
    }

    function payloads(tree, s) {
      const box = document.getElementById("payloads");
      const parts = [];
      const block = (title, value, cls) =>
        el("div", { className: "payload " + (cls || "") }, [el("h3", { text: title }), el("pre", { text: value })]);
      if (tree.orchestration) {
        parts.push(block("Input", pretty(tree.orchestration.input)));
        const parent = tree.orchestration.parent;
        if (parent && parent.instance_id) {
          parts.push(el("p", {}, ["Parent: ", el("a", { href: BASE + instancePath(parent.instance_id), text: parent.instance_id })]));
        }
      }
      if (tree.end && "output" in tree.end) parts.push(block("Output", pretty(tree.end.output)));
      const errors = [];
      const error = (tree.end && tree.end.error) || (execution === null && s && s.error);
      if (error) errors.push(["Error", error]);
      (function walk(node) {
        for (const item of node.items) {
          if (item.kind === "scope") walk(item);
          else if (item.error && item.error !== error) errors.push(["#" + item.event_id + " " + item.label, item.error]);
        }
      })(tree.root);
      for (const [title, err] of errors) {
        const text = err.type + (err.message ? ": " + err.message : "") + " [" + (err.category || "application") + "]";
        parts.push(el("div", { className: "payload error" }, [
          el("h3", { text: title }),
          el("p", { className: "error-line", text: text }),
          err.stack ? el("pre", { className: "stack", text: err.stack }) : null,
        ]));
      }
      box.replaceChildren(...parts);
    }

    async function load() {
      const errorBox = document.getElementById("load-error");
      try {
        const s = await api("/instances/" + enc);
        state = s;
        const stateText = JSON.stringify(s);
        if (stateText !== lastState) {
          lastState = stateText;
          facts(s);
        }
        const q = execution ? "?execution=" + execution : "";
        const [tree, history] = await Promise.all([
          api("/instances/" + enc + "/tree" + q),
          api("/instances/" + enc + "/history" + q),
        ]);
        const treeText = JSON.stringify(tree);
        if (treeText !== lastTree) {
          lastTree = treeText;
          document.getElementById("tree").replaceChildren(scopeNode(tree.root), terminal(tree));
          payloads(tree, s);
          document.getElementById("raw").textContent = history.events.map((e) => JSON.stringify(e)).join("\n");
          timeline(tree);
        } else if (tree.status === "running") {
          timeline(tree); // pending bars grow
        }
        errorBox.hidden = true;
      } catch (err) {
        errorBox.textContent = err.status === 404 ? "No instance " + JSON.stringify(id) + "." : "Error: " + err.message;
        errorBox.hidden = false;
      }
    }

    execSelect.addEventListener("change", () => {
      const n = Number(execSelect.value);
      execution = state && n === state.execution_id ? null : n;
      lastTree = "";
      load();
    });

    if (!READ_ONLY) {
      const result = document.getElementById("action-result");
      async function act(action, payload) {
        result.className = "info";
        result.textContent = action + "…";
        try {
          await api("/instances/" + enc + "/" + action, {
            method: "POST",
            headers: { "Content-Type": "application/json" },
            body: JSON.stringify(payload || {}),
          });
          result.textContent = action + ": done";
          lastState = "";
          setTimeout(load, 300);
        } catch (err) {
          result.className = "info error";
          result.textContent = action + " failed: " + err.message;
        }
      }
      document.getElementById("raise-form").addEventListener("submit", (event) => {
        event.preventDefault();
        const form = event.target;
        const text = form.elements.data.value.trim();
        let data = null;
        if (text) {
          try {
            data = JSON.parse(text);
          } catch (err) {
            result.className = "info error";
            result.textContent = "The event data is not JSON: " + err.message;
            return;
          }
        }
        act("raise", { name: form.elements.name.value, data: data });
      });
      document.getElementById("cancel-form").addEventListener("submit", (event) => {
        event.preventDefault();
        if (!confirm("Cancel instance " + id + "?")) return;
        act("cancel", { reason: event.target.elements.reason.value });
      });
      document.getElementById("resume").addEventListener("click", () => act("resume"));
      document.getElementById("rewind").addEventListener("click", () => act("rewind"));
    }

    load();
    setInterval(() => {
      if (!document.hidden) load();
    }, POLL_MS);
  }

  if (body.dataset.page === "list") listPage();
  else if (body.dataset.page === "instance") instancePage();
})();
