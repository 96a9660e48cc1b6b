// Web Push in headless Chromium: the phone app's "Turn on notifications"
// subscribes with the appliance's VAPID key and registers the subscription
// (the browser's own push service is out of reach offline, so
// `pushManager.subscribe` is answered by a stand-in that keeps the key it
// was given and returns a subscription with real P-256 keys); pushes are
// delivered to the service worker through the DevTools protocol
// (`ServiceWorker.deliverPushMessage`), which shows them as system
// notifications with the right title, tag and actions; the notification's
// Reject action, dispatched in the worker, rejects the approval on the
// appliance with the token the worker reads from IndexedDB (and the tap
// counts as seen); a `revoked`
// push clears what was shown.
//
// Usage: node push.mjs <topdog binary> <scratch dir>   (run by tests/api/ui.rs)
import { eventually, fail, ideCall, pairInBrowser, phoneCall, phoneContext, receiptState, runTest, shot } from "./appliance.mjs";

/** Stands in for the browser's push service in `pushManager.subscribe`. */
function fakeSubscribe() {
  PushManager.prototype.subscribe = async function (options) {
    const key = btoa(String.fromCharCode(...new Uint8Array(options.applicationServerKey)));
    localStorage.setItem("test.applicationServerKey", key.replaceAll("+", "-").replaceAll("/", "_").replace(/=+$/, ""));
    const pair = await crypto.subtle.generateKey({ name: "ECDH", namedCurve: "P-256" }, true, ["deriveBits"]);
    const raw = new Uint8Array(await crypto.subtle.exportKey("raw", pair.publicKey));
    const b64url = (bytes) => btoa(String.fromCharCode(...bytes)).replaceAll("+", "-").replaceAll("/", "_").replace(/=+$/, "");
    const json = {
      endpoint: `https://127.0.0.1:9/push/${crypto.randomUUID()}`,
      expirationTime: null,
      keys: { p256dh: b64url(raw), auth: b64url(crypto.getRandomValues(new Uint8Array(16))) },
    };
    return { endpoint: json.endpoint, toJSON: () => json };
  };
  PushManager.prototype.getSubscription = async () => null;
}

/** The notifications the worker shows now. */
function showing(page) {
  return page.evaluate(async () => (await (await navigator.serviceWorker.ready).getNotifications())
    .map((n) => ({ title: n.title, body: n.body, tag: n.tag, actions: n.actions.map((a) => a.action), requireInteraction: n.requireInteraction })));
}

/** Waits until a shown notification has `tag` (and `title`, if given). */
function waitShown(page, tag, title, timeout) {
  const found = async () => (await showing(page)).find((n) => n.tag === tag && (title === undefined || n.title === title));
  return eventually(found, async () => `a notification tagged ${tag} ${title ?? ""}: ${JSON.stringify(await showing(page))}`, timeout);
}

