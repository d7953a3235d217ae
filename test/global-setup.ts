import { generateKeyPairSync, randomBytes } from "node:crypto";
import type { TestProject } from "vitest/node";
import { serveLocalGateway } from "../tools/db/local-gateway.ts";
import { migrateUp } from "../tools/db/migrator.ts";
import { createTestDatabase } from "../tools/db/test-database.ts";
import { startFakeGithub } from "./support/fake-github.ts";

declare module "vitest" {
  export interface ProvidedContext {
    /**
     * What the Worker under test gets as DATABASE_URL: the gateway's address, as `anchorpipe_app` (the
     * Worker's role in production) with this run's password. A privilege missing from the grants fails here.
     */
    workerDatabaseUrl: string;
    /**
     * The Worker's DATABASE_URL_READONLY: the same database through the gateway as `anchorpipe_readonly`, the
     * role of a read replica in production, so a read endpoint that writes fails a test.
     */
    readonlyDatabaseUrl: string;
    /** The same gateway as `anchorpipe_migrator`, the schema's owner: for test set-up and checks beyond the app's rights. */
    ownerDatabaseUrl: string;
    /** The per-run server database for Node tests (its administrator's direct URL), or null when the run uses embedded PGlite. */
    serverDatabaseUrl: string | null;
    /** The per-run server database's login roles (direct URLs by role), or null on embedded PGlite. */
    serverLogins: Record<string, string> | null;
    backendKind: "embedded" | "server";
    /** The gateway's base URL, for reading request counts (GET /stats). */
    gatewayUrl: string;
    /** This run's key-encryption key for HMAC secrets. */
    hmacKek: string;
    /** The local fake GitHub's base URL (test/support/fake-github.ts): the Worker's GITHUB_API_URL. */
    githubApiUrl: string;
    /** The GitHub App this run registers with the fake. */
    githubAppId: string;
    /** That App's private key, PKCS#1 PEM as GitHub downloads it. */
    githubPrivateKey: string;
    /** The App's webhook secret for this run. */
    githubWebhookSecret: string;
  }
}

/**
 * Runs once per `npm test`, in Node: makes this run's database, applies the
 * migrations (as anchorpipe_migrator), and serves it through the local Neon
 * gateway on a free port, with passwords made for this run; starts the fake GitHub with an App key pair made
 * for this run.
 */
export default async function setup({ provide }: TestProject) {
  const database = await createTestDatabase();
  await migrateUp(database.backend.pool);
  const { running, urls } = await serveLocalGateway(database.backend);
  console.log(`test database: ${database.backend.description}; gateway on port ${running.port}`);

  provide("workerDatabaseUrl", urls.app);
  provide("ownerDatabaseUrl", urls.migrator);
  provide("readonlyDatabaseUrl", urls.readonly);
  provide("serverDatabaseUrl", database.connectionString);
  provide("serverLogins", database.logins ? Object.fromEntries(database.logins) : null);
  provide("backendKind", database.backend.kind);
  provide("gatewayUrl", `http://127.0.0.1:${running.port}`);
  provide("hmacKek", `1:${randomBytes(32).toString("base64")}`);

  const githubAppId = "424242";
  const { privateKey, publicKey } = generateKeyPairSync("rsa", {
    modulusLength: 2048,
    privateKeyEncoding: { type: "pkcs1", format: "pem" },
    publicKeyEncoding: { type: "spki", format: "pem" },
  });
  const fakeGithub = await startFakeGithub({ appId: githubAppId, publicKey });
  provide("githubApiUrl", fakeGithub.url);
  provide("githubAppId", githubAppId);
  provide("githubPrivateKey", privateKey);
  provide("githubWebhookSecret", randomBytes(32).toString("hex"));

  return async () => {
    await fakeGithub.close();
    await running.close();
    await database.drop();
  };
}
