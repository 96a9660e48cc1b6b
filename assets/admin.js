// The admin console: signs in through the company's identity provider or
// with the admin token (session cookie + CSRF token), pairs phones by SMS
// link or QR code, manages devices, activates licenses, makes and revokes
// API tokens and shows recent activity; a developer gets "My phones" only
// (my.js). Plain module, no build step.
import { myPhones } from "/assets/my.js";

const $ = (id) => document.getElementById(id);
let csrf = null;
let invite = null;
let timers = [];

function notice(text, kind = "error") {
  const el = $("notice");
  el.textContent = text;
  el.className = `notice ${kind}`;
  el.hidden = !text;
}

class ApiError extends Error {
  constructor(status, body) {
    super(body?.detail ?? `The appliance answered ${status}.`);
    this.status = status;
    this.code = body?.error;
  }
}

async function api(method, path, body) {
  const headers = {};
  if (body !== undefined) headers["content-type"] = "application/json";
  if (method !== "GET" && csrf) headers["x-csrf-token"] = csrf;
  const response = await fetch(path, { method, headers, credentials: "same-origin", body: body === undefined ? undefined : JSON.stringify(body) });
  const answer = await response.json().catch(() => null);
  if (response.status === 401 && path !== "/admin/session") showSignIn("Your session has ended. Sign in again.");
  if (!response.ok) throw new ApiError(response.status, answer);
  return answer;
}

function explain(error) {
  if (error.code === "seat_limit") return `No seat left: ${error.message} Activate a license with more seats under License.`;
  if (error.code === "rate_limited") return "Too many attempts. Wait a minute and try again.";
  return error.message || "Something went wrong.";
}

function when(text) {
  return text ? new Date(text).toLocaleString() : "—";
}

function showSignIn(message) {
  csrf = null;
  timers.forEach(clearInterval);
  timers = [];
  document.querySelectorAll(".panel").forEach((p) => (p.hidden = true));
  $("tabs").hidden = true;
  $("sign-out").hidden = true;
  $("who").textContent = "";
  $("sign-in").hidden = false;
  notice(message ?? "", "error");
  $("admin-token").focus();
}

/** Opens the console for session `s`: a developer sees "My phones" only. */
function showConsole(s) {
  $("sign-in").hidden = true;
  $("tabs").hidden = false;
  $("sign-out").hidden = false;
  $("who").textContent = s.user_id ? `${s.name} (${s.role})` : "admin token";
  notice("");
  const developer = s.role === "developer";
  document.querySelectorAll(".tab").forEach((t) => (t.hidden = developer && t.dataset.tab !== "my"));
  $("my-tab").hidden = s.signed_in_with !== "oidc";
  timers.push(setInterval(my.refresh, 3000));
  if (developer) return openTab("my");
  openTab("pair");
  timers.push(setInterval(refreshDevices, 2000), setInterval(refreshPendingBadge, 5000));
  refreshPendingBadge();
  api("GET", "/admin/status").then((s) => {
    $("ca-fingerprint").textContent = s.ca_fingerprint;
    const c = s.certificate;
    if (c) $("certificate").textContent = `${c.subject}, issued by ${c.issuer}, ${c.days_left} days left (until ${when(c.not_after)})`;
    $("acme").textContent = acmeLine(s.acme);
  }).catch(() => {});
}

/** The Devices tab's badge: how many new phones wait for approval. */
async function refreshPendingBadge() {
  try {
    const s = await api("GET", "/admin/status");
    const waiting = s.devices?.pending_approval ?? 0;
    const badge = $("pending-badge");
    badge.textContent = waiting;
    badge.hidden = waiting === 0;
    badge.title = `${waiting} new phone(s) waiting for approval`;
  } catch {
    // signed out or unreachable: the next refresh tries again
  }
}

