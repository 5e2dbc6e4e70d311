/**
 * V8 flags the gateway runs with (deno.json `start`, the compiled binary, the bench): a small
 * young generation and a capped old space keep RSS near 100 MB while draining a large backlog
 * instead of letting V8 grow the heap lazily to 250 MB.
 */
export const GATEWAY_V8_FLAGS = "--max-semi-space-size=1,--max-old-space-size=64";

/**
 * Deno permissions the gateway runs with: deno.json `start`, the compiled binary, the bundle's
 * `#!` line, and every gateway process the tests start (so the suite proves the gateway works with
 * exactly these).
 *
 * All of them. Deno reads `/proc` and `/sys` only with `--allow-all`, and the gateway must: its
 * buffer's owner check (`/proc/<pid>/stat`, the boot id), what it writes to storage
 * (`/proc/self/io`), the host checks of `outpost doctor`. Under a narrower list these went blind
 * without an error: a second gateway on the same buffer was not stopped. A narrower list would
 * not confine anything either: `--allow-run` (exec adapters, update trials) and `--allow-ffi`
 * (serial ports) each leave Deno's sandbox. The boundary is the `outpost` user and the systemd
 * sandbox (docs/install.md, Least privilege).
 */
export const GATEWAY_PERMISSIONS: readonly string[] = ["--allow-all", "--unstable-net"];
