// The phone web app: live notifications, approvals and command results over
// the appliance's event stream (Server-Sent Events read with fetch, so the
// device token travels in a header), missed ones fetched on reconnect with
// `since`, approvals answered by number matching, voice or text commands,
// notifications while the app is closed (Web Push, turned on by a button,
// never a prompt on load), "This wasn't me" on an alert that a new phone
// was paired to this account, waiting for an admin's approval where new
// phones need one, and unpairing. Plain module, no build step.
import "/assets/keystore.js";

const $ = (id) => document.getElementById(id);
const token = localStorage.getItem("topdog.token");
let since = localStorage.getItem("topdog.since");
let ended = false;

function banner(text, kind = "error") {
  const el = $("banner");
  el.textContent = text;
  el.className = `notice ${kind}`;
  el.hidden = !text;
}

function connection(text, state) {
  $("connection").textContent = text;
  $("connection").dataset.state = state;
}

/** What the appliance's refusal of this phone's token means to its owner. */
function refusal(answer, otherwise) {
  if (answer?.error === "device_revoked") return "This phone was unpaired by an admin.";
  if (answer?.error === "device_suspended") return "An admin suspended this phone. Ask them to reactivate it.";
  return answer?.detail ?? otherwise;
}

/** Ends the app; the first reason given stays on screen (a `control`
 * message says more than a refused request that raced it). */
function unpaired(text) {
  if (ended) return;
  ended = true;
  localStorage.removeItem("topdog.token");
  localStorage.removeItem("topdog.since");
  self.topdogKeys.remove("token").catch(() => {});
  $("app").hidden = true;
  connection("unpaired", "off");
  banner(text);
  document.body.dataset.state = "unpaired";
}

