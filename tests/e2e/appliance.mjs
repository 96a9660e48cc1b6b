// What the browser tests share: starting the real appliance (through its
// ready file, console SMS on stdout), the IDE's JSON calls over HTTPS with
// the admin token, a phone's calls with its device token, screenshots, and
// launching Debian's Chromium.
import { chromium } from "playwright-core";
import { spawn } from "node:child_process";
import crypto from "node:crypto";
import { once } from "node:events";
import fs from "node:fs";
import https from "node:https";
import net from "node:net";
import path from "node:path";
import readline from "node:readline";

const shots = path.resolve(path.dirname(new URL(import.meta.url).pathname), "../../target/e2e-screenshots");
fs.mkdirSync(shots, { recursive: true });
export const TIMEOUT = 15_000;

export function fail(message) {
  throw new Error(message);
}

/** Calls `probe` every 100 ms until it resolves to something truthy, for
 * up to `timeout` ms (15 s); `what` says what was awaited when it never does. */
export async function eventually(probe, what, timeout = TIMEOUT) {
  const deadline = Date.now() + timeout;
  for (;;) {
    const found = await probe();
    if (found) return found;
    if (Date.now() > deadline) fail(`never: ${typeof what === "function" ? await what() : what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** The receipt state of the item at `route` on its first device. */
export async function receiptState(app, route) {
  return (await ideCall(app, "GET", route)).body.receipts?.[0]?.state;
}

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

/** Starts the appliance (with `extra` arguments); resolves with its URL,
 * admin token, CA and output lines. */
export async function startAppliance(binary, scratch, extra = []) {
  const dataDir = path.join(scratch, "data");
  const readyFile = path.join(scratch, "ready.json");
  const token = `e2e-admin-${crypto.randomBytes(16).toString("hex")}`;
  const httpAddr = extra.includes("--http-addr") ? [] : ["--http-addr", "127.0.0.1:0"];
  const args = ["serve", "--data-dir", dataDir, ...httpAddr, "--mqtt-addr", "127.0.0.1:0", "--sms-provider", "console", "--ready-file", readyFile, ...extra];
  const child = spawn(binary, args, {
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

/** JSON over HTTPS with `headers`. */
function call(app, method, route, body, headers) {
  return new Promise((resolve, reject) => {
    const request = https.request(new URL(route, app.base), {
      method, ca: app.ca, headers: { "content-type": "application/json", ...headers },
    }, (response) => {
      let text = "";
      response.on("data", (c) => (text += c));
      response.on("end", () => resolve({ status: response.statusCode, body: JSON.parse(text || "null") }));
    });
    request.on("error", reject);
    request.end(body ? JSON.stringify(body) : undefined);
  });
}

/** The IDE's side: the admin token. */
export function ideCall(app, method, route, body) {
  return call(app, method, route, body, { "x-admin-token": app.token });
}

/** With a bearer token: a phone's device token, or an API token. */
export function phoneCall(app, token, method, route, body) {
  return call(app, method, route, body, { authorization: `Bearer ${token}` });
}

/** A TCP port free on loopback now. */
export function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer().listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
    server.on("error", reject);
  });
}

export async function shot(page, name) {
  await page.screenshot({ path: path.join(shots, `${name}.png`), fullPage: true });
}

export function launch() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
    args: ["--ignore-certificate-errors", "--no-sandbox"],
  });
}

/** Runs a browser test: starts the appliance (with `extra` arguments) and
 * Chromium, runs `steps(app, browser)`, says `{name}: all steps passed`,
 * and stops both whatever happens (exit status 1 on a failure). */
export async function runTest(name, extra, steps) {
  const [binary, scratch] = process.argv.slice(2);
  try {
    const app = await startAppliance(binary, scratch, extra);
    const browser = await launch();
    try {
      await steps(app, browser);
      console.log(`${name}: all steps passed`);
    } finally {
      await browser.close();
      app.child.kill("SIGTERM");
      await once(app.child, "exit");
    }
  } catch (error) {
    console.error(`${name}: ${error.stack ?? error}`);
    process.exit(1);
  }
}

/** A phone-sized browser context. */
export function phoneContext(browser) {
  return browser.newContext({
    ignoreHTTPSErrors: true, viewport: { width: 360, height: 740 }, isMobile: true, hasTouch: true,
    userAgent: "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Mobile Safari/537.36",
  });
}

/** The phone opens the pairing link of the newest console SMS and accepts;
 * resolves with its page, on /app. */
export async function pairInBrowser(app, context) {
  const sms = await app.waitLine((l) => l.startsWith("Message: "));
  const link = new URL(sms.match(/https?:\/\/\S+/)[0]);
  const phone = await context.newPage();
  phone.setDefaultTimeout(TIMEOUT);
  phone.on("dialog", (d) => d.accept());
  await phone.goto(`${app.base}${link.pathname}${link.search}`);
  await phone.getByText("Top Dog wants to pair with your phone").waitFor();
  return phone;
}
