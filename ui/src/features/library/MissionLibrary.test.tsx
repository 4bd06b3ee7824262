import { act, fireEvent, screen, waitFor, within } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { describe, expect, it, vi } from "vitest";
import type { LibraryPage, LibraryQuery } from "../../bindings";
import { appError, createFakePlatform, deferred, makeTemplate, renderWithPlatform } from "../../test/fakePlatform";
import { MissionLibrary, SEARCH_DEBOUNCE_MS } from "./MissionLibrary";

const ALL: LibraryQuery = { text: null, sector: null, category: null, risk: null };

function rows() {
  return screen.queryAllByTestId("template-row");
}

function rowNames() {
  return rows().map((r) => r.querySelector(".row-name")?.textContent);
}

function lastQuery(mock: { mock: { calls: [LibraryQuery, number, number][] } }): LibraryQuery | undefined {
  return mock.mock.calls[mock.mock.calls.length - 1]?.[0];
}

describe("MissionLibrary search", () => {
  it("searches as you type and shows the results", async () => {
    const platform = createFakePlatform([
      makeTemplate(1, { name: "Burn Rate Watch" }),
      makeTemplate(2, { name: "Cash Burn Alert" }),
      makeTemplate(3, { name: "Payroll Audit" }),
    ]);
    const user = userEvent.setup();
    renderWithPlatform(<MissionLibrary onDeploy={vi.fn()} />, platform);

    await waitFor(() => expect(rows()).toHaveLength(3));
    expect(platform.searchLibrary).toHaveBeenCalledWith(ALL, 0, 200);
    expect(screen.getByText("3 missions")).toBeInTheDocument();

    await user.type(screen.getByTestId("library-search"), "burn");

    await waitFor(() => expect(rows()).toHaveLength(2));
    expect(lastQuery(platform.searchLibrary)).toEqual({ ...ALL, text: "burn" });
    expect(rowNames()).toEqual(["Burn Rate Watch", "Cash Burn Alert"]);
    expect(screen.getByText("2 missions")).toBeInTheDocument();
    // The sector counts follow the text too.
    expect(platform.libraryFacets).toHaveBeenLastCalledWith("burn", null);
  });

  it("waits for a pause in typing before it searches", async () => {
    vi.useFakeTimers();
    try {
      const platform = createFakePlatform();
      renderWithPlatform(<MissionLibrary onDeploy={vi.fn()} />, platform);
      await act(async () => {
        await vi.advanceTimersByTimeAsync(200);
      });
      expect(platform.searchLibrary).toHaveBeenCalledTimes(1);

      const search = screen.getByTestId("library-search");
      fireEvent.change(search, { target: { value: "b" } });
      await act(async () => {
        await vi.advanceTimersByTimeAsync(40);
      });
      fireEvent.change(search, { target: { value: "bu" } });
      await act(async () => {
        await vi.advanceTimersByTimeAsync(40);
      });
      fireEvent.change(search, { target: { value: "burn" } });
      await act(async () => {
        await vi.advanceTimersByTimeAsync(SEARCH_DEBOUNCE_MS - 1);
      });
      expect(platform.searchLibrary).toHaveBeenCalledTimes(1);

      await act(async () => {
        await vi.advanceTimersByTimeAsync(1);
      });
      expect(platform.searchLibrary).toHaveBeenCalledTimes(2);
      expect(lastQuery(platform.searchLibrary)).toEqual({ ...ALL, text: "burn" });
    } finally {
      vi.useRealTimers();
    }
  });

  it("never lets an older answer overwrite the latest one", async () => {
    const platform = createFakePlatform([makeTemplate(1, { name: "Burn Rate Watch" })]);
    const real = platform.searchLibrary.getMockImplementation();
    const slow = deferred<LibraryPage>();
    const fast = deferred<LibraryPage>();
    platform.searchLibrary.mockImplementation((query, offset, limit) => {
      if (query.text === "bur") return slow.promise;
      if (query.text === "burn") return fast.promise;
      if (!real) throw new Error("no default implementation");
      return real(query, offset, limit);
    });
    const user = userEvent.setup();
    renderWithPlatform(<MissionLibrary onDeploy={vi.fn()} />, platform);
    await waitFor(() => expect(rows()).toHaveLength(1));

    const search = screen.getByTestId("library-search");
    await user.type(search, "bur");
    await waitFor(() => expect(lastQuery(platform.searchLibrary)?.text).toBe("bur"));
    await user.type(search, "n");
    await waitFor(() => expect(lastQuery(platform.searchLibrary)?.text).toBe("burn"));

    // The answer to "burn" arrives first, then the stale answer to "bur".
    await act(async () => {
      fast.resolve({ total: 1, offset: 0, templates: [makeTemplate(7, { name: "Burn Rate Watch" })] });
    });
    await waitFor(() => expect(rowNames()).toEqual(["Burn Rate Watch"]));
    await act(async () => {
      slow.resolve({
        total: 2,
        offset: 0,
        templates: [makeTemplate(8, { name: "Burn Stale One" }), makeTemplate(9, { name: "Burn Stale Two" })],
      });
    });

    expect(rowNames()).toEqual(["Burn Rate Watch"]);
    expect(screen.getByText("1 mission")).toBeInTheDocument();
  });

  it("shows an empty state that names the text, and clears the filters", async () => {
    const platform = createFakePlatform();
    const user = userEvent.setup();
    renderWithPlatform(<MissionLibrary onDeploy={vi.fn()} />, platform);
    await waitFor(() => expect(rows().length).toBeGreaterThan(0));

    await user.type(screen.getByTestId("library-search"), "zebra");
    const empty = await screen.findByTestId("library-empty");
    expect(empty).toHaveTextContent("No mission matches “zebra”, try fewer words or clear the filters");

    await user.click(within(empty).getByRole("button", { name: "Clear filters" }));
    await waitFor(() => expect(rows().length).toBeGreaterThan(0));
    expect(screen.getByTestId("library-search")).toHaveValue("");
  });

  it("shows an error with what to do, and retries", async () => {
    const platform = createFakePlatform();
    platform.searchLibrary.mockRejectedValueOnce(appError("storage", "database is locked"));
    const user = userEvent.setup();
    renderWithPlatform(<MissionLibrary onDeploy={vi.fn()} />, platform);

    const notice = await screen.findByRole("alert");
    expect(notice).toHaveTextContent("The library database could not be used");
    expect(notice).toHaveTextContent("database is locked");
    expect(notice).not.toHaveTextContent("{");

    await user.click(within(notice).getByRole("button", { name: "Retry" }));
    await waitFor(() => expect(rows().length).toBeGreaterThan(0));
  });

  it("reloads when an import changes the library", async () => {
    const platform = createFakePlatform([makeTemplate(1)]);
    renderWithPlatform(<MissionLibrary onDeploy={vi.fn()} />, platform);
    await waitFor(() => expect(rows()).toHaveLength(1));

    platform.templates.push(makeTemplate(2));
    act(() => platform.emit.libraryChanged());

    await waitFor(() => expect(rows()).toHaveLength(2));
  });
});

