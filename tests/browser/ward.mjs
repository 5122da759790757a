// The nurse web page in real headless Chromium (Debian's /usr/bin/chromium) against a running SleepLM stack.
// Run by tests/browser/test_web_page.py, which starts the live stack and passes:
//   SLEEPLM_URL      the API (it serves the page at /)
//   NURSE_TOKEN, NURSE_NAME, VIEWER_TOKEN, ADMIN_TOKEN
//   ALERT_BED        the bed whose SpO2 limit is raised (as admin, once the page shows the ward) so that
//                    a desaturation alert (medium) is raised live
//   HIGH_BED         a bed whose critical SpO2 limit is raised too: a high alert that, unacknowledged,
//                    escalates (after 120 s of device time) and must put that bed first in the ward
//   SCREENSHOT_DIR   where ward.png, bed.png, alert-acknowledged.png (and viewer.png) go
//   DEADLINE_S       give up after this many seconds (default 150)
// Exits 0 when every step passed; otherwise prints the failed step and why, saves failure.png, exits 1.

import { mkdirSync } from "node:fs";
import net from "node:net";
import { join } from "node:path";
import { chromium } from "playwright-core";

const env = (name, fallback) => {
  const value = process.env[name] ?? fallback;
  if (value === undefined || value === "") throw new Error(`environment variable ${name} is required`);
  return value;
};
const URL = env("SLEEPLM_URL").replace(/\/$/, "");
const NURSE_TOKEN = env("NURSE_TOKEN");
const NURSE_NAME = env("NURSE_NAME");
const VIEWER_TOKEN = env("VIEWER_TOKEN");
const ADMIN_TOKEN = env("ADMIN_TOKEN");
const ALERT_BED = env("ALERT_BED", "bed-01");
const HIGH_BED = env("HIGH_BED", "bed-02");
const SHOTS = env("SCREENSHOT_DIR");
const DEADLINE_S = Number(env("DEADLINE_S", "150"));
const CHROMIUM = env("CHROMIUM", "/usr/bin/chromium");

const t0 = Date.now();
const secs = () => ((Date.now() - t0) / 1000).toFixed(1);
const timings = [];
const problems = []; // CSP violations and uncaught page errors: a failure at the end
let failureShotPage = null;

mkdirSync(SHOTS, { recursive: true });

const deadline = setTimeout(() => {
  console.error(`FAILED: the whole run passed its deadline of ${DEADLINE_S} s`);
  process.exit(1);
}, DEADLINE_S * 1000);

async function step(name, fn) {
  const started = Date.now();
  try {
    const result = await fn();
    const took = (Date.now() - started) / 1000;
    timings.push([name, took]);
    console.log(`ok   ${secs().padStart(6)} s  (+${took.toFixed(1)} s)  ${name}`);
    return result;
  } catch (error) {
    console.error(`FAILED at step "${name}" after ${((Date.now() - started) / 1000).toFixed(1)} s: ${error.message}`);
    throw error;
  }
}

function check(condition, message) {
  if (!condition) throw new Error(message);
}

const byId = (id) => `[data-testid="${id}"]`;

// The browser reaches the API through this TCP proxy, so the test can cut every open connection (the live
// feed included) the way a flaky ward network would; the page must notice, reconnect and resume.
const api = new globalThis.URL(URL);
const tunnels = new Set();
const proxy = net.createServer((client) => {
  const upstream = net.connect(Number(api.port || 80), api.hostname);
  const pair = [client, upstream];
  tunnels.add(pair);
  const close = () => {
    client.destroy();
    upstream.destroy();
    tunnels.delete(pair);
  };
  client.pipe(upstream);
  upstream.pipe(client);
  for (const socket of pair) {
    socket.on("error", close);
    socket.on("close", close);
  }
});
await new Promise((resolve) => proxy.listen(0, "127.0.0.1", resolve));
const PAGE = `http://127.0.0.1:${proxy.address().port}`;
const cutConnections = () => {
  const n = tunnels.size;
  for (const [client, upstream] of [...tunnels]) {
    client.destroy();
    upstream.destroy();
  }
  return n;
};

async function apiJson(path, token, init = {}) {
  const response = await fetch(`${URL}${path}`, {
    ...init,
    headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json", ...(init.headers || {}) },
  });
  const text = await response.text();
  if (!response.ok) throw new Error(`${init.method || "GET"} ${path} answered ${response.status}: ${text.slice(0, 300)}`);
  return text ? JSON.parse(text) : null;
}

