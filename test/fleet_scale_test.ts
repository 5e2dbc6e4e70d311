// The fleet page with 500 gateways: retained statuses published by a few plain MQTT clients on a
// real Mosquitto (cheap stand-ins, not 500 processes), `outpost fleet serve` as a process, the page
// in Chromium. The table keeps only the rows in view in the document, scrolling shows the right
// ones, and after one gateway changes the server pushes that gateway alone.
import assert from "node:assert/strict";
import mqtt, { type MqttClient } from "mqtt";
import { launchBrowser, type TestBrowser } from "./helpers/browser.ts";
import { startFleetPage } from "./helpers/fleet_page.ts";
import { startMosquitto } from "./helpers/mosquitto.ts";
import { waitFor } from "./helpers/ports.ts";

const N = 500;
const id = (i: number) => `gw-${String(i).padStart(3, "0")}`;

function status(i: number, backlog = i % 7) {
  return JSON.stringify({
    gatewayId: id(i),
    state: "online",
    version: `1.${i % 4}.0`,
    ts: Date.now(),
    backlog,
    oldestPendingAgeMs: backlog ? 4000 : null,
    startedAt: Date.now() - i * 1000,
    site: `site-${i % 10}`,
    alarms: { active: i % 50 === 0 ? 1 : 0, acknowledged: 0, list: [] },
  });
}

/** Reads server-sent events from a fetch body. */
async function* events(body: ReadableStream<Uint8Array>) {
  const dec = new TextDecoder();
  let buf = "";
  for await (const chunk of body) {
    buf += dec.decode(chunk, { stream: true });
    let end;
    while ((end = buf.indexOf("\n\n")) >= 0) {
      const block = buf.slice(0, end);
      buf = buf.slice(end + 2);
      const event = /^event: (.*)$/m.exec(block)?.[1];
      const data = /^data: (.*)$/m.exec(block)?.[1];
      if (event && data) yield { event, data };
    }
  }
}

