/**
 * TypeScript twins of the Kubernetes CEL IP library (`isIP(s)`, `ip(s).family()`), which parses with Go's
 * `netip.ParseAddr` and then refuses zones (`fe80::1%eth0`) and IPv4-mapped IPv6 addresses (`::ffff:1.2.3.4`).
 * Go's parser is strict: IPv4 needs exactly four decimal octets without leading zeros; IPv6 groups have one to four
 * hex digits, `::` appears at most once and stands for at least one zero group, and an embedded IPv4 address may
 * only end the address.
 */

export interface ParsedIp {
  family: 4 | 6;
  bytes: number[];
}

/** Parses an IP address literal the way the API server's CEL `ip()` does; undefined when it would refuse it. */
export function parseIp(s: string): ParsedIp | undefined {
  if (s.includes(":")) {
    const bytes = parseIPv6(s);
    if (!bytes || isIPv4Mapped(bytes)) return undefined;
    return { family: 6, bytes };
  }
  const bytes = parseIPv4(s);
  return bytes ? { family: 4, bytes } : undefined;
}

/** CEL `isIP(s)`. */
export function isIP(s: string): boolean {
  return parseIp(s) !== undefined;
}

/** CEL `ip(s).family()`, or undefined for a string `isIP` refuses. */
export function ipFamily(s: string): 4 | 6 | undefined {
  return parseIp(s)?.family;
}

function parseIPv4(s: string): number[] | undefined {
  const fields = s.split(".");
  if (fields.length !== 4) return undefined;
  const bytes: number[] = [];
  for (const f of fields) {
    if (!/^[0-9]{1,3}$/.test(f) || (f.length > 1 && f.startsWith("0"))) return undefined;
    const n = Number(f);
    if (n > 255) return undefined;
    bytes.push(n);
  }
  return bytes;
}

function isIPv4Mapped(bytes: number[]): boolean {
  return bytes.slice(0, 10).every((b) => b === 0) && bytes[10] === 0xff && bytes[11] === 0xff;
}

/** Splits on "::" and parses both halves; the ellipsis must stand for at least one zero group. */
function parseIPv6(s: string): number[] | undefined {
  if (s.includes("%")) return undefined;
  const halves = s.split("::");
  if (halves.length > 2) return undefined;
  const head = parseGroups(halves[0] ?? "", halves.length === 1);
  const tail = halves.length === 2 ? parseGroups(halves[1] ?? "", true) : [];
  if (!head || !tail) return undefined;
  const missing = 16 - head.length - tail.length;
  if (halves.length === 1 ? missing !== 0 : missing < 2) return undefined;
  return [...head, ...new Array<number>(halves.length === 1 ? 0 : missing).fill(0), ...tail];
}

/** Parses colon-separated hex groups; the last group may be an IPv4 address when `mayEndWithIPv4`. */
function parseGroups(part: string, mayEndWithIPv4: boolean): number[] | undefined {
  if (part === "") return [];
  const groups = part.split(":");
  const bytes: number[] = [];
  for (const [i, g] of groups.entries()) {
    if (i === groups.length - 1 && mayEndWithIPv4 && g.includes(".")) {
      const v4 = parseIPv4(g);
      if (!v4) return undefined;
      bytes.push(...v4);
    } else {
      if (!/^[0-9A-Fa-f]{1,4}$/.test(g)) return undefined;
      const n = parseInt(g, 16);
      bytes.push(n >> 8, n & 0xff);
    }
  }
  return bytes;
}