describe("MissionLibrary filters", () => {
  it("renders sector counts and filters by sector, then by category", async () => {
    const platform = createFakePlatform();
    const user = userEvent.setup();
    renderWithPlatform(<MissionLibrary onDeploy={vi.fn()} />, platform);
    const tree = await screen.findByTestId("sector-tree");

    const all = await within(tree).findByRole("treeitem", { name: "All sectors (30)" });
    expect(all).toHaveAttribute("aria-selected", "true");
    const finance = within(tree).getByRole("treeitem", { name: "Finance (10)" });
    expect(within(tree).getByRole("treeitem", { name: "Wealth (10)" })).toBeInTheDocument();

    await user.click(within(finance).getByText("Finance (10)"));
    await waitFor(() => expect(lastQuery(platform.searchLibrary)).toEqual({ ...ALL, sector: "finance" }));
    expect(finance).toHaveAttribute("aria-selected", "true");
    expect(all).toHaveAttribute("aria-selected", "false");
    await waitFor(() => expect(rows()).toHaveLength(10));

    const payments = within(tree).getByRole("treeitem", { name: "Payments (5)" });
    await user.click(within(payments).getByText("Payments (5)"));
    await waitFor(() =>
      expect(lastQuery(platform.searchLibrary)).toEqual({ ...ALL, sector: "finance", category: "Payments" }),
    );
    expect(payments).toHaveAttribute("aria-selected", "true");
    expect(finance).toHaveAttribute("aria-selected", "false");
    await waitFor(() => expect(rows()).toHaveLength(5));
  });

  it("moves through the tree with the arrow keys and selects with Enter", async () => {
    const platform = createFakePlatform();
    const user = userEvent.setup();
    renderWithPlatform(<MissionLibrary onDeploy={vi.fn()} />, platform);
    const tree = await screen.findByTestId("sector-tree");
    const all = await within(tree).findByRole("treeitem", { name: "All sectors (30)" });

    act(() => all.focus());
    await user.keyboard("{ArrowDown}");
    const finance = within(tree).getByRole("treeitem", { name: "Finance (10)" });
    expect(finance).toHaveFocus();
    await user.keyboard("{ArrowRight}");
    expect(finance).toHaveAttribute("aria-expanded", "true");
    await user.keyboard("{ArrowRight}");
    expect(within(tree).getByRole("treeitem", { name: "Payments (5)" })).toHaveFocus();
    await user.keyboard("{ArrowDown}{Enter}");

    await waitFor(() =>
      expect(lastQuery(platform.searchLibrary)).toEqual({ ...ALL, sector: "finance", category: "Audit" }),
    );
    expect(within(tree).getByRole("treeitem", { name: "Audit (5)" })).toHaveAttribute("aria-selected", "true");
    await user.keyboard("{ArrowLeft}");
    expect(finance).toHaveFocus();
  });

  it("filters by risk and refreshes the sector counts for it", async () => {
    const platform = createFakePlatform([
      makeTemplate(1, { risk_level: "High" }),
      makeTemplate(2, { baseline_risk: "High" }),
      makeTemplate(3, { baseline_risk: "Low" }),
    ]);
    const user = userEvent.setup();
    renderWithPlatform(<MissionLibrary onDeploy={vi.fn()} />, platform);
    await waitFor(() => expect(rows()).toHaveLength(3));

    const filter = screen.getByTestId("risk-filter");
    await user.click(within(filter).getByRole("radio", { name: "High" }));

    await waitFor(() => expect(lastQuery(platform.searchLibrary)).toEqual({ ...ALL, risk: "High" }));
    expect(platform.libraryFacets).toHaveBeenLastCalledWith(null, "High");
    expect(within(filter).getByRole("radio", { name: "High" })).toHaveAttribute("aria-checked", "true");
    await waitFor(() => expect(rows()).toHaveLength(2));
    expect(await screen.findByRole("treeitem", { name: "All sectors (2)" })).toBeInTheDocument();
  });
});

