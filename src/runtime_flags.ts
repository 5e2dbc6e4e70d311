/**
 * V8 flags the gateway runs with (deno.json `start`, the compiled binary, the bench): a small
 * young generation and a capped old space keep RSS near 120 MB while draining a large backlog
 * instead of letting V8 grow the heap lazily to 250 MB.
 */
export const GATEWAY_V8_FLAGS = "--max-semi-space-size=1,--max-old-space-size=64";
