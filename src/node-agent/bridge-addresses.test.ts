import { describe, expect, it } from "vitest";
import { staleBridgeAddresses } from "./bridge-addresses.js";

const a = (text: string) => { const [local, prefixlen] = text.split("/"); return { local: local!, prefixlen: Number(prefixlen) }; };

describe("staleBridgeAddresses: which gateway addresses no longer belong on podnet's bridge", () => {
  it.each([
    ["the current gateway stays", ["10.244.1.1/24"], ["10.244.1.0/24"], []],
    ["the old CIDR's gateway goes after the node got another", ["10.244.1.1/24"], ["10.244.3.0/24"], ["10.244.1.1/24"]],
    ["both gateways of a dual-stack node stay", ["10.244.1.1/24", "fd00:10:244:1::1/64"], ["10.244.1.0/24", "fd00:10:244:1::/64"], []],
    ["a family without a pod CIDR keeps its gateway (withheld for a moment, say)", ["10.244.1.1/24", "fd00:10:244:1::1/64"], ["fd00:10:244:1::/64"], []],
    ["only the old family member goes when one family changed", ["10.244.1.1/24", "fd00:10:244:1::1/64"], ["10.244.7.0/24", "fd00:10:244:1::/64"], ["10.244.1.1/24"]],
    ["nothing goes while the node has no pod CIDR at all (a NodeCIDR recreated by hand)", ["10.244.1.1/24"], [], []],
    ["an old IPv6 gateway goes once the node has another IPv6 CIDR", ["fd00:10:244:1::1/64"], ["10.244.1.0/24", "fd00:10:244:9::/64"], ["fd00:10:244:1::1/64"]],
    ["a bridge without addresses has nothing stale", [], ["10.244.1.0/24"], []],
    ["an address in a wider old range, outside the new one, goes", ["10.244.0.1/16"], ["10.245.0.0/24"], ["10.244.0.1/16"]],
  ] as const)("%s", (_label, addresses, ownCidrs, stale) => {
    expect(staleBridgeAddresses(addresses.map(a), [...ownCidrs])).toEqual(stale);
  });
});
