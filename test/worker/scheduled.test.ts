import { createExecutionContext, createScheduledController, waitOnExecutionContext } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it, vi } from "vitest";
import worker from "../../src/index";

describe("scheduled()", () => {
  it("runs the database health check on the five-minute trigger", async () => {
    const logged: string[] = [];
    const spy = vi.spyOn(console, "log").mockImplementation((line: string) => logged.push(line));
    const ctx = createExecutionContext();
    await worker.scheduled(createScheduledController({ cron: "*/5 * * * *", scheduledTime: Date.now() }), env, ctx);
    await waitOnExecutionContext(ctx);
    spy.mockRestore();
    const events = logged.map((line) => JSON.parse(line));
    expect(events).toContainEqual(expect.objectContaining({ event: "job.db_health", database: "connected" }));
    expect(events).toContainEqual(expect.objectContaining({ event: "scheduled.job_done", job: "dbHealthCheck" }));
  });

  it("fails loudly for a cron expression it does not know", async () => {
    vi.spyOn(console, "error").mockImplementation(() => {});
    const ctx = createExecutionContext();
    await expect(
      worker.scheduled(createScheduledController({ cron: "0 0 31 2 *", scheduledTime: Date.now() }), env, ctx),
    ).rejects.toThrow(/no jobs are scheduled/);
    vi.restoreAllMocks();
  });
});
