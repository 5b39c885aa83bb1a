// The CAIO operator console. Plain JavaScript, served by CAIO itself (no build step, no CDN).
//
// The token is kept in memory, or in sessionStorage when "keep for this tab" is ticked:
// never in a URL, a cookie or local storage. Everything the API returns is shown with
// textContent, never parsed as HTML.
"use strict";

const TOKEN_KEY = "caio.token";
// When a trusted role's expiry turns amber and red, as the shipped alert rules see it.
const EXPIRY_LIMITS = {
  root: { amber: 14 * 86400, red: 2 * 86400 },
  targets: { amber: 14 * 86400, red: 2 * 86400 },
  snapshot: { amber: 12 * 3600, red: 3600 },
  timestamp: { amber: 12 * 3600, red: 3600 },
};

const state = {
  token: sessionStorage.getItem(TOKEN_KEY) || "",
  startedAt: null,
  expires: {},
  streaming: false,
};

const $ = (id) => document.getElementById(id);

class ApiFailure extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

// --- talking to the API ------------------------------------------------------------------

function headers(extra = {}) {
  const result = { Accept: "application/json", ...extra };
  if (state.token) result.Authorization = `Bearer ${state.token}`;
  return result;
}

async function api(method, path, body, timeoutMs = 30000) {
  // A request the server never answers (a process going away) is abandoned, not awaited forever.
  const init = { method, headers: headers(), cache: "no-store", signal: AbortSignal.timeout(timeoutMs) };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch (error) {
    throw new ApiFailure(0, "unreachable", `CAIO did not answer (${error.message})`);
  }
  let data = null;
  try {
    data = await response.json();
  } catch {
    data = null;
  }
  if (!response.ok) {
    const error = data && data.error ? data.error : {};
    throw new ApiFailure(
      response.status,
      error.code || `http_${response.status}`,
      error.message || response.statusText,
    );
  }
  return data;
}

function explain(failure) {
  if (!(failure instanceof ApiFailure)) return `the console failed: ${failure.message}`;
  if (failure.status === 401) {
    return state.token
      ? `The token was refused (${failure.code}): ${failure.message}. Paste a valid token.`
      : "A token is needed for this: paste a viewer or admin token above.";
  }
  if (failure.status === 403) {
    return `This token may not do that (${failure.code}): ${failure.message}.`;
  }
  return `${failure.code}: ${failure.message}`;
}

function notice(text, kind = "error") {
  const box = $("notice");
  box.textContent = text;
  box.className = kind === "info" ? "info" : "";
  box.hidden = !text;
}

async function attempt(action) {
  try {
    return await action();
  } catch (failure) {
    notice(explain(failure));
    return null;
  }
}

// --- rendering ---------------------------------------------------------------------------

function text(id, value) {
  $(id).textContent = value === null || value === undefined || value === "" ? "—" : String(value);
}

function cell(row, value, className) {
  const td = document.createElement("td");
  td.textContent = value === null || value === undefined || value === "" ? "—" : String(value);
  if (className) td.className = className;
  row.appendChild(td);
  return td;
}

function emptyRow(body, columns, message) {
  body.replaceChildren();
  const row = body.insertRow();
  const td = cell(row, message, "muted");
  td.colSpan = columns;
}

