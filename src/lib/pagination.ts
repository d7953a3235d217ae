import { z } from "zod";
import { ApiError } from "./errors";

/**
 * Cursor pagination (spec/api.md, "Answers"): `?limit=` 1–200 (default 50)
 * and an opaque `?cursor=`, the last row's sort key. Every list orders by a
 * key that ends in a unique id, and continues strictly after the cursor, so
 * rows added meanwhile never make a page repeat or skip a row.
 */
export const pageQuery = {
  limit: z.coerce.number().int().min(1).max(200).default(50),
  cursor: z.string().min(1).max(1000).optional(),
};

export interface Page<T> {
  items: T[];
  nextCursor: string | null;
}

export function encodeCursor(key: (string | number)[]): string {
  return btoa(JSON.stringify(key)).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

/** The sort key in a cursor, checked against its shape; a tampered cursor is a 400. */
export function decodeCursor<T extends z.ZodType>(cursor: string | undefined, shape: T): z.output<T> | null {
  if (cursor === undefined) return null;
  try {
    const json = atob(cursor.replace(/-/g, "+").replace(/_/g, "/"));
    const parsed = shape.safeParse(JSON.parse(json));
    if (parsed.success) return parsed.data;
  } catch {
    // falls through to the error
  }
  throw new ApiError("validation_failed", "The request is invalid.", [
    { path: "cursor", message: "is not a cursor this list gave out" },
  ]);
}

/** Takes one row more than the page to know whether another page follows. */
export function toPage<R, T>(
  rows: R[],
  limit: number,
  item: (row: R) => T,
  key: (row: R) => (string | number)[],
): Page<T> {
  const items = rows.slice(0, limit);
  const last = items.at(-1);
  return {
    items: items.map(item),
    nextCursor: rows.length > limit && last !== undefined ? encodeCursor(key(last)) : null,
  };
}

/** A row's sort key leaves the row before it is answered. */
export function withoutCursor<T extends { cursorAt: string }>(row: T): Omit<T, "cursorAt"> {
  const { cursorAt: _, ...rest } = row;
  return rest;
}
