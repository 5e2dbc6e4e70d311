/** `outpost status` and `outpost token`: a running gateway, seen through its local API. */
import type { Command } from "../common/cli.ts";
import type { GatewayStatus } from "../gateway.ts";
import { localClient } from "../http/local.ts";
import { readTokenFile, rotateTokenFile, tokenPath } from "../http/token.ts";
import { type CliDeps, loadConfig } from "./deps.ts";

function formatAge(ms: number | null | undefined): string {
  if (ms === null || ms === undefined) return "-";
  const s = Math.round(ms / 1000);
  if (s < 120) return `${s}s`;
  if (s < 7200) return `${Math.round(s / 60)}m`;
  if (s < 172800) return `${(s / 3600).toFixed(1)}h`;
  return `${(s / 86400).toFixed(1)}d`;
}

/** Renders a status document for a terminal. */
export function formatStatus(s: GatewayStatus): string {
  const lines: string[] = [];
  const u = s.uplink;
  lines.push(
    `gateway   ${s.gatewayId}${s.site ? ` (${s.site})` : ""}  version ${s.version}  up ${
      formatAge(s.uptimeMs)
    }  health ${s.health.ok ? "OK" : "FAILING"}`,
  );
  for (const [name, c] of Object.entries(s.health.checks)) {
    lines.push(`  ${c.ok ? "ok  " : "FAIL"} ${name.padEnd(9)} ${c.detail}`);
  }
  lines.push(
    `uplink    ${
      u
        ? `${u.type} ${u.target}  ${u.connected ? "connected" : "DISCONNECTED"} for ${
          formatAge(u.forSeconds * 1000)
        }${u.lastError && !u.connected ? `  (${u.lastError})` : ""}`
        : "none (buffer only)"
    }`,
  );
  const b = s.buffer;
  lines.push(
    `buffer    ${b.pending} pending, oldest ${formatAge(b.oldestPendingAgeMs)}; ${b.rows} stored, ${
      (b.bytes / 1048576).toFixed(1)
    } MB${b.atCap ? `  AT ${b.atCap.toUpperCase()} CAP` : ""}`,
  );
  if (s.forwarder) {
    lines.push(
      `forwarded ${s.forwarder.forwardedReadings} readings in ${s.forwarder.forwardedMessages} messages, last ${
        s.forwarder.lastForwardedAt
          ? formatAge(Date.now() - s.forwarder.lastForwardedAt) + " ago"
          : "never"
      }`,
    );
  }
  const d = s.drops;
  lines.push(
    `drops     invalid ${d.invalid}, over series limit ${
      d.seriesLimit ?? 0
    }, dropped at cap ${d.droppedUnforwarded}, refused when full ${d.rejectedFull}, set aside ${d.setAside}`,
  );
  lines.push("adapters");
  for (const a of s.adapters) {
    const devices = Object.values(a.devices);
    const down = devices.filter((x) => x.state !== "online").length;
    lines.push(
      `  ${a.name.padEnd(16)} ${a.type.padEnd(12)} ${a.state.padEnd(8)} restarts ${a.restarts}${
        down ? `  ${down} device(s) down` : ""
      }${a.lastError ? `  last error: ${a.lastError}` : ""}`,
    );
  }
  return lines.join("\n");
}

/** `outpost status`. */
export const statusCommand: Command<CliDeps> = {
  name: "status",
  summary: "Show a running gateway's status",
  usage: `Usage: outpost status [--config FILE] [--url URL] [--token-file FILE] [--ca FILE]
                      [--json]

Reads /status of a running gateway (address from the config's http.listen, default
127.0.0.1:8787) with its access token (from the config's token file, default data/http-token)
and prints it. Under http.tls the configured certificate (or --ca) is trusted. Exit status 1
when the gateway reports itself unhealthy.`,
  options: {
    config: { type: "string", short: "c", arg: "FILE", help: "the gateway's config file" },
    url: { type: "string", arg: "URL", help: "the gateway's address, instead of http.listen" },
    "token-file": { type: "string", arg: "FILE", help: "the access token file" },
    ca: { type: "string", arg: "FILE", help: "CA certificate (PEM) to trust under http.tls" },
    json: { type: "boolean", help: "print the status document as JSON" },
  },
  run: async (args, deps) => {
    const path = args.string("config");
    const config = path ? loadConfig(path, deps) : undefined;
    const client = localClient(config, {
      url: args.string("url"),
      tokenFile: args.string("token-file"),
      ca: args.string("ca"),
    });
    let body: GatewayStatus;
    try {
      const res = await client.get("/status");
      if (!res.ok) {
        throw new Error(
          `${client.base}/status answered ${res.status}: ${(await res.text()).trim()}`,
        );
      }
      body = await res.json() as GatewayStatus;
    } finally {
      client.close();
    }
    console.log(args.flag("json") ? JSON.stringify(body, null, 2) : formatStatus(body));
    return body.health.ok ? 0 : 1;
  },
};

const TOKEN_OPTIONS = {
  config: { type: "string", short: "c", arg: "FILE", help: "the gateway's config file" },
} as const;

function tokenSub(
  name: "show" | "rotate" | "path",
  summary: string,
): Command<CliDeps> {
  return {
    name,
    summary,
    run: (args, deps) => {
      const file = args.string("config");
      if (!file) throw args.usage(`${name}: missing --config FILE`);
      const path = tokenPath(loadConfig(file, deps));
      if (name === "path") {
        console.log(path);
      } else if (name === "show") {
        console.log(readTokenFile(path));
      } else {
        const token = rotateTokenFile(path);
        console.error(
          `wrote a new access token to ${path} (mode 0600); a running gateway uses it from its ` +
            `next request and refuses the old one`,
        );
        console.log(token);
      }
      return 0;
    },
  };
}

/** `outpost token`. */
export const tokenCommand: Command<CliDeps> = {
  name: "token",
  summary: "The access token of the gateway page and API: show, rotate, path",
  usage: `Usage: outpost token show --config FILE
       outpost token rotate --config FILE
       outpost token path --config FILE

The gateway page, /status, /metrics and /logs need the gateway's access token (the page's
sign-in form, or the header "Authorization: Bearer TOKEN"); /healthz does not. The gateway
generates it on first run (32 random bytes, base64url), prints it once and keeps it in
http.tokenFile (default: http-token next to buffer.path), mode 0600.

  show    print the token (needs read access to the file: the gateway's user or root)
  rotate  write a new random token and print it; a running gateway uses it from its next
          request, without a restart, and refuses the old one (signed-in pages sign in again)
  path    print where the token file is`,
  options: TOKEN_OPTIONS,
  subcommands: [
    tokenSub("show", "print the token"),
    tokenSub("rotate", "write a new random token and print it"),
    tokenSub("path", "print where the token file is"),
  ],
};
