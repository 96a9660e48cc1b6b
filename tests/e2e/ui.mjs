// End-to-end test of the web UI in headless Chromium (playwright-core with
// Debian's chromium): starts the real appliance, an admin signs in (a
// wrong token is refused), shows a QR code, and sends a pairing link, a phone-sized second context opens the link from
// the console SMS output and accepts, the admin sees the device appear
// without reloading, the IDE posts a notification and the phone shows it,
// the phone approves an approval and the API sees the result, the admin
// revokes the phone and the phone page says it was unpaired. Cookie flags
// and CSRF are checked from the browser. Screenshots of each main screen
// go to target/e2e-screenshots/.
//
// Usage: node ui.mjs <topdog binary> <scratch dir>   (run by tests/api/ui.rs)
import { chromium } from "playwright-core";
import { spawn } from "node:child_process";
import crypto from "node:crypto";
import { once } from "node:events";
import fs from "node:fs";
import https from "node:https";
import path from "node:path";
import readline from "node:readline";

const [binary, scratch] = process.argv.slice(2);
const shots = path.resolve(path.dirname(new URL(import.meta.url).pathname), "../../target/e2e-screenshots");
fs.mkdirSync(shots, { recursive: true });
const TIMEOUT = 15_000;

function fail(message) {
  throw new Error(message);
}

/** Starts the appliance; resolves with its URL, admin token and output lines. */
/** Waits for the appliance's ready file (written whole once it listens). */
async function waitReady(file, child) {
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (fs.existsSync(file)) return JSON.parse(fs.readFileSync(file, "utf8"));
    if (child.exitCode !== null) fail(`topdog exited before it was ready (${child.exitCode})`);
    if (Date.now() > deadline) fail("topdog was not ready within 60 s");
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

async function startAppliance() {
  const dataDir = path.join(scratch, "data");
  const readyFile = path.join(scratch, "ready.json");
  const token = `e2e-admin-${crypto.randomBytes(16).toString("hex")}`;
  const child = spawn(binary, ["serve", "--data-dir", dataDir, "--http-addr", "127.0.0.1:0", "--mqtt-addr", "127.0.0.1:0", "--sms-provider", "console", "--ready-file", readyFile], {
    env: { PATH: process.env.PATH, RUST_LOG: "info", ADMIN_TOKEN: token },
    stdio: ["ignore", "pipe", fs.openSync(path.join(scratch, "appliance.log"), "a")],
  });
  const lines = [];
  const waiters = [];
  readline.createInterface({ input: child.stdout }).on("line", (line) => {
    lines.push(line);
    waiters.splice(0).forEach((w) => w());
  });
  const waitLine = async (pred) => {
    const deadline = Date.now() + 60_000;
    for (;;) {
      const found = lines.find(pred);
      if (found !== undefined) return found;
      if (Date.now() > deadline) fail(`no output line matched ${pred}`);
      await new Promise((resolve) => { waiters.push(resolve); setTimeout(resolve, 1000); });
    }
  };
  const ready = await waitReady(readyFile, child);
  const base = ready.api_url;
  const ca = fs.readFileSync(ready.ca_file);
  return { child, base, token, ca, waitLine, lines };
}

/** The IDE's side: JSON over HTTPS with the admin token. */
function ideCall(app, method, route, body) {
  return new Promise((resolve, reject) => {
    const request = https.request(new URL(route, app.base), {
      method, ca: app.ca,
      headers: { "x-admin-token": app.token, "content-type": "application/json" },
    }, (response) => {
      let text = "";
      response.on("data", (c) => (text += c));
      response.on("end", () => resolve({ status: response.statusCode, body: JSON.parse(text || "null") }));
    });
    request.on("error", reject);
    request.end(body ? JSON.stringify(body) : undefined);
  });
}

async function shot(page, name) {
  await page.screenshot({ path: path.join(shots, `${name}.png`), fullPage: true });
}

async function main() {
  const app = await startAppliance();
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
    args: ["--ignore-certificate-errors", "--no-sandbox"],
  });
  try {
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
    const sms = await app.waitLine((l) => l.startsWith("Message: "));
    const link = new URL(sms.match(/https?:\/\/\S+/)[0]);
    const phoneContext = await browser.newContext({
      ignoreHTTPSErrors: true, viewport: { width: 360, height: 740 }, isMobile: true, hasTouch: true,
      userAgent: "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Mobile Safari/537.36",
    });
    const phone = await phoneContext.newPage();
    phone.setDefaultTimeout(TIMEOUT);
    phone.on("dialog", (d) => d.accept());
    await phone.goto(`${app.base}${link.pathname}${link.search}`);
    await phone.getByText("Top Dog wants to pair with your phone").waitFor();
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

    // The admin revokes the phone; the phone page says it was unpaired.
    await console_.click(".tab[data-tab=devices]");
    await row.getByRole("button", { name: "Revoke" }).click();
    await row.locator(".state", { hasText: "revoked" }).waitFor();
    await phone.locator("#banner", { hasText: "unpaired by an admin" }).waitFor();
    await shot(phone, "09-phone-unpaired");
    await shot(console_, "10-devices-after-revoke");
    console.log("ui: all steps passed");
  } finally {
    await browser.close();
    app.child.kill("SIGTERM");
    await once(app.child, "exit");
  }
}

main().catch((error) => {
  console.error(`ui: ${error.stack ?? error}`);
  process.exit(1);
});
