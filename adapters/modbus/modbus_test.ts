import assert from "node:assert/strict";
import { parse as parseYaml } from "yaml";
import { Ctx, INVALID } from "../../src/config/schema.ts";
import { freePort, waitFor } from "../../test/helpers/ports.ts";
import { type ModbusConfig, modbusSchema } from "./config.ts";
import { modbus } from "./mod.ts";
import { decodeRegisters, encodeRegisters } from "./_decode.ts";
import { planReads, type Point } from "./_plan.ts";
import { interFrameGapMs, sttyArgs } from "./_serial.ts";
import { recorder, startServer } from "./testdata/harness.ts";

function parse(raw: unknown): { value?: ModbusConfig; issues: string[] } {
  const ctx = new Ctx();
  const v = modbusSchema.check(raw, ctx, []);
  return {
    value: v === INVALID ? undefined : v,
    issues: ctx.issues.map((i) => `${i.path.join(".")}: ${i.message}`),
  };
}

function config(raw: unknown): ModbusConfig {
  const r = parse(raw);
  assert.deepEqual(r.issues, []);
  return r.value!;
}

function latest(readings: { device: string; metric: string; value: unknown }[], device: string) {
  const out: Record<string, unknown> = {};
  for (const r of readings) if (r.device === device) out[r.metric] = r.value;
  return out;
}

const reg = (name: string, address: number, type: string, order = "ABCD", extra = {}) => ({
  name,
  function: "holding",
  address,
  type,
  order,
  ...extra,
});

/** Holding registers 100… of the type vector, with the value each should decode to. */
const VECTOR = {
  words: [
    0xff85, // 100 int16 -123
    0xff85, // 101 uint16 65413
    0xf8a4,
    0x32eb, // 102 int32 ABCD -123456789
    0x32eb,
    0xf8a4, // 104 int32 CDAB
    0xa4f8,
    0xeb32, // 106 int32 BADC
    0xeb32,
    0xa4f8, // 108 int32 DCBA
    0xee6b,
    0x2800, // 110 uint32 4e9
    0xbfc0,
    0x0000, // 112 float32 -1.5
    0xffff,
    0x7f7f, // 114 float32 CDAB max
    0x0100,
    0x0000, // 116 float32 DCBA smallest subnormal
    0x0080,
    0x0000, // 118 float32 BADC -0
    0xffe0,
    0x0000,
    0x0000,
    0x0001, // 120 int64 -(2^53-1)
    0x0000,
    0x0000,
    0x0000,
    0x0020, // 124 uint64 CDAB 2^53
    0x4009,
    0x21fb,
    0x5444,
    0x2d18, // 128 float64 pi
    0x9c75,
    0x0088,
    0x3ce4,
    0x37fe, // 132 float64 DCBA -1e300
  ],
  registers: [
    reg("i16", 100, "int16"),
    reg("u16", 101, "uint16"),
    reg("i32_abcd", 102, "int32"),
    reg("i32_cdab", 104, "int32", "CDAB"),
    reg("i32_badc", 106, "int32", "BADC"),
    reg("i32_dcba", 108, "int32", "DCBA"),
    reg("u32", 110, "uint32"),
    reg("f32", 112, "float32"),
    reg("f32_max", 114, "float32", "CDAB"),
    reg("f32_tiny", 116, "float32", "DCBA"),
    reg("f32_negzero", 118, "float32", "BADC"),
    reg("i64", 120, "int64"),
    reg("u64", 124, "uint64", "CDAB"),
    reg("f64", 128, "float64"),
    reg("f64_dcba", 132, "float64", "DCBA"),
    reg("name", 140, "string", "ABCD", { length: 4 }),
    reg("name_badc", 144, "string", "BADC", { length: 4 }),
    reg("scaled", 150, "uint16", "ABCD", { scale: 0.1, offset: -10, unit: "bar" }),
    reg("neg_scaled", 151, "int16", "ABCD", { scale: 0.5 }),
    reg("bit2", 152, "bool", "ABCD", { bit: 2 }),
    reg("bit0", 152, "bool", "ABCD", { bit: 0 }),
    { name: "in10", function: "input", address: 10 },
    { name: "coil0", function: "coil", address: 0 },
    { name: "coil1", function: "coil", address: 1 },
    { name: "coil3", function: "coil", address: 3 },
    { name: "di3", function: "discrete", address: 3 },
  ],
  expected: {
    i16: -123,
    u16: 65413,
    i32_abcd: -123456789,
    i32_cdab: -123456789,
    i32_badc: -123456789,
    i32_dcba: -123456789,
    u32: 4_000_000_000,
    f32: -1.5,
    f32_max: 3.4028234663852886e38,
    f32_tiny: 1.401298464324817e-45,
    f32_negzero: -0,
    i64: -9007199254740991,
    u64: 9007199254740992,
    f64: Math.PI,
    f64_dcba: -1e300,
    name: "PUMP-7",
    name_badc: "PUMP-7",
    scaled: 224.5,
    neg_scaled: -5,
    bit2: true,
    bit0: false,
    in10: 17,
    coil0: true,
    coil1: false,
    coil3: true,
    di3: true,
  },
};

