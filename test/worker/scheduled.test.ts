import { createScheduledController } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it, vi } from "vitest";
import worker from "../../src/index";

describe("scheduled()", () => {
  it("runs the database health check on the five-minute trigger", async () => {
    const logged: string[] = [];
    const spy = vi.spyOn(console, "log").mockImplementation((line: string) => logged.push(line));
    await worker.scheduled(createScheduledController({ cron: "*/5 * * * *", scheduledTime: Date.now() }), env);
    spy.mockRestore();
    const events = logged.map((line) => JSON.parse(line));
    expect(events).toContainEqual(expect.objectContaining({ event: "job.db_health", database: "connected" }));
    expect(events).toContainEqual(expect.objectContaining({ event: "scheduled.job_done", job: "dbHealthCheck" }));
  });

  it("runs partition upkeep daily, idempotently", async () => {
    const logged: string[] = [];
    const spy = vi.spyOn(console, "log").mockImplementation((line: string) => logged.push(line));
    // A month far from now, so this test's partitions are its own.
    const scheduledTime = Date.UTC(2035, 4, 10, 3, 17);
    const controller = () => createScheduledController({ cron: "17 3 * * *", scheduledTime });
    await worker.scheduled(controller(), env);
    await worker.scheduled(controller(), env);
    spy.mockRestore();
    const runs = logged.map((line) => JSON.parse(line)).filter((e) => e.event === "job.partition_upkeep");
    expect(runs).toEqual([
      expect.objectContaining({
        created: ["test_runs_p2035_05", "test_runs_p2035_06", "test_runs_p2035_07"],
        healthy: true,
      }),
      expect.objectContaining({ created: [], defaultPartitionRows: 0, healthy: true }),
    ]);
  });

  it("fails loudly for a cron expression it does not know", async () => {
    vi.spyOn(console, "error").mockImplementation(() => {});
    await expect(
      worker.scheduled(createScheduledController({ cron: "0 0 31 2 *", scheduledTime: Date.now() }), env),
    ).rejects.toThrow(/no jobs are scheduled/);
    vi.restoreAllMocks();
  });
});