function duration(seconds) {
  const s = Math.abs(Math.floor(seconds));
  const d = Math.floor(s / 86400);
  const h = Math.floor((s % 86400) / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = s % 60;
  if (d > 0) return `${d}d ${h}h ${m}m`;
  if (h > 0) return `${h}h ${m}m ${sec}s`;
  return `${m}m ${sec}s`;
}

function when(iso, seconds = true) {
  if (!iso) return "—";
  const plain = iso.replace("T", " ").replace(/\.\d+/, "").replace(/(\+00:00|Z)$/, "");
  return seconds ? plain : plain.slice(0, 16);
}

function renderVersion(info) {
  text("version", info.withdrawn ? `${info.version} — WITHDRAWN by its publisher` : info.version);
  $("version").className = info.withdrawn ? "bad" : "";
  text("channel", info.channel);
  text("commit", info.commit);
  text("build-date", when(info.build_date));
  state.startedAt = info.started_at ? Date.parse(info.started_at) : null;
  tick();
}

function renderJob(job) {
  const badge = $("job-status");
  badge.textContent = job.status;
  badge.className = `badge ${{ complete: "ok", failed: "bad", updating: "warn" }[job.status] || ""}`;
  const target = job.to_version ? ` → ${job.to_version}` : "";
  $("job-stage").textContent = job.status === "idle" ? "no update has run" : `${job.stage}${target}`;
  $("job-progress").value = job.progress || 0;
  $("job-message").textContent = job.message || "";
  const error = $("job-error");
  error.hidden = !job.error;
  error.textContent = job.error ? `${job.error.code}: ${job.error.message}` : "";
  if (job.status === "updating") follow();
}

function renderRoles(metadata) {
  state.expires = {};
  const body = $("roles");
  body.replaceChildren();
  for (const role of ["root", "targets", "snapshot", "timestamp"]) {
    if (!(role in metadata.versions)) continue;
    state.expires[role] = Date.parse(metadata.expires[role]);
    const row = body.insertRow();
    row.dataset.role = role;
    cell(row, role);
    cell(row, `v${metadata.versions[role]}`);
    cell(row, when(metadata.expires[role], false));
    cell(row, "");
  }
  tick();
}

function rolloutText(release) {
  const place = release.rollout;
  if (!place || !place.staged) return "every host";
  let line = `${place.percent_now}% now`;
  if (place.paused) line += ", paused";
  if (place.eligible) line += ", this host: eligible";
  else if (place.eligible_at) line += `, this host from ${when(place.eligible_at)}`;
  else line += ", not this host";
  return line;
}

function renderCheck(check) {
  text("host-id", check.host_id);
  $("host-id").classList.remove("needs-token");
  renderRoles(check.metadata);
  const body = $("release-rows");
  body.replaceChildren();
  const releases = [...check.releases].reverse();
  if (releases.length === 0) emptyRow(body, 5, "no releases on this channel");
  for (const release of releases) {
    const row = body.insertRow();
    row.dataset.version = release.version;
    cell(row, release.version);
    cell(row, release.channels.join(", "));
    cell(row, when(release.released_at || release.build_date));
    cell(row, rolloutText(release));
    const tags = [];
    if (release.version === check.running_version) tags.push("running");
    if (check.latest && release.version === check.latest.version) tags.push("newest");
    if (check.update_available && release.version === check.update_available.version) {
      tags.push("an update installs this");
    }
    if (release.withdrawn) tags.push(`WITHDRAWN${release.withdrawn.reason ? `: ${release.withdrawn.reason}` : ""}`);
    cell(row, tags.join(" · "), release.withdrawn ? "bad" : "");
  }
  let summary;
  if (check.update_available) summary = `an update installs ${check.update_available.version}`;
  else if (check.waiting_for) summary = `${check.waiting_for.version} has not reached this host yet`;
  else summary = `${check.running_version} is the newest for this host`;
  if (check.running_withdrawn) summary += ` — the running version was WITHDRAWN`;
  $("would-install").textContent = `(${summary})`;
}

function renderHistory(history) {
  const integrity = $("integrity");
  const chain = history.integrity;
  integrity.textContent = chain.ok
    ? `hash chain intact (${chain.records} record${chain.records === 1 ? "" : "s"})`
    : `hash chain BROKEN at record ${chain.first_bad}: ${chain.reason}`;
  integrity.className = `badge ${chain.ok ? "ok" : "bad"}`;
  const body = $("history-rows");
  body.replaceChildren();
  const records = [...history.records].reverse();
  if (records.length === 0) emptyRow(body, 6, "nothing yet");
  for (const record of records) {
    const row = body.insertRow();
    cell(row, when(record.ts));
    cell(row, record.event);
    const outcome = record.outcome || "";
    const kind = /failed|rolled_back|interrupted/.test(outcome) ? "bad" : outcome === "activated" ? "ok" : "";
    cell(row, outcome, kind);
    cell(row, record.by);
    const from = record.from || record.running || "";
    const to = record.to || record.current || "";
    cell(row, from || to ? `${from || "?"} → ${to || "?"}` : "");
    cell(row, record.code || record.reason || record.waiting || "");
  }
}

function tick() {
  if (state.startedAt !== null) text("uptime", duration((Date.now() - state.startedAt) / 1000));
  for (const row of $("roles").rows) {
    const role = row.dataset.role;
    if (!role) continue;
    const left = (state.expires[role] - Date.now()) / 1000;
    const limits = EXPIRY_LIMITS[role];
    const target = row.cells[3];
    target.textContent = left <= 0 ? `expired ${duration(left)} ago` : duration(left);
    target.className = left <= limits.red ? "bad" : left <= limits.amber ? "warn" : "ok";
  }
}

// --- loading -----------------------------------------------------------------------------

async function loadVersion() {
  const info = await attempt(() => api("GET", "/api/v1/version"));
  if (info) renderVersion(info);
}

async function loadStatus() {
  const job = await attempt(() => api("GET", "/api/v1/update"));
  if (job) renderJob(job);
  return job;
}

async function loadHistory() {
  const history = await attempt(() => api("GET", "/api/v1/update/history?limit=50"));
  if (history) renderHistory(history);
}

async function loadCheck() {
  $("would-install").textContent = "(checking…)";
  const check = await attempt(() => api("GET", "/api/v1/update/check"));
  if (check) renderCheck(check);
  else $("would-install").textContent = "";
  return check;
}

async function loadAll() {
  if (!state.token) {
    emptyRow($("history-rows"), 6, "token needed");
    $("job-status").textContent = "token needed";
    return;
  }
  const job = await loadStatus();
  if (job === null) return; // the token was refused: the notice says why
  await Promise.all([loadHistory(), loadCheck()]);
}

// Server-Sent Events, read with fetch: EventSource cannot send the Authorization header.
async function follow() {
  if (state.streaming || !state.token) return;
  state.streaming = true;
  try {
    const response = await fetch("/api/v1/update/events", {
      headers: headers({ Accept: "text/event-stream" }),
      cache: "no-store",
    });
    if (!response.ok) throw new ApiFailure(response.status, `http_${response.status}`, "the event stream was refused");
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true });
      let end;
      while ((end = buffer.search(/\r?\n\r?\n/)) >= 0) {
        const event = buffer.slice(0, end);
        buffer = buffer.slice(end).replace(/^\r?\n\r?\n/, "");
        const data = event
          .split(/\r?\n/)
          .filter((line) => line.startsWith("data:"))
          .map((line) => line.slice(5).trimStart())
          .join("\n");
        if (data) renderJob(JSON.parse(data));
      }
    }
  } catch (failure) {
    notice(explain(failure));
  } finally {
    state.streaming = false;
  }
  await Promise.all([loadHistory(), loadCheck()]);
}

