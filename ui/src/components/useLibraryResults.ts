import { useCallback, useEffect, useRef, useState } from "react";
import type { AppError, LibraryQuery, TemplateSummary } from "../bindings";
import { toAppError } from "../errors";
import type { Platform } from "../platform/types";

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

const INITIAL: LibraryResults = {
  generation: 0,
  status: "loading",
  total: 0,
  rows: [],
  firstPageCount: 0,
  error: null,
  pageError: null,
};

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
  const [results, setResults] = useState<LibraryResults>(INITIAL);
  const generation = useRef(0);
  const requested = useRef(new Set<number>());
  const queryRef = useRef(query);
  /** The generation whose rows are on screen; pages are only fetched for the query shown. */
  const shown = useRef(0);
  const { text, sector, category, risk } = query;

  useEffect(() => {
    const current = { text, sector, category, risk };
    const gen = ++generation.current;
    queryRef.current = current;
    requested.current = new Set();
    for (let offset = 0; offset < FIRST_PAGE; offset += PAGE) requested.current.add(offset);
    // Keep showing the previous rows until the new ones arrive: no flicker while typing.
    setResults((prev) => ({ ...prev, status: "loading", pageError: null }));
    platform.searchLibrary(current, 0, FIRST_PAGE).then(
      (page) => {
        if (gen !== generation.current) return;
        shown.current = gen;
        setResults({
          generation: gen,
          status: "ready",
          total: page.total,
          rows: place([], page.total, page.offset, page.templates),
          firstPageCount: page.templates.length,
          error: null,
          pageError: null,
        });
      },
      (e: unknown) => {
        if (gen !== generation.current) return;
        setResults((prev) => ({ ...prev, generation: gen, status: "error", error: toAppError(e) }));
      },
    );
  }, [platform, text, sector, category, risk, reloadToken]);

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
            setResults((prev) =>
              prev.generation !== gen
                ? prev
                : { ...prev, total: page.total, rows: place(prev.rows, page.total, page.offset, page.templates) },
            );
          },
          (e: unknown) => {
            if (gen !== generation.current) return;
            // Forget the page so scrolling (or Retry) asks for it again.
            requested.current.delete(offset);
            setResults((prev) => (prev.generation !== gen ? prev : { ...prev, pageError: toAppError(e) }));
          },
        );
      }
    },
    [platform],
  );

  const clearPageError = useCallback(() => setResults((prev) => ({ ...prev, pageError: null })), []);

  return { results, ensureRange, clearPageError };
}
