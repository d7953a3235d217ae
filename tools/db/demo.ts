import type pg from "pg";

export const DEMO_REPO = { owner: "anchorpipe", name: "demo" } as const;

export interface DemoRepo {
  id: string;
  owner: string;
  name: string;
}

/** Creates the demo repository on first run; later runs find the same one. */
export async function ensureDemoRepo(pool: pg.Pool): Promise<DemoRepo> {
  await pool.query(
    "INSERT INTO repos (owner, name, visibility) VALUES ($1, $2, 'public') ON CONFLICT (owner, name) DO NOTHING",
    [DEMO_REPO.owner, DEMO_REPO.name],
  );
  const { rows } = await pool.query("SELECT id, owner, name FROM repos WHERE owner = $1 AND name = $2", [
    DEMO_REPO.owner,
    DEMO_REPO.name,
  ]);
  return rows[0] as DemoRepo;
}
