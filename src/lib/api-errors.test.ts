import { ApiException } from "@kubernetes/client-node";
import { describe, expect, it } from "vitest";
import { apiMessage, logLevelFor, retryAfterMs } from "./api-errors.js";

const refused = (code: number, body: unknown, headers: Record<string, string> = {}) => new ApiException(code, "Unknown API Status Code!", body, headers);

describe("apiMessage: one line saying what the server said", () => {
  it.each([
    ["a Status: its message", refused(422, JSON.stringify({ kind: "Status", message: "spec.cidr: Invalid value" })), "spec.cidr: Invalid value"],
    ["APF's text/plain 429 with Retry-After", refused(429, "Too many requests, please try again later.\n", { "retry-after": "1" }),
      "HTTP 429: Too many requests, please try again later.; retry after 1s"],
    ["a 503 from a proxy, HTML, Retry-After 30", refused(503, "<html>\n<body>Service Unavailable</body>\n</html>\n", { "Retry-After": "30" }),
      "HTTP 503: <html>; retry after 30s"],
    ["a 429 without Retry-After", refused(429, "slow down"), "HTTP 429: slow down"],
    ["no body at all: the status's name", refused(401, undefined), "HTTP 401: Unauthorized"],
    ["a blank first line is skipped", refused(502, "\n  \nbad gateway\n"), "HTTP 502: bad gateway"],
    ["JSON that is no Status", refused(500, { error: "boom" }), "HTTP 500: {\"error\":\"boom\"}"],
    ["Retry-After on a 500 is not read", refused(500, "oops", { "retry-after": "5" }), "HTTP 500: oops"],
    ["a bare 404 page: a resource type the server does not serve", refused(404, "404 page not found\n"),
      "HTTP 404: 404 page not found (the API server serves no such resource: are the podnet CRDs installed? apply charts/podnet/crds)"],
    ["a 404 Status (an object that is not there) keeps its message", refused(404, JSON.stringify({ kind: "Status", message: "nodecidrs \"x\" not found" })), "nodecidrs \"x\" not found"],
    ["a plain error keeps its message", new Error("connect ECONNREFUSED 127.0.0.1:6443"), "connect ECONNREFUSED 127.0.0.1:6443"],
  ])("%s", (_what, err, expected) => {
    expect(apiMessage(err)).toBe(expected);
  });

  it("cuts a long first line short", () => {
    expect(apiMessage(refused(429, "x".repeat(500)))).toBe(`HTTP 429: ${"x".repeat(200)}…`);
  });
});

describe("retryAfterMs: how long a throttling server asked us to wait", () => {
  it.each([
    [429, { "retry-after": "1" }, 1_000],
    [503, { "Retry-After": "30" }, 30_000],
    [429, {}, undefined],
    [500, { "retry-after": "5" }, undefined], // only 429 and 503 are "come back later"
    [429, { "retry-after": "Wed, 21 Oct 2026 07:28:00 GMT" }, undefined], // kube-apiserver sends seconds
    [429, { "retry-after": "-3" }, undefined],
  ])("%i with %j → %s", (code, headers, expected) => {
    expect(retryAfterMs(refused(code, "", headers))).toBe(expected);
  });

  it("reads nothing from errors that are no HTTP answer", () => {
    expect(retryAfterMs(new Error("socket hang up"))).toBeUndefined();
    expect(retryAfterMs(undefined)).toBeUndefined();
  });
});

describe("logLevelFor", () => {
  it("warns for a throttled call (retried, the server sheds load) and errs for the rest", () => {
    expect(logLevelFor(refused(429, ""))).toBe("warn");
    expect(logLevelFor(refused(503, ""))).toBe("error");
    expect(logLevelFor(new Error("x"))).toBe("error");
  });
});
