import assert from "node:assert/strict";

const DEMO = new URL("../demo/mod.ts", import.meta.url).pathname;

for (const broker of ["auto", "embedded"]) {
  Deno.test(`deno task demo runs the gateway end to end (${broker} broker)`, async () => {
    // A data directory of its own: demo_devices_test may run a demo at the same time.
    const data = await Deno.makeTempDir({ prefix: "outpost-demo-data-" });
    const out = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        "--unstable-net",
        DEMO,
        "--duration",
        "5s",
        "--broker",
        broker,
        "--data",
        data,
      ],
      env: { NO_COLOR: "1" },
      stdout: "piped",
      stderr: "piped",
    }).output();
    const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
    assert.equal(out.code, 0, text);
    assert.match(
      text,
      broker === "embedded" ? /embedded aedes broker/ : /broker\s+(Mosquitto|embedded)/,
    );
    assert.match(text, /cloud ← gateways\/demo-gw\/telemetry: \d+ readings/);
    assert.match(
      text,
      /demo finished: the cloud received [1-9]\d* readings; gateway exit status 0/,
    );
    // Its fleet console signs with the operator key the demo generated, and says where it is.
    const keyFile = /operator\s+key [0-9a-f]{16} in (\S+operator\.key)/.exec(text)?.[1];
    assert.ok(keyFile, text);
    assert.match(
      text,
      /fleet console → ping demo-gw \(signed\): pong, version \S+, key demo-console \([0-9a-f]{16}\): read, operate, admin/,
    );
    const key = JSON.parse(await Deno.readTextFile(keyFile));
    assert.equal((await Deno.stat(keyFile)).mode! & 0o777, 0o600);
    assert.ok(!text.includes(key.private), "no private key material in the output");
    assert.ok(keyFile.startsWith(data), "everything under --data");
    await Deno.remove(data, { recursive: true });
  });
}
