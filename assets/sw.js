// The phone app's service worker: keeps the app shell for offline starts
// (API calls and the event stream always go to the network), and shows
// what the appliance pushes while the app is closed: a system notification
// per message (one per item: a newer message about it replaces the older),
// an approval offering Reject (done here, no app needed) and Review (opens
// the app, where the number is matched: approving is never possible from
// the lock screen), and a revoked phone forgetting its token.
importScripts("/assets/keystore.js");

const SHELL = "topdog-shell-v2";
const FILES = ["/app", "/assets/app.js", "/assets/keystore.js", "/assets/style.css", "/assets/icon.svg", "/manifest.webmanifest"];
const ICON = "/assets/icon-192.png";
const VIBRATE = { 5: [300, 100, 300, 100, 300], 4: [200, 100, 200], 3: [150] };

self.addEventListener("install", (event) => {
  event.waitUntil(caches.open(SHELL).then((cache) => cache.addAll(FILES)));
});

self.addEventListener("activate", (event) => {
  event.waitUntil(caches.keys().then((keys) => Promise.all(keys.filter((k) => k !== SHELL).map((k) => caches.delete(k)))));
});

self.addEventListener("fetch", (event) => {
  const url = new URL(event.request.url);
  if (event.request.method !== "GET" || !FILES.includes(url.pathname)) return;
  event.respondWith(fetch(event.request).catch(() => caches.match(event.request)));
});

/** A notification's priority as sound and vibration (1–2 are silent). */
function alerting(priority) {
  return priority <= 2 ? { silent: true } : { vibrate: VIBRATE[priority] ?? [] };
}

/** The title and options that show `message`, by its type. */
function shown(message) {
  switch (message.type) {
    case "notification":
      return [message.title, {
        body: message.body, tag: `notification-${message.id}`, requireInteraction: message.priority >= 5,
        ...alerting(message.priority), data: { url: `/app#notification-${message.id}`, item: message.id },
      }];
    case "approval_request":
      return [`Approve? ${message.title}`, {
        body: message.detail || "Open Top Dog to match the number.", tag: `approval-${message.id}`,
        requireInteraction: true, vibrate: VIBRATE[5],
        actions: [{ action: "reject", title: "Reject" }, { action: "review", title: "Review" }],
        data: { url: `/app#approval-${message.id}`, approval: message.id, item: message.id },
      }];
    case "command_result":
      return [`Command ${message.status.replaceAll("_", " ")}`, {
        body: message.message, tag: `command-${message.command_id}`, data: { url: "/app#results" },
      }];
    case "build_status":
      return [`${message.action}: ${message.state.replaceAll("_", " ")}`, { tag: `build-${message.action}`, data: { url: "/app" } }];
    case "control":
      return [message.action === "revoked" ? "This phone was unpaired" : "This phone was suspended", {
        body: message.detail, tag: "control", data: { url: "/app" },
      }];
    default:
      return null;
  }
}

/** A revoked or suspended phone: what was shown before goes; a revoked
 * one forgets its token. */
async function controlled(message) {
  (await self.registration.getNotifications()).filter((n) => n.tag !== "control").forEach((n) => n.close());
  if (message.action === "revoked") await self.topdogKeys.remove("token");
}

self.addEventListener("push", (event) => {
  let message = null;
  try {
    message = event.data?.json() ?? null;
  } catch { /* shown as a generic notice below */ }
  const [title, options] = (message && shown(message)) ?? ["Top Dog", { body: "Open the app to see what is new.", tag: "topdog" }];
  event.waitUntil((async () => {
    const timestamp = Date.parse(message?.time) || Date.now();
    await self.registration.showNotification(title, { icon: ICON, badge: ICON, timestamp, ...options });
    if (message?.type === "control") await controlled(message);
  })());
});

/** Tells the appliance the person saw `item` (a tap on its notification). */
async function seen(item) {
  const token = await self.topdogKeys.get("token");
  if (!token || !item) return;
  await fetch("/phone/seen", {
    method: "POST",
    headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
    body: JSON.stringify({ ids: [item] }),
  }).catch(() => {});
}

/** Rejects approval `id` with the phone's token; says how it went in a
 * notification that replaces the approval's (same tag: the approval's is
 * never closed first, as a close that lands after the replacement would
 * take the answer away with it). */
async function reject(notification, id) {
  const token = await self.topdogKeys.get("token");
  if (!token) {
    notification.close();
    return openApp("/app");
  }
  let title = "Not rejected";
  let body = "The appliance could not be reached.";
  try {
    const response = await fetch(`/phone/approvals/${encodeURIComponent(id)}/respond`, {
      method: "POST",
      headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
      body: JSON.stringify({ decision: "reject", code: "" }),
    });
    const answer = await response.json().catch(() => null);
    title = response.ok ? "Rejected" : title;
    body = response.ok ? "The request was rejected." : (answer?.detail ?? `The appliance answered ${response.status}.`);
  } catch { /* said as "could not be reached" */ }
  await self.registration.showNotification(title, { body, tag: `approval-${id}`, icon: ICON, badge: ICON });
}

/** Focuses the open app at `url`, or opens it. */
async function openApp(url) {
  const windows = await self.clients.matchAll({ type: "window", includeUncontrolled: true });
  const open = windows.find((w) => new URL(w.url).pathname === "/app");
  if (open) {
    await open.focus();
    open.postMessage({ open: url });
    return;
  }
  await self.clients.openWindow(url);
}

self.addEventListener("notificationclick", (event) => {
  const data = event.notification.data ?? {};
  const rejecting = event.action === "reject" && data.approval;
  if (!rejecting) event.notification.close();
  const opened = rejecting ? reject(event.notification, data.approval) : openApp(data.url ?? "/app");
  const work = Promise.all([seen(data.item), opened]);
  try {
    event.waitUntil(work);
  } catch { /* an event dispatched by a script cannot be extended; the work still runs */ }
});
