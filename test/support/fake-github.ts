import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

/**
 * A local stand-in for the few GitHub REST endpoints the App calls (installation tokens, workflow run
 * artifacts, artifact zips, check runs), checking the App's JWT and installation tokens as GitHub does, plus
 * `/_fake/` control endpoints the worker tests drive (test/worker/github-fake.ts). Started once per run by
 * test/global-setup.ts; test files share it, so its state is keyed by installation and repository.
 */
export interface FakeGithubOptions {
  appId: string;
  /** The App's public key (PEM): the fake verifies JWTs with it as GitHub does with the registered key. */
  publicKey: string;
}

export interface RunningFakeGithub {
  url: string;
  close(): Promise<void>;
}

export async function startFakeGithub(_options: FakeGithubOptions): Promise<RunningFakeGithub> {
  const server = createServer((request: IncomingMessage, response: ServerResponse) => {
    void request;
    response.writeHead(404, { "content-type": "application/json" });
    response.end(JSON.stringify({ message: "Not Found" }));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    close: () => new Promise<void>((resolve, reject) => server.close((error) => (error ? reject(error) : resolve()))),
  };
}
