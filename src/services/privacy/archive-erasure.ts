import { sql } from "drizzle-orm";
import type { ServiceContext } from "../context";
import { type LineMatcher, type LineRewriter, type ListingBucket, rewritePart } from "../retention/rewrite";

/**
 * Erasure in the test-run archive (issue 13): archived runs are copies of database rows, so the same rewrite
 * anchorpipe_erase_user applies to the database (migrations 0013/0014) is applied to every archived part that
 * names the person. Every repository's archive is scanned, since any repository's failure output may name
 * anyone: the cost grows with the whole archive (docs/privacy.md, README's Performance).
 *
 * Exactly the database's replacement: the needles (email, login, name, GitHub id, provider account ids, user
 * id; 3 characters or more) and the pattern are built by the same SQL as the function's, and the rewrite of a
 * line is done by PostgreSQL itself, column by column with the column types of the live tables and the same
 * exclusions (secrets and digests), anchorpipe_scrub_jsonb for jsonb. JavaScript only picks the lines to send
 * (LineMatcher: a superset of PostgreSQL's matches, on the line's JSON text), so a part that names nobody is
 * read once and never written.
 *
 * Runs before the database erasure, while the users row still holds the needles, and is resumable: its
 * progress (never the needles) is kept in the request's metadata, `archiveErasure`. A pass lists the
 * archive's keys in order from where the last run stopped. Retention may add parts behind that position
 * between runs (a new month of a repository, the next part of a month), so after the full pass, catch-up
 * passes look at objects uploaded since the previous pass began, until one finds nothing to rewrite; only
 * then, in the same run, does the database erasure follow.
 */

/** Columns anchorpipe_erase_user leaves alone (migration 0014): secrets and digests. A test checks the list. */
export const ERASURE_SKIPPED_COLUMNS = [
  "access_token",
  "refresh_token",
  "session_token",
  "token",
  "secret_ciphertext",
  "secret_sha256",
  "payload_sha256",
  "environment_hash",
] as const;

/** R2's clock and the Worker's may differ a little: a catch-up pass looks this much further back. */
const CLOCK_SKEW_MS = 5 * 60 * 1000;
const LIST_PAGE = 200;
export const ARCHIVE_PREFIX = "test-runs/";

export interface ArchiveErasureState {
  /** 1 is the full pass; later passes look only at objects uploaded since `since`. */
  pass: number;
  since: string | null;
  /** When this pass began (the Worker's clock): the next pass's `since`. */
  startedAt: string;
  /** The last key this pass is done with. */
  after: string | null;
  rewrittenThisPass: number;
  partsScanned: number;
  partsRewritten: number;
  linesRewritten: number;
  manifestsRepaired: number;
}

export interface PersonNeedles {
  /** Longest first, as the function orders them. */
  needles: string[];
  /** The function's PostgreSQL pattern (ARE, applied case-insensitively). */
  pattern: string;
}

/** The needles and pattern anchorpipe_erase_user would use for this person now (same SQL as 0013/0014). */
export async function personNeedles(ctx: ServiceContext, userId: string): Promise<PersonNeedles> {
  const result = await ctx.db.execute<{ needles: string[]; pattern: string | null }>(sql`
    with person as (select * from users where id = ${userId}::uuid),
    needles as (
      select distinct on (length(needle), needle) needle
      from person, unnest(array[person.email, person.github_login, person.name, person.github_id, person.id::text]
        || array(select provider_account_id from accounts where user_id = ${userId}::uuid)) as needle
      where needle is not null and length(needle) >= 3
      order by length(needle) desc, needle
    )
    select coalesce(array_agg(needle order by length(needle) desc, needle), '{}') as needles,
      '(?<![[:alnum:]_.-])(' || string_agg(regexp_replace(needle, ${String.raw`([].^$*+?(){}|\\[-])`}, ${String.raw`\\\1`}, 'g'),
        '|' order by length(needle) desc, needle) || ')(?![[:alnum:]_-])' as pattern
    from needles`);
  const row = result.rows[0];
  return { needles: row?.needles ?? [], pattern: row?.pattern ?? "" };
}

const escapeLiteral = (ch: string) => ch.replace(/[\\^$.*+?()[\]{}|/]/g, "\\$&");
const escapeInClass = (ch: string) => ch.replace(/[\\\]^[-]/g, "\\$&");