/** Where certificate renewal by ACME stands, in one sentence. */
function acmeLine(a) {
  if (!a) return "";
  const names = a.domains.join(", ");
  if (a.state === "valid") return `ACME (${a.challenge}) for ${names}: next renewal ${when(a.next_attempt)}.`;
  const failing = a.last_error ? ` Last attempt failed (${a.failures}×): ${a.last_error}. Next try ${when(a.next_attempt)}.` : "";
  if (a.state === "failing") return `ACME for ${names}: renewal failing; the certificate above keeps serving.${failing}`;
  return `ACME for ${names}: waiting for the first certificate.${failing}`;
}

function openTab(name) {
  document.querySelectorAll(".panel").forEach((p) => (p.hidden = p.id !== name));
  document.querySelectorAll(".tab").forEach((t) => t.toggleAttribute("aria-current", t.dataset.tab === name));
  if (name === "devices") refreshDevices();
  if (name === "license") refreshLicense();
  if (name === "activity") refreshActivity();
  if (name === "tokens") refreshTokens();
  if (name === "my") my.refresh();
}

async function signIn(event) {
  event.preventDefault();
  try {
    const answer = await api("POST", "/admin/session", { admin_token: $("admin-token").value });
    csrf = answer.csrf_token;
    $("admin-token").value = "";
    showConsole(answer);
  } catch (error) {
    notice(error.status === 401 ? "That admin token is not right." : explain(error));
  }
}

/** Signs out; a person is sent on to the identity provider's logout. */
async function signOut() {
  let answer = null;
  try { answer = await api("DELETE", "/admin/session"); } catch { /* signed out either way */ }
  showSignIn("Signed out.");
  if (answer?.logout_url) location.assign(answer.logout_url);
}

// Pairing ---------------------------------------------------------------
function chooseMode(qr) {
  $("by-sms").setAttribute("aria-selected", String(!qr));
  $("by-qr").setAttribute("aria-selected", String(qr));
  $("sms-form").hidden = qr;
  $("qr-form").hidden = !qr;
}

function showInvite(answer, kind) {
  invite = { code: answer.invite_code, kind, expires: new Date(answer.expires_at) };
  $("invite").hidden = false;
  $("resend").hidden = kind !== "sms";
  $("invite-to").textContent = kind === "sms" ? `Sent to ${answer.phone_number}.` : "Scan this with the phone's camera.";
  $("qr-image").hidden = kind !== "qr";
  if (kind === "qr") $("qr-image").src = `data:image/png;base64,${answer.qr_png_base64}`;
  $("qr-otp").hidden = !answer.otp;
  $("qr-otp-value").textContent = answer.otp ?? "";
  setStatus("pending");
}

function setStatus(status) {
  const pill = $("invite-status");
  pill.textContent = status;
  pill.dataset.status = status;
  const open = status === "pending";
  $("resend").disabled = !open;
  $("cancel").disabled = !open;
}

async function pollInvite() {
  if (!invite || $("invite-status").textContent !== "pending") return;
  const left = Math.max(0, Math.round((invite.expires - Date.now()) / 1000));
  $("invite-countdown").textContent = `expires in ${Math.floor(left / 60)}:${String(left % 60).padStart(2, "0")}`;
  try {
    const view = await api("GET", `/phone/pairing/invite/${encodeURIComponent(invite.code)}`);
    setStatus(view.status);
    if (view.status !== "pending") $("invite-countdown").textContent = "";
  } catch { /* shown on the next action */ }
}

async function sendSms(event) {
  event.preventDefault();
  const form = new FormData(event.target);
  try {
    showInvite(await api("POST", "/phone/pairing/send-sms", Object.fromEntries(form)), "sms");
    notice("Pairing link sent.", "ok");
  } catch (error) {
    notice(explain(error));
  }
}

async function showQr(event) {
  event.preventDefault();
  const form = Object.fromEntries(new FormData(event.target));
  if (!form.user_name) delete form.user_name;
  try {
    showInvite(await api("POST", "/phone/pairing/generate-qr", form), "qr");
    notice("");
  } catch (error) {
    notice(explain(error));
  }
}

async function resend() {
  try {
    showInvite(await api("POST", `/phone/pairing/resend-sms/${encodeURIComponent(invite.code)}`), "sms");
    notice("Sent again.", "ok");
  } catch (error) {
    notice(explain(error));
  }
}

