// Single sign-on in a real browser against a real OpenID provider: the
// `oidc-provider` package (a certified implementation) runs here on
// loopback with the appliance as its client and three people: ada (in the
// admins' group), dev (in the developers' group) and eve (in neither).
// Each signs in through the provider's own login and consent pages: ada
// lands on the admin console, dev on "My phones" only, eve on a page that
// says why not. New phones need an admin's approval here: dev pairs a
// phone for himself (the console SMS link, opened and accepted on a phone),
// whose app waits for approval until ada approves it from the Devices tab
// (its badge counting it) and then moves on by itself; dev sees only his
// own phones, cannot revoke
// another user's, revokes his own, and signs out, which ends the
// provider's session too (RP-initiated logout): the next sign-in asks for
// the login again. Screenshots go to target/e2e-screenshots/.
//
// Usage: node oidc.mjs <topdog binary> <scratch dir>   (run by tests/api/ui.rs)
import Provider from "oidc-provider";
import { execFileSync } from "node:child_process";
import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { eventually, fail, freePort, ideCall, pairInBrowser, phoneCall, phoneContext, runTest, shot, TIMEOUT } from "./appliance.mjs";

const [binary, scratch] = process.argv.slice(2);
const people = {
  ada: { name: "Ada Admin", groups: ["topdog-admins"] },
  dev: { name: "Dev Eloper", groups: ["topdog-developers"] },
  eve: { name: "Eve Outsider", groups: ["sales"] },
};
const appPort = await freePort();
const idpPort = await freePort();
const base = `https://127.0.0.1:${appPort}`;
const issuer = `http://127.0.0.1:${idpPort}`;
const secret = crypto.randomBytes(24).toString("hex");
const secretFile = path.join(scratch, "oidc-client-secret");
fs.writeFileSync(secretFile, secret, { mode: 0o600 });

const provider = new Provider(issuer, {
  clients: [{
    client_id: "topdog-console", client_secret: secret, redirect_uris: [`${base}/auth/callback`],
    post_logout_redirect_uris: [`${base}/`], response_types: ["code"], grant_types: ["authorization_code"],
    token_endpoint_auth_method: "client_secret_basic",
  }],
  claims: { openid: ["sub"], profile: ["name", "preferred_username", "groups"] },
  conformIdTokenClaims: false,
  findAccount: (ctx, id) => people[id] && {
    accountId: id,
    claims: () => ({ sub: id, preferred_username: id, ...people[id] }),
  },
  features: { devInteractions: { enabled: true }, rpInitiatedLogout: { enabled: true } },
  cookies: { keys: [crypto.randomBytes(16).toString("hex")] },
});
const idp = provider.listen(idpPort, "127.0.0.1");

const flags = ["--http-addr", `127.0.0.1:${appPort}`, "--base-url", base, "--oidc-issuer", issuer,
  "--oidc-client-id", "topdog-console", "--oidc-client-secret-file", secretFile, "--pairing-requires-approval"];

/** Signs `who` in from the console's sign-in page through the provider's
 * login (and, the first time, consent) page. */
async function signIn(page, who) {
  await page.goto(`${base}/`);
  await page.click("#sso-sign-in");
  await page.locator("input[name=login]").waitFor();
  await page.fill("input[name=login]", who);
  await page.fill("input[name=password]", "any");
  await page.click("button[type=submit]");
  const consent = page.locator("button[type=submit]", { hasText: /continue/i });
  if (await consent.isVisible().catch(() => false)) await consent.click();
}

async function browserFor(browser) {
  const context = await browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 1200, height: 800 } });
  const page = await context.newPage();
  page.setDefaultTimeout(TIMEOUT);
  page.on("dialog", (d) => d.accept());
  return page;
}

