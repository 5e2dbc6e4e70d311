import { deepEqual, ok } from "node:assert/strict";
import { decodeBthome } from "./_bthome.ts";
import { DecodeError, type Measurement } from "./_decode.ts";
import { fromHex, FUZZ_RUNS, prng, randomBytes } from "./testdata/fuzz.ts";

// Examples from bthome.io's format page: device info 0x40 (v2, unencrypted) then one object.
const EXAMPLES: [string, Measurement[]][] = [
  ["4000" + "09", [{ metric: "packet_id", value: 9 }]],
  ["4001" + "61", [{ metric: "battery", value: 97, unit: "%" }]],
  ["4002" + "ca09", [{ metric: "temperature", value: 25.06, unit: "°C" }]],
  ["4003" + "bf13", [{ metric: "humidity", value: 50.55, unit: "%" }]],
  ["4004" + "138a01", [{ metric: "pressure", value: 1008.83, unit: "hPa" }]],
  ["4005" + "138a14", [{ metric: "illuminance", value: 13460.67, unit: "lx" }]],
  ["400a" + "138a14", [{ metric: "energy", value: 1346.067, unit: "kWh" }]],
  ["400b" + "021b00", [{ metric: "power", value: 69.14, unit: "W" }]],
  ["400c" + "020c", [{ metric: "voltage", value: 3.074, unit: "V" }]],
  ["4012" + "e204", [{ metric: "co2", value: 1250, unit: "ppm" }]],
  ["4014" + "020c", [{ metric: "moisture", value: 30.74, unit: "%" }]],
  ["4045" + "1101", [{ metric: "temperature", value: 27.3, unit: "°C" }]],
  ["401a" + "00", [{ metric: "door", value: false }]],
  ["4021" + "01", [{ metric: "motion", value: true }]],
  ["402d" + "01", [{ metric: "window", value: true }]],
  ["403a" + "01", [{ metric: "button", value: "press" }]],
  ["403c" + "0103", [{ metric: "dimmer", value: -3 }]],
  ["4053" + "0c48656c6c6f20576f726c6421", [{ metric: "text", value: "Hello World!" }]],
  ["4054" + "0c48656c6c6f20576f726c6421", [{ metric: "raw", value: "48656c6c6f20576f726c6421" }]],
  [
    "40" + "02ca09" + "03bf13",
    [
      { metric: "temperature", value: 25.06, unit: "°C" },
      { metric: "humidity", value: 50.55, unit: "%" },
    ],
  ],
  [
    // Two temperature probes in one packet.
    "40" + "02ca09" + "02bf13",
    [
      { metric: "temperature", value: 25.06, unit: "°C" },
      { metric: "temperature_2", value: 50.55, unit: "°C" },
    ],
  ],
  [
    // Trigger-based device (bit 2 set) with a firmware version object that is skipped.
    "44" + "0161" + "f100010204",
    [{ metric: "battery", value: 97, unit: "%" }],
  ],
  [
    // Shelly BLU H&T Display ZB, as in bthome-ble's tests.
    "40002e0164" + "1e01" + "2e34" + "451601",
    [
      { metric: "packet_id", value: 46 },
      { metric: "battery", value: 100, unit: "%" },
      { metric: "light", value: true },
      { metric: "humidity", value: 52, unit: "%" },
      { metric: "temperature", value: 27.8, unit: "°C" },
    ],
  ],
];

for (const [payload, expected] of EXAMPLES) {
  Deno.test(`decodeBthome() decodes ${payload}`, () => {
    deepEqual(decodeBthome(fromHex(payload)), expected);
  });
}

Deno.test("decodeBthome() reports encrypted, other versions, unknown objects and short payloads", () => {
  const cases: [string, DecodeError["kind"]][] = [
    ["41a47266c95f730011223378237214", "encrypted"],
    ["e102000c04", "unsupported"],
    ["20" + "02ca09", "unsupported"],
    ["40" + "ee01", "unsupported"],
    ["", "malformed"],
    ["40" + "02ca", "malformed"],
    ["40" + "04138a", "malformed"],
    ["40" + "53", "malformed"],
    ["40" + "5305616263", "malformed"],
  ];
  for (const [payload, kind] of cases) {
    const r = decodeBthome(fromHex(payload));
    ok(r instanceof DecodeError, payload);
    deepEqual(r.kind, kind, `${payload}: ${r.message}`);
  }
});

Deno.test("decodeBthome() accepts a device info byte alone (no objects)", () => {
  deepEqual(decodeBthome(fromHex("40")), []);
});

Deno.test(`decodeBthome() never throws on ${FUZZ_RUNS} random payloads`, () => {
  const random = prng(0xfcd2);
  const bodies = EXAMPLES.map(([hex]) => fromHex(hex).subarray(1));
  let decoded = 0;
  for (let i = 0; i < FUZZ_RUNS; i++) {
    let data = randomBytes(random, 32);
    if (random() < 0.5) {
      // Well-formed objects from the examples, then damaged: the paths past the first byte.
      const parts = Array.from(
        { length: 1 + Math.floor(random() * 4) },
        () => bodies[Math.floor(random() * bodies.length)],
      );
      data = Uint8Array.from([random() < 0.5 ? 0x40 : 0x44, ...parts.flatMap((p) => [...p])]);
      if (random() < 0.5) data[Math.floor(random() * data.length)] = Math.floor(random() * 256);
      if (random() < 0.3) data = data.subarray(0, Math.floor(random() * data.length));
    }
    const r = decodeBthome(data);
    if (r instanceof DecodeError) continue;
    decoded++;
    for (const m of r) {
      ok(m.metric.length > 0);
      if (typeof m.value === "number") ok(Number.isFinite(m.value), `${m.metric} of ${data}`);
    }
  }
  ok(decoded > FUZZ_RUNS / 10, `only ${decoded} payloads decoded`);
});