Deno.test({
  name:
    "fleet page with 500 gateways: a virtual table renders only rows in view, scrolls to the right rows, and a change pushes one gateway",
  sanitizeResources: false,
  sanitizeOps: false,
}, async () => {
  const root = await Deno.makeTempDir({ prefix: "outpost-fleet-scale-" });
  const broker = await startMosquitto();
  const publishers: MqttClient[] = [];
  let page: Awaited<ReturnType<typeof startFleetPage>> | undefined;
  let browser: TestBrowser | undefined;
  let sse: AbortController | undefined;
  try {
    for (let p = 0; p < 5; p++) {
      publishers.push(await mqtt.connectAsync(broker.url, { clientId: `fake-pub-${p}` }));
    }
    const publish = (i: number, backlog?: number) =>
      publishers[i % publishers.length].publishAsync(
        `gateways/${id(i)}/status`,
        status(i, backlog),
        { qos: 1, retain: true },
      );
    await Promise.all(Array.from({ length: N }, (_, k) => publish(k + 1)));

    page = await startFleetPage(["--broker", broker.url, "--token-file", `${root}/t`]);
    const token = (await Deno.readTextFile(`${root}/t`)).trim();
    const auth = { authorization: `Bearer ${token}` };
    const snapshot = await waitFor(
      "the server to see 500 gateways",
      async () => {
        const s = await (await fetch(new URL("/api/fleet", page!.url), { headers: auth })).json();
        return s.gateways.length === N ? s : undefined;
      },
      30_000,
      100,
    );
    const snapshotBytes = JSON.stringify(snapshot).length;

    browser = await launchBrowser();
    const tab = await (await browser.browser.newContext({ viewport: { width: 1400, height: 900 } }))
      .newPage();
    const errors: string[] = [];
    tab.on("pageerror", (e) => errors.push(e.message));
    const t0 = performance.now();
    await tab.goto(`${page.url}#token=${encodeURIComponent(token)}`);
    await tab.waitForSelector(`tr[data-gateway="${id(1)}"]`);
    await tab.waitForSelector(`#counts:text("${N} gateways: ${N} online, 0 offline")`);
    const firstRenderMs = Math.round(performance.now() - t0);

    // The callbacks run in the page; this file is type-checked without the DOM library.
    // deno-lint-ignore no-explicit-any
    type Doc = any;
    const dom = () =>
      tab.evaluate(() => {
        const document: Doc = (globalThis as Doc).document;
        return {
          nodes: document.getElementsByTagName("*").length as number,
          rows: document.querySelectorAll("#gateways tbody tr[data-gateway]").length as number,
        };
      });
    const atStart = await dom();
    assert.ok(atStart.rows > 10 && atStart.rows <= 60, `rows in the document: ${atStart.rows}`);

    /** The ids of the rows inside the visible part of the scroll box. */
    const visible = () =>
      tab.evaluate(() => {
        const document: Doc = (globalThis as Doc).document;
        const box = document.getElementById("gw-scroll").getBoundingClientRect();
        return [...document.querySelectorAll("#gateways tbody tr[data-gateway]")]
          .filter((tr: Doc) => {
            const r = tr.getBoundingClientRect();
            return r.top >= box.top + 20 && r.bottom <= box.bottom;
          })
          .map((tr: Doc) => tr.getAttribute("data-gateway") as string);
      });
    const scrollTo = (index: number) =>
      tab.evaluate((i) => {
        const document: Doc = (globalThis as Doc).document;
        const h = document.querySelector("#gateways tbody tr[data-gateway]").offsetHeight;
        document.getElementById("gw-scroll").scrollTop = i * h;
      }, index);

    assert.equal((await visible())[0], id(1));
    await scrollTo(250);
    await waitFor("row 251 in view", async () => (await visible()).includes(id(251)), 5000, 20);
    const mid = await visible();
    // The rows in view are consecutive ids around row 251, in order.
    const nums = mid.map((v) => Number(v!.slice(3)));
    assert.ok(nums[0] >= 248 && nums[0] <= 252, `first row in view: ${mid[0]}`);
    assert.deepEqual(nums, nums.map((_, k) => nums[0] + k));
    assert.equal(await tab.locator(`tr[data-gateway="${id(1)}"]`).count(), 0, "row 1 left");
    const atMiddle = await dom();
    assert.ok(atMiddle.rows <= 60, `rows in the document: ${atMiddle.rows}`);
    await scrollTo(N);
    await waitFor("the last row in view", async () => (await visible()).includes(id(N)), 5000, 20);

    // One gateway changes: the stream carries that gateway alone.
    sse = new AbortController();
    const r = await fetch(new URL("/api/events", page.url), { headers: auth, signal: sse.signal });
    const it = events(r.body!);
    const first = (await it.next()).value!;
    assert.equal(first.event, "fleet");
    assert.equal(JSON.parse(first.data).gateways.length, N);
    await publish(123, 4242);
    const next = (await it.next()).value!;
    assert.equal(next.event, "patch");
    const patch = JSON.parse(next.data);
    assert.deepEqual(Object.keys(patch).sort(), ["gateways", "now"]);
    assert.deepEqual(patch.gateways.map((g: { id: string }) => g.id), [id(123)]);
    assert.equal(patch.gateways[0].backlog, 4242);
    const patchBytes = next.data.length;
    // The page applies it.
    await scrollTo(120);
    await tab.waitForSelector(
      `tr[data-gateway="${id(123)}"] td[data-col="backlog"]:text-is("4242")`,
    );
    // Nothing else changes: nothing more is pushed (the server sweeps every 2 s).
    const quiet = await Promise.race([
      it.next().then((e) => e.value?.event ?? "end"),
      new Promise((resolve) => setTimeout(() => resolve("nothing"), 4500)),
    ]);
    assert.equal(quiet, "nothing");
    assert.deepEqual(errors, []);

    console.log(
      `500 gateways: first render ${firstRenderMs} ms (login, snapshot, stream); ` +
        `DOM ${atStart.nodes} elements with ${atStart.rows} rows at the top, ` +
        `${atMiddle.nodes} elements with ${atMiddle.rows} rows mid-table; ` +
        `snapshot ${snapshotBytes} bytes, patch for one gateway ${patchBytes} bytes`,
    );
  } finally {
    sse?.abort();
    await browser?.close();
    if (page) await page.stop();
    for (const p of publishers) await p.endAsync().catch(() => {});
    await broker.stop();
  }
});
