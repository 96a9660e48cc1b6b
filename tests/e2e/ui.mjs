// End-to-end test of the web UI in headless Chromium (playwright-core with
// Debian's chromium): starts the real appliance, an admin signs in (a
// wrong token is refused), shows a QR code, and sends a pairing link, a phone-sized second context opens the link from
// the console SMS output and accepts, the admin sees the device appear
// without reloading, the IDE posts a notification and the phone shows it
// (and its receipt says seen),
// the phone approves an approval and the API sees the result, an API
// token made on the Tokens page works within its scope until revoked there,
// the admin
// revokes the phone and the phone page says it was unpaired. Cookie flags
// and CSRF are checked from the browser. Screenshots of each main screen
// go to target/e2e-screenshots/.
//
// Usage: node ui.mjs <topdog binary> <scratch dir>   (run by tests/api/ui.rs)
import { eventually, fail, ideCall, pairInBrowser, phoneCall, phoneContext, receiptState, runTest, shot, TIMEOUT } from "./appliance.mjs";

await runTest("ui", [], async (app, browser) => {
  // The admin signs in.
  const admin = await browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 1200, height: 800 } });
  const console_ = await admin.newPage();
  console_.setDefaultTimeout(TIMEOUT);
  console_.on("dialog", (d) => d.accept());
  await console_.goto(`${app.base}/`);
  await shot(console_, "01-sign-in");
  await console_.fill("#admin-token", "tdadm_wrong");
  await console_.click("#sign-in-form button[type=submit]");
  await console_.locator("#notice", { hasText: "not right" }).waitFor();
  await console_.fill("#admin-token", app.token);
  await console_.click("#sign-in-form button[type=submit]");
  await console_.locator("#tabs").waitFor();
  const [cookie] = await admin.cookies();
  if (!(cookie?.name === "topdog_session" && cookie.httpOnly && cookie.secure && cookie.sameSite === "Strict")) {
    fail(`session cookie flags: ${JSON.stringify(cookie)}`);
  }
  const csrfless = await console_.evaluate(async () => (await fetch("/phone/pairing/send-sms", {
    method: "POST", headers: { "content-type": "application/json" },
    body: JSON.stringify({ phone_number: "+14155552671", user_id: "mallory", user_name: "M" }),
  })).status);
  if (csrfless !== 403) fail(`a state change without the CSRF token answered ${csrfless}`);

  // The QR tab shows a code and its countdown.
  await console_.click("#by-qr");
  await console_.fill("#qr-user-id", "alice");
  await console_.click("#qr-form button[type=submit]");
  await console_.locator("#qr-image").waitFor();
  await console_.locator("#invite-countdown", { hasText: "expires in" }).waitFor();
  await shot(console_, "02-qr-code");
  await console_.click("#by-sms");

  // … and sends a pairing link.
  await console_.fill("#phone-number", "+1 415 555 2671");
  await console_.fill("#sms-user-id", "alice");
  await console_.fill("#sms-user-name", "Alice Example");
  await console_.click("#sms-form button[type=submit]");
  await console_.locator("#invite-status", { hasText: "pending" }).waitFor();
  await shot(console_, "02-pairing-link-sent");

  // The phone opens the link from the console SMS and accepts.
  const phone = await pairInBrowser(app, await phoneContext(browser));
  const device = await phone.textContent("#device");
  if (!device.includes("Android")) fail(`detected device: ${device}`);
  if ((await phone.textContent("#user-name")) !== "Alice Example") fail("the user is not shown");
  await shot(phone, "03-phone-pairing-page");
  await phone.click("#accept");
  await phone.waitForURL(`${app.base}/app`);
  await phone.locator("#connection", { hasText: "live" }).waitFor();
  await shot(phone, "04-phone-app");

  // The admin sees the device appear without reloading.
  await console_.locator("#invite-status", { hasText: "accepted" }).waitFor();
  await console_.click(".tab[data-tab=devices]");
  const row = console_.locator("#device-rows tr", { hasText: "alice" });
  await row.waitFor();
  await shot(console_, "05-devices");

  // The IDE posts a notification; the phone shows it.
  const posted = await ideCall(app, "POST", "/phone/notify", { user_id: "alice", title: "Build #7 failed", body: "2 tests failed", priority: 4, kind: "build_failure" });
  if (posted.status !== 200) fail(`notify: ${JSON.stringify(posted)}`);
  await phone.locator("#notifications", { hasText: "Build #7 failed" }).waitFor();
  // Shown in the open app: the requester's receipt says seen.
  const tracked = `/phone/notifications/${posted.body.id}`;
  await eventually(async () => (await receiptState(app, tracked)) === "seen", "the receipt says seen once shown");

  // An approval, approved on the phone, reaches the API.
  const asked = await ideCall(app, "POST", "/phone/approvals", { user_id: "alice", title: "Deploy 1.4 to production?", detail: "build 7", timeout_s: 300 });
  if (asked.status !== 201) fail(`approval: ${JSON.stringify(asked)}`);
  const card = phone.locator(`[data-approval="${asked.body.id}"]`);
  await card.waitFor();
  await shot(phone, "06-phone-approval");
  await card.locator(`input[value="${asked.body.code}"]`).check();
  await card.locator("button[value=approve]").click();
  await card.getByText("Done: approved.").waitFor();
  const outcome = await ideCall(app, "GET", `/phone/approvals/${asked.body.id}?wait=10s`);
  if (outcome.body.status !== "approved") fail(`approval outcome: ${JSON.stringify(outcome.body)}`);

  // A typed command gets an answer.
  await phone.fill("#command-text", "make me a sandwich");
  await phone.click("#command-form button[type=submit]");
  await phone.locator("#results li[data-status=unknown]").first().waitFor();
  await shot(phone, "07-phone-command");

  // Activity shows what happened.
  await console_.click(".tab[data-tab=activity]");
  await console_.locator("#recent-notifications", { hasText: "Build #7 failed" }).waitFor();
  await console_.locator("#recent-approvals", { hasText: "approved" }).waitFor();
  await shot(console_, "08-activity");

  // An API token made in the console works for its scope, is listed
  // without its secret, and stops at once when revoked there.
  await console_.click(".tab[data-tab=tokens]");
  await console_.fill("#token-name", "jenkins");
  await console_.check("#token-scopes input[value=approvals]");
  await console_.fill("#token-users", "alice");
  await console_.fill("#token-expires", "90d");
  await console_.click("#token-form button[type=submit]");
  await console_.locator("#new-token-value", { hasText: "tdapi_" }).waitFor();
  const secret = (await console_.locator("#new-token-value").textContent()).trim();
  if (!secret.startsWith("tdapi_")) fail(`new token shown as ${secret}`);
  const tokenRow = console_.locator("#token-rows tr", { hasText: "jenkins" });
  await tokenRow.locator("td", { hasText: "approvals, notify" }).waitFor();
  if ((await console_.locator("#token-rows").textContent()).includes(secret)) fail("the list shows the secret");
  await shot(console_, "09-tokens");
  const byToken = await phoneCall(app, secret, "POST", "/phone/notify", { user_id: "alice", title: "From Jenkins" });
  if (byToken.status !== 200) fail(`notify with the console's token: ${JSON.stringify(byToken)}`);
  const outOfScope = await phoneCall(app, secret, "GET", "/phone/devices");
  if (outOfScope.status !== 403 || outOfScope.body.error !== "token_scope") fail(`out of scope: ${JSON.stringify(outOfScope)}`);
  await tokenRow.getByRole("button", { name: "Revoke" }).click();
  await console_.locator("#no-tokens").waitFor();
  const revoked = await phoneCall(app, secret, "POST", "/phone/notify", { user_id: "alice", title: "x" });
  if (revoked.status !== 401) fail(`a revoked token answered ${revoked.status}`);

  // The admin revokes the phone; the phone page says it was unpaired.
  await console_.click(".tab[data-tab=devices]");
  await row.getByRole("button", { name: "Revoke" }).click();
  await row.locator(".state", { hasText: "revoked" }).waitFor();
  await phone.locator("#banner", { hasText: "unpaired by an admin" }).waitFor();
  await shot(phone, "10-phone-unpaired");
  await shot(console_, "11-devices-after-revoke");
});
