/**
 * The gateway page end to end: a real gateway process (simulated adapter), Debian's Chromium
 * driven by Playwright, the `outpost token` CLI.
 */
import assert from "node:assert/strict";
import type { Page } from "playwright-core";
import { launchBrowser } from "./helpers/browser.ts";
import { startGateway } from "./helpers/gateway.ts";
import { waitFor } from "./helpers/ports.ts";
import { runOutpost } from "./helpers/cli.ts";

const outpost = (...args: string[]) => runOutpost(args);

const YAML = (dir: string) => `
gateway: { id: dash-gw, site: "Pump house 3" }
buffer: { path: ${dir}/data/buffer.db }
adapters:
  - type: simulated
    name: sim
    devices: 3
    interval: 100ms
    prefix: pump
    metrics:
      - { name: pressure, pattern: sine, unit: bar, min: 2, max: 6, period: 10s, decimals: 3 }
      - { name: running, pattern: toggle, period: 5s }
`;

/** Text of a metric's value on the page. */
function valueOf(page: Page, device: string, metric: string): Promise<string> {
  return page.locator(`[data-device="${device}"] [data-metric="${metric}"] .v`).innerText();
}

/** Polls the page until `probe` holds (no sleeps: a deadline, like waitFor). */
function waitPage<T>(what: string, probe: () => Promise<T>, timeoutMs = 15_000) {
  return waitFor(what, probe, timeoutMs, 100);
}

