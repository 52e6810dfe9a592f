/**
 * Nix literals. Every value that reaches cluster.nix goes through one of these, even though the topology was validated
 * before (defence in depth): a string can never end its literal, start an interpolation or break a line.
 */

/**
 * A Nix double-quoted string literal that evaluates to exactly `s`.
 *
 * Escaped: `\` as `\\`, `"` as `\"`, every `$` as `\$` (so neither `${` nor `$${` can start an interpolation), and
 * newline, carriage return and tab as `\n`, `\r`, `\t` (Nix would turn a literal CR or CRLF into LF). Nix has no escape
 * for other control characters; its lexer takes them verbatim inside a string, so they are kept as they are and
 * evaluate to themselves. NUL cannot be represented (Nix strings are C strings) and is refused.
 */
export function nixString(s: string): string {
  if (typeof s !== "string") throw new TypeError(`nixString: expected a string, got ${typeof s}`);
  if (s.includes("\0")) throw new RangeError("nixString: a Nix string cannot contain a NUL character");
  return `"${s.replace(/[\\"$\n\r\t]/g, (c) => ESCAPES[c] ?? c)}"`;
}

const ESCAPES: Record<string, string> = {
  "\\": "\\\\",
  '"': '\\"',
  $: "\\$",
  "\n": "\\n",
  "\r": "\\r",
  "\t": "\\t",
};

/** A scalar as a Nix literal: strings via {@link nixString}, safe integers, booleans and null. Anything else throws. */
export function nixScalar(value: unknown): string {
  if (typeof value === "string") return nixString(value);
  if (value === null) return "null";
  if (typeof value === "boolean") return value ? "true" : "false";
  if (typeof value === "number" && Number.isSafeInteger(value)) return String(value);
  throw new TypeError(`cannot render ${describe(value)} as a Nix scalar (string, safe integer, boolean or null)`);
}

function describe(value: unknown): string {
  if (typeof value === "number") return `the number ${value}`;
  if (Array.isArray(value)) return "an array";
  return typeof value;
}