const STRING_WORDS = "140 0x5055,0x4d50,0x2d37,0";
const STRING_BADC_WORDS = "144 0x5550,0x504d,0x372d,0";

Deno.test("planReads() merges ranges within maxGap and splits at the protocol limits", () => {
  const codec = { type: "uint16" as const, order: "ABCD" as const, scale: 1, offset: 0 };
  const p = (table: Point["table"], address: number, size = 1): Point => ({
    name: `${table}${address}`,
    table,
    address,
    size,
    codec,
  });
  const regs = Array.from({ length: 300 }, (_, i) => p("holding", i));
  const reads = planReads(regs, { maxGap: 0, maxRegisters: 125, maxBits: 2000 });
  assert.deepEqual(reads.map((r) => [r.start, r.count]), [[0, 125], [125, 125], [250, 50]]);
  const coils = Array.from({ length: 2500 }, (_, i) => p("coil", i));
  assert.deepEqual(
    planReads(coils, { maxGap: 0, maxRegisters: 125, maxBits: 2000 }).map((r) => r.count),
    [2000, 500],
  );
  const gappy = [p("holding", 0, 2), p("holding", 5), p("holding", 20), p("input", 6)];
  assert.deepEqual(
    planReads(gappy, { maxGap: 3, maxRegisters: 125, maxBits: 2000 }).map((
      r,
    ) => [r.table, r.start, r.count]),
    [["holding", 0, 6], ["holding", 20, 1], ["input", 6, 1]],
  );
  // A 4-register value is never split across reads.
  assert.deepEqual(
    planReads([p("holding", 0, 4), p("holding", 4, 4)], {
      maxGap: 0,
      maxRegisters: 6,
      maxBits: 2000,
    })
      .map((r) => [r.start, r.count]),
    [[0, 4], [4, 4]],
  );
});

Deno.test("encodeRegisters() and decodeRegisters() round-trip every type and order", () => {
  const cases: [string, number | string][] = [
    ["int16", -32768],
    ["uint16", 65535],
    ["int32", -2147483648],
    ["uint32", 4294967295],
    ["float32", -0.5],
    ["int64", -(2 ** 53) + 1],
    ["uint64", 2 ** 53],
    ["float64", -1.7976931348623157e308],
    ["string", "ABC"],
  ];
  for (const order of ["ABCD", "CDAB", "BADC", "DCBA"] as const) {
    for (const [type, value] of cases) {
      const codec = { type, order, length: 3, scale: 1, offset: 0 } as Parameters<
        typeof decodeRegisters
      >[1];
      assert.equal(
        decodeRegisters(encodeRegisters(value, codec), codec),
        value,
        `${type} ${order}`,
      );
    }
  }
  const scaled = { type: "int16" as const, order: "ABCD" as const, scale: 0.1, offset: 0 };
  assert.deepEqual(encodeRegisters(-12.3, scaled), [0xff85]);
  assert.throws(() => encodeRegisters(4000, scaled), /raw value 40000 is out of range/);
});

