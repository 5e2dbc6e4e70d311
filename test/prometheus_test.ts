/**
 * The Grafana dashboard (`config/grafana/outpost.json`) and the alert rules
 * (`config/prometheus/outpost-alerts.yml`) against a real Prometheus: Debian's `prometheus`
 * package (`.ci/run` installs it) scrapes a real gateway process with the token file, every
 * panel's expression must parse and return data, and the rules must pass `promtool check rules`
 * and load. Without `/usr/bin/prometheus` the test is skipped, saying so.
 */
import assert from "node:assert/strict";
import mqtt from "mqtt";
import { startGateway } from "./helpers/gateway.ts";
import { startMosquitto } from "./helpers/mosquitto.ts";
import { freePort, waitFor } from "./helpers/ports.ts";

const PROMETHEUS = "/usr/bin/prometheus";
const PROMTOOL = "/usr/bin/promtool";
const ROOT = new URL("../", import.meta.url).pathname;
const DASHBOARD = `${ROOT}config/grafana/outpost.json`;
const RULES = `${ROOT}config/prometheus/outpost-alerts.yml`;

function exists(path: string): boolean {
  try {
    Deno.statSync(path);
    return true;
  } catch {
    return false;
  }
}

const present = exists(PROMETHEUS);
if (!present) {
  console.warn(
    `SKIPPED test/prometheus_test.ts: ${PROMETHEUS} not found; install Debian's prometheus ` +
      "package (.ci/run does) to check the Grafana dashboard and alert rules",
  );
}

interface Panel {
  title: string;
  targets: { expr: string; refId: string }[];
}

/** A panel expression as Grafana would send it for gateway "All" and a short range. */
function resolve(expr: string): string {
  return expr.replaceAll("$gateway", ".*").replaceAll("$__rate_interval", "30s");
}

