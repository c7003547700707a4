import { describe, expect, it } from "vitest";
import { CidrSet } from "./cidr-set.js";
import { formatCidr, parseCidr } from "./cidr.js";

const c = (t: string) => parseCidr(t);

describe("CidrSet", () => {
  it("hands out slices lowest first until exhausted", () => {
    const set = new CidrSet(c("10.0.0.0/22"), 24);
    expect([1, 2, 3, 4].map(() => formatCidr(set.allocateNext()!))).toEqual(["10.0.0.0/24", "10.0.1.0/24", "10.0.2.0/24", "10.0.3.0/24"]);
    expect(set.allocateNext()).toBeUndefined();
    expect(set.free).toBe(0n);
  });

  it("skips occupied slices and reuses released ones", () => {
    const set = new CidrSet(c("10.0.0.0/22"), 24);
    expect(set.occupy(c("10.0.0.0/24"))).toBe(true);
    expect(formatCidr(set.allocateNext()!)).toBe("10.0.1.0/24");
    set.release(c("10.0.0.0/24"));
    expect(formatCidr(set.allocateNext()!)).toBe("10.0.0.0/24");
  });

  it("refuses slices of the wrong size or outside the range", () => {
    const set = new CidrSet(c("10.0.0.0/22"), 24);
    expect(set.occupy(c("10.0.0.0/23"))).toBe(false);
    expect(set.occupy(c("10.9.0.0/24"))).toBe(false);
  });

  it("blocks every slice a wrongly sized CIDR touches, including slice 0", () => {
    const set = new CidrSet(c("10.0.0.0/22"), 24);
    expect(set.occupyCovering(c("10.0.0.0/23"))).toBe(2);
    expect(set.occupyCovering(c("10.0.3.128/25"))).toBe(1);
    expect(formatCidr(set.allocateNext()!)).toBe("10.0.2.0/24");
    expect(set.allocateNext()).toBeUndefined();
  });

  it("handles an IPv6 range of 2^64 slices without allocating a bitmap", () => {
    const set = new CidrSet(c("fd00::/0".replace("fd00::/0", "::/0")), 64);
    expect(set.size).toBe(2n ** 64n);
    expect(formatCidr(set.allocateNext()!)).toBe("::/64");
    expect(set.free).toBe(2n ** 64n - 1n);
  });
});