/**
 * A JavaScript test for archive text that holds a needle as PostgreSQL would match it, or more: each needle as
 * it appears inside a JSON string (JSON-escaped), each character with its lower and upper case (PostgreSQL's
 * case-insensitive match), and the function's word bounds loosened to ASCII (PostgreSQL may count a non-ASCII
 * letter as a word character, depending on the locale) and to JSON escapes (`\n` before a needle is a
 * newline, not the letter n).
 */
export function needleMatcher(needles: string[]): LineMatcher {
  const forms = needles.map((needle) => JSON.stringify(needle).slice(1, -1));
  const alternatives = forms
    .sort((a, b) => b.length - a.length)
    .map((form) =>
      [...form]
        .map((ch) => {
          const variants = [...new Set([ch, ch.toLowerCase(), ch.toUpperCase()])].filter((v) => [...v].length === 1);
          return variants.length > 1 ? `[${variants.map(escapeInClass).join("")}]` : escapeLiteral(ch);
        })
        .join(""),
    );
  if (!alternatives.length) return { test: () => false, overlap: 0 };
  const regex = new RegExp(
    String.raw`(?<=^|[^A-Za-z0-9_.\-]|\\[bfnrt]|\\u[0-9A-Fa-f]{4})(?:${alternatives.join("|")})(?![A-Za-z0-9_\-])`,
    "u",
  );
  const longest = Math.max(...forms.map((form) => form.length));
  // The regex runs at ~30 MB/s; most text names nobody. A first test, ~20 times faster (one regex of literals): the longest ASCII
  // run of each needle, lower-cased, in the lower-cased text. An ASCII character matches only ASCII ones
  // case-insensitively, so a text the regex matches always passes. A needle without such a run (3 or more
  // ASCII characters) turns the first test off.
  const cores = forms.map((form) =>
    (form.match(/[\x20-\x7e]+/g) ?? []).reduce((a, b) => (b.length > a.length ? b : a), "").toLowerCase(),
  );
  const quick = cores.every((core) => core.length >= 3) ? new RegExp(cores.map(escapeLiteral).join("|")) : null;
  return {
    test: (text) => (!quick || quick.test(text.toLowerCase())) && regex.test(text),
    overlap: 2 * longest + 16,
  };
}

/**
 * Archive lines rewritten by PostgreSQL as anchorpipe_erase_user rewrites the rows they copy: for each column
 * of the line's table (test_runs, test_cases, ingestions) that the function rewrites — text, varchar, text[]
 * and jsonb, minus ERASURE_SKIPPED_COLUMNS — the same regexp_replace or anchorpipe_scrub_jsonb. The row comes
 * back as jsonb text, the format the archive wrote it in; null where nothing changed. One statement per batch.
 */
export function scrubArchiveLines(ctx: ServiceContext, input: { pattern: string; pseudonym: string }): LineRewriter {
  return async (lines) => {
    const result = await ctx.db.execute<{ n: number; kind: string; row: string | null }>(sql`
      with input as (
        select n, line::jsonb as doc
        from jsonb_array_elements_text(${JSON.stringify(lines)}::jsonb) with ordinality as l(line, n)
      ), rewritable as (
        select c.relname::text as tbl, a.attname::text as col, a.atttypid::regtype as typ
        from pg_class c
        join pg_namespace ns on ns.oid = c.relnamespace
        join pg_attribute a on a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped
        where ns.nspname = 'public' and c.relname in ('test_runs', 'test_cases', 'ingestions')
          and a.atttypid in ('text'::regtype, 'character varying'::regtype, 'jsonb'::regtype, 'text[]'::regtype)
          and a.attname <> all (${`{${ERASURE_SKIPPED_COLUMNS.join(",")}}`}::text[])
      ), scrubbed as (
        select i.n, i.doc ->> 'kind' as kind, i.doc -> 'row' as before,
          (select coalesce(jsonb_object_agg(e.key, case
              when c.typ is null or e.value = 'null'::jsonb then e.value
              when c.typ = 'jsonb'::regtype then anchorpipe_scrub_jsonb(e.value, ${input.pattern}, ${input.pseudonym})
              when c.typ = 'text[]'::regtype then (
                select coalesce(jsonb_agg(to_jsonb(regexp_replace(x.item, ${input.pattern}, ${input.pseudonym}, 'gi'))
                  order by x.position), '[]'::jsonb)
                from jsonb_array_elements_text(e.value) with ordinality as x(item, position))
              else to_jsonb(regexp_replace(e.value #>> '{}', ${input.pattern}, ${input.pseudonym}, 'gi'))
            end), '{}'::jsonb)
           from jsonb_each(i.doc -> 'row') e
           left join rewritable c on c.col = e.key and c.tbl = case i.doc ->> 'kind'
             when 'test_run' then 'test_runs' when 'test_case' then 'test_cases' when 'ingestion' then 'ingestions' end
          ) as after
        from input i
      )
      select n::int as n, kind, case when after = before then null else after::text end as row
      from scrubbed order by n`);
    const out: (string | null)[] = lines.map(() => null);
    for (const row of result.rows) {
      if (row.row !== null) out[Number(row.n) - 1] = `{"kind":${JSON.stringify(row.kind)},"row":${row.row}}`;
    }
    return out;
  };
}

