import { deepEqual, ok } from "node:assert/strict";
import { DecodeError } from "./_decode.ts";
import { decodeLayout, FIELD_TYPES, type FieldType, type Layout } from "./_layout.ts";
import { fromHex, FUZZ_RUNS, prng, randomBytes } from "./testdata/fuzz.ts";

/** The custom Nordic-based sensor: int16 LE at offset 2 in hundredths, battery byte at 4. */
const NORDIC: Layout = {
  fields: [
    { metric: "level", offset: 2, type: "int16le", scale: 0.01, unit: "%" },
    { metric: "battery", offset: 4, type: "uint8", scale: 1, unit: "%" },
  ],
};

Deno.test("decodeLayout() reads the Nordic sensor's level and battery", () => {
  deepEqual(decodeLayout(fromHex("0102" + "2909" + "57"), NORDIC), [
    { metric: "level", value: 23.45, unit: "%" },
    { metric: "battery", value: 87, unit: "%" },
  ]);
  deepEqual(decodeLayout(fromHex("0102" + "d7f6" + "00" + "ffff"), NORDIC), [
    { metric: "level", value: -23.45, unit: "%" },
    { metric: "battery", value: 0, unit: "%" },
  ]);
});

Deno.test("decodeLayout() reads every field type", () => {
  const cases: [FieldType, string, number][] = [
    ["int8", "ff", -1],
    ["uint8", "ff", 255],
    ["int16le", "feff", -2],
    ["int16be", "fffe", -2],
    ["uint16le", "3412", 0x1234],
    ["uint16be", "1234", 0x1234],
    ["int32le", "feffffff", -2],
    ["int32be", "fffffffe", -2],
    ["uint32le", "78563412", 0x12345678],
    ["uint32be", "12345678", 0x12345678],
    ["float32le", "0000c03f", 1.5],
    ["float32be", "3fc00000", 1.5],
  ];
  for (const [type, payload, value] of cases) {
    deepEqual(
      decodeLayout(fromHex(payload), { fields: [{ metric: "v", offset: 0, type, scale: 1 }] }),
      [
        { metric: "v", value },
      ],
      type,
    );
  }
});

Deno.test("decodeLayout() refuses payloads too short for a field, and non-finite floats", () => {
  for (const payload of ["", "0102", "01022909"]) {
    const r = decodeLayout(fromHex(payload), NORDIC);
    ok(r instanceof DecodeError && r.kind === "malformed", payload);
  }
  const nan = decodeLayout(fromHex("0000c07f"), {
    fields: [{ metric: "v", offset: 0, type: "float32le", scale: 1 }],
  });
  ok(nan instanceof DecodeError && nan.kind === "malformed");
});

Deno.test(`decodeLayout() never throws on ${FUZZ_RUNS} random layouts and payloads`, () => {
  const random = prng(0x0059);
  const types = Object.keys(FIELD_TYPES) as FieldType[];
  const scales = [1, 0.01, -0.5, 1e-9, 1e300, 3];
  for (let i = 0; i < FUZZ_RUNS; i++) {
    const layout: Layout = {
      fields: Array.from({ length: 1 + Math.floor(random() * 4) }, (_, n) => ({
        metric: `m${n}`,
        offset: Math.floor(random() * 20),
        type: types[Math.floor(random() * types.length)],
        scale: scales[Math.floor(random() * scales.length)],
      })),
    };
    const r = decodeLayout(randomBytes(random, 24), layout);
    if (r instanceof DecodeError) continue;
    for (const m of r) ok(typeof m.value === "number" && Number.isFinite(m.value));
  }
});
