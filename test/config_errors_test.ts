import assert from "node:assert/strict";
import { GATEWAY_V8_FLAGS } from "../src/runtime_flags.ts";

const MAIN = new URL("../main.ts", import.meta.url).pathname;
const DIR = new URL("./testdata/broken/", import.meta.url).pathname;

/** Each broken file and the first line `outpost check-config` must print for it. */
const CASES: [file: string, expected: RegExp][] = [
  [
    "01-port-not-integer.yaml",
    /:10:14 adapters\[1\]\.devices: expected an integer 1–100000, got "50x2"$/,
  ],
  ["02-unknown-key.yaml", /:6:3 uplink\.brokr: unknown key; expected one of url, /],
  ["03-missing-gateway-id.yaml", /:2:3 gateway: missing required key "id"$/],
  [
    "04-unknown-adapter-type.yaml",
    /:4:11 adapters\[0\]\.type: expected one of .*simulated.*, got "modbuss"/,
  ],
  [
    "05-bad-url.yaml",
    /:5:8 uplink\.url: expected a broker URL such as mqtts:\/\/.*, got "http:\/\/broker\.example\.com"$/,
  ],
  [
    "06-env-missing.yaml",
    /:6:13 uplink\.password: environment variable OUTPOST_TEST_UNSET_PASSWORD is not set/,
  ],
  [
    "07-bad-duration.yaml",
    /:4:14 buffer\.retention: expected a duration such as .*, got "30 days"$/,
  ],
  [
    "08-bad-bytes.yaml",
    /:4:13 buffer\.maxBytes: expected a size such as .* of at least 1MB, got "lots"$/,
  ],
  ["09-yaml-syntax.yaml", /:\d+:\d+ YAML syntax error: /],
  [
    "10-duplicate-adapter-name.yaml",
    /:7:11 adapters\[1\]\.name: duplicate adapter name "sim" \(also adapters\[0\]\.name at \/.*10-duplicate-adapter-name\.yaml:5:11\)$/,
  ],
  [
    "11-bad-overflow.yaml",
    /:4:13 buffer\.overflow: expected one of drop-oldest, reject-new, got "drop-newest"$/,
  ],
  [
    "12-cert-without-key.yaml",
    /:7:5 uplink\.tls: expected both cert and key for mutual TLS, got only one$/,
  ],
  ["13-adapters-not-list.yaml", /:4:3 adapters: expected a list, got a mapping$/],
  [
    "14-bad-gateway-id.yaml",
    /:2:7 gateway\.id: expected a name of letters, digits and \._:-\/, got "site a\/#"$/,
  ],
  [
    "15-min-above-max.yaml",
    /:9:14 adapters\[0\]\.metrics\[0\]\.max: expected max ≥ min \(50\), got 10$/,
  ],
  ["16-missing-adapter-name.yaml", /:4:5 adapters\[0\]: missing required key "name"$/],
  ["17-duplicate-key.yaml", /:3:1 gateway: duplicate key "gateway"$/],
  [
    "18-secret-file-missing.yaml",
    /:6:13 uplink\.password: cannot read secret file "\/nonexistent\/outpost\/secret"/,
  ],
  [
    "19-bad-listen.yaml",
    /:4:11 http\.listen: expected host:port such as 127\.0\.0\.1:8787, got "8787"$/,
  ],
  [
    "20-topic-mode.yaml",
    /:6:14 uplink\.topicMode: expected one of batch, per-reading, got "per-device"$/,
  ],
  [
    "31-commands-require-signature-false.yaml",
    /:8:21 commands\.requireSignature: requireSignature was removed: .* set commands\.insecureUnsigned: true$/,
  ],
  [
    "32-commands-https-uplink.yaml",
    /:7:3 commands: remote commands ride on the MQTT uplink, and uplink\.type is https; /,
  ],
  ["33-gateway-id-fleet.yaml", /:2:7 gateway\.id: "fleet" is reserved: /],
  [
    "34-commands-bad-operator-key.yaml",
    /:10:7 commands\.operatorKeys\[1\]: expected an operator public key .*, got "ed25519:not-a-key"$/,
  ],
  [
    "35-commands-unknown-command.yaml",
    /:7:25 commands\.allow\[2\]: expected one of ping, status, .*, got "reboot"$/,
  ],
  [
    "41-uplink-url-password.yaml",
    /:5:8 uplink\.url: credentials in the URL are not allowed \(got "mqtts:\/\/plant:\[redacted\]@broker\.example\.com:8883"\): put them in username: and password:/,
  ],
  [
    "42-adapter-url-password.yaml",
    /:6:10 adapters\[0\]\.url: credentials in the URL are not allowed .*: put them in username: and password:/,
  ],
  [
    "43-update-channel-credentials.yaml",
    /:4:12 update\.channel: credentials in the URL are not allowed .*: a release channel serves signed, public files/,
  ],
  [
    "44-redacted-placeholder.yaml",
    /:7:13 uplink\.password: holds \[redacted\], a secret masked on its way out \(config-get\): put the secret back/,
  ],
  [
    "36-serial-port-twice.yaml",
    /:14:22 adapters\[1\]\.devices\[0\]\.rtu\.port: serial port "\/dev\/ttyUSB0" is opened by two adapters, .* \(also adapters\[0\]\.devices\[0\]\.rtu\.port at \/.*36-serial-port-twice\.yaml:8:22\)$/,
  ],
  [
    "37-listen-twice.yaml",
    /:8:13 adapters\[0\]\.listen: listen address "0\.0\.0\.0:8787" is taken by another server \("127\.0\.0\.1:8787"\); .* \(also http\.listen at \/.*37-listen-twice\.yaml:4:11\)$/,
  ],
];

