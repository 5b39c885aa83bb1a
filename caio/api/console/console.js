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

const HISTORY_PAGE = 20;
// What a refused update asks for, and the box that grants it.
const OVERRIDES = { downgrade_refused: "allow-downgrade", release_withdrawn: "allow-withdrawn" };

const state = {
  token: sessionStorage.getItem(TOKEN_KEY) || "",
  role: null, // "admin" or "viewer" once the token is known
  job: null, // the current or last job
  host: null, // running, active and previous release, trusted metadata
  check: null, // the last successful check
  startedAt: null,
  expires: {},
  streaming: false,
  historyOffset: 0,
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

function renderRole() {
  const badge = $("role");
  badge.textContent = state.role ? `${state.role} token` : "no token";
  badge.className = `badge ${state.role === "admin" ? "warn" : ""}`;
  permit();
}

// Offer what the token's role and the job's state allow, and say why the rest is off.
function permit() {
  const admin = state.role === "admin";
  const running = Boolean(state.job && state.job.status === "updating");
  const previous = state.host && state.host.previous_version;
  const why = (reason) => (reason ? reason : "");
  const rules = {
    "do-update": admin ? why(running && "an update is running") : "needs an admin token",
    "do-update-to": admin ? why(running && "an update is running") : "needs an admin token",
    "allow-downgrade": admin ? why(running && "an update is running") : "needs an admin token",
    "allow-withdrawn": admin ? why(running && "an update is running") : "needs an admin token",
    "do-cancel": admin ? why(!running && "no update is running") : "needs an admin token",
    "do-restart": admin ? why(running && "an update is running") : "needs an admin token",
    "do-rollback": admin
      ? why((running && "an update is running") || (!previous && "no previous release"))
      : "needs an admin token",
  };
  for (const [id, reason] of Object.entries(rules)) {
    const control = $(id);
    control.disabled = Boolean(reason);
    control.title = reason;
  }
  $("do-check").disabled = !state.role;
  let note = "";
  if (!state.role) note = "(paste a token to act)";
  else if (!admin) note = "(a viewer token may look, not act: admin actions are off)";
  $("actions-note").textContent = note;
}

function renderHost(host) {
  state.host = host;
  text("host-id", host.host_id);
  $("host-id").classList.remove("needs-token");
  const pending = $("pending");
  pending.classList.remove("needs-token");
  if (host.restart_pending) {
    pending.textContent = `restart pending: a restart runs ${host.active_version}`;
    pending.className = "warn";
  } else {
    pending.textContent = host.active_version ? `${host.active_version} (as now)` : "this tree (as now)";
    pending.className = "";
  }
  if (host.metadata) renderRoles(host.metadata);
  renderSummary();
  const last = host.last_check;
  $("trust-note").textContent = last.success
    ? `as last verified; last successful check ${when(last.success)} UTC`
    : "no successful check yet";
  permit();
}

function renderJob(job) {
  state.job = job;
  const badge = $("job-status");
  badge.textContent = job.status;
  badge.className = `badge ${{ complete: "ok", failed: "bad", updating: "warn" }[job.status] || ""}`;
  const target = job.to_version ? `→ ${job.to_version}` : "";
  let stage = "";
  if (job.status === "idle") stage = "no update has run";
  else if (job.stage !== job.status) stage = `${job.stage} ${target}`.trim();
  else stage = target;
  $("job-stage").textContent = stage;
  $("job-title").textContent = job.status === "updating" ? "Update job" : "Last update job";
  const bar = $("job-progress");
  bar.value = job.progress || 0;
  bar.className = job.status;
  const error = $("job-error");
  error.hidden = !job.error;
  error.textContent = job.error ? `${job.error.code}: ${job.error.message}${overrideHint(job.error.code)}` : "";
  // A failed job's message is its error's: say it once.
  const message = job.error && job.error.message === job.message ? "" : job.message || "";
  $("job-message").textContent = message;
  let moment = "";
  if (job.finished_at) moment = `finished ${when(job.finished_at)} UTC`;
  else if (job.started_at) moment = `started ${when(job.started_at)} UTC`;
  if (moment && job.requested_by) moment += ` by ${job.requested_by}`;
  $("job-when").textContent = moment;
  permit();
  if (job.status === "updating") follow();
}

// A refusal that an admin may override on purpose: point at the box that does it.
function overrideHint(code) {
  if (!(code in OVERRIDES)) return "";
  const box = $(OVERRIDES[code]).parentElement.textContent.trim();
  return ` — tick "${box}" under Actions to install it anyway`;
}

function renderRoles(metadata) {
  state.expires = {};
  const body = $("roles");
  body.replaceChildren();
  // One repository: root, targets, snapshot, timestamp. With a repository map: each
  // repository's four, as "name/role".
  const order = ["root", "targets", "snapshot", "timestamp"];
  const rank = (key) => order.indexOf(key.split("/").pop());
  const keys = Object.keys(metadata.versions)
    .filter((key) => rank(key) >= 0)
    .sort((a, b) => a.split("/")[0].localeCompare(b.split("/")[0]) || rank(a) - rank(b));
  for (const role of keys) {
    state.expires[role] = Date.parse(metadata.expires[role]);
    const row = body.insertRow();
    row.dataset.role = role;
    cell(row, role);
    cell(row, `v${metadata.versions[role]}`);
    const expiry = cell(row, "");
    const left = document.createElement("span");
    left.className = "left";
    const date = document.createElement("span");
    date.className = "when";
    date.textContent = when(metadata.expires[role], false);
    expiry.replaceChildren(left, date);
  }
  tick();
}

// A signed delta from the running release: what an update to this one downloads.
function deltaText(delta) {
  const text = `delta from ${delta.from_version}: ${delta.bytes.toLocaleString("en-US")} bytes`;
  return delta.applies ? text : `${text}, no kept base (downloads whole)`;
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
  $("trust-note").textContent = `verified by the check at ${when(check.checked_at)} UTC`;
  $("trust-error").hidden = true;
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
    if (release.signed_by && release.signed_by.length) tags.push(`signed by ${release.signed_by.join(" + ")}`);
    if (release.delta) tags.push(deltaText(release.delta));
    cell(row, tags.join(" · "), release.withdrawn ? "bad" : "");
  }
  // Two-party approval: what a repository lists that is not offered, and who is missing.
  for (const held of [...(check.unapproved || [])].reverse()) {
    const row = body.insertRow();
    row.dataset.unapproved = held.version;
    cell(row, held.version);
    cell(row, "");
    cell(row, "");
    cell(row, "not offered");
    cell(row, `NOT OFFERED (${held.code}): ${held.message}`, "bad");
  }
  state.check = check;
  renderSummary();
}