Deno.test("modbus schema: unknown keys, string without length, RTU lines and profiles are checked", () => {
  const base = {
    devices: [{
      name: "m1",
      tcp: { host: "127.0.0.1" },
      groups: [{ registers: [reg("a", 0, "uint16")] }],
    }],
  };
  assert.deepEqual(parse(base).issues, []);
  const issues = parse({
    profiles: {
      p: {
        groups: [{
          registers: [reg("s", 65535, "string"), { ...reg("x", 0, "int16"), colour: 1 }],
        }],
      },
    },
    devices: [
      { name: "a", rtu: { port: "/dev/ttyS1", baudRate: 9600 }, profile: "p" },
      { name: "b", rtu: { port: "/dev/ttyS1", baudRate: 19200 }, profile: "nope" },
      { name: "c", tcp: { host: "h" }, rtu: { port: "/dev/x", baudRate: 9600 }, profile: "p" },
      {
        name: "d",
        rtu: { port: "/dev/ttyS2" },
        groups: [{ registers: [reg("f", 65535, "float32")] }],
      },
    ],
  }).issues.join("\n");
  assert.match(issues, /missing required key "length"/);
  assert.match(issues, /colour: unknown key/);
  assert.match(issues, /needs exactly one of "tcp" or "rtu"/);
  assert.match(issues, /rtu: missing required key "baudRate"/);
  assert.match(issues, /address \+ size ≤ 65536, got 65535 \+ 2/);
  const sameLine = parse({
    devices: [
      {
        name: "a",
        rtu: { port: "/dev/ttyS1", baudRate: 9600 },
        groups: [{ registers: [reg("v", 0, "int16")] }],
      },
      {
        name: "b",
        rtu: { port: "/dev/ttyS1", baudRate: 19200 },
        groups: [{ registers: [reg("v", 0, "int16")] }],
      },
    ],
  }).issues.join("\n");
  assert.match(sameLine, /serial port "\/dev\/ttyS1" is set up differently in devices\[0\]/);
});

Deno.test("example.yaml validates against the modbus schema", async () => {
  const doc = parseYaml(await Deno.readTextFile(new URL("./example.yaml", import.meta.url)));
  for (const entry of doc.adapters) {
    const { type, name: _name, enabled: _enabled, ...own } = entry;
    assert.equal(type, "modbus");
    const cfg = config(own);
    assert.equal(cfg.devices.length, 4);
    assert.deepEqual(cfg.devices[3].rtu, cfg.devices[2].rtu);
  }
});

Deno.test("sttyArgs() and interFrameGapMs() follow the line settings", () => {
  const line = {
    path: "/dev/ttyUSB0",
    baudRate: 9600,
    parity: "even" as const,
    dataBits: 8,
    stopBits: 1,
  };
  const args = sttyArgs(line).join(" ");
  assert.match(args, /^-F \/dev\/ttyUSB0 9600 raw -echo cs8 -cstopb parenb -parodd /);
  // 11 bits per character at 9600 bit/s: 3.5 characters take 4.01 ms.
  assert.ok(Math.abs(interFrameGapMs(line) - 3.5 * 11 / 9.6) < 1e-9);
  assert.equal(interFrameGapMs({ ...line, baudRate: 115200 }), 1.75);
});

/** Runs the adapter until `body` returns, then stops it and waits for it to end. */
async function run<C>(
  rec: ReturnType<typeof recorder<C>>,
  body: () => Promise<void>,
): Promise<void> {
  const started = modbus.start(rec.ctx as never);
  let failure: unknown;
  started.catch((e) => (failure = e));
  try {
    await body();
    assert.equal(failure, undefined);
  } finally {
    rec.controller.abort();
    await started;
  }
}

