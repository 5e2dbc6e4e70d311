/** PEM files of a test PKI, as paths. */
export interface TestCerts {
  dir: string;
  ca: string;
  serverCert: string;
  serverKey: string;
  clientCert: string;
  clientKey: string;
  /** A client certificate signed by a different CA, which the broker must reject. */
  rogueCert: string;
  rogueKey: string;
  rogueCa: string;
}

async function openssl(args: string[], cwd: string): Promise<void> {
  const out = await new Deno.Command("openssl", { args, cwd, stdout: "null", stderr: "piped" })
    .output();
  if (!out.success) {
    throw new Error(`openssl ${args.join(" ")} failed: ${new TextDecoder().decode(out.stderr)}`);
  }
}

async function issue(cwd: string, name: string, ca: string, cn: string, ext: string) {
  await openssl(
    ["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", `${name}.key`],
    cwd,
  );
  await openssl(
    ["req", "-new", "-key", `${name}.key`, "-subj", `/CN=${cn}`, "-out", `${name}.csr`],
    cwd,
  );
  await Deno.writeTextFile(`${cwd}/${name}.ext`, ext);
  await openssl([
    "x509",
    "-req",
    "-in",
    `${name}.csr`,
    "-CA",
    `${ca}.crt`,
    "-CAkey",
    `${ca}.key`,
    "-CAcreateserial",
    "-days",
    "2",
    "-sha256",
    "-extfile",
    `${name}.ext`,
    "-out",
    `${name}.crt`,
  ], cwd);
}

async function makeCa(cwd: string, name: string, cn: string) {
  await openssl(
    ["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", `${name}.key`],
    cwd,
  );
  await openssl([
    "req",
    "-x509",
    "-new",
    "-key",
    `${name}.key`,
    "-sha256",
    "-days",
    "2",
    "-subj",
    `/CN=${cn}`,
    "-addext",
    "basicConstraints=critical,CA:TRUE",
    "-addext",
    "keyUsage=critical,keyCertSign,cRLSign",
    "-out",
    `${name}.crt`,
  ], cwd);
}

let cached: Promise<TestCerts> | undefined;

/** Generates (once per test process) a CA, a broker certificate for 127.0.0.1 and client certs. */
export function testCerts(): Promise<TestCerts> {
  cached ??= (async () => {
    const dir = await Deno.makeTempDir({ prefix: "outpost-pki-" });
    await makeCa(dir, "ca", "Outpost Test CA");
    await makeCa(dir, "rogue-ca", "Rogue CA");
    await issue(
      dir,
      "server",
      "ca",
      "localhost",
      "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n",
    );
    await issue(dir, "client", "ca", "gateway-client", "extendedKeyUsage=clientAuth\n");
    await issue(dir, "rogue", "rogue-ca", "gateway-client", "extendedKeyUsage=clientAuth\n");
    // Mosquitto started as root drops to its own user, which must read these test-only files.
    await Deno.chmod(dir, 0o755);
    for await (const e of Deno.readDir(dir)) await Deno.chmod(`${dir}/${e.name}`, 0o644);
    return {
      dir,
      ca: `${dir}/ca.crt`,
      serverCert: `${dir}/server.crt`,
      serverKey: `${dir}/server.key`,
      clientCert: `${dir}/client.crt`,
      clientKey: `${dir}/client.key`,
      rogueCert: `${dir}/rogue.crt`,
      rogueKey: `${dir}/rogue.key`,
      rogueCa: `${dir}/rogue-ca.crt`,
    };
  })();
  return cached;
}
