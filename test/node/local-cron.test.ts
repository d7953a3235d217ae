import { describe, expect, it } from "vitest";
import { SCHEDULE } from "../../src/jobs/index.ts";
import { CronSyntaxError, dueCrons, fireDue, parseCron, triggerUrl } from "../../tools/jobs/local-cron.ts";

const crons = Object.keys(SCHEDULE);
const at = (iso: string) => new Date(iso);

describe("local Cron Triggers for wrangler dev", () => {
  it("reads SCHEDULE's crons and says which are due at a minute (UTC)", () => {
    expect(dueCrons(crons, at("2026-12-02T10:05:00Z"))).toEqual(["*/5 * * * *"]);
    expect(dueCrons(crons, at("2026-12-02T10:00:00Z"))).toEqual(["*/5 * * * *", "0 * * * *"]);
    expect(dueCrons(crons, at("2026-12-02T03:17:00Z"))).toEqual(["17 3 * * *"]);
    expect(dueCrons(crons, at("2026-12-02T10:07:00Z"))).toEqual([]);
    const minutes = Array.from({ length: 24 * 60 }, (_, i) => new Date(Date.UTC(2026, 11, 2) + i * 60_000));
    const count = (cron: string) => minutes.filter(parseCron(cron)).length;
    expect([count("*/5 * * * *"), count("0 * * * *"), count("17 3 * * *")]).toEqual([288, 24, 1]);
  });

  it("reads ranges, lists and steps, and refuses what it cannot read", () => {
    const weekdays = parseCron("30 8-18/2 * * 1-5");
    expect(weekdays(at("2026-12-02T10:30:00Z"))).toBe(true); // a Wednesday
    expect(weekdays(at("2026-12-02T11:30:00Z"))).toBe(false);
    expect(weekdays(at("2026-12-06T10:30:00Z"))).toBe(false); // a Sunday
    expect(parseCron("0,30 * * * *")(at("2026-12-02T10:30:00Z"))).toBe(true);
    for (const bad of ["* * * *", "61 * * * *", "@hourly", "0 * * JAN *", "*/0 * * * *"]) {
      expect(() => parseCron(bad), bad).toThrow(CronSyntaxError);
    }
  });

  it("asks wrangler's trigger endpoint for each due cron with the minute as the scheduled time", async () => {
    const asked: string[] = [];
    const minute = Date.parse("2026-12-02T10:00:00Z");
    const lines = await fireDue(
      {
        workerUrl: "http://localhost:8787/",
        crons,
        fetch: (async (url: string) => {
          asked.push(url);
          // The second trigger (the hourly one) fails in the Worker.
          return new Response("ok", { status: asked.length === 2 ? 500 : 200 });
        }) as typeof fetch,
      },
      minute,
    );
    expect(asked).toEqual([
      triggerUrl("http://localhost:8787", "*/5 * * * *", minute),
      triggerUrl("http://localhost:8787", "0 * * * *", minute),
    ]);
    const query = new URL(asked[0]).searchParams;
    expect([query.get("cron"), query.get("time")]).toEqual(["*/5 * * * *", String(minute)]);
    expect(new URL(asked[0]).pathname).toBe("/cdn-cgi/local/scheduled");
    expect(lines).toEqual([
      '• cron "*/5 * * * *" at 2026-12-02T10:00:00.000Z: ok',
      expect.stringMatching(/^• cron "0 \* \* \* \*" at .*: failed \(500/),
    ]);
  });
});