Deno.test("TCP: every type and word order decodes, and coalescing issues the expected requests", async () => {
  const port = freePort();
  const server = await startServer(["--tcp", String(port), "--units", "1-2"]);
  try {
    for (const unit of [1, 2]) {
      await server.send(`set ${unit} holding 100 ${VECTOR.words.join(",")}`);
      await server.send(`set ${unit} holding ${STRING_WORDS}`);
      await server.send(`set ${unit} holding ${STRING_BADC_WORDS}`);
      await server.send(`set ${unit} holding 150 2345,${0xfff6},4`);
    }
    const cfg = config({
      profiles: { vec: { groups: [{ interval: "1h", registers: VECTOR.registers }] } },
      devices: [
        { name: "gap4", unitId: 1, tcp: { host: "127.0.0.1", port }, profile: "vec", maxGap: 4 },
        { name: "gap0", unitId: 2, tcp: { host: "127.0.0.1", port }, profile: "vec" },
      ],
    });
    const rec = recorder(cfg);
    const n = VECTOR.registers.length;
    await run(rec, async () => {
      await waitFor("both devices' readings", () => rec.readings.length === 2 * n);
    });
    for (const device of ["gap4", "gap0"]) {
      const got = latest(rec.readings, device);
      // Unwritten input registers hold unit × 7 + address.
      const expected = { ...VECTOR.expected, in10: device === "gap4" ? 17 : 24 };
      for (const [metric, want] of Object.entries(expected)) {
        assert.ok(
          Object.is(got[metric], want),
          `${device} ${metric}: got ${got[metric]}, want ${want}`,
        );
      }
    }
    assert.equal(rec.readings.find((r) => r.metric === "scaled")?.unit, "bar");
    const perUnit = (u: number) =>
      server.requests.filter((r) => r.unit === u).map((r) => `${r.fc}:${r.address}+${r.count}`);
    // maxGap 4: holding 100…152 in one read, plus input, coil and discrete reads.
    assert.deepEqual(perUnit(1).sort(), ["1:0+4", "2:3+1", "3:100+53", "4:10+1"]);
    // maxGap 0: holding splits at the unmapped 136–139 and 148–149.
    assert.deepEqual(perUnit(2).sort(), [
      "1:0+2",
      "1:3+1",
      "2:3+1",
      "3:100+36",
      "3:140+8",
      "3:150+3",
      "4:10+1",
    ]);
  } finally {
    await server.stop();
  }
});

Deno.test("TCP: exception responses are named and do not stop other reads or groups", async () => {
  const port = freePort();
  const server = await startServer(["--tcp", String(port), "--units", "1"]);
  const warnings: string[] = [];
  try {
    const cfg = config({
      devices: [{
        name: "plc",
        tcp: { host: "127.0.0.1", port },
        retries: 1,
        retryDelay: "10ms",
        groups: [
          {
            name: "bad",
            interval: "100ms",
            registers: [reg("illegal", 60000, "uint16"), reg("ok1", 5, "uint16")],
          },
          { name: "busy", interval: "100ms", registers: [reg("busy", 50000, "uint16")] },
          { name: "good", interval: "100ms", registers: [reg("ok2", 7, "uint16")] },
        ],
      }],
    });
    const rec = recorder(cfg);
    rec.ctx.log = { ...rec.ctx.log, warn: (m: string) => warnings.push(m) };
    await run(rec, async () => {
      await waitFor(
        "5 polls of the healthy reads",
        () =>
          rec.readings.filter((r) => r.metric === "ok1").length >= 5 &&
          rec.readings.filter((r) => r.metric === "ok2").length >= 5,
      );
      await waitFor("both warnings", () => warnings.length >= 2);
    });
    assert.ok(
      warnings.some((w) =>
        /read holding 60000\+1 of "plc": exception 2 \(illegal data address\)/.test(w)
      ),
      warnings.join("\n"),
    );
    assert.ok(
      warnings.some((w) =>
        /read holding 50000\+1 of "plc": exception 6 \(server device busy\)/.test(w)
      ),
      warnings.join("\n"),
    );
    // Logged once per change, not every cycle.
    assert.equal(warnings.filter((w) => w.includes("60000")).length, 1);
    assert.equal(rec.states.get("plc")?.state, "online");
    assert.ok((rec.counters.get("exceptions") ?? 0) >= 4);
    // Busy is retried, illegal address is not.
    const busy = server.requests.filter((r) => r.address === 50000).length;
    const illegal = server.requests.filter((r) => r.address === 60000).length;
    assert.ok(busy >= 2 * Math.max(1, illegal - 1), `busy ${busy}, illegal ${illegal}`);
    assert.equal(rec.readings.some((r) => r.metric === "illegal" || r.metric === "busy"), false);
  } finally {
    await server.stop();
  }
});