// What the newest check offers, in the light of what is installed: one truth.
function renderSummary() {
  const check = state.check;
  if (!check) return;
  const host = state.host;
  const pending = host && host.restart_pending ? host.active_version : null;
  let summary;
  if (check.update_available && check.update_available.version === pending) {
    summary = `${pending} is installed: restart to run it`;
  } else if (check.update_available) {
    summary = `an update installs ${check.update_available.version}`;
  } else if (check.waiting_for) {
    summary = `${check.waiting_for.version} has not reached this host yet`;
  } else summary = `${check.running_version} is the newest for this host`;
  if (check.running_withdrawn) summary += ` — the running version was WITHDRAWN`;
  if (!check.releases.some((r) => r.version === check.running_version)) {
    summary += ` — ${check.running_version} is not listed on this channel`;
  }
  $("would-install").textContent = `(${summary})`;
  for (const row of $("release-rows").rows) {
    const tags = row.cells[4];
    if (!tags || !row.dataset.version) continue;
    const installed = row.dataset.version === pending ? "installed: restart to run it" : null;
    tags.textContent = tags.textContent.replace(
      /an update installs this|installed: restart to run it/,
      installed || "an update installs this",
    );
  }
}

function renderCheckFailure(failure) {
  $("would-install").textContent = "(the check failed: see Trusted metadata)";
  const error = $("trust-error");
  error.hidden = false;
  error.textContent = `check failed: ${explain(failure)}`;
}

function historyTarget(record) {
  const to = record.to || record.current || "";
  if (to) return to;
  if (record.asked) return `${record.asked} (asked)`;
  return record.event === "update" ? "newest" : "";
}

function historyVersions(record) {
  if (record.event === "child_exit") return record.version || "";
  const from = record.from || record.running || "";
  const to = historyTarget(record);
  return from || to ? `${from || "?"} → ${to || "?"}` : "";
}

function historyDetail(record) {
  if (record.event === "child_exit") {
    const code = record.code === undefined || record.code === null ? "ended" : `exit code ${record.code}`;
    const during = { start: " while starting", serving: " while serving" }[record.during] || "";
    return code + during;
  }
  return record.code || record.reason || record.waiting || "";
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
    cell(row, historyVersions(record));
    cell(row, historyDetail(record));
  }
  const newest = state.historyOffset + 1;
  const oldest = state.historyOffset + records.length;
  $("history-range").textContent = records.length
    ? `records ${newest}–${oldest} of ${chain.records}, newest first`
    : "";
  $("history-newer").disabled = state.historyOffset === 0;
  $("history-older").disabled = oldest >= chain.records;
}

