import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type CloudProcess, startCloud } from "../../../test/support/cloud-process.js";
import { ROUTE_RIGHTS } from "../../src/access/route-rights.js";

interface Operation {
  security?: Record<string, string[]>[];
  responses: Record<string, { content?: Record<string, { schema?: Record<string, unknown> }> }>;
}
interface Document {
  openapi: string;
  paths: Record<string, Record<string, Operation>>;
  components: { securitySchemes: Record<string, { type: string }> };
}

/** The security the access table asks of each scope, in OpenAPI terms. */
const EXPECTED_SECURITY: Record<string, Record<string, string[]>[]> = {
  public: [],
  "device-mtls": [{ deviceCertificate: [] }],
  host: [{ hostCredential: [] }],
};
const OPERATOR = [{ basicAuth: [] }, { bearerAuth: [] }];

describe("OpenAPI document against the access table", () => {
  let cloud: CloudProcess;
  let doc: Document;
  beforeAll(async () => {
    cloud = await startCloud();
    const answer = await cloud.api<Document>("GET", "/api/v1/openapi.json", undefined, false);
    expect(answer.status).toBe(200);
    doc = answer.body;
  });
  afterAll(() => cloud.stop());

  it("describes every route of ROUTE_RIGHTS with its security, a 2xx schema and its error responses", () => {
    expect(doc.openapi).toBe("3.1.0");
    const problems: string[] = [];
    for (const [key, right] of Object.entries(ROUTE_RIGHTS)) {
      const [method = "", url = ""] = key.split(" ");
      const op = doc.paths[url.replace(/:(\w+)/g, "{$1}")]?.[method.toLowerCase()];
      if (!op) {
        problems.push(`${key}: not in the document`);
        continue;
      }
      const security = EXPECTED_SECURITY[right.scope] ?? OPERATOR;
      if (JSON.stringify(op.security) !== JSON.stringify(security)) {
        problems.push(`${key}: security ${JSON.stringify(op.security)}, expected ${JSON.stringify(security)}`);
      }
      for (const scheme of security.flatMap((s) => Object.keys(s))) {
        if (!doc.components.securitySchemes[scheme]) problems.push(`${key}: no security scheme ${scheme}`);
      }
      const success = Object.entries(op.responses).filter(([status]) => /^2\d\d$/.test(status));
      const described = success.some(
        ([status, r]) => status === "204" || Object.values(r.content ?? {}).some((c) => c.schema !== undefined),
      );
      if (!described) problems.push(`${key}: no 2xx response schema`);
      const errors = ["400", ...(right.scope === "public" ? [] : ["401"])];
      if (right.permission || right.scope === "device-mtls") errors.push("403");
      if (url.includes("/:")) errors.push("404");
      if (right.scope !== "public" && right.scope !== "device-mtls") errors.push("429");
      for (const status of errors) {
        const schema = op.responses[status]?.content?.["application/json"]?.schema as
          | { properties?: { error?: { properties?: Record<string, unknown> } } }
          | undefined;
        if (!schema?.properties?.error?.properties?.code) problems.push(`${key}: no ${status} error schema`);
      }
    }
    expect(problems).toEqual([]);
  });

  it("describes the streamed files by media type: the device export and the firmware image", () => {
    const exportOk = doc.paths["/api/v1/devices/export"]?.get?.responses["200"]?.content ?? {};
    expect(Object.keys(exportOk).sort()).toEqual(["application/json", "text/csv"]);
    const image = doc.paths["/api/v1/firmware/{name}/{version}/image"]?.get?.responses ?? {};
    for (const status of ["200", "206"]) {
      expect(image[status]?.content?.["application/octet-stream"]?.schema).toMatchObject({
        type: "string",
        format: "binary",
      });
    }
    expect(doc.components.securitySchemes.deviceCertificate).toMatchObject({ type: "mutualTLS" });
  });
});