Deno.test("TCP: a device that disappears is marked unavailable, polled back, and others stay on time", async () => {
  const [p1, p2] = [freePort(), freePort()];
  let s1 = await startServer(["--tcp", String(p1), "--units", "1", "--quiet"]);
  const s2 = await startServer(["--tcp", String(p2), "--units", "1"]);
  try {
    const dev = (name: string, port: number) => ({
      name,
      tcp: { host: "127.0.0.1", port },
      timeout: "200ms",
      retries: 1,
      retryDelay: "20ms",
      unavailableInterval: "300ms",
      groups: [{ interval: "100ms", registers: [reg("v", 0, "uint16")] }],
    });
    const rec = recorder(config({ devices: [dev("flaky", p1), dev("steady", p2)] }));
    const count = (d: string) => rec.readings.filter((r) => r.device === d).length;
    await run(rec, async () => {
      await waitFor(
        "flaky online",
        () => rec.states.get("flaky")?.state === "online" && count("flaky") >= 3,
      );
      await s1.stop();
      await waitFor("flaky unavailable", () => rec.states.get("flaky")?.state === "unavailable");
      assert.match(rec.states.get("flaky")!.reason!, /Cannot read holding 0\+1 of "flaky"/);
      const steadyBefore = count("steady");
      await waitFor("steady keeps polling", () => count("steady") >= steadyBefore + 10);
      const flakyWhileDown = count("flaky");
      s1 = await startServer(["--tcp", String(p1), "--units", "1", "--quiet"]);
      await waitFor("flaky online again", () => rec.states.get("flaky")?.state === "online", 5000);
      await waitFor("flaky readings again", () => count("flaky") >= flakyWhileDown + 3);
    });
    const states = rec.stateLog.filter((s) => s.device === "flaky").map((s) => s.state);
    assert.deepEqual(states, ["online", "unavailable", "online"]);
    assert.equal(rec.stateLog.filter((s) => s.device === "steady").length, 1);
    const ts = rec.readings.filter((r) => r.device === "steady").map((r) => r.ts);
    const worst = Math.max(...ts.slice(1).map((t, i) => t - ts[i]));
    assert.ok(worst < 250, `steady's longest gap between polls was ${worst}ms (interval 100ms)`);
    assert.ok((rec.counters.get("errors") ?? 0) >= 1);
  } finally {
    await s1.stop();
    await s2.stop();
  }
});

Deno.test("TCP: a device that stops answering times out, is probed slowly, and recovers", async () => {
  const port = freePort();
  const server = await startServer(["--tcp", String(port), "--units", "1"]);
  try {
    const rec = recorder(config({
      devices: [{
        name: "mute",
        tcp: { host: "127.0.0.1", port },
        timeout: "100ms",
        retries: 0,
        unavailableInterval: "400ms",
        groups: [{ interval: "50ms", registers: [reg("v", 0, "uint16")] }],
      }],
    }));
    await run(rec, async () => {
      await waitFor("online", () => rec.states.get("mute")?.state === "online");
      await server.send("mute 1");
      await waitFor("unavailable", () => rec.states.get("mute")?.state === "unavailable");
      const t0 = Date.now();
      const before = server.requests.length;
      await waitFor("two probes", () => server.requests.length >= before + 2, 3000);
      // Two probes 400 ms apart, instead of one poll every 50 ms.
      assert.ok(Date.now() - t0 >= 700, `probes came after ${Date.now() - t0}ms`);
      await server.send("unmute 1");
      await waitFor("online again", () => rec.states.get("mute")?.state === "online", 3000);
    });
    assert.ok((rec.counters.get("timeouts") ?? 0) >= 1);
  } finally {
    await server.stop();
  }
});

Deno.test("TCP: writes encode mapped points and raw coil/holding addresses", async () => {
  const port = freePort();
  const server = await startServer(["--tcp", String(port), "--units", "1"]);
  try {
    const rec = recorder(config({
      devices: [{
        name: "drive",
        tcp: { host: "127.0.0.1", port },
        groups: [{
          interval: "50ms",
          registers: [
            reg("speed", 200, "float32", "CDAB"),
            reg("setpoint", 210, "int16", "ABCD", { scale: 0.1 }),
            { name: "run", function: "coil", address: 7 },
            reg("raw", 40, "int16"),
            { name: "temp", function: "input", address: 1 },
          ],
        }],
      }],
    }));
    await run(rec, async () => {
      await waitFor("first poll", () => rec.readings.length > 0);
      await rec.write({ device: "drive", point: "speed", value: -12.25 });
      await rec.write({ device: "drive", point: "setpoint", value: -4.2 });
      await rec.write({ device: "drive", point: "run", value: true });
      await rec.write({ device: "drive", point: "holding:40", value: -2 });
      await rec.write({ device: "drive", point: "coil:8", value: 1 });
      await waitFor("written values read back", () => {
        const v = latest(rec.readings, "drive");
        return v.speed === -12.25 && v.setpoint === -4.2 && v.run === true && v.raw === -2;
      });
      await assert.rejects(
        rec.write({ device: "drive", point: "temp", value: 1 }),
        /input registers are read-only/,
      );
      await assert.rejects(
        rec.write({ device: "nope", point: "speed", value: 1 }),
        /no such device/,
      );
      await assert.rejects(
        rec.write({ device: "drive", point: "bogus", value: 1 }),
        /not a mapped metric/,
      );
      await assert.rejects(
        rec.write({ device: "drive", point: "setpoint", value: 9999 }),
        /out of range/,
      );
    });
    const writes = server.requests.filter((r) => [5, 6, 16].includes(r.fc)).map((r) =>
      `${r.fc}:${r.address}`
    );
    assert.deepEqual(writes, ["16:200", "6:210", "5:7", "6:40", "5:8"]);
  } finally {
    await server.stop();
  }
});

