/**
 * The publisher's side of a bundle release's runtime: checks that a file is the Deno CLI of the
 * pinned version for the target (runs `deno --version`, natively or under qemu-user-static), puts
 * it on the channel by its hash and checks the runtimes a channel's manifest names.
 *
 * @module
 */
import { ReleaseError } from "./errors.ts";
import { checkFileAgainst } from "./file_check.ts";
import type { Manifest } from "./manifest.ts";
import { parseDenoVersion, PINNED_DENO, type RuntimeEntry, runtimeKey } from "./runtime.ts";
import { sha256File } from "./updater.ts";

const ELF_MACHINE: Record<number, string> = { 62: "x86_64", 183: "aarch64" };

/** A command that runs `arch` executables here: none needed for this machine's own, qemu for
 * another; undefined when there is none. */
export function runnerFor(arch: string): string[] | undefined {
  if (arch === Deno.build.arch) return [];
  for (const q of [`/usr/bin/qemu-${arch}-static`, `/usr/bin/qemu-${arch}`]) {
    try {
      Deno.statSync(q);
      return [q];
    } catch { /* not installed */ }
  }
  return undefined;
}

/**
 * Checks that `path` is the Deno CLI of {@linkcode PINNED_DENO} for `target`: an ELF executable
 * for its architecture whose `--version` (run natively, or under `qemu-<arch>-static`) names that
 * version and target. Returns what was checked; throws a {@linkcode ReleaseError} naming what is
 * wrong, also when it cannot be run here.
 */
export async function checkRuntime(path: string, target: string): Promise<string> {
  const head = new Uint8Array(20);
  try {
    const f = await Deno.open(path, { read: true });
    try {
      await f.read(head);
    } finally {
      f.close();
    }
  } catch (e) {
    throw new ReleaseError(`--runtime: cannot read "${path}": ${(e as Error).message}`, {
      cause: e,
    });
  }
  const arch = target.split("-")[0];
  if (!(head[0] === 0x7f && head[1] === 0x45 && head[2] === 0x4c && head[3] === 0x46)) {
    throw new ReleaseError(`--runtime "${path}" is not a Deno executable (not an ELF file)`);
  }
  const machine = ELF_MACHINE[head[18] | head[19] << 8] ?? `machine ${head[18] | head[19] << 8}`;
  if (machine !== arch) {
    throw new ReleaseError(
      `--runtime "${path}" is an executable for ${machine}, not for --target ${target}`,
    );
  }
  const runner = runnerFor(arch);
  if (!runner) {
    throw new ReleaseError(
      `--runtime "${path}": cannot run an ${arch} executable here to check it is Deno ${PINNED_DENO} (install qemu-user-static and the ${arch} libc)`,
    );
  }
  const [cmd, ...pre] = [...runner, path];
  let text: string;
  try {
    const o = await new Deno.Command(cmd, {
      args: [...pre, "--version"],
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
      signal: AbortSignal.timeout(30_000),
    }).output();
    text = new TextDecoder().decode(o.stdout);
    if (!o.success) {
      throw new Error(
        `exited with status ${o.code}: ${new TextDecoder().decode(o.stderr).trim().slice(0, 200)}`,
      );
    }
  } catch (e) {
    throw new ReleaseError(
      `--runtime "${path}" is not a Deno: \`--version\` failed (${(e as Error).message})`,
      { cause: e },
    );
  }
  const v = parseDenoVersion(text);
  if (typeof v === "string") throw new ReleaseError(`--runtime "${path}" is not a Deno: ${v}`);
  if (v.version !== PINNED_DENO) {
    throw new ReleaseError(
      `--runtime "${path}" is Deno ${v.version}; bundles run on the pinned Deno ${PINNED_DENO}`,
    );
  }
  if (v.target !== target) {
    throw new ReleaseError(`--runtime "${path}" is Deno for ${v.target}, not for ${target}`);
  }
  return `deno ${v.version} for ${v.target}${runner.length ? ` (run under ${runner[0]})` : ""}`;
}

/**
 * Copies a checked runtime onto the channel as `runtimes/<sha256>/deno` (content-addressed: a
 * release never changes a file an earlier manifest names) and returns its entry and key.
 */
export async function putRuntime(
  channel: string,
  target: string,
  path: string,
): Promise<{ key: string; entry: RuntimeEntry }> {
  const sha256 = await sha256File(path);
  const rel = `runtimes/${sha256}/deno`;
  const dest = `${channel}/${rel}`;
  const have = await Deno.stat(dest).then((s) => s.size, () => -1);
  if (have < 0 || await sha256File(dest) !== sha256) {
    await Deno.mkdir(`${channel}/runtimes/${sha256}`, { recursive: true });
    await Deno.copyFile(path, `${dest}.tmp`);
    await Deno.rename(`${dest}.tmp`, dest);
  }
  const length = (await Deno.stat(dest)).size;
  return {
    key: runtimeKey(PINNED_DENO, target),
    entry: { name: "deno", version: PINNED_DENO, target, path: rel, sha256, length },
  };
}

/** Checks every runtime a manifest lists against its length and SHA-256; one line each. */
export async function checkRuntimeFiles(dir: string, m: Manifest): Promise<string[]> {
  const lines: string[] = [];
  for (const [key, r] of Object.entries(m.signed.runtimes ?? {})) {
    const path = `${dir}/${r.path}`;
    await checkFileAgainst(path, r);
    lines.push(`runtime ok: ${key} ${r.path} ${r.length} bytes sha256 ${r.sha256}`);
  }
  return lines;
}
