import type { Db } from "../db/client";
import type { Config } from "../env";

export interface JobContext {
  config: Config;
  db: Db | undefined;
  /** When the trigger fired. */
  scheduledTime: Date;
}

export type Job = (ctx: JobContext) => Promise<void>;
