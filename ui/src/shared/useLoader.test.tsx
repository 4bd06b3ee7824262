import { act, renderHook } from "@testing-library/react";
import { describe, expect, it, vi } from "vitest";
import { appError, deferred } from "../test/fakePlatform";
import { useLoader, type LoaderOptions } from "./useLoader";

/** A load function whose every answer the test gives by hand, in any order. */
function controlled<T>() {
  const answers: Array<ReturnType<typeof deferred<T>>> = [];
  const load = vi.fn((_input: string) => {
    const answer = deferred<T>();
    answers.push(answer);
    return answer.promise;
  });
  function answer(index: number) {
    const found = answers[index];
    if (!found) throw new Error(`request ${index} was not made`);
    return found;
  }
  return { load, answer };
}

interface Props {
  input: string;
  options?: LoaderOptions;
}

function setup<T>(initial: Props) {
  const c = controlled<T>();
  const hook = renderHook(({ input, options }: Props) => useLoader(() => c.load(input), [input], options), { initialProps: initial });
  return { ...c, ...hook };
}

const storage = appError("storage", "database is locked");
const unavailable = appError("audit_unavailable", "the signing key is not in the keychain");

describe("useLoader", () => {
  it("loads on mount, and is loading until the answer comes", async () => {
    const { load, answer, result } = setup<string>({ input: "a" });
    expect(load).toHaveBeenCalledTimes(1);
    expect(load).toHaveBeenLastCalledWith("a");
    expect(result.current).toMatchObject({ data: null, error: null, loading: true });

    await act(async () => answer(0).resolve("A"));
    expect(result.current).toMatchObject({ data: "A", error: null, loading: false });
  });

  it("ignores the answer of a request superseded by new inputs, whichever order they arrive in", async () => {
    const { load, answer, result, rerender } = setup<string>({ input: "bur" });
    rerender({ input: "burn" });
    expect(load).toHaveBeenCalledTimes(2);
    expect(load).toHaveBeenLastCalledWith("burn");

    await act(async () => answer(1).resolve("BURN"));
    expect(result.current).toMatchObject({ data: "BURN", loading: false });
    await act(async () => answer(0).resolve("BUR"));
    expect(result.current.data).toBe("BURN");

    // A stale failure is ignored too, and a stale answer does not end the newer load's wait.
    rerender({ input: "burns" });
    rerender({ input: "burnt" });
    await act(async () => answer(2).reject(storage));
    expect(result.current).toMatchObject({ data: "BURN", error: null, loading: true });
    await act(async () => answer(3).resolve("BURNT"));
    expect(result.current).toMatchObject({ data: "BURNT", error: null, loading: false });
  });

  it("keeps the last data next to an error, and keeps the error until the next answer", async () => {
    const { answer, result } = setup<string>({ input: "a" });
    await act(async () => answer(0).resolve("A"));

    act(() => result.current.reload());
    await act(async () => answer(1).reject(storage));
    expect(result.current).toMatchObject({ data: "A", error: storage, loading: false });

    act(() => result.current.reload());
    expect(result.current).toMatchObject({ data: "A", error: storage, loading: true });
    await act(async () => answer(2).resolve("A2"));
    expect(result.current).toMatchObject({ data: "A2", error: null, loading: false });
  });

  it("turns a rejection that is not an AppError into one", async () => {
    const { answer, result } = setup<string>({ input: "a" });
    await act(async () => answer(0).reject(new Error("boom")));
    expect(result.current.error).toMatchObject({ code: "internal", message: "boom" });
  });

  it("reloads with the same inputs, and its answer wins over one still on its way", async () => {
    const { load, answer, result } = setup<string>({ input: "a" });
    act(() => result.current.reload());
    expect(load).toHaveBeenCalledTimes(2);
    expect(load).toHaveBeenLastCalledWith("a");

    await act(async () => answer(1).resolve("new"));
    await act(async () => answer(0).resolve("old"));
    expect(result.current).toMatchObject({ data: "new", loading: false });
  });

  it("loads nothing while disabled; enabling loads once, however often reload was asked for meanwhile", async () => {
    const { load, answer, result, rerender } = setup<string>({ input: "a", options: { enabled: false } });
    act(() => {
      result.current.reload();
      result.current.reload();
    });
    expect(load).not.toHaveBeenCalled();
    expect(result.current).toMatchObject({ data: null, loading: false });

    rerender({ input: "a", options: { enabled: true } });
    expect(load).toHaveBeenCalledTimes(1);
    await act(async () => answer(0).resolve("A"));
    expect(result.current.data).toBe("A");
  });

  it("still uses an answer that arrives after it was disabled, unless told to drop it", async () => {
    const kept = setup<string>({ input: "a" });
    kept.rerender({ input: "a", options: { enabled: false } });
    await act(async () => kept.answer(0).resolve("A"));
    expect(kept.result.current).toMatchObject({ data: "A", loading: false });

    const dropped = setup<string>({ input: "a", options: { dropWhenDisabled: true } });
    dropped.rerender({ input: "a", options: { enabled: false, dropWhenDisabled: true } });
    await act(async () => dropped.answer(0).resolve("A"));
    expect(dropped.result.current).toMatchObject({ data: null, loading: false });

    dropped.rerender({ input: "a", options: { enabled: true, dropWhenDisabled: true } });
    await act(async () => dropped.answer(1).resolve("A again"));
    expect(dropped.result.current.data).toBe("A again");
  });

  it("drops the data on failure when told to", async () => {
    const { answer, result, rerender } = setup<string>({ input: "a", options: { clearOnError: true } });
    await act(async () => answer(0).resolve("A"));
    rerender({ input: "b", options: { clearOnError: true } });
    expect(result.current.data).toBe("A");
    await act(async () => answer(1).reject(storage));
    expect(result.current).toMatchObject({ data: null, error: storage, loading: false });
  });

  it("hides the error as soon as a new load starts when told to", async () => {
    const { answer, result } = setup<string>({ input: "a", options: { clearErrorOnStart: true } });
    await act(async () => answer(0).reject(storage));
    expect(result.current.error).toEqual(storage);

    act(() => result.current.reload());
    expect(result.current).toMatchObject({ error: null, loading: true });
    await act(async () => answer(1).resolve("A"));
    expect(result.current).toMatchObject({ data: "A", error: null });
  });

  it("reloads quietly at once, even while disabled, without setting loading, and supersedes a load on its way", async () => {
    const { load, answer, result, rerender } = setup<string>({ input: "a" });
    act(() => result.current.reloadQuietly());
    expect(load).toHaveBeenCalledTimes(2);
    // The first load's wait is still shown; the quiet answer ends it.
    expect(result.current.loading).toBe(true);
    await act(async () => answer(1).resolve("quiet"));
    expect(result.current).toMatchObject({ data: "quiet", loading: false });
    await act(async () => answer(0).resolve("loud"));
    expect(result.current.data).toBe("quiet");

    rerender({ input: "a", options: { enabled: false } });
    act(() => result.current.reloadQuietly());
    expect(load).toHaveBeenCalledTimes(3);
    expect(result.current.loading).toBe(false);
    await act(async () => answer(2).reject(storage));
    expect(result.current).toMatchObject({ data: "quiet", error: storage, loading: false });
  });

  it("lets the data be changed in place", async () => {
    const { answer, result } = setup<string[]>({ input: "a" });
    await act(async () => answer(0).resolve(["x", "y"]));
    act(() => result.current.setData((prev) => prev?.filter((v) => v !== "x") ?? prev));
    expect(result.current.data).toEqual(["y"]);
  });

  it("merges more pages in, keeps their failure apart, and drops a page asked for under old inputs", async () => {
    const { answer, result, rerender } = setup<string[]>({ input: "a", options: { clearOnError: true } });
    await act(async () => answer(0).resolve(["a1"]));
    const merge = (data: string[] | null, page: string[]) => [...(data ?? []), ...page];

    const older = deferred<string[]>();
    act(() => result.current.loadMore(() => older.promise, merge));
    expect(result.current).toMatchObject({ loading: false, loadingMore: true, moreError: null });
    await act(async () => older.resolve(["a2"]));
    expect(result.current).toMatchObject({ data: ["a1", "a2"], loadingMore: false });

    const failing = deferred<string[]>();
    act(() => result.current.loadMore(() => failing.promise, merge));
    await act(async () => failing.reject(unavailable));
    expect(result.current).toMatchObject({ data: ["a1", "a2"], error: null, loadingMore: false, moreError: unavailable });

    // A failed load leaves the page's error; the next `loadMore` clears it.
    act(() => result.current.reload());
    await act(async () => answer(1).reject(storage));
    expect(result.current).toMatchObject({ data: null, error: storage, moreError: unavailable });
    const retried = deferred<string[]>();
    act(() => result.current.loadMore(() => retried.promise, merge));
    expect(result.current.moreError).toBeNull();
    await act(async () => retried.resolve(["b"]));

    // New inputs: the page still on its way is no longer waited for, and is dropped when it comes.
    const stale = deferred<string[]>();
    act(() => result.current.loadMore(() => stale.promise, merge));
    rerender({ input: "c", options: { clearOnError: true } });
    expect(result.current).toMatchObject({ loading: true, loadingMore: false });
    await act(async () => answer(2).resolve(["c1"]));
    await act(async () => stale.resolve(["stale"]));
    expect(result.current).toMatchObject({ data: ["c1"], loading: false, loadingMore: false });
  });

  it("clears a page's error once a load succeeds", async () => {
    const { answer, result } = setup<string[]>({ input: "a" });
    await act(async () => answer(0).resolve(["a1"]));
    const failing = deferred<string[]>();
    act(() => result.current.loadMore(() => failing.promise, (data, page) => [...(data ?? []), ...page]));
    await act(async () => failing.reject(unavailable));
    expect(result.current.moreError).toEqual(unavailable);

    act(() => result.current.reload());
    expect(result.current.moreError).toEqual(unavailable);
    await act(async () => answer(1).resolve(["a1"]));
    expect(result.current.moreError).toBeNull();
  });

  it("hands out the same functions on every render, so effects that use them do not re-subscribe", async () => {
    const { answer, result, rerender } = setup<string>({ input: "a" });
    const first = result.current;
    await act(async () => answer(0).resolve("A"));
    rerender({ input: "b" });
    expect(result.current.reload).toBe(first.reload);
    expect(result.current.reloadQuietly).toBe(first.reloadQuietly);
    expect(result.current.setData).toBe(first.setData);
    expect(result.current.loadMore).toBe(first.loadMore);
  });
});
