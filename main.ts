import { adapters } from "./adapters/mod.ts";
import { main } from "./src/cli/mod.ts";

if (import.meta.main) {
  Deno.exit(await main(Deno.args, { adapters }));
}
