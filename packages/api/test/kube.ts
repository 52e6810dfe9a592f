/** A minimal raw client for the test API server: full control over dryRun and fieldValidation, raw Status bodies. */
import { readFile } from "node:fs/promises";
import { request } from "node:https";
import type { ControlPlane } from "@nio/testbed";

export interface Response {
  status: number;
  body: unknown;
}

export interface StatusCause {
  field?: string;
  message?: string;
  reason?: string;
}

export interface Status {
  kind?: string;
  code?: number;
  message?: string;
  details?: { causes?: StatusCause[] };
}

export type Request = (method: string, path: string, body?: unknown, contentType?: string) => Promise<Response>;

/** JSON bodies parsed; anything else (e.g. "404 page not found" before discovery) kept as text. */
function parseBody(text: string): unknown {
  if (text === "") return undefined;
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return text;
  }
}

export async function rawClient(cp: ControlPlane): Promise<Request> {
  const ca = await readFile(cp.caCertFile);
  return (method, path, body, contentType = "application/json") =>
    new Promise((resolve, reject) => {
      const payload = body === undefined ? undefined : JSON.stringify(body);
      const req = request(
        `${cp.server}${path}`,
        {
          method,
          ca,
          headers: {
            Authorization: `Bearer ${cp.adminToken}`,
            Accept: "application/json",
            ...(payload === undefined ? {} : { "Content-Type": contentType }),
          },
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on("data", (c: Buffer) => chunks.push(c));
          res.on("end", () => {
            resolve({ status: res.statusCode ?? 0, body: parseBody(Buffer.concat(chunks).toString("utf8")) });
          });
        },
      );
      req.once("error", reject);
      req.end(payload);
    });
}
