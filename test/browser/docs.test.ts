/**
 * The API reference at /docs as a person sees it: the real Worker under `wrangler dev` serves the page,
 * Scalar's bundle (a static asset) and /api/openapi.json; headless Chromium, driven by playwright-core,
 * renders it. The ingestion and repository operations must show up, and the page must neither break its
 * CSP nor reach for anything beyond this origin (no CDN fonts, no Scalar services): CI has no internet.
 *
 * Needs Debian's Chromium (`apt-get install chromium`; CHROMIUM_PATH points elsewhere). `npm run
 * test:browser` runs it; it is not part of `npm test`. Screenshots are left in a temporary directory whose
 * path is printed.
 */
import { existsSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type Browser, chromium, type Locator, type Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startWranglerDev, type WranglerDev } from "../../tools/wrangler-dev.ts";

const CHROMIUM = process.env.CHROMIUM_PATH || "/usr/bin/chromium";
/** Headless in a container, and quiet: without these Chromium keeps calling Google's services. */
const CHROMIUM_ARGS = [
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

interface Document {
  info: { title: string };
  paths: Record<string, Record<string, { summary?: string; tags?: string[] }>>;
}

describe("the API reference at /docs, rendered by Scalar in Chromium", () => {
  let worker: WranglerDev | undefined;
  let browser: Browser | undefined;
  let page: Page;
  let doc: Document;
  let workDir: string | undefined;
  let screenshots: string;
  /** Console errors and uncaught exceptions of the page. */
  const problems: string[] = [];
  /** Every request the page made to another origin (all of them are refused). */
  const offOrigin: string[] = [];

  beforeAll(async () => {
    if (!existsSync(CHROMIUM)) {
      throw new Error(
        `No Chromium at ${CHROMIUM}: npm run test:browser needs Debian's chromium. Install it with ` +
          "`apt-get update && apt-get install -y --no-install-recommends chromium` (as root), or point " +
          "CHROMIUM_PATH at a Chromium binary.",
      );
    }
    workDir = await mkdtemp(join(tmpdir(), "anchorpipe-browser-"));
    screenshots = await mkdtemp(join(tmpdir(), "anchorpipe-docs-screenshots-"));
    worker = await startWranglerDev({
      vars: { ENVIRONMENT: "test" },
      // Liveness only: no database behind this Worker, and the reference needs none.
      healthPath: "/api/health/live",
      persistTo: join(workDir, "wrangler-state"),
    });
    const origin = new URL(worker.url).origin;
    doc = (await (await fetch(`${worker.url}/api/openapi.json`)).json()) as Document;

    // playwright-core gives the browser a fresh temporary profile (--user-data-dir) and removes it on close.
    browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
    const context = await browser.newContext({ viewport: { width: 1400, height: 900 } });
    await context.route(
      (url) => url.origin !== origin,
      (route) => {
        offOrigin.push(route.request().url());
        return route.abort("blockedbyclient");
      },
    );
    page = await context.newPage();
    page.on("console", (message) => {
      // The browser's own request for a favicon (the Worker has none) is not the page's doing.
      if (message.type() === "error" && !message.location().url.endsWith("/favicon.ico")) {
        problems.push(`console error: ${message.text()}`);
      }
    });
    page.on("pageerror", (error) => problems.push(`uncaught: ${error.message}`));

    const res = await page.goto(`${worker.url}/docs`);
    expect(res?.status()).toBe(200);
    // Scalar has fetched the document and rendered it.
    await visible(page.getByRole("heading", { name: doc.info.title, exact: true }), "the document's title");
    await page.screenshot({ path: join(screenshots, "docs.png") });
    console.log(`screenshots of /docs: ${screenshots}`);
  }, 120_000);

  afterAll(async () => {
    await browser?.close();
    await worker?.stop();
    if (workDir) await rm(workDir, { recursive: true, force: true });
  }, 30_000);

  /** Waits until the locator is visible; on failure says what was missing and what the page complained of. */
  async function visible(locator: Locator, what: string) {
    try {
      await locator.waitFor({ state: "visible", timeout: 20_000 });
    } catch (error) {
      throw new Error(
        `${what} is not visible on /docs (${(error as Error).message.split("\n")[0]}); page problems so far: ` +
          `${JSON.stringify(problems)}; requests to other origins: ${JSON.stringify(offOrigin)}`,
      );
    }
  }

  const summariesOf = (tag: string) =>
    Object.entries(doc.paths).flatMap(([path, item]) =>
      Object.entries(item)
        .filter(([, operation]) => operation.tags?.includes(tag))
        .map(([method, operation]) => ({ route: `${method.toUpperCase()} ${path}`, summary: operation.summary ?? "" })),
    );

  /** Opens a tag's group in the sidebar, then each of its operations, whose heading must appear. */
  async function expectRendered(tag: string, operations: { route: string; summary: string }[]) {
    const sidebar = page.getByRole("navigation");
    await sidebar.getByText(tag, { exact: true }).click();
    for (const { route, summary } of operations) {
      const entry = sidebar.getByText(summary, { exact: true });
      await visible(entry, `the sidebar entry of ${route} ("${summary}")`);
      await entry.click();
      await visible(page.getByRole("heading", { name: summary, exact: true }), `the heading of ${route}`);
    }
  }

  it("shows the ingestion operation", async () => {
    const operations = summariesOf("ingestion");
    expect(operations).toEqual([
      { route: "POST /ingestion", summary: expect.stringMatching(/^Upload CI test results/) },
    ]);
    await expectRendered("ingestion", operations);
    await page.screenshot({ path: join(screenshots, "ingestion.png") });
    // The body's fields, from the contract's schema (the name's element also holds a "copy link" button).
    const repoIdField = page
      .getByText(/^repo_id/)
      .filter({ visible: true })
      .first();
    await visible(repoIdField, "the payload's repo_id field");
  });

  it("shows the repository operations", async () => {
    const operations = summariesOf("repositories");
    expect(operations.map((operation) => operation.route)).toEqual(
      expect.arrayContaining(["GET /repos", "POST /repos", "GET /repos/{repoId}"]),
    );
    await expectRendered("repositories", operations);
    await page.screenshot({ path: join(screenshots, "repositories.png") });
  });

  it("keeps to its CSP and its own origin, without errors", () => {
    expect(problems).toEqual([]);
    expect(offOrigin).toEqual([]);
  });
});
