import { useCallback, useRef, useState } from "react";
import type { AppError, LibraryQuery, TemplateSummary } from "../../bindings";
import { toAppError } from "../../errors";
import type { Platform } from "../../platform/types";
import { useLatest } from "../../shared/hooks";
import { useLoader } from "../../shared/useLoader";

export const FIRST_PAGE = 200;
export const PAGE = 100;

export interface LibraryResults {
  /** Which query the rows belong to; bumps on every new query or reload. */
  generation: number;
  status: "loading" | "ready" | "error";
  total: number;
  /** Sparse: index → template, filled page by page as the list scrolls. */
  rows: ReadonlyArray<TemplateSummary | undefined>;
  /** Templates in the first page, for the startup metric. */
  firstPageCount: number;
  error: AppError | null;
  /** A later page failed; the rows already shown stay. */
  pageError: AppError | null;
}

/** The rows of one query, as its first page left them and later pages filled them in. */
interface Loaded {
  generation: number;
  total: number;
  rows: ReadonlyArray<TemplateSummary | undefined>;
  firstPageCount: number;
}

const NO_ROWS: ReadonlyArray<TemplateSummary | undefined> = [];

function place(rows: ReadonlyArray<TemplateSummary | undefined>, total: number, offset: number, page: TemplateSummary[]) {
  const next = Array.from({ length: total }, (_, i) => rows[i]);
  page.forEach((t, i) => {
    if (offset + i < total) next[offset + i] = t;
  });
  return next;
}

/**
 * Results of one library query, loaded as the list needs them: the first 200 at once, then
 * pages of 100. A response that belongs to an older query is dropped, so a slow answer to
 * "bur" never overwrites the answer to "burn".
 */
export function useLibraryResults(platform: Platform, query: LibraryQuery, reloadToken: number) {
  // Numbers every query: the list is keyed by it, and a page of an older query is dropped.
  const generation = useRef(0);
  const requested = useRef(new Set<number>());
  const queryRef = useRef(query);
  const [pageError, setPageError] = useState<AppError | null>(null);
  const { text, sector, category, risk } = query;

  // The previous rows stay on screen until the new ones arrive: no flicker while typing.
  const first = useLoader(() => {
    const current = { text, sector, category, risk };
    const gen = ++generation.current;
    queryRef.current = current;
    requested.current = new Set();
    for (let offset = 0; offset < FIRST_PAGE; offset += PAGE) requested.current.add(offset);
    setPageError(null);
    return platform.searchLibrary(current, 0, FIRST_PAGE).then(
      (page): Loaded => ({
        generation: gen,
        total: page.total,
        rows: place([], page.total, page.offset, page.templates),
        firstPageCount: page.templates.length,
      }),
    );
  }, [platform, text, sector, category, risk, reloadToken]);
  const { data, error, loading, setData } = first;

  /** The generation whose rows are on screen; pages are only fetched for the query shown. */
  const shown = useLatest(data?.generation ?? 0);

  /** Makes sure rows start..end (inclusive) are loaded or on their way. */
  const ensureRange = useCallback(
    (start: number, end: number) => {
      const gen = generation.current;
      if (shown.current !== gen) return;
      for (let offset = Math.floor(start / PAGE) * PAGE; offset <= end; offset += PAGE) {
        if (requested.current.has(offset)) continue;
        requested.current.add(offset);
        platform.searchLibrary(queryRef.current, offset, PAGE).then(
          (page) => {
            if (gen !== generation.current) return;
            setData((prev) =>
              prev === null || prev.generation !== gen
                ? prev
                : { ...prev, total: page.total, rows: place(prev.rows, page.total, page.offset, page.templates) },
            );
          },
          (e: unknown) => {
            if (gen !== generation.current) return;
            // Forget the page so scrolling (or Retry) asks for it again.
            requested.current.delete(offset);
            setPageError(toAppError(e));
          },
        );
      }
    },
    [platform, shown, setData],
  );

  const clearPageError = useCallback(() => setPageError(null), []);

  const results: LibraryResults = {
    generation: data?.generation ?? 0,
    // Before the first answer there is nothing to show but "loading".
    status: loading || (data === null && error === null) ? "loading" : error ? "error" : "ready",
    total: data?.total ?? 0,
    rows: data?.rows ?? NO_ROWS,
    firstPageCount: data?.firstPageCount ?? 0,
    error,
    pageError,
  };

  return { results, ensureRange, clearPageError };
}