/** A socat pseudo-terminal pair: the adapter opens `a`, the server `b`. */
async function ptyPair(): Promise<{ a: string; b: string; close(): Promise<void> }> {
  const dir = await Deno.makeTempDir({ prefix: "outpost-rtu-" });
  const a = `${dir}/a`, b = `${dir}/b`;
  const socat = new Deno.Command("socat", {
    args: [`pty,raw,echo=0,link=${a}`, `pty,raw,echo=0,link=${b}`],
    stdout: "null",
    stderr: "null",
  }).spawn();
  await waitFor("socat pty pair", async () => (await Deno.lstat(b).catch(() => null)) !== null);
  return {
    a,
    b,
    async close() {
      Deno.kill(socat.pid, "SIGKILL");
      await socat.status;
      await Deno.remove(dir, { recursive: true });
    },
  };
}

Deno.test("RTU: reads and writes over a pty pair; corrupted and truncated frames are retried", async () => {
  const pty = await ptyPair();
  const server = await startServer(["--rtu", pty.b, "--units", "1-2"]);
  try {
    await server.send(`set 2 holding 100 ${VECTOR.words.slice(0, 12).join(",")}`);
    // Pseudo-terminals refuse parity settings; a real line takes parity: even as well.
    const line = { port: pty.a, baudRate: 19200, stopBits: 2 };
    const dev = (name: string, unitId: number) => ({
      name,
      unitId,
      rtu: line,
      timeout: "300ms",
      retries: 2,
      retryDelay: "10ms",
      groups: [{
        interval: "100ms",
        registers: [reg("i32", 102, "int32"), reg("u32", 110, "uint32"), reg("w", 20, "uint16"), {
          name: "c",
          function: "coil",
          address: 3,
        }],
      }],
    });
    const rec = recorder(config({ devices: [dev("rtu1", 1), dev("rtu2", 2)] }));
    const count = (d: string) => rec.readings.filter((r) => r.device === d).length;
    await run(rec, async () => {
      await waitFor("both RTU devices", () => count("rtu1") >= 8 && count("rtu2") >= 8);
      assert.equal(latest(rec.readings, "rtu2").i32, -123456789);
      assert.equal(latest(rec.readings, "rtu2").u32, 4_000_000_000);
      assert.equal(latest(rec.readings, "rtu1").c, true);

      await server.send("corrupt 1");
      await waitFor("a CRC error", () => (rec.counters.get("crc_errors") ?? 0) >= 1);
      await server.send("truncate 1");
      await waitFor(
        "a timeout from the truncated frame",
        () => (rec.counters.get("timeouts") ?? 0) >= 1,
      );
      const after = count("rtu1") + count("rtu2");
      await waitFor("polling goes on", () => count("rtu1") + count("rtu2") >= after + 8);

      await rec.write({ device: "rtu1", point: "w", value: 4321 });
      await rec.write({ device: "rtu1", point: "coil:3", value: false });
      await waitFor("written values read back", () => {
        const v = latest(rec.readings, "rtu1");
        return v.w === 4321 && v.c === false;
      });
    });
    assert.ok((rec.counters.get("retries") ?? 0) >= 2);
    // Retries absorbed both garbled exchanges: nobody was marked unavailable.
    assert.deepEqual(rec.stateLog.map((s) => s.state), ["online", "online"]);
    assert.equal(
      rec.readings.some((r) => r.device === "rtu2" && r.metric === "i32" && r.value !== -123456789),
      false,
    );
  } finally {
    await server.stop();
    await pty.close();
  }
});