/** Pixels of a canvas that are not transparent (something was drawn). */
async function drawnPixels(page, testid) {
  return page.locator(byId(testid)).evaluate((canvas) => {
    const data = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
    let n = 0;
    for (let i = 3; i < data.length; i += 4) if (data[i] > 0) n += 1;
    return { n, area: canvas.width * canvas.height };
  });
}

function watch(page, who) {
  page.on("console", (msg) => {
    const text = msg.text();
    if (/Content.Security.Policy|Refused to/i.test(text)) problems.push(`${who}: CSP violation: ${text}`);
    else if (msg.type() === "error" && !/status of 404|net::ERR_/.test(text)) console.log(`     (${who} console error: ${text})`);
  });
  page.on("pageerror", (error) => problems.push(`${who}: uncaught error in the page: ${error.message}`));
}

async function newPage(browser) {
  const context = await browser.newContext({ viewport: { width: 1600, height: 1000 }, deviceScaleFactor: 1, colorScheme: "dark" });
  const page = await context.newPage();
  page.setDefaultTimeout(30000);
  return { context, page };
}

async function signIn(page, token) {
  await page.goto(`${PAGE}/`);
  await page.locator(byId("signin-token")).fill(token);
  await page.locator(byId("signin-button")).click();
  await page.locator(byId("whoami")).waitFor({ state: "visible" });
}

