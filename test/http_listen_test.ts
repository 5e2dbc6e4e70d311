/**
 * Listen policy end to end, on real gateway processes: a non-loopback address without TLS is
 * refused at config check, served when `http.allowInsecure` says so, and served over HTTPS with
 * `http.tls`.
 */
import assert from "node:assert/strict";
import { testCerts } from "./helpers/certs.ts";
import { freePort, waitFor } from "./helpers/ports.ts";
import { collectOutput } from "./helpers/proc.ts";

const MAIN = new URL("../main.ts", import.meta.url).pathname;
const dec = new TextDecoder();

async function outpost(...args: string[]) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--unstable-net", MAIN, ...args],
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).output();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

/** This machine's first non-loopback IPv4 address, if it has one. */
function lanAddress(): string | undefined {
  return Deno.networkInterfaces().find((i) => i.family === "IPv4" && !i.address.startsWith("127."))
    ?.address;
}

const config = (dir: string, http: string) =>
  `gateway: { id: listen-gw }
buffer: { path: ${dir}/buffer.db }
adapters:
  - { type: simulated, name: sim, devices: 1, interval: 100ms }
http:
${http}
`;

/** Starts `outpost run`; `stop()` sends SIGTERM and returns the exit code and output. */
function run(configPath: string) {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--unstable-net", MAIN, "run", "--config", configPath],
    stdout: "piped",
    stderr: "piped",
    stdin: "null",
    env: { NO_COLOR: "1" },
  }).spawn();
  const { output, drained } = collectOutput(child);
  let done = false;
  const exited = child.status.then(async (s) => {
    done = true;
    await drained;
    return s;
  });
  return {
    output,
    exited: () => done,
    async stop() {
      try {
        child.kill("SIGTERM");
      } catch { /* gone */ }
      return (await exited).code;
    },
  };
}

Deno.test("a non-loopback listen address without TLS is refused at config check with file:line:col", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const port = freePort();
    const path = `${dir}/site.yaml`;
    await Deno.writeTextFile(path, config(dir, `  listen: 0.0.0.0:${port}`));
    const check = await outpost("check-config", path);
    assert.equal(check.code, 2);
    assert.match(
      check.stderr,
      new RegExp(
        `^${path}:6:11 http\\.listen: "0\\.0\\.0\\.0:${port}" accepts connections from other ` +
          `machines, and without tls the access token .* allowInsecure: true`,
      ),
    );
    // `run` refuses the same way, before anything starts: nothing listens, no token is made.
    const r = await outpost("run", "--config", path);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /:6:11 http\.listen: /);
    await assert.rejects(Deno.connect({ hostname: "127.0.0.1", port }));
    await assert.rejects(Deno.stat(`${dir}/http-token`));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("http.allowInsecure: true serves a non-loopback address in clear, with a warning", async () => {
  const dir = await Deno.makeTempDir();
  const lan = lanAddress();
  const host = lan ?? "0.0.0.0";
  const port = freePort();
  const path = `${dir}/site.yaml`;
  await Deno.writeTextFile(
    path,
    config(dir, `  listen: ${host}:${port}\n  allowInsecure: true`),
  );
  assert.equal((await outpost("check-config", path)).code, 0);
  const gw = run(path);
  try {
    const url = `http://${lan ?? "127.0.0.1"}:${port}`;
    await waitFor("the gateway to serve", async () => {
      if (gw.exited()) throw new Error(`gateway exited:\n${gw.output()}`);
      const r = await fetch(`${url}/healthz`);
      await r.body?.cancel();
      return r.ok;
    }, 30_000);
    const anon = await fetch(`${url}/status`);
    assert.equal(anon.status, 401, "the token is still required");
    await anon.body?.cancel();
    const token = (await Deno.readTextFile(`${dir}/http-token`)).trim();
    const ok = await fetch(`${url}/status`, { headers: { authorization: `Bearer ${token}` } });
    assert.equal((await ok.json()).gatewayId, "listen-gw");
    assert.match(gw.output(), /WARN .*serving without TLS on an address other machines can reach/);
  } finally {
    assert.equal(await gw.stop(), 0);
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("http.tls serves a non-loopback address over HTTPS; outpost status follows with --ca", async () => {
  const certs = await testCerts();
  const dir = await Deno.makeTempDir();
  const port = freePort();
  const healthPort = freePort();
  const path = `${dir}/site.yaml`;
  await Deno.writeTextFile(
    path,
    config(
      dir,
      `  listen: 0.0.0.0:${port}\n  healthListen: 127.0.0.1:${healthPort}\n` +
        `  tls: { cert: ${certs.serverCert}, key: ${certs.serverKey} }`,
    ),
  );
  const gw = run(path);
  const client = Deno.createHttpClient({ caCerts: [await Deno.readTextFile(certs.ca)] });
  try {
    const url = `https://127.0.0.1:${port}`;
    await waitFor("the gateway to serve HTTPS", async () => {
      if (gw.exited()) throw new Error(`gateway exited:\n${gw.output()}`);
      const r = await fetch(`${url}/healthz`, { client });
      await r.body?.cancel();
      return r.ok;
    }, 30_000);
    assert.match(gw.output(), /gateway page on https:\/\/0\.0\.0\.0:\d+\//);
    assert.doesNotMatch(gw.output(), /serving without TLS/);
    const anon = await fetch(`${url}/metrics`, { client });
    assert.equal(anon.status, 401);
    await anon.body?.cancel();
    const token = (await Deno.readTextFile(`${dir}/http-token`)).trim();
    const m = await fetch(`${url}/metrics`, {
      client,
      headers: { authorization: `Bearer ${token}` },
    });
    assert.equal(m.status, 200);
    assert.match(await m.text(), /^outpost_build_info\{/m);
    await assert.rejects(fetch(`http://127.0.0.1:${port}/healthz`), "no plain HTTP on the port");
    const h = await fetch(`http://127.0.0.1:${healthPort}/healthz`);
    assert.equal(h.status, 200, "plain /healthz for supervisors on healthListen");
    await h.body?.cancel();

    const st = await outpost("status", "--config", path, "--ca", certs.ca);
    assert.equal(st.code, 0, st.stderr);
    assert.match(st.stdout, /gateway\s+listen-gw/);
  } finally {
    client.close();
    assert.equal(await gw.stop(), 0);
    await Deno.remove(dir, { recursive: true });
  }
});
