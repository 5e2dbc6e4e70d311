import assert from "node:assert/strict";
import { PAGE_HTML, PAGE_SCRIPTS } from "./page.ts";

/** The paths a browser fetches for a script's relative imports (`import … from "./x.js"`). */
function importsOf(path: string, script: string): string[] {
  return [...script.matchAll(/^import\s[^;]*?from\s+"(\.[^"]+)";/gm)]
    .map((m) => new URL(m[1], `http://gateway${path}`).pathname);
}

Deno.test("PAGE_SCRIPTS serves every script the page loads: the shell's script tags and each module they import", () => {
  const tags = [...PAGE_HTML.matchAll(/<script ([^>]*)><\/script>/g)].map((t) => t[1]);
  assert.deepEqual(tags, ['type="module" src="/page.js"', 'type="module" src="/history.js"']);
  const todo = tags.map((t) => /src="([^"]+)"/.exec(t)![1]);
  const loaded = new Set<string>();
  while (todo.length) {
    const path = todo.pop()!;
    if (loaded.has(path)) continue;
    const script = PAGE_SCRIPTS[path];
    assert.ok(script !== undefined, `${path} is loaded by the page but not served`);
    loaded.add(path);
    todo.push(...importsOf(path, script));
  }
  assert.ok(loaded.has("/common_script.js") && loaded.has("/alarms_script.js"));
  assert.deepEqual([...loaded].sort(), Object.keys(PAGE_SCRIPTS).sort(), "nothing served unused");
});

Deno.test("the page's scripts render text only, never store the token and fetch nothing from elsewhere", () => {
  for (const [path, script] of Object.entries(PAGE_SCRIPTS)) {
    assert.match(script, /^\/\/ @ts-check\n/, path);
    assert.doesNotMatch(
      script,
      /innerHTML|outerHTML|insertAdjacentHTML|document\.write|eval\(/,
      path,
    );
    assert.doesNotMatch(script, /localStorage|sessionStorage/, path);
    assert.doesNotMatch(script, /https?:\/\/(?!www\.w3\.org)/, path);
  }
});