await runTest("push", ["--push-allowed-hosts", "127.0.0.1"], async (app, browser) => {
  const sent = await ideCall(app, "POST", "/phone/pairing/send-sms", { phone_number: "+14155552671", user_id: "alice", user_name: "Alice" });
  if (sent.status !== 200) fail(`send-sms: ${JSON.stringify(sent)}`);
  const context = await phoneContext(browser);
  await context.grantPermissions(["notifications"], { origin: app.base });
  await context.addInitScript(fakeSubscribe);
  const phone = await pairInBrowser(app, context);
  await phone.click("#accept");
  await phone.waitForURL(`${app.base}/app`);
  await phone.locator("#connection", { hasText: "live" }).waitFor();

  // Turning notifications on registers a subscription made with the
  // appliance's key.
  await phone.click("#push-on");
  await phone.locator("#push[data-state=on]").waitFor();
  await shot(phone, "11-phone-notifications-on");
  const token = await phone.evaluate(() => localStorage.getItem("topdog.token"));
  const key = await phoneCall(app, token, "GET", "/phone/push/key");
  const used = await phone.evaluate(() => localStorage.getItem("test.applicationServerKey"));
  if (used !== key.body.public_key) fail(`subscribed with ${used}, the appliance's key is ${key.body.public_key}`);
  const listed = await phoneCall(app, token, "GET", "/phone/push/subscriptions");
  if (listed.body.count !== 1) fail(`subscriptions: ${JSON.stringify(listed.body)}`);

  // Pushes reach the worker, which shows them.
  const cdp = await context.newCDPSession(phone);
  const registrations = [];
  cdp.on("ServiceWorker.workerRegistrationUpdated", (e) => registrations.push(...e.registrations));
  await cdp.send("ServiceWorker.enable");
  const ours = () => registrations.find((r) => r.scopeURL === `${app.base}/` && !r.isDeleted);
  const { registrationId } = await eventually(ours, () => `the worker's registration: ${JSON.stringify(registrations)}`);
  const deliver = (message) => cdp.send("ServiceWorker.deliverPushMessage", { origin: app.base, registrationId, data: JSON.stringify(message) });
  // Delivers `message` until the worker shows it under `tag`. Under load,
  // headless Chromium now and then loses a notification its worker showed
  // for a DevTools-delivered push (the worker got the event; a second
  // delivery of the same message is shown). The tag makes a redelivery
  // replace, as a real push service's redelivery would.
  const push = async (message, tag) => {
    for (let attempt = 1; ; attempt++) {
      await deliver(message);
      try {
        return await waitShown(phone, tag, undefined, 5_000);
      } catch (error) {
        if (attempt === 3) throw error;
        console.log(`push: ${tag} not shown after delivery ${attempt}; delivering again`);
      }
    }
  };

  const asked = await ideCall(app, "POST", "/phone/approvals", { user_id: "alice", title: "Deploy 1.4", detail: "build 7", timeout_s: 300 });
  if (asked.status !== 201) fail(`approval: ${JSON.stringify(asked)}`);
  const time = new Date().toISOString();
  const approval = await push({ type: "approval_request", id: asked.body.id, time, title: "Deploy 1.4", detail: "build 7", choices: ["11", "42", "77"], expires_at: asked.body.expires_at }, `approval-${asked.body.id}`);
  if (approval.title !== "Approve? Deploy 1.4" || approval.actions.join() !== "reject,review" || !approval.requireInteraction) {
    fail(`approval notification: ${JSON.stringify(approval)}`);
  }
  const note = await push({ type: "notification", id: "n00000000000000ff", time, title: "Build #8 failed", body: "3 tests failed", priority: 5, kind: "build_failure" }, "notification-n00000000000000ff");
  if (note.title !== "Build #8 failed" || note.body !== "3 tests failed" || !note.requireInteraction) fail(`notification: ${JSON.stringify(note)}`);

  // Reject, from the notification, in the worker.
  const [worker] = context.serviceWorkers();
  if (!worker) fail("no service worker");
  await worker.evaluate(async (tag) => {
    const [notification] = await self.registration.getNotifications({ tag });
    self.dispatchEvent(new NotificationEvent("notificationclick", { notification, action: "reject" }));
  }, `approval-${asked.body.id}`);
  const outcome = await ideCall(app, "GET", `/phone/approvals/${asked.body.id}?wait=10s`);
  if (outcome.body.status !== "rejected") fail(`after Reject: ${JSON.stringify(outcome.body)}`);
  // Its notification now says so (it replaces the approval's, same tag).
  await waitShown(phone, `approval-${asked.body.id}`, "Rejected");
  // The tap counts as seen (the receipt the requester reads).
  const tracked = `/phone/approvals/${asked.body.id}`;
  await eventually(async () => (await receiptState(app, tracked)) === "seen", "the receipt says seen after the tap");

  // A revoked phone's worker clears what it showed and says why.
  const control = await push({ type: "control", id: "c1", time, action: "revoked", detail: "An admin revoked this phone." }, "control");
  if (control.title !== "This phone was unpaired") fail(`after revoked: ${JSON.stringify(control)}`);
  await eventually(async () => (await showing(phone)).length === 1, async () => `only the control notice left: ${JSON.stringify(await showing(phone))}`);
  const kept = await worker.evaluate(() => self.topdogKeys.get("token"));
  if (kept !== undefined) fail("the worker kept the token of a revoked phone");
});