// --- actions -----------------------------------------------------------------------------

async function startUpdate(targetVersion) {
  const body = targetVersion ? { target_version: targetVersion } : {};
  const job = await attempt(() => api("POST", "/api/v1/update", body));
  if (job) {
    notice("");
    renderJob(job);
  }
}

async function restart() {
  const answer = await attempt(() => api("POST", "/api/v1/restart", { graceful: true }));
  if (!answer) return;
  notice(`${answer.message}: waiting for ${answer.to_version} to serve…`, "info");
  const deadline = Date.now() + 120000;
  while (Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 1000));
    try {
      const info = await api("GET", "/api/v1/version", undefined, 3000);
      if (info.version === answer.to_version) {
        renderVersion(info);
        await loadAll();
        notice(`now running ${info.version}`, "info");
        return;
      }
    } catch {
      // the old process is going away; keep asking
    }
  }
  notice(`${answer.to_version} did not answer within two minutes: see the history`);
}

async function rollback() {
  const answer = await attempt(() => api("POST", "/api/v1/rollback"));
  if (answer) {
    notice(answer.message, "info");
    await loadAll();
  }
}

async function cancel() {
  const job = await attempt(() => api("DELETE", "/api/v1/update"));
  if (job) renderJob(job);
}

function useToken(event) {
  event.preventDefault();
  const value = $("token").value.trim();
  $("token").value = "";
  if (!value) {
    notice("Paste a token first.");
    return;
  }
  state.token = value;
  notice("");
  if ($("keep").checked) sessionStorage.setItem(TOKEN_KEY, value);
  else sessionStorage.removeItem(TOKEN_KEY);
  loadAll();
}

function forgetToken() {
  state.token = "";
  sessionStorage.removeItem(TOKEN_KEY);
  text("host-id", "token needed");
  notice("The token is forgotten.", "info");
  emptyRow($("history-rows"), 6, "token needed");
}

window.addEventListener("DOMContentLoaded", () => {
  $("keep").checked = Boolean(sessionStorage.getItem(TOKEN_KEY));
  $("token-form").addEventListener("submit", useToken);
  $("forget").addEventListener("click", forgetToken);
  $("do-check").addEventListener("click", loadCheck);
  $("do-update").addEventListener("click", () => startUpdate(null));
  $("do-update-to").addEventListener("click", () => {
    const version = $("target-version").value.trim();
    if (version) startUpdate(version);
    else notice("Type the version to install first.");
  });
  $("do-cancel").addEventListener("click", cancel);
  $("do-restart").addEventListener("click", restart);
  $("do-rollback").addEventListener("click", rollback);
  setInterval(tick, 1000);
  loadVersion();
  loadAll();
});
