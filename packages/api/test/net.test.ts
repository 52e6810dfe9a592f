import { expect } from "chai";
import { ipFamily, isIP, parseIp } from "../src/index.js";

/** Vectors for Go's netip.ParseAddr plus the CEL library's refusals of zones and IPv4-mapped addresses. */
const VALID: [string, 4 | 6][] = [
  ["0.0.0.0", 4],
  ["192.168.1.100", 4],
  ["255.255.255.255", 4],
  ["::", 6],
  ["::1", 6],
  ["2001:db8::1", 6],
  ["2001:DB8:0:0:0:0:0:1", 6],
  ["fe80::1:2:3:4", 6],
  ["1:2:3:4:5:6:7::", 6],
  ["::2:3:4:5:6:7:8", 6],
  ["0000:0000:0000:0000:0000:0000:0000:0001", 6],
  ["64:ff9b::192.0.2.33", 6],
  ["::192.0.2.33", 6],
  ["1:2:3:4:5:6:1.2.3.4", 6],
];

const INVALID = [
  "",
  "1.2.3",
  "1.2.3.4.5",
  "256.1.1.1",
  "01.2.3.4",
  "1.2.3.04",
  "1.2.3.4 ",
  " 1.2.3.4",
  "1.2.3.-1",
  "1.2.3.+1",
  "0x1.2.3.4",
  "example.com",
  "::ffff:1.2.3.4",
  "::ffff:102:304",
  "0:0:0:0:0:ffff:1.2.3.4",
  "fe80::1%eth0",
  "1:2:3:4:5:6:7:8:9",
  "1:2:3:4:5:6:7",
  "1:2:3:4:5:6:7:8::",
  "::1:2:3:4:5:6:7:8",
  "1::2::3",
  ":1:2:3:4:5:6:7",
  "1:2:3:4:5:6:7:",
  ":::",
  "12345::1",
  "g::1",
  "1.2.3.4::",
  "::1.2.3.04",
  "1:2:3:4:5:6:7:1.2.3.4",
  "[::1]",
];

describe("IP twins of CEL isIP() / ip().family()", () => {
  for (const [ip, family] of VALID) {
    it(`accepts ${ip}`, () => {
      expect(isIP(ip)).to.equal(true);
      expect(ipFamily(ip)).to.equal(family);
    });
  }
  for (const ip of INVALID) {
    it(`refuses ${JSON.stringify(ip)}`, () => {
      expect(isIP(ip)).to.equal(false);
      expect(ipFamily(ip)).to.equal(undefined);
    });
  }
  it("parses to 16 bytes for IPv6", () => {
    expect(parseIp("2001:db8::1")?.bytes).to.deep.equal([0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
    expect(parseIp("10.0.0.1")?.bytes).to.deep.equal([10, 0, 0, 1]);
  });
});