Deno.test("gateway page in Chromium: the token is required, values appear and move, a rotated token signs out", async (t) => {
  const dir = await Deno.makeTempDir({ prefix: "outpost-dash-" });
  const gw = await startGateway(dir, YAML(dir));
  const browser = await launchBrowser();
  const base = `http://127.0.0.1:${gw.httpPort}`;
  try {
    const page = await browser.browser.newPage({ viewport: { width: 1280, height: 900 } });
    const errors: string[] = [];
    page.on("pageerror", (e) => errors.push(e.message));
    const firstToken = gw.token();

    await t.step("the token is stored 0600 next to the buffer and never printed", async () => {
      assert.equal(gw.tokenFile, `${dir}/data/http-token`);
      assert.equal(Deno.statSync(gw.tokenFile).mode! & 0o777, 0o600);
      assert.ok(!gw.output().includes(firstToken), "the token is not in the journal (stdout)");
      assert.match(
        gw.output(),
        /\[http\] generated the access token .* outpost token show prints it.* tokenFile=\S+http-token\n/,
      );
      const logs = await (await gw.get("/logs?n=1000")).text();
      assert.ok(!logs.includes(firstToken), "the token is not in the log ring (/logs)");
      assert.ok(JSON.parse(logs).lines.length > 3);
    });

    await t.step(
      "without the token: /status and /metrics answer 401, the page shows no data",
      async () => {
        for (const path of ["/status", "/metrics", "/api/dashboard", "/logs"]) {
          const res = await fetch(`${base}${path}`);
          assert.equal(res.status, 401, path);
          await res.body?.cancel();
        }
        const health = await fetch(`${base}/healthz`);
        assert.equal(health.status, 200, "/healthz stays open");
        await health.body?.cancel();

        await page.goto(`${base}/`);
        await page.locator("#login").waitFor({ state: "visible" });
        assert.equal(await page.locator("#app").isVisible(), false);
        const text = await page.locator("body").innerText();
        assert.doesNotMatch(text, /dash-gw|pump-1|Pump house/);

        await page.fill("#token", "this-is-not-the-token");
        await page.click("#login-submit");
        await page.locator("#login-error").waitFor({ state: "visible" });
        assert.match(await page.locator("#login-error").innerText(), /not accepted/);
        assert.equal(await page.locator("#app").isVisible(), false);
        assert.doesNotMatch(await page.locator("body").innerText(), /dash-gw|pump-1/);
      },
    );

    await t.step("with the token: gateway id, version, devices and their values", async () => {
      await page.fill("#token", firstToken);
      await page.click("#login-submit");
      await page.locator("#app").waitFor({ state: "visible" });
      const status = await gw.status() as unknown as { version: string };
      assert.equal(await page.locator("#gw-id").innerText(), "dash-gw");
      assert.equal(await page.locator("#gw-site").innerText(), "Pump house 3");
      assert.match(
        await page.locator("#gw-meta").innerText(),
        new RegExp(`version ${status.version}`),
      );
      assert.equal(await page.locator("#health").innerText(), "Healthy");
      for (const d of ["pump-1", "pump-2", "pump-3"]) {
        await page.locator(`[data-device="${d}"]`).waitFor();
        assert.match(await valueOf(page, d, "pressure"), /^[2-6](\.\d+)?$/);
        assert.match(await valueOf(page, d, "running"), /^(true|false)$/);
      }
      assert.match(
        await page.locator('[data-device="pump-1"] [data-metric="pressure"]').innerText(),
        /bar/,
      );
      assert.equal(
        await page.locator("#adapters tbody tr[data-adapter=sim] td").nth(1).innerText(),
        "simulated",
      );
      assert.match(await page.locator("#buffer").innerText(), /Pending/);
      assert.match(await page.locator("#uplink").innerText(), /none configured/);
      await waitPage(
        "the log view",
        async () => (await page.locator("#logs").innerText()).includes("simulating devices"),
      );
      // The token typed in is gone from the form and from the page's storage.
      assert.equal(await page.inputValue("#token"), "");
      const stored = await page.evaluate<string>(
        "JSON.stringify([{ ...sessionStorage }, { ...localStorage }, document.cookie])",
      );
      assert.ok(!stored.includes(firstToken));
      assert.equal(stored, '[{},{},""]', "the session cookie is HttpOnly");
    });

    await t.step("values change as readings flow, and trend lines grow", async () => {
      const before = await valueOf(page, "pump-1", "pressure");
      await waitPage(
        "pump-1 pressure to change on the page",
        async () => (await valueOf(page, "pump-1", "pressure")) !== before,
      );
      await waitPage("a trend line with several points", async () => {
        const pts = await page.locator(
          '[data-device="pump-2"] [data-metric="pressure"] svg.trend polyline',
        ).getAttribute("points", { timeout: 1000 });
        return (pts?.split(" ").length ?? 0) >= 4;
      });
      const shot = await Deno.makeTempFile({ prefix: "outpost-dashboard-", suffix: ".png" });
      await page.screenshot({ path: shot, fullPage: true });
      assert.ok(Deno.statSync(shot).size > 10_000);
      console.log(`screenshot: ${shot}`);
    });

    await t.step("a reload keeps the session; the filter narrows the devices", async () => {
      await page.reload();
      await page.locator('[data-device="pump-3"]').waitFor();
      assert.equal(await page.locator("#login").isVisible(), false);
      await page.fill("#device-filter", "pump-2");
      await waitPage(
        "only pump-2 shown",
        async () => (await page.locator("[data-device]").count()) === 1,
      );
      await page.fill("#device-filter", "");
    });

    await t.step(
      "outpost token rotate: the page is signed out, the old token refused, the new one works",
      async () => {
        const rotated = await outpost("token", "rotate", "--config", gw.configPath);
        assert.equal(rotated.code, 0, rotated.stderr);
        const newToken = rotated.stdout.trim();
        assert.match(newToken, /^[\w-]{43}$/);
        assert.notEqual(newToken, firstToken);
        assert.equal(gw.token(), newToken);
        assert.match(rotated.stderr, /refuses the old one/);

        await page.locator("#login").waitFor({ state: "visible", timeout: 15_000 });
        assert.match(await page.locator("#login-error").innerText(), /Signed out/);
        assert.equal(await page.locator("#app").isVisible(), false);
        assert.doesNotMatch(await page.locator("body").innerText(), /dash-gw|pump-1/);

        const old = await fetch(`${base}/status`, {
          headers: { authorization: `Bearer ${firstToken}` },
        });
        assert.equal(old.status, 401);
        await old.body?.cancel();
        await page.fill("#token", firstToken);
        await page.click("#login-submit");
        await waitPage(
          "the old token refused",
          async () => /not accepted/.test(await page.locator("#login-error").innerText()),
        );

        await page.fill("#token", newToken);
        await page.click("#login-submit");
        await page.locator('[data-device="pump-1"]').waitFor();
        assert.equal(await page.locator("#gw-id").innerText(), "dash-gw");
        assert.equal((await gw.status() as unknown as { gatewayId: string }).gatewayId, "dash-gw");
        assert.doesNotMatch(gw.output(), new RegExp(newToken), "the rotated token is not logged");
      },
    );

    await t.step("sign out ends the session", async () => {
      await page.click("#logout");
      await page.locator("#login").waitFor({ state: "visible" });
      await page.reload();
      await page.locator("#login").waitFor({ state: "visible" });
      assert.equal(await page.locator("#app").isVisible(), false);
    });

    assert.deepEqual(errors, [], "no script errors on the page");
  } finally {
    await browser.close();
    assert.equal(await gw.stop(), 0);
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("outpost token path/show and outpost status use the config's token file", async () => {
  const dir = await Deno.makeTempDir({ prefix: "outpost-token-cli-" });
  const gw = await startGateway(dir, YAML(dir));
  try {
    const path = await outpost("token", "path", "--config", gw.configPath);
    assert.equal(path.stdout.trim(), `${dir}/data/http-token`);
    const show = await outpost("token", "show", "--config", gw.configPath);
    assert.equal(show.stdout.trim(), gw.token());
    const st = await outpost("status", "--config", gw.configPath);
    assert.equal(st.code, 0, st.stderr);
    assert.match(st.stdout, /gateway\s+dash-gw/);
    const anon = await outpost(
      "status",
      "--url",
      `http://127.0.0.1:${gw.httpPort}`,
      "--token-file",
      `${dir}/nope`,
    );
    assert.equal(anon.code, 1);
    assert.match(anon.stderr, /Cannot read token file .*nope.*no such file/);
    await Deno.writeTextFile(`${dir}/wrong-token`, "a-wrong-token-of-sufficient-length\n");
    const wrong = await outpost(
      "status",
      "--url",
      `http://127.0.0.1:${gw.httpPort}`,
      "--token-file",
      `${dir}/wrong-token`,
    );
    assert.equal(wrong.code, 1);
    assert.match(wrong.stderr, /\/status answered 401/);
    const bad = await outpost("token", "spin", "--config", gw.configPath);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /expected show, rotate or path/);
  } finally {
    assert.equal(await gw.stop(), 0);
    await Deno.remove(dir, { recursive: true });
  }
});