async function checkConfig(file: string, flags: string[] = []) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", ...flags, MAIN, "check-config", file],
    env: { NO_COLOR: "1" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  return { code: out.code, stderr: new TextDecoder().decode(out.stderr).trim() };
}

Deno.test("every broken config in testdata exits 2 naming file:line:col, key path and expectation", async () => {
  const files = [...Deno.readDirSync(DIR)].map((e) => e.name).filter((n) => n.endsWith(".yaml"));
  assert.ok(files.length >= 15);
  assert.deepEqual(files.sort(), CASES.map(([f]) => f).sort(), "every file has an expectation");
  const results = [];
  // A few at a time: each is a Deno process.
  for (let i = 0; i < CASES.length; i += 5) {
    results.push(
      ...await Promise.all(
        CASES.slice(i, i + 5).map(async ([file, expected]) => ({
          file,
          expected,
          ...(await checkConfig(DIR + file)),
        })),
      ),
    );
  }
  for (const r of results) {
    assert.equal(r.code, 2, `${r.file}: exit status (stderr: ${r.stderr})`);
    const first = r.stderr.split("\n")[0];
    assert.ok(first.startsWith(DIR + r.file + ":"), `${r.file}: names the file: ${first}`);
    assert.match(first, r.expected, r.file);
  }
});

Deno.test("check-config never prints the password it refuses in a URL", async () => {
  for (const file of ["41-uplink-url-password.yaml", "42-adapter-url-password.yaml"]) {
    const r = await checkConfig(DIR + file);
    assert.equal(r.code, 2);
    assert.ok(!r.stderr.includes("s3cret-in-url"), r.stderr);
  }
});

Deno.test("check-config accepts the shipped example configs", async () => {
  for (const file of ["config/example.yaml", "config/demo.yaml"]) {
    const path = new URL(`../${file}`, import.meta.url).pathname;
    const r = await checkConfig(path);
    assert.equal(r.code, 0, `${file}: ${r.stderr}`);
  }
});

/** Deeply nested and alias-heavy files, each with the first line check-config must print. */
const HOSTILE: [name: string, text: string, expected: RegExp][] = [
  [
    "deep-flow.yaml",
    "gateway: { id: gw }\nx: " + "[".repeat(100_000) + "]".repeat(100_000) + "\n",
    /:2:67 nested deeper than 64 levels of mappings and lists$/,
  ],
  ["deep-block.yaml", "- ".repeat(100_000) + "x\n", /:1:129 nested deeper than 64 levels/],
  [
    "laughs.yaml",
    [
      "gateway: { id: gw }",
      'a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]',
      ...Array.from(
        { length: 9 },
        (_, i) => `a${i + 1}: &a${i + 1} [${`*a${i}, `.repeat(8)}*a${i}]`,
      ),
    ].join("\n"),
    /:\d+:\d+ a\d[^:]*: aliases expand to more than 10000 values; write it out$/,
  ],
  [
    "many-values.yaml",
    "gateway: { id: gw }\nx: [" + "1,".repeat(100_000) + "1]\n",
    /:2:\d+ more than 20000 values in one config$/,
  ],
];

Deno.test("check-config refuses deep and alias-heavy YAML with exit 2 under the production heap cap", async () => {
  const dir = await Deno.makeTempDir();
  try {
    for (const [name, text, expected] of HOSTILE) {
      await Deno.writeTextFile(`${dir}/${name}`, text);
      const r = await checkConfig(`${dir}/${name}`, [`--v8-flags=${GATEWAY_V8_FLAGS}`]);
      assert.equal(r.code, 2, `${name}: exit status (stderr: ${r.stderr.slice(0, 500)})`);
      assert.ok(r.stderr.startsWith(`${dir}/${name}:`), `${name}: names the file`);
      assert.match(r.stderr, expected, name);
      assert.ok(r.stderr.length < 1000, `${name}: a short message`);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
