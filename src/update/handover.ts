/**
 * Becoming the new version without systemd: execve(2) of the committed slot's executable in this
 * process (same pid, same parent), so that a gateway updated N times is one process, not a chain
 * of N supervisors each holding a Deno runtime.
 *
 * @module
 */

const enc = new TextEncoder();

/** Why the exec did not happen (it returns only on failure). */
export class ExecError extends Error {
  override name = "ExecError";
}

type Libc = Deno.DynamicLibrary<{
  execve: { parameters: ["buffer", "buffer", "buffer"]; result: "i32" };
}>;

function loadExecve(): Libc {
  try {
    return Deno.dlopen("libc.so.6", {
      execve: { parameters: ["buffer", "buffer", "buffer"], result: "i32" },
    });
  } catch (e) {
    throw new ExecError(`cannot load libc for execve: ${(e as Error).message}`, { cause: e });
  }
}

/** Whether {@linkcode execInto} can work here (FFI allowed, libc found); throws ExecError if not. */
export function checkExec(): void {
  loadExecve().close();
}

/**
 * Replaces this process with `path` (argv[0] = `path`, then `args`) and `env`. Returns only by
 * throwing {@linkcode ExecError}: libc not loadable, or execve(2) failed.
 */
export function execInto(path: string, args: string[], env: Record<string, string>): never {
  const libc = loadExecve();
  // The strings must stay reachable until execve has read them.
  const keep: Uint8Array[] = [];
  const cstr = (s: string) => {
    const b = enc.encode(`${s}\0`);
    keep.push(b);
    return b;
  };
  const vector = (items: string[]) => {
    const v = new BigUint64Array(items.length + 1);
    items.forEach((s, i) => {
      v[i] = BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(cstr(s))));
    });
    return v;
  };
  const argv = vector([path, ...args]);
  const envp = vector(Object.entries(env).map(([k, v]) => `${k}=${v}`));
  libc.symbols.execve(
    cstr(path) as Uint8Array<ArrayBuffer>,
    argv as BigUint64Array<ArrayBuffer>,
    envp as BigUint64Array<ArrayBuffer>,
  );
  libc.close();
  throw new ExecError(`execve("${path}") failed (${keep.length} strings passed)`);
}
