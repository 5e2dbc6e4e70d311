import assert from "node:assert/strict";
import { startGateway } from "./helpers/gateway.ts";
import { waitFor } from "./helpers/ports.ts";
import { laughs } from "./helpers/hostile.ts";
import { runOutpost } from "./helpers/cli.ts";

const outpost = (...args: string[]) => runOutpost(args);

Deno.test("version, help and bad usage exit 0, 0 and 2", async () => {
  const v = await outpost("version");
  assert.equal(v.code, 0);
  assert.match(v.stdout, /^outpost \d+\.\d+\.\d+/);
  for (const cmd of ["run", "check-config", "status", "export", "schema", "version"]) {
    const h = await outpost(cmd, "--help");
    assert.equal(h.code, 0, cmd);
    assert.match(h.stdout, /Usage: outpost/, cmd);
  }
  const bad = await outpost("run", "--confg", "x.yaml");
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /--confg/);
  assert.equal((await outpost("frobnicate")).code, 2);
  const missing = await outpost("run", "--config", "/nonexistent/site.yaml");
  assert.equal(missing.code, 2);
  assert.match(missing.stderr, /\/nonexistent\/site\.yaml:1:1 cannot read config: no such file/);
});

Deno.test("a corrupt buffer file is moved aside with a loud error and the gateway runs", async () => {
  const dir = await Deno.makeTempDir();
  await Deno.writeTextFile(`${dir}/buffer.db`, "garbage, not SQLite ".repeat(1000));
  const gw = await startGateway(
    dir,
    `
gateway: { id: corrupt-gw }
buffer: { path: ${dir}/buffer.db }
adapters:
  - { type: simulated, name: sim, devices: 2, interval: 50ms }
`,
    { waitHealthy: true },
  );
  try {
    await waitFor("readings in the fresh buffer", async () => (await gw.status()).buffer.rows > 10);
    const s = await gw.status() as unknown as { buffer: { quarantined: string[] } };
    assert.equal(s.buffer.quarantined.length, 1);
    assert.match(gw.output(), /ERROR \[buffer\] BUFFER FILE IS CORRUPT: moved aside/);
    const aside = [...Deno.readDirSync(dir)].filter((e) => e.name.startsWith("buffer.db.corrupt-"));
    assert.equal(aside.length, 1);
  } finally {
    await gw.kill();
  }
});

Deno.test("status prints a running gateway readably; export gives a device's last 30 days as CSV and JSON lines", async () => {
  const dir = await Deno.makeTempDir();
  const gw = await startGateway(
    dir,
    `
gateway: { id: cli-gw }
buffer: { path: ${dir}/buffer.db }
adapters:
  - { type: simulated, name: sim, devices: 3, interval: 20ms, prefix: pump }
`,
  );
  try {
    await waitFor("readings", async () => (await gw.status()).buffer.rows >= 60);
    const st = await outpost("status", "--config", gw.configPath);
    assert.equal(st.code, 0, st.stderr);
    assert.match(st.stdout, /gateway\s+cli-gw/);
    assert.match(st.stdout, /uplink\s+none \(buffer only\)/);
    assert.match(st.stdout, /sim\s+simulated\s+running/);
    const code = await gw.stop();
    assert.equal(code, 0);
    const csv = await outpost(
      "export",
      "--config",
      gw.configPath,
      "--device",
      "pump-3",
      "--since",
      "30d",
    );
    assert.equal(csv.code, 0, csv.stderr);
    const lines = csv.stdout.trim().split("\n");
    assert.equal(lines[0], "seq,time,device,metric,value,unit,forwarded");
    assert.ok(lines.length > 15);
    for (const l of lines.slice(1)) {
      assert.match(l, /^\d+,20\d\d-[^,]+Z,pump-3,temperature,[\d.]+,C,false$/);
    }
    const jsonl = await outpost(
      "export",
      "--config",
      gw.configPath,
      "--device",
      "pump-3",
      "--format",
      "jsonl",
    );
    const rows = jsonl.stdout.trim().split("\n").map((l) => JSON.parse(l));
    assert.equal(rows.length, lines.length - 1);
    assert.ok(rows.every((r, i) => i === 0 || r.seq > rows[i - 1].seq));
    const none = await outpost(
      "export",
      "--config",
      gw.configPath,
      "--device",
      "pump-3",
      "--from",
      "2001-01-01",
      "--until",
      "2001-02-01",
    );
    assert.equal(none.stdout.trim(), "seq,time,device,metric,value,unit,forwarded");
    const bad = await outpost("export", "--config", gw.configPath, "--since", "a month");
    assert.equal(bad.code, 2);
  } finally {
    await gw.kill();
  }
});