export function freshState(now: number): ArchiveErasureState {
  return {
    pass: 1,
    since: null,
    startedAt: new Date(now).toISOString(),
    after: null,
    rewrittenThisPass: 0,
    partsScanned: 0,
    partsRewritten: 0,
    linesRewritten: 0,
    manifestsRepaired: 0,
  };
}

/**
 * One run's share of the archive erasure: continues `state` until the archive is clean (done) or `stopAt`
 * (epoch ms, the Worker's clock) or `maxParts` parts scanned; `save` is called with the progress after every
 * listed page and every rewritten part, so a run that dies repeats at most a page.
 */
export async function eraseFromArchive(
  ctx: ServiceContext,
  bucket: ListingBucket,
  input: {
    requestId: string;
    needles: PersonNeedles;
    pseudonym: string;
    state: ArchiveErasureState | null;
    save: (state: ArchiveErasureState) => Promise<void>;
    stopAt: number;
    maxParts?: number;
  },
): Promise<{ done: boolean; state: ArchiveErasureState; scannedThisRun: number }> {
  const state = input.state ?? freshState(Date.now());
  const matcher = needleMatcher(input.needles.needles);
  const rewrite = scrubArchiveLines(ctx, { pattern: input.needles.pattern, pseudonym: input.pseudonym });
  let scannedThisRun = 0;
  for (;;) {
    const page = await bucket.list({ prefix: ARCHIVE_PREFIX, startAfter: state.after ?? undefined, limit: LIST_PAGE });
    const since = state.since ? new Date(state.since).getTime() - CLOCK_SKEW_MS : null;
    for (const object of page.objects) {
      const isPart = object.key.endsWith(".ndjson.gz");
      if (isPart && (since === null || new Date(object.uploaded).getTime() >= since)) {
        if (Date.now() >= input.stopAt || scannedThisRun >= (input.maxParts ?? Number.POSITIVE_INFINITY)) {
          await input.save(state);
          return { done: false, state, scannedThisRun };
        }
        const part = await rewritePart(bucket, object.key, {
          matcher,
          rewrite,
          note: { erasureRequest: input.requestId },
          now: ctx.now(),
        });
        scannedThisRun++;
        state.partsScanned++;
        state.linesRewritten += part.linesRewritten;
        if (part.manifestRepaired) state.manifestsRepaired++;
        if (part.rewritten) {
          state.partsRewritten++;
          state.rewrittenThisPass++;
        }
        state.after = object.key;
        if (part.rewritten || part.manifestRepaired) await input.save(state);
      } else {
        state.after = object.key;
      }
    }
    if (page.truncated && page.objects.length) {
      await input.save(state);
      continue;
    }
    // The pass is over. A catch-up pass that rewrote nothing means no part names the person.
    const clean = state.pass > 1 && state.rewrittenThisPass === 0;
    Object.assign(state, {
      pass: state.pass + 1,
      since: state.startedAt,
      startedAt: new Date(Date.now()).toISOString(),
      after: null,
      rewrittenThisPass: 0,
    });
    await input.save(state);
    if (clean) return { done: true, state, scannedThisRun };
  }
}