try {
  await runTest("oidc", flags, async (app, browser) => {
    // Seats for two people (the development key; test builds trust it).
    const signingKey = new URL("../../license-keys/dev-license-key.private", import.meta.url).pathname;
    const license = execFileSync(binary, ["license", "issue", "--customer", "E2E", "--seats", "10", "--signing-key", signingKey]).toString().trim();
    const activated = await ideCall(app, "POST", "/admin/license", { license_key: license });
    if (activated.status !== 200) fail(`license: ${JSON.stringify(activated)}`);

    // An admin lands on the whole console.
    const ada = await browserFor(browser);
    await signIn(ada, "ada");
    await ada.locator("#who", { hasText: "Ada Admin (admin)" }).waitFor();
    if (!(await ada.locator(".tab[data-tab=devices]").isVisible())) fail("an admin sees the Devices tab");
    await shot(ada, "40-sso-admin");

    // Someone in neither group is refused with a clear page.
    const eve = await browserFor(browser);
    await signIn(eve, "eve");
    await eve.locator("body[data-state=oidc_no_role]").waitFor();
    await eve.getByText("neither the admin nor the developer group").waitFor();
    await shot(eve, "41-sso-refused");

    // A developer gets "My phones" only, and pairs a phone for himself.
    const dev = await browserFor(browser);
    await signIn(dev, "dev");
    await dev.locator("#who", { hasText: "Dev Eloper (developer)" }).waitFor();
    await dev.locator("#my").waitFor();
    if (await dev.locator(".tab[data-tab=devices]").isVisible()) fail("a developer must not see the Devices tab");
    await dev.fill("#my-phone-number", "+14155552671");
    await dev.click("#my-sms-form button[type=submit]");
    await dev.locator("#my-invite-text", { hasText: "Open the link on your phone" }).waitFor();
    const phone = await pairInBrowser(app, await phoneContext(browser));
    await phone.click("#accept");
    await phone.waitForURL(`${base}/app`);
    await phone.locator("#banner", { hasText: "Waiting for approval" }).waitFor();
    await shot(phone, "43-phone-waiting-for-approval");
    await dev.locator("#my-rows .state.pending_approval").waitFor();

    // The admin sees the badge and approves; the phone moves on by itself.
    await ada.locator("#pending-badge", { hasText: "1" }).waitFor();
    await ada.click(".tab[data-tab=devices]");
    const waiting = ada.locator("#device-rows tr", { has: ada.locator(".state.pending_approval") });
    await waiting.locator("button", { hasText: "Approve" }).click();
    await phone.locator("#connection", { hasText: "live" }).waitFor({ timeout: 20_000 });
    const devsPhone = (await dev.locator("#my-rows tr").first().getAttribute("data-device"));
    await dev.locator(`#my-rows tr[data-device="${devsPhone}"] .state.active`).waitFor();

    // He sees only his own phones and cannot revoke another user's.
    const invite = await ideCall(app, "POST", "/phone/pairing/send-sms", { phone_number: "+14155552671", user_id: "olga", user_name: "Olga" });
    const olgaSms = await app.waitLine((l) => l.startsWith("Message: ") && l.includes(invite.body.invite_code));
    const olgaCode = new URL(olgaSms.match(/https?:\/\/\S+/)[0]).searchParams.get("code");
    await phoneCall(app, "", "POST", "/phone/pairing/accept-invite", {
      invite_code: olgaCode, device_id: "olgas-phone", device_name: "Olga's", device_type: "ios", os_version: "17", app_version: "1.0",
    });
    await ideCall(app, "POST", "/phone/devices/olgas-phone/approve");
    await dev.locator("#my-rows tr").first().waitFor();
    const rows = await dev.locator("#my-rows tr").evaluateAll((trs) => trs.map((t) => t.dataset.device));
    if (rows.includes("olgas-phone")) fail(`another user's phone is listed: ${rows}`);
    const foreign = await dev.evaluate(async () => {
      const s = await (await fetch("/admin/session")).json();
      return (await fetch("/my/devices/olgas-phone", { method: "DELETE", headers: { "x-csrf-token": s.csrf_token } })).status;
    });
    if (foreign !== 404) fail(`revoking another user's phone answered ${foreign}`);
    await shot(dev, "42-sso-my-phones");
    await dev.click(`#my-rows tr[data-device="${devsPhone}"] button.danger`);
    await dev.locator(`#my-rows tr[data-device="${devsPhone}"] .state.revoked`).waitFor();
    await phone.locator("body[data-state=unpaired]").waitFor();
    const olga = await ideCall(app, "GET", "/phone/devices?user_id=olga");
    if (olga.body.devices[0].status !== "active") fail("olga's phone must stay active");

    // Signing out ends the provider's session too.
    await dev.click("#sign-out");
    const confirmLogout = dev.locator("button", { hasText: /yes, sign me out/i });
    await confirmLogout.waitFor();
    await confirmLogout.click();
    await eventually(() => dev.url().startsWith(`${base}/`), () => `back at the appliance, not ${dev.url()}`);
    await dev.locator("#sign-in").waitFor();
    const after = await dev.evaluate(async () => (await fetch("/admin/session")).status);
    if (after !== 401) fail(`the session still answers ${after} after signing out`);
    await dev.click("#sso-sign-in");
    await dev.locator("input[name=login]").waitFor();
  });
} finally {
  idp.close();
}
