/** The uplink's TLS: encrypted transport, certificates verified, mutual TLS files in place. */
import { resolvePath } from "./host.ts";
import { type Check, type DoctorContext, noConfig } from "./types.ts";

interface UplinkView {
  type: "mqtt" | "https";
  url: string;
  tls?: { ca?: string; cert?: string; key?: string; rejectUnauthorized?: boolean };
}

/** `uplink.tls`: mqtts:// or https://, verification on, mutual TLS files present when set. */
export function uplinkTls(ctx: DoctorContext): Check {
  const id = "uplink.tls";
  const title = "uplink over verified TLS";
  const c = ctx.config;
  if (!c) return { id, title, verdict: "skip", reason: noConfig(ctx) };
  const u = c.uplink as UplinkView | undefined;
  const channel = c.update?.channel;
  const notes: string[] = [];
  const fails: string[] = [];
  if (!u) {
    notes.push("no uplink (buffer only)");
  } else {
    const scheme = u.url.slice(0, u.url.indexOf(":"));
    if (scheme !== "mqtts" && scheme !== "https") {
      fails.push(
        `uplink ${u.url} is ${scheme}://: readings and credentials cross the network in clear`,
      );
    }
    if (u.tls?.rejectUnauthorized === false) {
      fails.push("uplink.tls.rejectUnauthorized is false: any server certificate is accepted");
    }
    const files = (["ca", "cert", "key"] as const).flatMap((k) =>
      u.tls?.[k] ? [[k, resolvePath(u.tls[k]!, ctx.workdir)] as const] : []
    );
    for (const [k, p] of files) {
      if (!ctx.host.exists(p)) fails.push(`uplink.tls.${k} ${p} does not exist`);
    }
    if (!fails.length) {
      notes.push(
        `${u.type} ${u.url}, certificate verified${u.tls?.ca ? ` against ${u.tls.ca}` : ""}` +
          (u.tls?.cert ? `, mutual TLS with ${u.tls.cert}` : ", no client certificate"),
      );
    }
  }
  if (channel && channel.startsWith("http:")) {
    fails.push(
      `update.channel ${channel} is plain http (metadata is signed, but anyone on the ` +
        "path sees and can stall what the box fetches)",
    );
  } else if (channel) notes.push(`release channel ${channel}`);
  if (fails.length) {
    return {
      id,
      title,
      verdict: "fail",
      reason: fails.join("; "),
      fix: fails.every((f) => f.endsWith("does not exist"))
        ? "copy the CA, certificate and key there (the key mode 0600) or correct the paths"
        : "use mqtts:// (port 8883) or https:// with the server's CA in tls.ca, keep " +
          "rejectUnauthorized true; give tls.cert and tls.key for mutual TLS (docs/uplinks.md)",
    };
  }
  return { id, title, verdict: u ? "pass" : "skip", reason: notes.join("; ") };
}