Deno.test("SIGHUP says which changed sections wait for the next start (log, http, update, devices)", async () => {
  const dir = await Deno.makeTempDir();
  const yaml = `
gateway: { id: reload-later-gw }
buffer: { path: ${dir}/buffer.db }
adapters:
  - { type: simulated, name: sim, devices: 1, interval: 200ms }
`;
  const gw = await startGateway(dir, yaml);
  try {
    const listen = (await Deno.readTextFile(gw.configPath)).match(/http:\n {2}listen: .*\n/)![0];
    await Deno.writeTextFile(gw.configPath, yaml + "log: { level: debug }\n" + listen);
    Deno.kill(gw.pid, "SIGHUP");
    await waitFor("the reload", () => gw.output().includes("config reloaded"));
    await waitFor(
      "the warning",
      () => /WARN .*log changed: applied at the next start of the process/.test(gw.output()),
    );
    // An unchanged reload says nothing of the kind.
    const warnings = gw.output().match(/applied at the next start/g)!.length;
    Deno.kill(gw.pid, "SIGHUP");
    await waitFor("the second reload", () => gw.output().split("config reloaded").length === 3);
    assert.equal(gw.output().match(/applied at the next start/g)!.length, warnings);
  } finally {
    await gw.kill();
  }
});

Deno.test("SIGHUP reloads a valid config without touching the buffer and refuses a broken one", async () => {
  const dir = await Deno.makeTempDir();
  const yaml = (devices: number) => `
gateway: { id: reload-gw }
buffer: { path: ${dir}/buffer.db }
adapters:
  - { type: simulated, name: sim, devices: ${devices}, interval: 20ms }
`;
  const gw = await startGateway(dir, yaml(2));
  try {
    const before = await waitFor("readings", async () => {
      const s = await gw.status();
      return s.buffer.rows >= 50 ? s : undefined;
    });
    const listen = (await Deno.readTextFile(gw.configPath)).match(/http:\n {2}listen: .*\n/)![0];
    await Deno.writeTextFile(gw.configPath, yaml(5) + listen);
    Deno.kill(gw.pid, "SIGHUP");
    await waitFor("the reload", () => gw.output().includes("config reloaded"));
    await waitFor("the new device", async () => {
      const s = await gw.status() as unknown as { devices: Record<string, unknown> };
      return "sim-5" in s.devices;
    });
    const after = await gw.status();
    assert.ok(after.buffer.rows >= before.buffer.rows, "no reading lost across the reload");
    await Deno.writeTextFile(gw.configPath, "gateway: { id: [broken\n" + listen);
    Deno.kill(gw.pid, "SIGHUP");
    await waitFor("the refusal", () => gw.output().includes("config reload refused"));
    const rows = (await gw.status()).buffer.rows;
    await waitFor(
      "ingest to go on with the old config",
      async () => (await gw.status()).buffer.rows > rows,
    );
    // Files that exhaust a 64 MB heap or the stack when parsed naively: refused, the gateway lives.
    const hostile = [
      ["nested deeper than 64 levels", yaml(5) + "x: " + "[".repeat(100_000) + "\n"],
      ["aliases expand to more than 10000", yaml(5) + laughs()],
      ["more than 20000 values", yaml(5) + "y: [" + "1,".repeat(100_000) + "1]\n"],
    ];
    for (const [problem, text] of hostile) {
      await Deno.writeTextFile(gw.configPath, text + listen);
      Deno.kill(gw.pid, "SIGHUP");
      await waitFor(`the refusal (${problem})`, () => gw.output().includes(problem));
      const n = (await gw.status()).buffer.rows;
      await waitFor("ingest to go on", async () => (await gw.status()).buffer.rows > n);
    }
    assert.doesNotMatch(gw.output(), /out of memory|Maximum call stack/);
  } finally {
    await gw.kill();
  }
});
