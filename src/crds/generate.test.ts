import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { crdDir, crdFileName, crdFor, crdSources, openApiSchemaFor, renderCrdYaml } from "./generate.js";

type SchemaNode = { description?: string; properties?: Record<string, SchemaNode>; items?: SchemaNode };

/** Paths of fields `kubectl explain` would show without a description (the API server describes apiVersion, kind, metadata). */
function undescribed(node: SchemaNode, path: string): string[] {
  const own = path && !node.description ? [path] : [];
  const fields = Object.entries(node.properties ?? {}).filter(([name]) => path || !["apiVersion", "kind", "metadata"].includes(name));
  return [...own, ...fields.flatMap(([name, child]) => undescribed(child, `${path}.${name}`)),
    ...(node.items?.properties ? Object.entries(node.items.properties).flatMap(([name, child]) => undescribed(child, `${path}[].${name}`)) : [])];
}

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

  it.each(crdSources.map((s) => [s.kind, s] as const))("%s describes itself and every field (kubectl explain shows no <empty>)", (_kind, source) => {
    const root = openApiSchemaFor(source) as SchemaNode;
    expect(root.description).toBeTruthy();
    expect(undescribed(root, "")).toEqual([]);
  });
});
