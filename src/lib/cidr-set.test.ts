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
    expect(set.occupyCovering(c("10.0.0.0/23"))).toBe(2n);
    expect(set.occupyCovering(c("10.0.3.128/25"))).toBe(1n);
    expect(formatCidr(set.allocateNext()!)).toBe("10.0.2.0/24");
    expect(set.allocateNext()).toBeUndefined();
  });

  it("handles an IPv6 range of 2^64 slices without allocating a bitmap", () => {
    const set = new CidrSet(c("fd00::/0".replace("fd00::/0", "::/0")), 64);
    expect(set.size).toBe(2n ** 64n);
    expect(formatCidr(set.allocateNext()!)).toBe("::/64");
    expect(set.free).toBe(2n ** 64n - 1n);
  });

  // A Node's /64 (kube-controller-manager's default) in a pool of /96 or /112 slices: 2^32 or 2^48 slices.
  it.each([
    ["a /64 in /112 slices", "fd00:10:244::/56", 112, "fd00:10:244::/64", 2n ** 48n, "fd00:10:244:1::/112"],
    ["a /64 in /96 slices", "fd00:10:244::/56", 96, "fd00:10:244::/64", 2n ** 32n, "fd00:10:244:1::/96"],
    ["a /48 holding the whole /56 range", "fd00:10:244::/56", 112, "fd00:10::/32", 2n ** 56n, undefined],
  ])("blocks every slice of %s, however many, and hands out the first one past it", (_what, range, prefix, wide, count, next) => {
    const set = new CidrSet(c(range), prefix);
    expect(set.occupyCovering(c(wide))).toBe(count);
    expect(set.used).toBe(count);
    expect(set.isOccupied(c(range.replace(/\/\d+$/, `/${prefix}`)))).toBe(true);
    const got = set.allocateNext();
    expect(got && formatCidr(got)).toBe(next);
  });

  it("counts a slice held twice (two wide CIDRs, or a record inside one) once, and keeps it out after its own release", () => {
    const set = new CidrSet(c("10.0.0.0/16"), 24);
    set.occupyCovering(c("10.0.0.0/22"));
    set.occupyCovering(c("10.0.2.0/23"));
    set.occupyCovering(c("10.0.4.0/22"));
    expect(set.occupy(c("10.0.1.0/24"))).toBe(true);
    expect(set.occupy(c("10.0.9.0/24"))).toBe(true);
    expect(set.used).toBe(9n);
    set.release(c("10.0.1.0/24"));
    expect(set.isOccupied(c("10.0.1.0/24"))).toBe(true);
    expect(formatCidr(set.allocateNext()!)).toBe("10.0.8.0/24");
    expect(formatCidr(set.allocateNext()!)).toBe("10.0.10.0/24");
    expect(set.free).toBe(256n - 11n);
  });
});
