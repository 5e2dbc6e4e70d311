import { deepEqual, ok } from "node:assert/strict";
import { DecodeError, type Measurement } from "./_decode.ts";
import { decodeRuuvi } from "./_ruuvi.ts";
import { fromHex, FUZZ_RUNS, prng, randomBytes } from "./testdata/fuzz.ts";

function all(
  t: number,
  h: number,
  p: number,
  a: [number, number, number],
  v: number,
  tx: number,
  mc: number,
  seq: number,
): Measurement[] {
  return [
    { metric: "temperature", value: t, unit: "°C" },
    { metric: "humidity", value: h, unit: "%" },
    { metric: "pressure", value: p, unit: "hPa" },
    { metric: "acceleration_x", value: a[0], unit: "g" },
    { metric: "acceleration_y", value: a[1], unit: "g" },
    { metric: "acceleration_z", value: a[2], unit: "g" },
    { metric: "voltage", value: v, unit: "V" },
    { metric: "tx_power", value: tx, unit: "dBm" },
    { metric: "movement_counter", value: mc },
    { metric: "measurement_sequence", value: seq },
  ];
}

// The test vectors of Ruuvi's data format 5 specification.
const VECTORS: [string, string, Measurement[]][] = [
  [
    "valid data",
    "0512FC5394C37C0004FFFC040CAC364200CDCBB8334C884F",
    all(24.3, 53.49, 1000.44, [0.004, -0.004, 1.036], 2.977, 4, 66, 205),
  ],
  [
    "maximum values",
    "057FFFFFFEFFFE7FFF7FFF7FFFFFDEFEFFFECBB8334C884F",
    all(163.835, 163.835, 1155.34, [32.767, 32.767, 32.767], 3.646, 20, 254, 65534),
  ],
  [
    "minimum values",
    "058001000000008001800180010000000000CBB8334C884F",
    all(-163.835, 0, 500, [-32.767, -32.767, -32.767], 1.6, -40, 0, 0),
  ],
  ["invalid values", "058000FFFFFFFF800080008000FFFFFFFFFFFFFFFFFFFFFF", []],
];

for (const [name, payload, expected] of VECTORS) {
  Deno.test(`decodeRuuvi() decodes the spec's "${name}" vector`, () => {
    deepEqual(decodeRuuvi(fromHex(payload)), expected);
  });
}

Deno.test("decodeRuuvi() reads a payload that is a view into a larger buffer", () => {
  const whole = fromHex("FFFF" + "0512FC5394C37C0004FFFC040CAC364200CDCBB8334C884F");
  const r = decodeRuuvi(whole.subarray(2));
  ok(Array.isArray(r));
  deepEqual(r[0], { metric: "temperature", value: 24.3, unit: "°C" });
});

Deno.test("decodeRuuvi() refuses short payloads and other formats", () => {
  const cases: [string, DecodeError["kind"]][] = [
    ["", "malformed"],
    ["0512FC53", "malformed"],
    ["0512FC5394C37C0004FFFC040CAC364200CDCBB8334C88", "malformed"],
    ["0312FC5394C37C0004FFFC040CAC364200CDCBB8334C884F", "unsupported"],
  ];
  for (const [payload, kind] of cases) {
    const r = decodeRuuvi(fromHex(payload));
    ok(r instanceof DecodeError, payload);
    deepEqual(r.kind, kind, payload);
  }
});

Deno.test(`decodeRuuvi() never throws on ${FUZZ_RUNS} random payloads`, () => {
  const random = prng(0x0499);
  for (let i = 0; i < FUZZ_RUNS; i++) {
    const data = randomBytes(random, 30);
    if (data.length && random() < 0.8) data[0] = 5;
    const r = decodeRuuvi(data);
    if (r instanceof DecodeError) continue;
    for (const m of r) {
      ok(typeof m.value === "number" && Number.isFinite(m.value), `${m.metric} of ${data}`);
    }
  }
});
