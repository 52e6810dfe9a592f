import { createHmac, timingSafeEqual } from "node:crypto";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import type { Logger } from "@nio/runtime";
import type { NioMetrics } from "./metrics.js";

/**
 * `POST /hooks/git`: a git push notification (GitHub, Gitea, Forgejo, GitLab-compatible signature header) triggers
 * an immediate ref check of every configuration on that repository. The body must carry a valid HMAC-SHA256
 * signature (`X-Hub-Signature-256: sha256=<hex>` or `X-Gitea-Signature: <hex>`) made with the shared secret; the
 * comparison is constant-time. Requests are rate limited (token bucket) before any work; the body is capped.
 */
export interface WebhookOptions {
  port: number;
  host?: string;
  secret: () => Buffer | undefined;
  /** Called with the repository URLs named in the payload; returns how many configurations were triggered. */
  onPush: (repoUrls: string[]) => number;
  metrics?: NioMetrics;
  logger?: Logger;
  /** Requests per second and burst (default 5/s, burst 20). */
  rate?: { perSecond: number; burst: number };
  maxBodyBytes?: number;
}

export interface WebhookServer {
  port: number;
  close(): Promise<void>;
}

export function verifySignature(secret: Buffer, body: Buffer, header: string | undefined): boolean {
  if (!header) return false;
  const given = header.startsWith("sha256=") ? header.slice(7) : header;
  if (!/^[0-9a-f]{64}$/i.test(given)) return false;
  const expected = createHmac("sha256", secret).update(body).digest();
  return timingSafeEqual(expected, Buffer.from(given, "hex"));
}

/** Repository URLs a push payload names (GitHub/Gitea/Forgejo: repository.clone_url/html_url; GitLab: project.git_http_url). */
export function repoUrlsOf(payload: unknown): string[] {
  const p = payload as { repository?: Record<string, unknown>; project?: Record<string, unknown> };
  const candidates = [
    p.repository?.clone_url,
    p.repository?.html_url,
    p.repository?.url,
    p.project?.git_http_url,
    p.project?.http_url,
  ];
  return [...new Set(candidates.filter((u): u is string => typeof u === "string" && /^https?:\/\//.test(u)))];
}

export async function startWebhookServer(opts: WebhookOptions): Promise<WebhookServer> {
  const rate = opts.rate ?? { perSecond: 5, burst: 20 };
  const maxBody = opts.maxBodyBytes ?? 1024 * 1024;
  let tokens = rate.burst;
  let last = Date.now();
  const take = (): boolean => {
    const now = Date.now();
    tokens = Math.min(rate.burst, tokens + ((now - last) / 1000) * rate.perSecond);
    last = now;
    if (tokens < 1) return false;
    tokens -= 1;
    return true;
  };
  const answer = (res: ServerResponse, code: number, result: string, body: object): void => {
    opts.metrics?.webhookRequests.inc({ result });
    res.writeHead(code, { "Content-Type": "application/json" }).end(JSON.stringify(body));
  };
  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    if (req.url?.split("?")[0] !== "/hooks/git") return answer(res, 404, "not_found", { error: "not found" });
    if (req.method !== "POST") return answer(res, 405, "bad_request", { error: "POST only" });
    if (!take()) return answer(res, 429, "rate_limited", { error: "too many requests" });
    const body = await readBody(req, maxBody);
    if (!body) return answer(res, 413, "bad_request", { error: `body larger than ${maxBody} bytes` });
    const secret = opts.secret();
    const signature = (req.headers["x-hub-signature-256"] ?? req.headers["x-gitea-signature"]) as string | undefined;
    if (!secret || !verifySignature(secret, body, signature)) {
      opts.logger?.warn({ remote: req.socket.remoteAddress }, "webhook with a missing or bad signature refused");
      return answer(res, 401, "bad_signature", { error: "missing or invalid signature" });
    }
    let urls: string[];
    try {
      urls = repoUrlsOf(JSON.parse(body.toString("utf8")));
    } catch {
      return answer(res, 400, "bad_request", { error: "body is not JSON" });
    }
    const triggered = opts.onPush(urls);
    opts.logger?.info({ repos: urls, triggered }, "webhook: ref check triggered");
    answer(res, 202, "accepted", { triggered });
  };
  const server: Server = createServer((req, res) => {
    handle(req, res).catch(() => {
      if (!res.headersSent) answer(res, 500, "bad_request", { error: "internal error" });
    });
  });
  await new Promise<void>((resolve) => server.listen(opts.port, opts.host ?? "0.0.0.0", resolve));
  return {
    port: (server.address() as AddressInfo).port,
    close: () => new Promise((r) => server.close(() => r())),
  };
}

async function readBody(req: IncomingMessage, max: number): Promise<Buffer | undefined> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of req) {
    size += (c as Buffer).length;
    if (size > max) return undefined;
    chunks.push(c as Buffer);
  }
  return Buffer.concat(chunks);
}
