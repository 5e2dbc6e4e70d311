/**
 * RuuviTag data format 5 ("RAWv2", https://docs.ruuvi.com/communication/bluetooth-advertisements/data-format-5-rawv2):
 * 24 bytes of manufacturer data under Ruuvi Innovations' company id 0x0499, big-endian. Each
 * field has an "invalid" value (e.g. 0x8000 for temperature) that the tag sends when a sensor
 * is missing; such fields are left out rather than reported.
 */
import { DecodeError, type DecodeResult, hex, type Measurement, scaled } from "./_decode.ts";

/** Bluetooth SIG company id of Ruuvi Innovations. */
export const RUUVI_COMPANY_ID = 0x0499;

const FORMAT_RAWV2 = 5;
const LENGTH = 24;

/**
 * Decodes a RuuviTag RAWv2 manufacturer-data payload (the bytes after the company id).
 *
 * @example
 * ```ts
 * decodeRuuvi(bytes); // [{ metric: "temperature", value: 24.3, unit: "°C" }, …]
 * ```
 */
export function decodeRuuvi(data: Uint8Array): DecodeResult {
  if (data.length < 1) return new DecodeError("malformed", "empty Ruuvi payload");
  if (data[0] !== FORMAT_RAWV2) {
    return new DecodeError(
      "unsupported",
      `Ruuvi data format ${data[0]}; only format 5 (RAWv2) is supported`,
    );
  }
  if (data.length < LENGTH) {
    return new DecodeError(
      "malformed",
      `Ruuvi RAWv2 payload has ${data.length} bytes, expected ${LENGTH}: ${hex(data)}`,
    );
  }
  const v = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const out: Measurement[] = [];
  const put = (metric: string, value: number, unit?: string) =>
    out.push(unit === undefined ? { metric, value } : { metric, value, unit });

  const temperature = v.getInt16(1);
  if (temperature !== -0x8000) put("temperature", scaled(temperature, 0.005), "°C");
  const humidity = v.getUint16(3);
  if (humidity !== 0xffff) put("humidity", scaled(humidity, 0.0025), "%");
  const pressure = v.getUint16(5);
  if (pressure !== 0xffff) put("pressure", scaled(pressure + 50_000, 0.01), "hPa");
  for (const [axis, at] of [["x", 7], ["y", 9], ["z", 11]] as const) {
    const a = v.getInt16(at);
    if (a !== -0x8000) put(`acceleration_${axis}`, scaled(a, 0.001), "g");
  }
  const power = v.getUint16(13);
  const millivolts = power >> 5;
  if (millivolts !== 0x7ff) put("voltage", scaled(millivolts + 1600, 0.001), "V");
  const tx = power & 0x1f;
  if (tx !== 0x1f) put("tx_power", tx * 2 - 40, "dBm");
  const movement = v.getUint8(15);
  if (movement !== 0xff) put("movement_counter", movement);
  const sequence = v.getUint16(16);
  if (sequence !== 0xffff) put("measurement_sequence", sequence);
  return out;
}
