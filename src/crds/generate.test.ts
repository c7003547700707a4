import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { crdDir, crdFileName, crdFor, crdSources, renderCrdYaml } from "./generate.js";

describe("CRD generation from zod", () => {
  it.each(crdSources.map((s) => [s.kind, s] as const))("checked-in %s CRD matches the zod schema (run `make crds`)", (_kind, source) => {
    const onDisk = readFileSync(join(crdDir, crdFileName(source)), "utf8");
    expect(onDisk).toBe(renderCrdYaml(source));
  });

  it("emits a structural schema: no $schema, propertyNames or additionalProperties:false anywhere", () => {
    const text = JSON.stringify(crdSources.map(crdFor));
    expect(text).not.toContain("$schema");
    expect(text).not.toContain("propertyNames");
    expect(text).not.toContain('"additionalProperties":false');
  });

  it("NodeCIDR has a status subresource, selectable spec.nodeName and the name-equals-CIDR rule", () => {
    const crd = crdFor(crdSources[0]!) as { spec: { versions: Array<Record<string, unknown>> } };
    const version = crd.spec.versions[0]!;
    expect(version.subresources).toEqual({ status: {} });
    expect(version.selectableFields).toContainEqual({ jsonPath: ".spec.nodeName" });
    expect(JSON.stringify(version.schema)).toContain("self.metadata.name == self.spec.cidr.replace");
  });
});