describe("MissionLibrary rows", () => {
  it("shows ROI, risk with its source, the badge, and Quick Deploy", async () => {
    const platform = createFakePlatform([
      makeTemplate(1, { name: "Burn Rate Watch", version: 3, est_roi: 0.125, risk_level: "High", runs: 8, top_performance: true, history_note: null }),
      makeTemplate(2, { name: "Cash Burn Alert", baseline_risk: "Medium", history_note: "No finished runs yet" }),
    ]);
    const onDeploy = vi.fn();
    const user = userEvent.setup();
    renderWithPlatform(<MissionLibrary onDeploy={onDeploy} />, platform);
    await waitFor(() => expect(rows()).toHaveLength(2));

    const [first, second] = rows();
    if (!first || !second) throw new Error("rows missing");
    expect(first).toHaveAttribute("data-template-id", "tpl-1");
    expect(first).toHaveTextContent("v3");
    expect(first).toHaveTextContent("+12.5%");
    expect(within(first).getByText("High")).toHaveClass("risk-high");
    expect(within(first).getByText("Top Performance")).toBeInTheDocument();

    expect(within(second).getByText("No runs yet")).toHaveAttribute("title", "No finished runs yet");
    expect(within(second).getByText("Baseline: Medium")).toHaveClass("risk-medium");
    expect(within(second).queryByText("Top Performance")).not.toBeInTheDocument();

    await user.click(within(second).getByTestId("quick-deploy"));
    expect(onDeploy).toHaveBeenCalledWith(expect.objectContaining({ id: "tpl-2" }));
    expect(screen.getByRole("button", { name: "Quick Deploy Burn Rate Watch" })).toBeInTheDocument();
  });

  it("moves between rows with the arrow keys and opens Quick Deploy with Enter", async () => {
    const platform = createFakePlatform();
    const onDeploy = vi.fn();
    const user = userEvent.setup();
    renderWithPlatform(<MissionLibrary onDeploy={onDeploy} />, platform);
    await waitFor(() => expect(rows().length).toBeGreaterThan(2));

    const first = rows()[0];
    if (!first) throw new Error("no row");
    act(() => first.focus());
    await user.keyboard("{ArrowDown}{ArrowDown}");
    await waitFor(() => expect(rows()[2]).toHaveFocus());
    await user.keyboard("{ArrowUp}");
    await waitFor(() => expect(rows()[1]).toHaveFocus());
    await user.keyboard("{Enter}");
    expect(onDeploy).toHaveBeenCalledTimes(1);
    expect(onDeploy).toHaveBeenCalledWith(expect.objectContaining({ id: "tpl-1" }));
  });

  it("renders 10,000 results virtually and fetches further pages of 100 while scrolling", async () => {
    const many = Array.from({ length: 10_000 }, (_, i) => makeTemplate(i));
    const platform = createFakePlatform(many);
    renderWithPlatform(<MissionLibrary onDeploy={vi.fn()} />, platform);

    await waitFor(() => expect(rows().length).toBeGreaterThan(0));
    expect(screen.getByText("10,000 missions")).toBeInTheDocument();
    expect(rows().length).toBeLessThan(60);
    expect(platform.searchLibrary).toHaveBeenCalledTimes(1);
    expect(platform.searchLibrary).toHaveBeenCalledWith(ALL, 0, 200);
    expect(platform.libraryRendered).toHaveBeenCalledTimes(1);
    expect(platform.libraryRendered).toHaveBeenCalledWith(200);

    const list = screen.getByTestId("template-list");
    Object.defineProperty(list, "scrollTop", { configurable: true, value: 250 * 76 });
    fireEvent.scroll(list);

    await waitFor(() => expect(platform.searchLibrary).toHaveBeenCalledWith(ALL, 200, 100));
    await waitFor(() => expect(screen.getByText("Template 250")).toBeInTheDocument());
    expect(rows().length).toBeLessThan(60);
    expect(platform.libraryRendered).toHaveBeenCalledTimes(1);
  });
});