async function api(method, path, body) {
  const response = await fetch(path, {
    method,
    headers: { authorization: `Bearer ${token}`, ...(body ? { "content-type": "application/json" } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  const answer = await response.json().catch(() => null);
  if (response.status === 401) unpaired(refusal(answer, "This phone is no longer paired. Ask your admin for a new pairing link."));
  if (!response.ok) throw new Error(answer?.detail ?? `The appliance answered ${response.status}.`);
  return answer;
}

/** Ids shown while the app is visible, told to the appliance (receipts). */
const unseen = new Set();
let seenTimer = null;

function shown(id) {
  unseen.add(id);
  if (document.visibilityState === "visible" && !seenTimer) seenTimer = setTimeout(flushSeen, 300);
}

async function flushSeen() {
  seenTimer = null;
  if (document.visibilityState !== "visible" || unseen.size === 0) return;
  const ids = [...unseen].slice(0, 100);
  ids.forEach((id) => unseen.delete(id));
  await api("POST", "/phone/seen", { ids }).catch(() => ids.forEach((id) => unseen.add(id)));
  if (unseen.size) seenTimer = setTimeout(flushSeen, 300);
}

document.addEventListener("visibilitychange", () => {
  if (document.visibilityState === "visible" && unseen.size && !seenTimer) seenTimer = setTimeout(flushSeen, 300);
});

function card(title, text, extra) {
  const li = document.createElement("li");
  li.className = "card";
  const h = document.createElement("h3");
  h.textContent = title;
  const p = document.createElement("p");
  p.textContent = text;
  li.append(h, p);
  if (extra) li.append(extra);
  return li;
}

function showNotification(n) {
  const item = card(n.title, n.body || "", null);
  item.dataset.priority = n.priority;
  item.dataset.id = n.id;
  if (n.link) {
    const a = document.createElement("a");
    a.href = n.link;
    a.rel = "noreferrer noopener";
    a.textContent = "Open";
    item.append(a);
  }
  if (n.kind === "new_device" && n.device) item.append(notMeButton(n));
  const small = document.createElement("small");
  small.textContent = `${n.kind} · ${new Date(n.time).toLocaleString()}`;
  item.append(small);
  $("notifications").prepend(item);
  $("no-notifications").hidden = true;
  shown(n.id);
  if (!since || n.id > since) {
    since = n.id;
    localStorage.setItem("topdog.since", since);
  }
}

/** "This wasn't me" on an alert that a new phone was paired to this
 * account: the appliance revokes that phone and tells the admins. */
function notMeButton(n) {
  const b = document.createElement("button");
  Object.assign(b, { type: "button", className: "danger", textContent: "This wasn't me" });
  b.addEventListener("click", async () => {
    if (!confirm(`Revoke “${n.device.device_name}” and tell your admins?`)) return;
    try {
      await api("POST", `/phone/notifications/${encodeURIComponent(n.id)}/not-me`);
      b.replaceWith(Object.assign(document.createElement("p"), { textContent: `“${n.device.device_name}” was revoked; your admins were told.` }));
    } catch (error) {
      banner(error.message);
    }
  });
  return b;
}

function showApproval(a) {
  if (document.querySelector(`[data-approval="${CSS.escape(a.id)}"]`)) return;
  const form = document.createElement("form");
  form.className = "approval";
  const legend = document.createElement("p");
  // A phone's own command asks for a plain confirm (no numbers): the
  // requester is this phone.
  legend.textContent = a.choices.length ? "Pick the number shown to the requester:" : "Confirm on this phone:";
  form.append(legend);
  a.choices.forEach((choice, i) => {
    const label = document.createElement("label");
    label.className = "choice";
    const input = document.createElement("input");
    Object.assign(input, { type: "radio", name: "code", value: choice, required: true, id: `${a.id}-${i}` });
    label.append(input, choice);
    form.append(label);
  });
  const buttons = document.createElement("div");
  buttons.className = "actions";
  for (const [decision, label, kind] of [["approve", "Approve", ""], ["reject", "Reject", "danger"]]) {
    const b = document.createElement("button");
    // Rejecting needs no number.
    Object.assign(b, { type: "submit", value: decision, textContent: label, className: kind, formNoValidate: decision === "reject" });
    buttons.append(b);
  }
  form.append(buttons);
  const status = document.createElement("p");
  status.setAttribute("role", "status");
  form.append(status);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const code = new FormData(form).get("code") ?? "";
    try {
      const decided = await api("POST", `/phone/approvals/${encodeURIComponent(a.id)}/respond`, { decision: event.submitter.value, code });
      status.textContent = `Done: ${decided.status}.`;
      form.querySelectorAll("button, input").forEach((el) => (el.disabled = true));
      form.closest("li").dataset.state = decided.status;
    } catch (error) {
      status.textContent = error.message;
    }
  });
  const item = card(a.title, a.detail, form);
  item.dataset.approval = a.id;
  $("approvals").prepend(item);
  $("no-approvals").hidden = true;
  shown(a.id);
}

function showResult(r) {
  const li = document.createElement("li");
  li.dataset.status = r.status;
  li.textContent = r.message + (r.output_tail ? `\n${r.output_tail.trim().split("\n").slice(-3).join("\n")}` : "");
  $("results").prepend(li);
}

function handle(type, message) {
  if (type === "notification") showNotification(message);
  if (type === "approval_request") showApproval(message);
  if (type === "command_result") showResult(message);
  if (type === "control" && message.action === "revoked") unpaired("This phone was unpaired by an admin.");
  if (type === "control" && message.action === "suspended") unpaired("An admin suspended this phone. Ask them to reactivate it.");
  if (type === "control" && message.action === "token_refresh") refreshToken();
}

async function refreshToken() {
  try {
    const fresh = await api("POST", "/phone/token/refresh");
    localStorage.setItem("topdog.token", fresh.jwt_token);
    await self.topdogKeys.set("token", fresh.jwt_token);
    location.reload();
  } catch { /* the next start tries again */ }
}

async function listen() {
  while (!ended) {
    try {
      const query = since ? `?since=${encodeURIComponent(since)}` : "";
      const response = await fetch(`/phone/events${query}`, { headers: { authorization: `Bearer ${localStorage.getItem("topdog.token")}` } });
      if (response.status === 401 || response.status === 403) {
        const answer = await response.json().catch(() => null);
        unpaired(refusal(answer, "This phone is no longer paired."));
        return;
      }
      connection("live", "on");
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value;
        let end;
        while ((end = buffer.indexOf("\n\n")) >= 0) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          const field = (name) => block.split("\n").find((l) => l.startsWith(`${name}:`))?.slice(name.length + 1);
          const data = field("data");
          if (data) handle(field("event"), JSON.parse(data));
        }
      }
    } catch { /* reconnect below */ }
    if (!ended) {
      connection("reconnecting…", "off");
      await new Promise((r) => setTimeout(r, 2000));
    }
  }
}

async function sendCommand(event) {
  event.preventDefault();
  const text = $("command-text").value.trim();
  if (!text) return;
  try {
    showResult(await api("POST", "/phone/commands", { text }));
    $("command-text").value = "";
  } catch (error) {
    banner(error.message);
  }
}

