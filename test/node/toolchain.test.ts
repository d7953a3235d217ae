import { readFileSync } from "node:fs";
import { parse } from "smol-toml";
import { describe, expect, it } from "vitest";
import { SCHEDULE } from "../../src/jobs/index.ts";

describe("toolchain", () => {
  it("runs on the pinned Node 22", () => {
    console.log(`test process: node ${process.version} (${process.execPath})`);
    expect(Number(process.versions.node.split(".")[0])).toBeGreaterThanOrEqual(22);
  });

  it("wrangler.toml triggers exactly the crons that scheduled() knows", () => {
    const config = parse(readFileSync(new URL("../../wrangler.toml", import.meta.url), "utf8")) as {
      triggers: { crons: string[] };
    };
    expect([...config.triggers.crons].sort()).toEqual(Object.keys(SCHEDULE).sort());
  });
});