async function cancelInvite() {
  try {
    await api("DELETE", `/phone/pairing/invite/${encodeURIComponent(invite.code)}`);
    setStatus("cancelled");
  } catch (error) {
    notice(explain(error));
  }
}

// Devices ---------------------------------------------------------------
function cell(text) {
  const td = document.createElement("td");
  td.textContent = text;
  return td;
}

function actionButton(label, kind, run) {
  const b = document.createElement("button");
  b.type = "button";
  b.textContent = label;
  b.className = kind;
  b.addEventListener("click", run);
  return b;
}

async function change(device, what) {
  const id = encodeURIComponent(device.device_id);
  if (what === "revoke" && !confirm(`Revoke ${device.device_name} (${device.device_id})? It will have to pair again.`)) return;
  try {
    if (what === "revoke") await api("DELETE", `/phone/devices/${id}`);
    else await api("POST", `/phone/devices/${id}/${what}`);
    notice(`${device.device_id}: ${what} done.`, "ok");
    refreshDevices();
    refreshPendingBadge();
  } catch (error) {
    notice(explain(error));
  }
}

async function refreshDevices() {
  if ($("devices").hidden && $("pair").hidden) return;
  const user = $("user-filter").value.trim();
  let list;
  try {
    list = await api("GET", `/phone/devices${user ? `?user_id=${encodeURIComponent(user)}` : ""}`);
  } catch (error) {
    if (error.status !== 401) notice(explain(error));
    return;
  }
  const rows = list.devices.map((d) => {
    const tr = document.createElement("tr");
    tr.dataset.device = d.device_id;
    tr.append(cell(d.user_id), cell(`${d.device_name} (${d.device_id})`), cell(d.device_type), cell(d.os_version),
      cell(when(d.paired_at)), cell(when(d.last_seen_at)));
    const state = cell(d.status);
    state.className = `state ${d.status}`;
    tr.append(state);
    const actions = document.createElement("td");
    if (d.status === "pending_approval") {
      actions.append(actionButton("Approve", "", () => change(d, "approve")),
        actionButton("Reject", "danger", () => change(d, "reject")));
    }
    if (d.status === "active") actions.append(actionButton("Suspend", "quiet", () => change(d, "suspend")));
    if (d.status === "suspended") actions.append(actionButton("Reactivate", "quiet", () => change(d, "reactivate")));
    if (d.status === "active" || d.status === "suspended") actions.append(actionButton("Revoke", "danger", () => change(d, "revoke")));
    if (d.status === "revoked") actions.textContent = "Revoked is final";
    tr.append(actions);
    return tr;
  });
  $("device-rows").replaceChildren(...rows);
  $("no-devices").hidden = rows.length > 0;
}

// License and activity --------------------------------------------------
function fact(name, value) {
  const dt = document.createElement("dt");
  dt.textContent = name;
  const dd = document.createElement("dd");
  dd.textContent = value;
  return [dt, dd];
}

async function refreshLicense() {
  try {
    const l = await api("GET", "/admin/license");
    $("license-status").replaceChildren(
      ...fact("Status", l.reason ? `${l.state}: ${l.reason}` : l.state),
      ...fact("Customer", l.customer ?? "—"),
      ...fact("Seats used", `${l.seats_used} of ${l.seats}`),
      ...fact("Expires", l.expires_at ? when(l.expires_at) : "never"),
    );
  } catch (error) {
    notice(explain(error));
  }
}

async function activate(event) {
  event.preventDefault();
  try {
    await api("POST", "/admin/license", { license_key: $("license-key").value.trim() });
    $("license-key").value = "";
    notice("License activated.", "ok");
    refreshLicense();
  } catch (error) {
    notice(explain(error));
  }
}

function items(list, render) {
  return list.map((x) => {
    const li = document.createElement("li");
    li.textContent = render(x);
    return li;
  });
}

