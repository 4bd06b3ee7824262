import { act, screen, waitFor, within } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { describe, expect, it } from "vitest";
import type { ImportItem, ImportPreview } from "../../bindings";
import {
  appError,
  createFakePlatform,
  deferred,
  makePreview,
  makeProblem,
  renderWithPlatform,
  type FakePlatform,
} from "../../test/fakePlatform";
import { ImportPanel } from "./ImportPanel";
import { useImportSession } from "./useImportSession";

const MB = 1024 * 1024;

function Harness() {
  const session = useImportSession();
  return <ImportPanel session={session} />;
}

function setup(platform: FakePlatform = createFakePlatform()) {
  const user = userEvent.setup();
  const view = renderWithPlatform(<Harness />, platform);
  return { platform, user, view };
}

describe("ImportPanel", () => {
  it("offers the drop hint and the file picker", async () => {
    const { platform, user } = setup();
    expect(screen.getByText("Drop manifest files anywhere on this window")).toBeInTheDocument();
    await user.click(screen.getByRole("button", { name: "Choose manifest files…" }));
    expect(platform.pickManifests).toHaveBeenCalledTimes(1);
    // Cancelled picker: back where we were.
    expect(await screen.findByRole("button", { name: "Choose manifest files…" })).toBeEnabled();
    expect(screen.queryByTestId("import-preview")).not.toBeInTheDocument();
  });

  it("previews counts and items, then confirms and shows the report", async () => {
    const platform = createFakePlatform();
    platform.pickManifests.mockResolvedValueOnce(makePreview({ import_id: "imp-42", new: 12, updated: 3, unchanged: 185 }));
    platform.confirmImport.mockResolvedValueOnce({ dry_run: false, new: 12, updated: 3, unchanged: 185, items: [] });
    const { user } = setup(platform);

    await user.click(screen.getByRole("button", { name: "Choose manifest files…" }));
    const preview = await screen.findByTestId("import-preview");
    expect(screen.getByTestId("count-new")).toHaveTextContent("12");
    expect(screen.getByTestId("count-updated")).toHaveTextContent("3");
    expect(screen.getByTestId("count-unchanged")).toHaveTextContent("185");
    expect(within(within(preview).getByRole("list", { name: "Files" })).getByText("more.json")).toBeInTheDocument();
    expect(within(preview).getByText("New Two")).toBeInTheDocument();
    expect(screen.queryByTestId("import-problems")).not.toBeInTheDocument();

    const confirm = screen.getByTestId("confirm-import");
    expect(confirm).toBeEnabled();
    await user.click(confirm);

    expect(platform.confirmImport).toHaveBeenCalledWith("imp-42");
    expect(await screen.findByTestId("import-report")).toHaveTextContent("12 new, 3 updated, 185 unchanged templates imported");
    expect(platform.cancelImport).not.toHaveBeenCalled();
  });

  it("lists every problem and keeps Confirm disabled", async () => {
    const platform = createFakePlatform();
    platform.pickManifests.mockResolvedValueOnce(
      makePreview({
        problems: [
          makeProblem(),
          makeProblem({ file: "C:\\manifests\\two.json", template_id: null, pointer: "", code: "syntax", message: "expected `,` at line 3" }),
        ],
      }),
    );
    const { user } = setup(platform);
    await user.click(screen.getByRole("button", { name: "Choose manifest files…" }));

    const table = await screen.findByTestId("import-problems");
    const bodyRows = within(table).getAllByRole("row").slice(1);
    expect(bodyRows).toHaveLength(2);
    const [first, second] = bodyRows;
    if (!first || !second) throw new Error("rows missing");
    expect(within(first).getByText("bad.json")).toHaveAttribute("title", "/home/op/manifests/bad.json");
    expect(within(first).getByText("tpl-bad")).toBeInTheDocument();
    expect(within(first).getByText("/templates/0/ruleset/allowed_tools/2")).toBeInTheDocument();
    expect(within(first).getByText('unknown tool "nope.tool"')).toBeInTheDocument();
    expect(within(second).getByText("two.json")).toBeInTheDocument();
    expect(within(second).getByText("(whole file)")).toBeInTheDocument();

    const confirm = screen.getByTestId("confirm-import");
    expect(confirm).toBeDisabled();
    expect(screen.getByText("Fix the problems above; nothing has been imported.")).toBeInTheDocument();
    await user.click(confirm);
    expect(platform.confirmImport).not.toHaveBeenCalled();
  });

  it("disables Confirm when nothing would change", async () => {
    const platform = createFakePlatform();
    platform.pickManifests.mockResolvedValueOnce(makePreview({ new: 0, updated: 0, unchanged: 7, items: [] }));
    const { user } = setup(platform);
    await user.click(screen.getByRole("button", { name: "Choose manifest files…" }));
    expect(await screen.findByTestId("confirm-import")).toBeDisabled();
    expect(screen.getByText(/Nothing to import/)).toBeInTheDocument();
  });

  it("Cancel releases the import", async () => {
    const platform = createFakePlatform();
    platform.pickManifests.mockResolvedValueOnce(makePreview({ import_id: "imp-7" }));
    const { user } = setup(platform);
    await user.click(screen.getByRole("button", { name: "Choose manifest files…" }));
    await user.click(await screen.findByTestId("cancel-import"));
    expect(platform.cancelImport).toHaveBeenCalledWith("imp-7");
    expect(screen.queryByTestId("import-preview")).not.toBeInTheDocument();
  });

  it("follows a drop: files, progress bar, then the preview", async () => {
    const { platform } = setup();
    act(() => platform.emit.importStarted(["/home/op/manifests/more.json"]));
    expect(screen.getByText(/Reading 1 file/)).toBeInTheDocument();

    act(() => platform.emit.importProgress({ import_id: null, phase: "reading", done: 512, total: 2048 }));
    const bar = screen.getByRole("progressbar");
    expect(bar).toHaveAttribute("aria-valuenow", "512");
    expect(bar).toHaveAttribute("aria-valuemax", "2048");
    expect(bar).toHaveAttribute("aria-valuetext", "Reading files: 512 B of 2.0 KB");

    // Every phase counts bytes of the manifest files.
    act(() => platform.emit.importProgress({ import_id: null, phase: "validating", done: 3_355_443, total: 8 * MB }));
    expect(screen.getByRole("progressbar")).toHaveAttribute("aria-valuenow", "3355443");
    expect(screen.getByRole("progressbar")).toHaveAttribute("aria-valuemax", String(8 * MB));
    expect(screen.getByText("Validating templates: 3.2 MB of 8.0 MB")).toBeInTheDocument();
    expect(screen.queryByRole("button", { name: "Stop waiting" })).not.toBeInTheDocument();

    act(() => platform.emit.importPreview(makePreview()));
    expect(screen.queryByRole("progressbar")).not.toBeInTheDocument();
    expect(screen.getByTestId("import-preview")).toBeInTheDocument();
    expect(screen.getByTestId("count-new")).toHaveTextContent("2");
  });

  it("shows the bytes written by a confirmed import, and only its own progress", async () => {
    const platform = createFakePlatform();
    const writing = deferred<{ dry_run: boolean; new: number; updated: number; unchanged: number; items: ImportItem[] }>();
    platform.pickManifests.mockResolvedValueOnce(makePreview({ import_id: "imp-5" }));
    platform.confirmImport.mockReturnValueOnce(writing.promise);
    const { user } = setup(platform);
    await user.click(screen.getByRole("button", { name: "Choose manifest files…" }));
    await user.click(await screen.findByTestId("confirm-import"));

    act(() => platform.emit.importProgress({ import_id: "imp-5", phase: "writing", done: 1_572_864, total: 8 * MB }));
    expect(screen.getByRole("progressbar")).toHaveAttribute("aria-valuetext", "Writing to the library: 1.5 MB of 8.0 MB");
    // Reports of another import (or of a preview) are not this one's.
    act(() => platform.emit.importProgress({ import_id: "imp-other", phase: "writing", done: 7 * MB, total: 8 * MB }));
    act(() => platform.emit.importProgress({ import_id: null, phase: "validating", done: 1, total: 2 }));
    expect(screen.getByRole("progressbar")).toHaveAttribute("aria-valuetext", "Writing to the library: 1.5 MB of 8.0 MB");

    await act(async () => writing.resolve({ dry_run: false, new: 2, updated: 1, unchanged: 4, items: [] }));
    expect(screen.queryByRole("progressbar")).not.toBeInTheDocument();
    expect(screen.getByTestId("import-report")).toHaveTextContent("2 new, 1 updated, 4 unchanged templates imported");
  });

  it("shows the files being read for the picker, then the picked preview", async () => {
    // pick_manifests reads the chosen files through the same flow as a drop, start event included.
    const platform = createFakePlatform();
    const picked = deferred<ImportPreview | null>();
    platform.pickManifests.mockReturnValueOnce(picked.promise);
    const { user } = setup(platform);
    await user.click(screen.getByRole("button", { name: "Choose manifest files…" }));

    act(() => platform.emit.importStarted(["/home/op/manifests/chosen.json"]));
    expect(screen.getByText(/Reading 1 file/)).toHaveTextContent("chosen.json");
    act(() => platform.emit.importProgress({ import_id: null, phase: "reading", done: 1024, total: 4096 }));
    expect(screen.getByRole("progressbar")).toHaveAttribute("aria-valuetext", "Reading files: 1.0 KB of 4.0 KB");

    await act(async () => picked.resolve(makePreview({ import_id: "imp-picked" })));
    expect(screen.getByTestId("import-preview")).toBeInTheDocument();
    expect(platform.cancelImport).not.toHaveBeenCalled();
    await user.click(screen.getByTestId("confirm-import"));
    expect(platform.confirmImport).toHaveBeenCalledWith("imp-picked");
  });

  it("shows dropped files that could not be previewed as an error", async () => {
    const { platform, user } = setup();
    act(() => platform.emit.importStarted(["/home/op/manifests/more.json"]));
    act(() => platform.emit.importProgress({ import_id: null, phase: "reading", done: 512, total: 2048 }));

    act(() => platform.emit.importFailed(appError("storage", "database is locked")));
    const alert = screen.getByTestId("error-notice");
    expect(alert).toHaveAttribute("data-code", "storage");
    expect(alert).toHaveTextContent("The library database could not be used");
    expect(alert).toHaveTextContent("database is locked");
    expect(screen.queryByText(/Reading 1 file/)).not.toBeInTheDocument();
    expect(screen.queryByRole("progressbar")).not.toBeInTheDocument();
    expect(screen.queryByRole("button", { name: "Back to the preview" })).not.toBeInTheDocument();

    await user.click(screen.getByRole("button", { name: "Start over" }));
    expect(screen.queryByTestId("error-notice")).not.toBeInTheDocument();
    expect(screen.getByRole("button", { name: "Choose manifest files…" })).toBeEnabled();
    expect(platform.cancelImport).not.toHaveBeenCalled();
  });

  it("shows a failed drop even when no start came before it", () => {
    const { platform } = setup();
    act(() => platform.emit.importFailed(appError("storage", "unable to open database file")));
    expect(screen.getByTestId("error-notice")).toHaveAttribute("data-code", "storage");
  });

  it("keeps a pending preview reachable after a failed drop", async () => {
    const { platform, user } = setup();
    act(() => platform.emit.importPreview(makePreview({ import_id: "imp-3" })));
    act(() => platform.emit.importFailed(appError("storage", "database is locked")));
    expect(screen.getByTestId("error-notice")).toBeInTheDocument();
    await user.click(screen.getByRole("button", { name: "Back to the preview" }));
    expect(screen.getByTestId("confirm-import")).toBeEnabled();
    expect(platform.cancelImport).not.toHaveBeenCalled();
  });

  it("shows at most 500 items and says how many more", async () => {
    const items: ImportItem[] = Array.from({ length: 620 }, (_, i) => ({
      id: `tpl-${i}`,
      name: `Imported ${i}`,
      status: "new",
      version: 1,
      source: "/m/big.json",
    }));
    const { platform } = setup();
    act(() => platform.emit.importPreview(makePreview({ new: 620, updated: 0, unchanged: 0, items })));
    const table = screen.getByTestId("import-items");
    expect(within(table).getAllByRole("row")).toHaveLength(501);
    expect(screen.getByText("and 120 more")).toBeInTheDocument();
  });

  it("shows a failed confirm as an error with a way back", async () => {
    const platform = createFakePlatform();
    platform.pickManifests.mockResolvedValueOnce(makePreview());
    platform.confirmImport.mockRejectedValueOnce(appError("storage", "disk I/O error"));
    const { user } = setup(platform);
    await user.click(screen.getByRole("button", { name: "Choose manifest files…" }));
    await user.click(await screen.findByTestId("confirm-import"));

    const alert = await screen.findByRole("alert");
    expect(alert).toHaveTextContent("The library database could not be used");
    await user.click(screen.getByRole("button", { name: "Back to the preview" }));
    expect(screen.getByTestId("confirm-import")).toBeEnabled();
  });

  it("stops listening when unmounted", async () => {
    const { platform, view } = setup();
    await waitFor(() => expect(platform.listenerCount()).toBe(4));
    view.unmount();
    expect(platform.listenerCount()).toBe(0);
  });
});