Deno.test({
  name:
    "Grafana dashboard and alert rules: every panel query returns data from a real Prometheus scraping a real gateway; the rules pass promtool and load",
  ignore: !present,
  async fn() {
    const rules = await new Deno.Command(PROMTOOL, {
      args: ["check", "rules", RULES],
      stdout: "piped",
      stderr: "piped",
    }).output();
    const said = new TextDecoder().decode(rules.stdout) + new TextDecoder().decode(rules.stderr);
    assert.equal(rules.code, 0, said);
    assert.match(said, /SUCCESS: \d+ rules found/);

    const dashboard = JSON.parse(await Deno.readTextFile(DASHBOARD)) as { panels: Panel[] };
    const exprs = dashboard.panels.flatMap((p) =>
      p.targets.map((t) => ({ panel: p.title, expr: t.expr }))
    );
    assert.ok(exprs.length >= 15, `${exprs.length} panel queries`);

    const broker = await startMosquitto();
    const dir = await Deno.makeTempDir({ prefix: "outpost-prometheus-" });
    let prom: Deno.ChildProcess | undefined;
    let gw: Awaited<ReturnType<typeof startGateway>> | undefined;
    try {
      gw = await startGateway(
        dir,
        `
gateway: { id: prom-gw, site: "Test bench" }
buffer: { path: ${dir}/data/buffer.db }
uplink:
  type: mqtt
  url: ${broker.url}
  reconnect: { min: 100ms, max: 500ms }
commands: { insecureUnsigned: false }
adapters:
  - type: simulated
    name: sim
    devices: 2
    interval: 100ms
    prefix: pump
    metrics:
      - { name: pressure, pattern: sine, min: 2, max: 6, period: 5s }
filters:
  - { device: "pump-*", metric: pressure, range: { min: 0, max: 5 } }
rules:
  - name: pump-1-running
    severity: critical
    when: { device: pump-1, metric: pressure, above: 0 }
`,
      );
      // One command run, so the commands family has a series (an unsigned ping is open).
      const client = await mqtt.connectAsync(broker.url, { clientId: "prom-test" });
      await waitFor(
        "request topics subscribed",
        async () => {
          const s = await gw!.status() as unknown as { commands?: { subscribed?: boolean } };
          return s.commands?.subscribed === true;
        },
        20_000,
        50,
      );
      await client.publishAsync(
        "gateways/prom-gw/cmd/ping",
        JSON.stringify({ id: crypto.randomUUID() }),
        { qos: 1 },
      );
      await client.endAsync();

      // The exposition itself passes promtool's linter (names, units, HELP, counters).
      const text = await waitFor(
        "the ping counted in /metrics",
        async () => {
          const t = await (await gw!.get("/metrics")).text();
          return t.includes('outpost_commands_total{command="ping"') ? t : undefined;
        },
        20_000,
        50,
      );
      const lint = new Deno.Command(PROMTOOL, {
        args: ["check", "metrics"],
        stdin: "piped",
        stdout: "piped",
        stderr: "piped",
      }).spawn();
      const writer = lint.stdin.getWriter();
      await writer.write(new TextEncoder().encode(text));
      await writer.close();
      const linted = await lint.output();
      const lintSaid = new TextDecoder().decode(linted.stdout) +
        new TextDecoder().decode(linted.stderr);
      assert.equal(linted.code, 0, lintSaid);
      for (const family of ["outpost_alarm_active", "outpost_commands_total"]) {
        assert.match(text, new RegExp(`^# TYPE ${family} `, "m"));
      }

      const port = freePort();
      await Deno.writeTextFile(
        `${dir}/prometheus.yml`,
        `global: { scrape_interval: 1s, evaluation_interval: 1s }
rule_files: ["${RULES}"]
scrape_configs:
  - job_name: outpost
    authorization: { type: Bearer, credentials_file: "${gw.tokenFile}" }
    static_configs:
      - targets: ["127.0.0.1:${gw.httpPort}"]
        labels: { gateway: prom-gw }
`,
      );
      prom = new Deno.Command(PROMETHEUS, {
        args: [
          `--config.file=${dir}/prometheus.yml`,
          `--storage.tsdb.path=${dir}/tsdb`,
          `--web.listen-address=127.0.0.1:${port}`,
          "--log.level=warn",
        ],
        stdout: "null",
        stderr: "piped",
      }).spawn();
      const base = `http://127.0.0.1:${port}`;
      const query = async (q: string) => {
        const res = await fetch(`${base}/api/v1/query?query=${encodeURIComponent(q)}`);
        return await res.json() as {
          status: string;
          error?: string;
          data?: { result: { metric: Record<string, string>; value: [number, string] }[] };
        };
      };
      await waitFor(
        "prometheus ready",
        async () => {
          const r = await fetch(`${base}/-/ready`).catch(() => undefined);
          await r?.body?.cancel();
          return r?.ok === true;
        },
        30_000,
        100,
      );
      // Rates need two samples in their window: wait for several scrapes.
      await waitFor(
        "five successful scrapes",
        async () => {
          const r = await query('count_over_time(up{job="outpost"}[1m]) >= 5 and up == 1');
          return (r.data?.result.length ?? 0) > 0;
        },
        60_000,
        250,
      );

      const failures: string[] = [];
      for (const { panel, expr } of exprs) {
        const r = await query(resolve(expr));
        if (r.status !== "success") failures.push(`${panel}: ${expr}: ${r.error}`);
        else if (!r.data?.result.length) failures.push(`${panel}: ${expr}: no data`);
      }
      assert.deepEqual(failures, []);
      const gateways = await query("outpost_up");
      assert.equal(gateways.data?.result[0].metric.gateway, "prom-gw");

      const loaded = await (await fetch(`${base}/api/v1/rules`)).json() as {
        data: { groups: { name: string; rules: { name: string; health: string }[] }[] };
      };
      const group = loaded.data.groups.find((g) => g.name === "outpost");
      assert.ok(group, JSON.stringify(loaded));
      await waitFor(
        "every rule evaluated without error",
        async () => {
          const now = await (await fetch(`${base}/api/v1/rules`)).json() as typeof loaded;
          const g = now.data.groups.find((x) => x.name === "outpost")!;
          const bad = g.rules.filter((r) => r.health !== "ok");
          return bad.length === 0;
        },
        20_000,
        250,
      );
      // The critical alarm this gateway raises reaches Prometheus as an alert.
      await waitFor(
        "the OutpostCriticalAlarm alert",
        async () => {
          const a = await (await fetch(`${base}/api/v1/alerts`)).json() as {
            data: { alerts: { labels: Record<string, string> }[] };
          };
          return a.data.alerts.some((x) =>
            x.labels.alertname === "OutpostCriticalAlarm" && x.labels.rule === "pump-1-running"
          );
        },
        20_000,
        250,
      );
    } finally {
      if (prom) {
        try {
          prom.kill("SIGTERM");
        } catch { /* gone */ }
        await prom.stderr.cancel();
        await prom.status;
      }
      await gw?.stop();
      await broker.stop();
      await Deno.remove(dir, { recursive: true });
    }
  },
});
