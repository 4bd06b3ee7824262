import { useCallback, useEffect, useRef, useState, type DependencyList, type Dispatch, type SetStateAction } from "react";
import type { AppError } from "../bindings";
import { toAppError } from "../errors";
import { useLatest } from "./hooks";

export interface LoaderOptions {
  /** While false nothing is asked for; turning true loads. Defaults to true. */
  enabled?: boolean;
  /**
   * A failed load drops the data too, so results of other inputs never stand under the error.
   * Without it the last good data stays on screen next to the error.
   */
  clearOnError?: boolean;
  /**
   * A new load hides the last error at once, so a retry reads as loading rather than as the
   * old failure. Without it the error stays until the next answer.
   */
  clearErrorOnStart?: boolean;
  /**
   * An answer still on its way when `enabled` turns false (or the component goes away) is
   * dropped, as if a newer load had started. Without it such an answer is still used.
   */
  dropWhenDisabled?: boolean;
}

export interface Loader<T> {
  /** The latest answer, kept while a new load is on its way; null before the first one. */
  data: T | null;
  /** Why the latest load failed; cleared by the next answer. */
  error: AppError | null;
  /** A load (not a quiet one) is on its way. */
  loading: boolean;
  /** Loads again, now if enabled, otherwise once enabled. Stable. */
  reload: () => void;
  /**
   * Loads again at once, even while disabled, without setting `loading`: for background
   * updates that must not flash a busy state. Stable.
   */
  reloadQuietly: () => void;
  /** Changes the data in place, for example with what an action returned. Stable. */
  setData: Dispatch<SetStateAction<T | null>>;
  /**
   * Asks for more of the same data (an older page) and merges it in. The answer is dropped
   * if a load has started since, because it belongs to other inputs. Stable.
   */
  loadMore: <P>(request: () => Promise<P>, merge: (data: T | null, page: P) => T | null) => void;
  /** A `loadMore` is on its way. */
  loadingMore: boolean;
  /** Why the latest `loadMore` failed; cleared by the next `loadMore` or a successful load. */
  moreError: AppError | null;
}

/**
 * Data from `load`, loaded when the component mounts and again whenever `deps` change. Only
 * the answer to the latest request is used, so a slow answer never overwrites a newer one.
 */
export function useLoader<T>(load: () => Promise<T>, deps: DependencyList, options: LoaderOptions = {}): Loader<T> {
  const { enabled = true, dropWhenDisabled = false } = options;
  const [data, setData] = useState<T | null>(null);
  const [error, setError] = useState<AppError | null>(null);
  const [loading, setLoading] = useState(false);
  const [loadingMore, setLoadingMore] = useState(false);
  const [moreError, setMoreError] = useState<AppError | null>(null);
  const [reloads, setReloads] = useState(0);
  // Bumped by every load; an answer whose number is no longer the latest is dropped.
  const seq = useRef(0);
  // Quiet reloads come from timers and handlers set up in earlier renders.
  const latestLoad = useLatest(load);
  const latestOptions = useLatest(options);

  const start = useCallback(
    (quiet: boolean) => {
      const mine = ++seq.current;
      const { clearOnError = false, clearErrorOnStart = false } = latestOptions.current;
      if (clearErrorOnStart) setError(null);
      if (!quiet) setLoading(true);
      // A page asked for under the previous load will be dropped, so it no longer counts as on its way.
      setLoadingMore(false);
      latestLoad.current().then(
        (value) => {
          if (mine !== seq.current) return;
          // The updater form, because a `value` that is itself a function would be taken for one.
          setData(() => value);
          setError(null);
          setMoreError(null);
          setLoading(false);
        },
        (e: unknown) => {
          if (mine !== seq.current) return;
          if (clearOnError) setData(null);
          setError(toAppError(e));
          setLoading(false);
        },
      );
    },
    [latestLoad, latestOptions],
  );

  useEffect(() => {
    if (!enabled) return;
    start(false);
    if (!dropWhenDisabled) return;
    return () => {
      seq.current += 1;
      setLoading(false);
      setLoadingMore(false);
    };
    // `deps` stand for what `load` reads; the latest `load` is used whenever they change.
  }, [start, enabled, reloads, ...deps]);

  const reload = useCallback(() => setReloads((n) => n + 1), []);
  const reloadQuietly = useCallback(() => start(true), [start]);

  const loadMore = useCallback(<P>(request: () => Promise<P>, merge: (current: T | null, page: P) => T | null) => {
    const mine = seq.current;
    setLoadingMore(true);
    setMoreError(null);
    request().then(
      (page) => {
        if (mine !== seq.current) return;
        setData((current) => merge(current, page));
        setLoadingMore(false);
      },
      (e: unknown) => {
        if (mine !== seq.current) return;
        setMoreError(toAppError(e));
        setLoadingMore(false);
      },
    );
  }, []);

  return { data, error, loading, reload, reloadQuietly, setData, loadMore, loadingMore, moreError };
}
