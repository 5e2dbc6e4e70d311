/**
 * The devices of the end-to-end bench, in a process of their own: `rate` QoS 1 messages a second
 * for `seconds`, each `{"ts":…,"a":n,"b":n,"c":n}` (three readings, `n` the message's number) on
 * `dev/d<n % devices>`, with at most 20,000 awaiting their PUBACK (past that they wait, so the rate
 * reached can fall short of `rate`). Prints one JSON line: messages sent, PUBACKed by the broker,
 * and the span.
 *
 * `deno run -A bench/e2e_publisher.ts <url> <rate> <seconds> <devices>`
 */
import mqtt from "mqtt";

const [url, rateArg, secondsArg, devicesArg] = Deno.args;
const rate = Number(rateArg);
const seconds = Number(secondsArg);
const devices = Number(devicesArg);
const client = await mqtt.connectAsync(url, { clientId: `e2e-pub-${Date.now()}`, clean: true });
let sent = 0;
let acked = 0;
let failed = 0;
const perTick = rate / 100;
// Messages awaiting their PUBACK at most (fewer than MQTT's 65,535 packet ids): past it the
// devices wait, as a device's own in-flight window would make them.
const WINDOW = 20_000;
const start = performance.now();
for (let tick = 0; tick < seconds * 100; tick++) {
  const wait = start + tick * 10 - performance.now();
  if (wait > 0) await new Promise((r) => setTimeout(r, wait));
  // Catch up on ticks missed while busy, so the offered rate is the rate asked for.
  const due = Math.round((tick + 1) * perTick);
  while (sent < due) {
    if (sent - acked - failed >= WINDOW) {
      await new Promise((r) => setTimeout(r, 1));
      continue;
    }
    const n = sent++;
    client.publish(
      `dev/d${n % devices}`,
      `{"ts":${Date.now()},"a":${n},"b":${n},"c":${n}}`,
      { qos: 1 },
      (err) => err ? failed++ : acked++,
    );
  }
}
const spanS = (performance.now() - start) / 1000;
const deadline = Date.now() + 60_000;
while (acked + failed < sent && Date.now() < deadline) {
  await new Promise((r) => setTimeout(r, 20));
}
await client.endAsync();
console.log(JSON.stringify({ sent, acked, failed, seconds: spanS }));