function tick() {
  if (state.startedAt !== null) text("uptime", duration((Date.now() - state.startedAt) / 1000));
  for (const row of $("roles").rows) {
    const role = row.dataset.role;
    if (!role) continue;
    const left = (state.expires[role] - Date.now()) / 1000;
    const limits = EXPIRY_LIMITS[role.split("/").pop()];
    const target = row.cells[2];
    const countdown = target.querySelector(".left");
    countdown.textContent = left <= 0 ? `expired ${duration(left)} ago` : duration(left);
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

async function loadHost() {
  const host = await attempt(() => api("GET", "/api/v1/host"));
  if (host) renderHost(host);
}

async function loadHistory() {
  const query = `limit=${HISTORY_PAGE}&offset=${state.historyOffset}`;
  const history = await attempt(() => api("GET", `/api/v1/update/history?${query}`));
  if (history) renderHistory(history);
}

async function loadCheck() {
  $("would-install").textContent = "(checking…)";
  let check = null;
  try {
    check = await api("GET", "/api/v1/update/check");
    renderCheck(check);
  } catch (failure) {
    renderCheckFailure(failure);
  }
  // What the check found can change what the job card and the host say: one truth.
  await Promise.all([loadStatus(), loadHost()]);
  return check;
}

async function loadAll() {
  if (!state.token) {
    emptyRow($("history-rows"), 6, "token needed");
    $("job-status").textContent = "token needed";
    state.role = null;
    renderRole();
    return;
  }
  const who = await attempt(() => api("GET", "/api/v1/whoami"));
  state.role = who ? who.role : null;
  renderRole();
  if (who === null) return; // the token was refused: the notice says why
  await Promise.all([loadStatus(), loadHost(), loadHistory()]);
  await loadCheck();
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
  state.historyOffset = 0;
  await Promise.all([loadHistory(), loadCheck()]);
}

// --- actions -----------------------------------------------------------------------------

// Ask before anything disruptive; resolves true only on "Confirm".
function confirmFirst(title, message, verb) {
  const dialog = $("confirm");
  $("confirm-title").textContent = title;
  $("confirm-text").textContent = message;
  $("confirm-yes").textContent = verb;
  return new Promise((resolve) => {
    const done = (answer) => {
      $("confirm-yes").onclick = null;
      $("confirm-no").onclick = null;
      dialog.onclose = null;
      if (dialog.open) dialog.close();
      resolve(answer);
    };
    $("confirm-yes").onclick = () => done(true);
    $("confirm-no").onclick = () => done(false);
    dialog.onclose = () => done(false); // Escape
    dialog.showModal();
    $("confirm-no").focus();
  });
}

async function startUpdate(targetVersion) {
  const body = targetVersion ? { target_version: targetVersion } : {};
  if (targetVersion) {
    const risks = [];
    if ($("allow-downgrade").checked) {
      body.allow_downgrade = true;
      risks.push(`it may be older than the running ${$("version").textContent} (a downgrade: fixes made since are lost)`);
    }
    if ($("allow-withdrawn").checked) {
      body.allow_withdrawn = true;
      risks.push("it may be a release its publisher has withdrawn (see its reason under Releases)");
    }
    if (risks.length) {
      const message = `Install ${targetVersion} although ${risks.join(", and ")}? It is still verified against the signed metadata.`;
      if (!(await confirmFirst(`Install ${targetVersion}?`, message, "Install"))) return;
    }
  }
  const job = await attempt(() => api("POST", "/api/v1/update", body));
  if (job) {
    notice("");
    renderJob(job);
  }
}

async function restart() {
  const host = state.host || {};
  const into = host.active_version || $("version").textContent;
  const message =
    `Restart CAIO into ${into}? Requests in flight finish first; under the supervisor the ` +
    "running version keeps serving until the new one is healthy, and a sick one is rolled back.";
  if (!(await confirmFirst(`Restart into ${into}?`, message, "Restart"))) return;
  const before = await attempt(() => api("GET", "/api/v1/update"));
  if (!before) return;
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
      // The supervisor records a release it rolled back in the job status: stop waiting.
      const job = await api("GET", "/api/v1/update", undefined, 3000);
      if (failedSince(before, job, answer.to_version)) {
        await loadAll();
        notice(`${answer.to_version} did not take over (${job.error.code}): ${job.message}`);
        return;
      }
    } catch {
      // the old process is going away; keep asking
    }
  }
  notice(`${answer.to_version} did not answer within two minutes: see the history`);
}

function failedSince(before, job, version) {
  const changed = job.updated_at !== before.updated_at || job.job_id !== before.job_id;
  return changed && job.error !== null && job.to_version === version;
}

async function rollback() {
  const host = state.host || {};
  const message =
    `Make ${host.previous_version} the active release again? ${host.active_version} stays ` +
    `installed; a restart then runs ${host.previous_version}.`;
  if (!(await confirmFirst(`Roll back to ${host.previous_version}?`, message, "Roll back"))) return;
  const answer = await attempt(() => api("POST", "/api/v1/rollback"));
  if (answer) {
    notice(answer.message, "info");
    state.historyOffset = 0;
    await loadAll();
  }
}

async function cancel() {
  const job = await attempt(() => api("DELETE", "/api/v1/update"));
  if (job) renderJob(job);
}

function page(direction) {
  state.historyOffset = Math.max(0, state.historyOffset + direction * HISTORY_PAGE);
  loadHistory();
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
  state.role = null;
  state.host = null;
  sessionStorage.removeItem(TOKEN_KEY);
  text("host-id", "token needed");
  text("pending", "token needed");
  notice("The token is forgotten.", "info");
  emptyRow($("history-rows"), 6, "token needed");
  renderRole();
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
  $("history-newer").addEventListener("click", () => page(-1));
  $("history-older").addEventListener("click", () => page(1));
  setInterval(tick, 1000);
  renderRole();
  loadVersion();
  loadAll();
});
