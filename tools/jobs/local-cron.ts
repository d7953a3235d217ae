/**
 * Cron Triggers for a local `wrangler dev`, which does not fire them by itself: at each minute (UTC) that one
 * of the crons matches, asks wrangler's trigger endpoint to run `scheduled()` for it with that minute as the
 * scheduled time — as Cloudflare would — so the jobs run on their schedule and write their job_runs rows.
 *
 * The crons are the five-field expressions of wrangler.toml (minute hour day-of-month month day-of-week), with
 * `*`, `*\/n`, numbers, ranges `a-b` and lists; enough for SCHEDULE, and refused otherwise.
 */

const FIELDS = [
  { name: "minute", min: 0, max: 59 },
  { name: "hour", min: 0, max: 23 },
  { name: "day of month", min: 1, max: 31 },
  { name: "month", min: 1, max: 12 },
  { name: "day of week", min: 0, max: 6 },
] as const;

export class CronSyntaxError extends Error {
  override name = "CronSyntaxError";
}

function parseField(text: string, field: (typeof FIELDS)[number], cron: string): Set<number> {
  const values = new Set<number>();
  for (const part of text.split(",")) {
    const match = /^(\*|(\d+)(?:-(\d+))?)(?:\/(\d+))?$/.exec(part);
    if (!match) throw new CronSyntaxError(`"${cron}": cannot read the ${field.name} field "${text}"`);
    const [, , from, to, step] = match;
    const low = from === undefined ? field.min : Number(from);
    const high = from === undefined ? field.max : to === undefined ? (step ? field.max : low) : Number(to);
    const every = step === undefined ? 1 : Number(step);
    if (low < field.min || high > field.max || low > high || every < 1) {
      throw new CronSyntaxError(`"${cron}": the ${field.name} field "${text}" is out of range`);
    }
    for (let value = low; value <= high; value += every) values.add(value);
  }
  return values;
}

/** A cron expression as a test of a UTC minute. */
export function parseCron(cron: string): (at: Date) => boolean {
  const parts = cron.trim().split(/\s+/);
  if (parts.length !== FIELDS.length) throw new CronSyntaxError(`"${cron}": expected five fields`);
  const [minute, hour, day, month, weekday] = parts.map((part, i) => parseField(part, FIELDS[i], cron));
  return (at) =>
    minute.has(at.getUTCMinutes()) &&
    hour.has(at.getUTCHours()) &&
    day.has(at.getUTCDate()) &&
    month.has(at.getUTCMonth() + 1) &&
    weekday.has(at.getUTCDay());
}

/** The crons due at the minute of `at`, in the order given. */
export function dueCrons(crons: readonly string[], at: Date): string[] {
  return crons.filter((cron) => parseCron(cron)(at));
}

export interface LocalCronOptions {
  /** The local Worker, e.g. http://localhost:8787. */
  workerUrl: string;
  crons: readonly string[];
  /** Told of each trigger fired and its answer (default: a line on stdout). */
  report?: (line: string) => void;
  fetch?: typeof fetch;
  now?: () => number;
}

/** The URL that makes `wrangler dev` run scheduled() for `cron` at `scheduledTime`. */
export function triggerUrl(workerUrl: string, cron: string, scheduledTime: number): string {
  const query = new URLSearchParams({ cron, time: String(scheduledTime), format: "json" });
  return `${workerUrl.replace(/\/$/, "")}/cdn-cgi/local/scheduled?${query}`;
}

/** Fires the crons due at the minute starting at `minute` (ms); their answers as reported lines. */
export async function fireDue(options: LocalCronOptions, minute: number): Promise<string[]> {
  const doFetch = options.fetch ?? fetch;
  const lines: string[] = [];
  for (const cron of dueCrons(options.crons, new Date(minute))) {
    let outcome: string;
    try {
      const res = await doFetch(triggerUrl(options.workerUrl, cron, minute));
      outcome = res.ok ? "ok" : `failed (${res.status}; the jobs' lines in the Worker's log say which)`;
    } catch (error) {
      outcome = `not delivered (${error instanceof Error ? error.message : String(error)})`;
    }
    lines.push(`• cron "${cron}" at ${new Date(minute).toISOString()}: ${outcome}`);
  }
  return lines;
}

/** Starts ticking at the next minute boundary; `stop()` ends it. Every cron is checked once per minute. */
export function startLocalCron(options: LocalCronOptions): { stop(): void } {
  for (const cron of options.crons) parseCron(cron); // refuse a cron it cannot read now, not in an hour
  const now = options.now ?? Date.now;
  const report = options.report ?? ((line: string) => console.log(line));
  let timer: ReturnType<typeof setTimeout> | undefined;
  let stopped = false;
  const schedule = () => {
    const next = Math.floor(now() / 60_000) * 60_000 + 60_000;
    timer = setTimeout(async () => {
      if (stopped) return;
      for (const line of await fireDue(options, next)) report(line);
      if (!stopped) schedule();
    }, next - now());
    timer.unref?.();
  };
  schedule();
  return {
    stop() {
      stopped = true;
      if (timer) clearTimeout(timer);
    },
  };
}