async function refreshActivity() {
  try {
    const a = await api("GET", "/admin/activity");
    const receipts = (n) => (n.receipts ?? []).map((r) => `${r.device_id}: ${r.state}`).join(", ");
    $("recent-notifications").replaceChildren(...items(a.notifications, (n) => `${when(n.time)} · ${n.title} (priority ${n.priority}; ${receipts(n) || `to ${n.recipients.join(", ")}`})`));
    $("recent-approvals").replaceChildren(...items(a.approvals, (x) => `${when(x.created_at)} · ${x.title}: ${x.status}${x.decided_by ? ` by ${x.decided_by}` : ""}`));
    $("recent-commands").replaceChildren(...items(a.commands, (c) => `${when(c.received_at)} · ${c.device_id}: "${c.text}" → ${c.result.status}`));
    const audit = await api("GET", "/admin/audit?limit=50");
    $("audit").replaceChildren(...items(audit.events ?? audit, (e) => `${when(e.time)} ${e.actor} ${e.action} ${e.target} → ${e.result}`));
  } catch (error) {
    notice(explain(error));
  }
}

// API tokens ------------------------------------------------------------
async function refreshTokens() {
  let list;
  try {
    list = await api("GET", "/admin/tokens");
  } catch (error) {
    notice(explain(error));
    return;
  }
  const rows = list.tokens.map((t) => {
    const tr = document.createElement("tr");
    tr.dataset.token = t.name;
    tr.append(cell(t.name), cell(t.scopes.join(", ")), cell(t.users.length ? t.users.join(", ") : "any"),
      cell(when(t.created_at)), cell(t.last_used_at ? when(t.last_used_at) : "never"),
      cell(t.expires_at ? when(t.expires_at) : "never"));
    const actions = document.createElement("td");
    actions.append(actionButton("Revoke", "danger", () => revokeToken(t.name)));
    tr.append(actions);
    return tr;
  });
  $("token-rows").replaceChildren(...rows);
  $("no-tokens").hidden = rows.length > 0;
}

async function createToken(event) {
  event.preventDefault();
  const form = new FormData(event.target);
  const users = String(form.get("users") ?? "").split(",").map((u) => u.trim()).filter(Boolean);
  const expires = String(form.get("expires_in") ?? "").trim();
  const body = { name: form.get("name"), scopes: form.getAll("scope"), users, expires_in: expires || null };
  try {
    const made = await api("POST", "/admin/tokens", body);
    $("new-token-value").textContent = made.token;
    $("new-token").hidden = false;
    event.target.reset();
    notice(`Token ${made.name} created.`, "ok");
    refreshTokens();
  } catch (error) {
    notice(explain(error));
  }
}

async function revokeToken(name) {
  if (!confirm(`Revoke token ${name}? Anything using it stops working at once.`)) return;
  try {
    await api("DELETE", `/admin/tokens/${encodeURIComponent(name)}`);
    $("new-token").hidden = true;
    notice(`Token ${name} revoked.`, "ok");
    refreshTokens();
  } catch (error) {
    notice(explain(error));
  }
}

// Start -----------------------------------------------------------------
const my = myPhones({ api, notice, explain, when });
$("sign-in-form").addEventListener("submit", signIn);
$("sign-out").addEventListener("click", signOut);
document.querySelectorAll(".tab").forEach((t) => t.addEventListener("click", () => openTab(t.dataset.tab)));
$("by-sms").addEventListener("click", () => chooseMode(false));
$("by-qr").addEventListener("click", () => chooseMode(true));
$("sms-form").addEventListener("submit", sendSms);
$("qr-form").addEventListener("submit", showQr);
$("resend").addEventListener("click", resend);
$("cancel").addEventListener("click", cancelInvite);
$("user-filter").addEventListener("input", refreshDevices);
$("license-form").addEventListener("submit", activate);
$("token-form").addEventListener("submit", createToken);
setInterval(pollInvite, 1000);

fetch("/admin/session", { credentials: "same-origin" })
  .then((r) => (r.ok ? r.json() : null))
  .then((s) => {
    if (s) {
      csrf = s.csrf_token;
      showConsole(s);
    } else {
      showSignIn();
    }
  });
