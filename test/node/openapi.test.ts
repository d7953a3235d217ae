/**
 * The OpenAPI 3.1 document as the Worker serves it (GET /api/openapi.json under `wrangler dev`), validated
 * with an OpenAPI validator, and the pieces of the reference page at /docs. The validator compiles its
 * schemas with ajv, which generates code with `new Function`, forbidden in workerd: so this is a Node test
 * against the real Worker rather than a test inside the Workers runtime. Neither route needs a database.
 *
 * The page itself, rendered by Scalar in a browser, is checked by `npm run test:browser` (test/browser/).
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Validator } from "@seriousme/openapi-schema-validator";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DOCS_CSP } from "../../src/middleware/security-headers.ts";
import { startWranglerDev, type WranglerDev } from "../../tools/wrangler-dev.ts";

interface SchemaOrRef {
  $ref?: string;
  properties?: Record<string, unknown>;
}
interface Operation {
  summary?: string;
  tags?: string[];
  security?: Record<string, string[]>[];
  requestBody?: { content: Record<string, { schema: SchemaOrRef }> };
  responses: Record<string, { content?: Record<string, { schema: SchemaOrRef }> }>;
}
interface Document {
  openapi: string;
  paths: Record<string, Record<string, Operation>>;
  components: {
    schemas: Record<string, SchemaOrRef>;
    securitySchemes: Record<string, { type: string; scheme?: string }>;
  };
}

const METHODS = ["get", "put", "post", "delete", "options", "head", "patch", "trace"];

describe("OpenAPI document and API reference, served by the Worker", () => {
  let worker: WranglerDev | undefined;
  let workDir: string | undefined;
  let doc: Document;
  let operations: { method: string; path: string; operation: Operation }[];

  beforeAll(async () => {
    workDir = await mkdtemp(join(tmpdir(), "anchorpipe-openapi-"));
    worker = await startWranglerDev({
      vars: { ENVIRONMENT: "test" },
      // Liveness only: no database behind this Worker, and these routes need none.
      healthPath: "/api/health/live",
      persistTo: join(workDir, "wrangler-state"),
    });
    const res = await fetch(`${worker.url}/api/openapi.json`);
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toMatch(/^application\/json/);
    doc = (await res.json()) as Document;
    operations = Object.entries(doc.paths).flatMap(([path, item]) =>
      Object.entries(item)
        .filter(([method]) => METHODS.includes(method))
        .map(([method, operation]) => ({ method, path, operation })),
    );
  }, 90_000);

  afterAll(async () => {
    await worker?.stop();
    if (workDir) await rm(workDir, { recursive: true, force: true });
  }, 30_000);

  const find = (method: string, path: string) => doc.paths[path]?.[method];
  const resolve = (schema: SchemaOrRef | undefined): SchemaOrRef | undefined =>
    schema?.$ref ? doc.components.schemas[schema.$ref.replace("#/components/schemas/", "")] : schema;

  it("is a valid OpenAPI 3.1 document", async () => {
    expect(doc.openapi).toMatch(/^3\.1\./);
    const validator = new Validator();
    const result = await validator.validate(doc as unknown as Record<string, unknown>);
    expect(result.errors ?? []).toEqual([]);
    expect(result.valid).toBe(true);
    expect(validator.version).toBe("3.1");
  });

  it("documents ingestion, health and the repository operations", () => {
    const ingestion = find("post", "/ingestion");
    expect(ingestion?.summary).toMatch(/^Upload CI test results/);
    expect(ingestion?.security).toEqual([{ repositorySignature: [] }]);
    // The contract's payload schema, inline or by reference.
    const body = resolve(ingestion?.requestBody?.content["application/json"]?.schema);
    expect(Object.keys(body?.properties ?? {})).toEqual(
      expect.arrayContaining(["repo_id", "commit_sha", "run_id", "framework", "tests", "reports"]),
    );
    for (const path of ["/health", "/health/live", "/health/db", "/version"]) {
      expect(find("get", path)?.security, path).toEqual([]);
      expect(find("get", path)?.responses).toHaveProperty("200");
    }
    for (const [method, path] of [
      ["get", "/repos"],
      ["post", "/repos"],
      ["get", "/repos/{repoId}"],
      ["patch", "/repos/{repoId}"],
      ["delete", "/repos/{repoId}"],
    ]) {
      expect(find(method!, path!)?.summary, `${method} ${path}`).toBeTruthy();
      expect(find(method!, path!)?.security, `${method} ${path}`).toEqual([{ personalToken: [] }]);
    }
  });

  it("answers every 4xx of every operation with the Error schema", () => {
    const offenders: string[] = [];
    let checked = 0;
    for (const { method, path, operation } of operations) {
      for (const [status, response] of Object.entries(operation.responses)) {
        if (!status.startsWith("4")) continue;
        checked++;
        const ref = response.content?.["application/json"]?.schema.$ref;
        if (ref !== "#/components/schemas/Error") offenders.push(`${method.toUpperCase()} ${path} ${status}: ${ref}`);
      }
    }
    expect(offenders).toEqual([]);
    expect(checked).toBeGreaterThan(operations.length);
    expect(doc.components.schemas).toHaveProperty("Error");
  });

  it("lists its security schemes, and every operation says which one it needs", () => {
    const schemes = doc.components.securitySchemes;
    expect(schemes.personalToken).toMatchObject({ type: "http", scheme: "bearer" });
    expect(schemes.repositorySignature).toMatchObject({ type: "apiKey" });
    const undeclared: string[] = [];
    for (const { method, path, operation } of operations) {
      if (!operation.security) undeclared.push(`${method.toUpperCase()} ${path}: no security`);
      for (const requirement of operation.security ?? []) {
        for (const name of Object.keys(requirement)) {
          if (!(name in schemes)) undeclared.push(`${method.toUpperCase()} ${path}: unknown scheme ${name}`);
        }
      }
    }
    expect(undeclared).toEqual([]);
  });

  it("serves /docs with its own CSP and Scalar's bundle from this origin", async () => {
    const { url } = worker as WranglerDev;
    const page = await fetch(`${url}/docs`);
    expect(page.status).toBe(200);
    expect(page.headers.get("content-security-policy")).toBe(DOCS_CSP);
    const html = await page.text();
    expect(html).toContain('<script src="/scalar/standalone.js">');
    expect(html).toContain('"url": "/api/openapi.json"');
    expect(html).not.toMatch(/https?:\/\//);

    const script = await fetch(`${url}/scalar/standalone.js`);
    // 404 here: public/scalar/ was not filled by `npm install` (the prepare script, tools/docs/copy-assets.mjs).
    expect(script.status).toBe(200);
    expect(script.headers.get("content-type")).toMatch(/javascript/);
    expect((await script.arrayBuffer()).byteLength).toBeGreaterThan(100_000);
  });
});