function setUpSpeech() {
  const Recognition = window.SpeechRecognition ?? window.webkitSpeechRecognition;
  if (!Recognition) return;
  $("speak").hidden = false;
  $("speak").addEventListener("click", () => {
    const recognition = new Recognition();
    recognition.lang = navigator.language;
    recognition.onresult = (e) => {
      $("command-text").value = e.results[0][0].transcript;
      $("command-form").requestSubmit();
    };
    recognition.start();
  });
}

/** The VAPID key (base64url) as the bytes `subscribe` takes. */
function keyBytes(base64url) {
  const base64 = base64url.replaceAll("-", "+").replaceAll("_", "/");
  return Uint8Array.from(atob(base64.padEnd(Math.ceil(base64.length / 4) * 4, "=")), (c) => c.charCodeAt(0));
}

function pushState(state, text) {
  $("push").dataset.state = state;
  $("push-state").textContent = text;
  $("push-on").hidden = state !== "off";
}

/** Asks for permission, subscribes with the appliance's key and registers
 * the subscription. */
async function turnOnPush() {
  try {
    if ((await Notification.requestPermission()) !== "granted") {
      return pushState("blocked", "Notifications are blocked for this site; allow them in the browser's settings.");
    }
    const { public_key: key } = await api("GET", "/phone/push/key");
    const registration = await navigator.serviceWorker.ready;
    const subscription = await registration.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: keyBytes(key) });
    await api("POST", "/phone/push/subscriptions", subscription.toJSON());
    pushState("on", "Notifications are on: this phone hears from Top Dog while the app is closed.");
  } catch (error) {
    pushState("off", `Notifications could not be turned on: ${error.message}`);
  }
}

/** Offers the button where the browser can push; re-registers a
 * subscription this browser already has. */
async function setUpPush() {
  if (!("serviceWorker" in navigator) || !("PushManager" in window) || !("Notification" in window)) {
    return pushState("unsupported", "This browser cannot show notifications while the app is closed.");
  }
  $("push-on").addEventListener("click", turnOnPush);
  if (Notification.permission === "denied") {
    return pushState("blocked", "Notifications are blocked for this site; allow them in the browser's settings.");
  }
  const existing = await (await navigator.serviceWorker.ready).pushManager.getSubscription();
  if (existing && Notification.permission === "granted") {
    await api("POST", "/phone/push/subscriptions", existing.toJSON()).catch(() => {});
    return pushState("on", "Notifications are on: this phone hears from Top Dog while the app is closed.");
  }
  pushState("off", "Get notifications while the app is closed:");
}

async function unpair() {
  if (!confirm("Unpair this phone? You will need a new pairing link to use it again.")) return;
  // Said first: the appliance's own `control` message about it may come
  // back before the answer does.
  unpaired("This phone is unpaired.");
  try {
    await fetch("/phone/me", { method: "DELETE", headers: { authorization: `Bearer ${token}` } });
  } catch { /* unpaired locally either way */ }
}

/** Where new phones need an admin's approval, waits (asking every few
 * seconds) until this one is approved; the app then moves on by itself. */
async function approved() {
  for (;;) {
    let me;
    try {
      me = await api("GET", "/phone/me");
    } catch (error) {
      if (ended) return false;
      banner(error.message);
      await new Promise((r) => setTimeout(r, 5000));
      continue;
    }
    if (me.status !== "pending_approval") {
      if (document.body.dataset.state === "waiting") {
        banner("");
        delete document.body.dataset.state;
      }
      return true;
    }
    document.body.dataset.state = "waiting";
    connection("waiting for approval", "off");
    banner("Waiting for approval: an admin must approve this phone before it gets anything. This page moves on by itself.", "info");
    await new Promise((r) => setTimeout(r, 3000));
  }
}

async function start() {
  self.topdogKeys.set("token", token).catch(() => {});
  if (!(await approved())) return;
  setUpPush();
  $("command-form").addEventListener("submit", sendCommand);
  $("unpair").addEventListener("click", unpair);
  setUpSpeech();
  listen();
}

if ("serviceWorker" in navigator) navigator.serviceWorker.register("/sw.js", { scope: "/" }).catch(() => {});
if (!token) {
  unpaired("This browser is not paired yet. Open the pairing link from your text message.");
} else {
  start();
}