let browser;
try {
  browser = await step("launch Debian's Chromium", () =>
    chromium.launch({
      executablePath: CHROMIUM,
      headless: true,
      args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"],
    }),
  );
  const { context, page } = await newPage(browser);
  failureShotPage = page;
  watch(page, "nurse");
  const streamRequests = [];
  page.on("request", (request) => {
    if (new globalThis.URL(request.url()).pathname === "/api/stream") streamRequests.push(request.headers());
  });

  await step("a wrong token is refused with a clear message", async () => {
    const response = await page.goto(`${PAGE}/`);
    const csp = response.headers()["content-security-policy"] || "";
    check(csp.includes("script-src 'self'"), `the page came without the strict CSP: ${csp}`);
    await page.locator(byId("signin-token")).fill("not-a-real-token");
    await page.locator(byId("signin-button")).click();
    await page.locator(byId("signin-message")).filter({ hasText: /token not accepted/i }).waitFor();
    check(await page.locator(byId("workspace")).isHidden(), "the workspace is shown without a valid token");
  });

  await step("sign in as the nurse", async () => {
    await page.locator(byId("signin-token")).fill(NURSE_TOKEN);
    await page.locator(byId("signin-button")).click();
    await page.locator(byId("whoami")).filter({ hasText: `${NURSE_NAME} (nurse)` }).waitFor();
    const stored = await page.evaluate(() => [sessionStorage.getItem("sleeplm.token"), localStorage.length]);
    check(stored[0] === NURSE_TOKEN, "the token is not kept in sessionStorage");
    check(stored[1] === 0, "something was written to localStorage");
    check((await page.locator(byId("alert-panel")).getAttribute("aria-live")) === "polite", "alert panel is not aria-live=polite");
  });

  const tile = page.locator(byId(`tile-${ALERT_BED}`));
  await step(`a tile of ${ALERT_BED} shows a caption`, async () => {
    await tile.locator(byId("tile-caption")).filter({ hasText: /\w{4,}.*\w{4,}/ }).waitFor({ timeout: 90000 });
    const text = await tile.locator(byId("tile-caption")).innerText();
    check(!/No caption yet/.test(text), `tile caption is a placeholder: ${text}`);
    // the first epoch may lack SpO2 (the monitor's slow stream starts late): wait for a value
    await tile.locator(byId("tile-spo2")).filter({ hasText: /\d/ }).waitFor({ timeout: 30000 });
  });

  await step(`as admin, raise the SpO2 limits of ${ALERT_BED} (low 99.5 %) and ${HIGH_BED} (critical 99 %)`, async () => {
    const limits = {
      [ALERT_BED]: { spo2_low: 99.5, spo2_low_onset_s: 1 },
      [HIGH_BED]: { spo2_critical: 99, spo2_critical_onset_s: 1, spo2_low: 99.5, spo2_low_onset_s: 1 },
    };
    for (const [bed, values] of Object.entries(limits)) {
      const set = await apiJson(`/api/beds/${bed}/thresholds`, ADMIN_TOKEN, { method: "PUT", body: JSON.stringify(values) });
      check(set.effective.spo2_low === 99.5, `threshold of ${bed} not set: ${JSON.stringify(set)}`);
    }
  });

  await step("a new caption arrives live on the tile (no reload)", async () => {
    await page.evaluate(() => { window.__sameDocument = true; });
    const before = Number(await tile.getAttribute("data-epoch"));
    await page.waitForFunction(
      ([sel, epoch]) => {
        const el = document.querySelector(sel);
        return el && Number(el.dataset.epoch) > epoch && el.dataset.updatedBy === "feed";
      },
      [byId(`tile-${ALERT_BED}`), before],
      { timeout: 30000 },
    );
    check(await page.evaluate(() => window.__sameDocument === true), "the page was reloaded");
    check((await page.locator(byId("feed-status")).getAttribute("data-state")) === "live", "feed status is not live");
    const sent = streamRequests[0] || {};
    check(!("last-event-id" in sent), "the first feed request already sent a Last-Event-ID");
    check(sent.authorization === `Bearer ${NURSE_TOKEN}`, "the feed request did not carry the bearer token");
  });

  let alertId;
  const alertItem = page.locator(`${byId("alert-list")} > li[data-testid^="alert-${ALERT_BED}:desaturation:"]`);
  await step("the desaturation alert appears in the alert panel, live", async () => {
    await alertItem.first().waitFor({ timeout: 45000 });
    alertId = (await alertItem.first().getAttribute("data-testid")).slice("alert-".length);
    const text = await alertItem.first().innerText();
    check(/MEDIUM/.test(text) && /Desaturation/.test(text), `alert item lacks priority/type text: ${text}`);
    check(/Lowest SpO₂ \d/.test(text), `alert item lacks its evidence: ${text}`);
    check(await page.locator(byId(`ack-${alertId}`)).isEnabled(), "no enabled Acknowledge button for the nurse");
    await tile.locator(byId("tile-alert")).filter({ hasText: /MEDIUM/ }).waitFor({ timeout: 20000 });
  });

  const high = page.locator(`${byId("alert-list")} > li[data-testid^="alert-${HIGH_BED}:spo2_critical:"]`);
  await step(`a high SpO2-critical alert of ${HIGH_BED} appears (it escalates while the next steps run)`, async () => {
    await high.first().waitFor({ timeout: 45000 });
  });

  await step("the feed reconnects after a drop and resumes with Last-Event-ID", async () => {
    const before = streamRequests.length;
    const cut = cutConnections();
    check(cut > 0, "no open connection to cut");
    await page.locator(`${byId("feed-status")}[data-state="reconnecting"]`).waitFor({ timeout: 10000 });
    await page.locator(`${byId("feed-status")}[data-state="live"]`).waitFor({ timeout: 20000 });
    const resumed = streamRequests.slice(before).filter((h) => /^\d+-\d+(-\d+)?$/.test(h["last-event-id"] || ""));
    check(resumed.length > 0, `no feed request after the drop carried Last-Event-ID (${streamRequests.length - before} requests)`);
  });

  await step(`open the bed view of ${ALERT_BED}`, async () => {
    await tile.click();
    await page.locator(byId("bed-view")).waitFor({ state: "visible" });
    check(await page.locator(byId("ward")).isHidden(), "the ward is still shown under the bed view");
    await page.locator(`${byId("caption-feed")} > li${byId("feed-item")}`).first().waitFor();
    await page.locator(`${byId("hypnogram")}:not([data-epochs="0"])[data-epochs]`).waitFor();
    await page.locator(`${byId("waveform")}[data-traces]:not([data-traces="0"])`).waitFor({ timeout: 20000 });
    await page.locator(`${byId("events-timeline")}[data-alerts]:not([data-alerts="0"])`).waitFor({ timeout: 20000 });
    for (const id of ["hypnogram", "waveform", "events-timeline"]) {
      const { n, area } = await drawnPixels(page, id);
      check(n > area * 0.01, `${id} canvas looks empty (${n} of ${area} pixels drawn)`);
    }
  });

  await step("every caption in the bed view agrees with its stage and event chips", async () => {
    const items = await page.locator(`${byId("caption-feed")} > li${byId("feed-item")}`).evaluateAll((lis) =>
      lis.map((li) => ({
        epoch: li.dataset.epoch,
        stage: li.querySelector(".stage-chip")?.dataset.stage,
        chips: [...li.querySelectorAll("[data-testid=event-chip]")].map((c) => c.dataset.type),
        caption: li.querySelector("[data-testid=feed-caption]")?.textContent || "",
      })));
    check(items.length > 0, "no caption in the bed view");
    for (const { epoch, stage, chips, caption } of items) {
      const stated = caption.match(/\((W|N1|N2|N3|R)\)/)?.[1] ?? (/Stage uncertain/.test(caption) ? "?" : null);
      check(stated === stage, `epoch ${epoch}: caption states ${stated}, the chip shows ${stage}: ${caption}`);
      const text = caption.toLowerCase();
      for (const type of chips) {
        check(text.includes(type.replaceAll("_", " ")), `epoch ${epoch}: chip ${type} but the caption does not name it: ${caption}`);
      }
      check(!(chips.length && /no events/.test(text)), `epoch ${epoch}: chips ${chips} beside "${caption}"`);
      check(!/\b(scored|documented|hypnogram marks)\b/i.test(caption), `epoch ${epoch}: scorer wording in ${caption}`);
    }
  });

  await step("a new epoch reaches the open bed view live (caption feed and waveform)", async () => {
    const top = Number(await page.locator(`${byId("caption-feed")} > li${byId("feed-item")}`).first().getAttribute("data-epoch"));
    await page.waitForFunction(
      ([feed, wave, epoch]) => {
        const first = document.querySelector(`${feed} > li[data-testid="feed-item"]`);
        const canvas = document.querySelector(wave);
        return first && Number(first.dataset.epoch) > epoch && Number(canvas.dataset.epoch) > epoch;
      },
      [byId("caption-feed"), byId("waveform"), top],
      { timeout: 30000 },
    );
    const items = await page.locator(`${byId("caption-feed")} > li${byId("feed-item")}`).count();
    check(items >= 2, `caption feed has ${items} entries`);
  });

  await step("search the night in plain language", async () => {
    // the simulated nights start awake: a calibrated search has matches to show (an event query on a night
    // without that event rightly answers "No epoch matches")
    await page.locator(byId("query-input")).fill("wake");
    await page.locator(byId("query-button")).click();
    const match = page.locator(`${byId("query-results")} ${byId("query-match")}`);
    await match.first().waitFor({ timeout: 90000 });
    const text = await match.first().innerText();
    check(/score \d/.test(text) && /epoch \d+/.test(text), `match lacks score/epoch: ${text}`);
    const epoch = await match.first().getAttribute("data-epoch");
    await match.first().click();
    await page.locator(`${byId("caption-feed")} > li.highlight[data-epoch="${epoch}"]`).waitFor();
    const inView = () => page.evaluate( // the match is scrolled into the caption list's view
      ([feedSel, ep]) => {
        const feed = document.querySelector(feedSel);
        const item = feed.querySelector(`li.highlight[data-epoch="${ep}"]`);
        const f = feed.getBoundingClientRect();
        const r = item.getBoundingClientRect();
        return r.top >= f.top - 2 && r.top < f.bottom - 20;
      },
      [byId("caption-feed"), epoch],
    );
    check(await inView(), `the caption of epoch ${epoch} was not scrolled into view`);
    const shownEpoch = Number(await page.locator(`${byId("caption-feed")} > li${byId("feed-item")}`).first().getAttribute("data-epoch"));
    await page.waitForFunction( // a new caption arrives on top meanwhile ...
      ([feedSel, top]) => Number(document.querySelector(`${feedSel} > li[data-testid="feed-item"]`).dataset.epoch) > top,
      [byId("caption-feed"), shownEpoch],
      { timeout: 15000 },
    );
    check(await inView(), `the caption of epoch ${epoch} slid out of view when a new caption arrived`); // ... it stays
  });

  await step("screenshot: bed view", async () => {
    await page.evaluate(() => window.scrollTo(0, 0)); // the match click scrolled the page (sticky header)
    await page.screenshot({ path: join(SHOTS, "bed.png"), fullPage: true });
  });

  await step("back to the ward", async () => {
    await page.locator(byId("bed-back")).click();
    await page.locator(byId("ward")).waitFor({ state: "visible" });
    check(await page.locator(byId("bed-view")).isHidden(), "bed view still shown");
  });

  await step(`the high alert of ${HIGH_BED} escalates and puts ${HIGH_BED} first in the ward`, async () => {
    await high.locator(byId("alert-escalated")).first().waitFor({ timeout: 60000 });
    check(/HIGH/.test(await high.first().innerText()), "the spo2_critical alert does not say HIGH");
    await page.locator(`${byId(`tile-${HIGH_BED}`)} ${byId("tile-escalated")}`).waitFor({ timeout: 20000 });
    const firstId = await page.locator(`${byId("ward")} button.tile`).first().getAttribute("data-testid");
    check(firstId === `tile-${HIGH_BED}`, `the first tile is ${firstId}, not the bed with the escalated high alert`);
    const order = await page.locator(`${byId("alert-list")} > li`).evaluateAll((els) => els.map((e) => e.dataset.priority));
    check(order[0] === "high", `the alert panel does not start with the high alert: ${order}`);
  });

  await step("screenshot: ward", async () => {
    await page.screenshot({ path: join(SHOTS, "ward.png") });
  });

  await step("acknowledge the alert; the panel shows who did", async () => {
    await page.locator(byId(`ack-${alertId}`)).click();
    const item = page.locator(byId(`alert-${alertId}`));
    await page.locator(`${byId(`alert-${alertId}`)}[data-state="acknowledged"]`).waitFor({ timeout: 15000 });
    await item.locator(byId("alert-state")).filter({ hasText: `Acknowledged by ${NURSE_NAME}` }).waitFor();
    check((await page.locator(byId(`ack-${alertId}`)).count()) === 0, "the Acknowledge button is still there");
    await tile.locator(byId("tile-alert")).filter({ hasText: "ACK’D" }).waitFor({ timeout: 5000 });
    const stored = await apiJson(`/api/alerts/${encodeURIComponent(alertId)}`, NURSE_TOKEN);
    check(stored.state === "acknowledged" && stored.acknowledged_by === NURSE_NAME,
      `the API says ${stored.state} by ${stored.acknowledged_by}, expected acknowledged by ${NURSE_NAME}`);
    console.log(`ACKNOWLEDGED ${alertId}`);
  });

  await step("screenshot: alert acknowledged", async () => {
    await page.screenshot({ path: join(SHOTS, "alert-acknowledged.png") });
  });

  await step("a viewer, in a fresh browser context, gets no enabled Acknowledge button", async () => {
    const viewer = await newPage(browser);
    watch(viewer.page, "viewer");
    failureShotPage = viewer.page;
    await signIn(viewer.page, VIEWER_TOKEN);
    await viewer.page.locator(byId("whoami")).filter({ hasText: "(viewer)" }).waitFor();
    await viewer.page.locator(byId(`alert-${alertId}`)).waitFor();
    await viewer.page.locator(`${byId("ward")} button.tile`).first().waitFor();
    await viewer.page.locator(byId("view-only")).waitFor({ state: "visible" });
    const enabled = await viewer.page.locator('button[data-testid^="ack-"]:enabled').count();
    check(enabled === 0, `the viewer sees ${enabled} enabled Acknowledge button(s)`);
    await viewer.page.screenshot({ path: join(SHOTS, "viewer.png") });
    await viewer.context.close();
    failureShotPage = page;
  });

  await step("sign out clears the token", async () => {
    await page.locator(byId("signout-button")).click();
    await page.locator(byId("signin-token")).waitFor({ state: "visible" });
    check((await page.evaluate(() => sessionStorage.getItem("sleeplm.token"))) === null, "token still in sessionStorage");
  });

  check(problems.length === 0, problems.join("\n"));
  await context.close();
  console.log(`timings: ${JSON.stringify(Object.fromEntries(timings.map(([n, t]) => [n, Number(t.toFixed(2))])))}`);
  console.log(`PASSED in ${secs()} s`);
  await browser.close();
  proxy.close();
  clearTimeout(deadline);
  process.exit(0);
} catch (error) {
  if (problems.length) console.error(problems.join("\n"));
  if (failureShotPage) {
    try { await failureShotPage.screenshot({ path: join(SHOTS, "failure.png"), fullPage: true }); } catch { /* gone */ }
  }
  console.error(`FAILED after ${secs()} s: ${error.message}`);
  try { await browser?.close(); } catch { /* already gone */ }
  process.exit(1);
}
