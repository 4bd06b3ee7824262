import { act, screen, waitFor, within } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { describe, expect, it } from "vitest";
import { App } from "./App";
import { appError, createFakePlatform, makeApproval, makeAuditEntry, makePreview, makeTemplate, renderWithPlatform } from "./test/fakePlatform";

describe("App", () => {
  it("switches tabs and focuses the search with Ctrl+K", async () => {
    const platform = createFakePlatform();
    const user = userEvent.setup();
    renderWithPlatform(<App />, platform);
    await waitFor(() => expect(screen.getAllByTestId("template-row").length).toBeGreaterThan(0));

    await user.click(screen.getByRole("tab", { name: "Active Missions" }));
    expect(screen.getByRole("tab", { name: "Active Missions" })).toHaveAttribute("aria-selected", "true");
    expect(await screen.findByText(/No mission saved yet/)).toBeInTheDocument();
    expect(platform.missionViews).toHaveBeenCalledTimes(1);

    await user.keyboard("{Control>}k{/Control}");
    await waitFor(() => expect(screen.getByTestId("library-search")).toHaveFocus());
    expect(screen.getByRole("tab", { name: "Library" })).toHaveAttribute("aria-selected", "true");
  });

  it("deploys from the library and lists the saved mission", async () => {
    const platform = createFakePlatform([makeTemplate(1, { name: "Burn Rate Watch" })]);
    const user = userEvent.setup();
    renderWithPlatform(<App />, platform);

    await user.click(await screen.findByRole("button", { name: "Quick Deploy Burn Rate Watch" }));
    const dialog = await screen.findByTestId("mission-config-modal");
    await user.click(await within(dialog).findByTestId("save-mission"));
    const id = (await within(dialog).findByTestId("saved-mission-id")).textContent ?? "";
    await user.click(within(dialog).getByTestId("close-mission"));
    expect(screen.queryByTestId("mission-config-modal")).not.toBeInTheDocument();

    await user.click(screen.getByRole("tab", { name: "Active Missions" }));
    const table = await screen.findByTestId("active-missions");
    const row = within(table).getByTestId("mission-row");
    expect(row).toHaveAttribute("data-mission-id", id);
    expect(row).toHaveTextContent("Burn Rate Watch v1");
    expect(row).toHaveTextContent("$100.00");
    expect(row).toHaveTextContent("1 d");
    expect(row).toHaveTextContent("Strict");
    expect(within(row).getByTitle(id)).toBeInTheDocument();
  });

  it("shows dropped files as an overlay over any tab", async () => {
    const platform = createFakePlatform();
    const user = userEvent.setup();
    renderWithPlatform(<App />, platform);
    await waitFor(() => expect(platform.onImportStarted).toHaveBeenCalled());

    act(() => platform.emit.importStarted(["/m/more.json"]));
    const overlay = await screen.findByTestId("import-overlay");
    expect(overlay).toHaveAttribute("role", "dialog");
    act(() => platform.emit.importPreview(makePreview({ import_id: "imp-9" })));
    expect(within(overlay).getByTestId("import-preview")).toBeInTheDocument();

    await user.click(within(overlay).getByTestId("cancel-import"));
    expect(platform.cancelImport).toHaveBeenCalledWith("imp-9");
    expect(screen.queryByTestId("import-overlay")).not.toBeInTheDocument();
  });

  it("brings a hidden overlay back when the dropped files cannot be previewed", async () => {
    const platform = createFakePlatform();
    const user = userEvent.setup();
    renderWithPlatform(<App />, platform);
    await waitFor(() => expect(platform.onImportFailed).toHaveBeenCalled());

    act(() => platform.emit.importStarted(["/m/more.json"]));
    await user.click(within(await screen.findByTestId("import-overlay")).getByRole("button", { name: "Hide" }));
    expect(screen.queryByTestId("import-overlay")).not.toBeInTheDocument();

    act(() => platform.emit.importFailed(appError("storage", "database is locked")));
    const overlay = await screen.findByTestId("import-overlay");
    expect(within(overlay).getByTestId("error-notice")).toHaveAttribute("data-code", "storage");
    await user.click(within(overlay).getByRole("button", { name: "Close" }));
    expect(screen.queryByTestId("import-overlay")).not.toBeInTheDocument();
  });

  it("shows how many approvals wait on the Approvals tab, after Active Missions", async () => {
    const platform = createFakePlatform();
    platform.approvals.push(makeApproval(1), makeApproval(2), makeApproval(3), makeApproval(4, { status: "Approved" }));
    renderWithPlatform(<App />, platform);

    expect(screen.getAllByRole("tab").map((t) => t.textContent)).toEqual(["Library", "Active Missions", "Approvals", "Audit", "Import"]);
    expect(await screen.findByRole("tab", { name: "Approvals (3)" })).toBeInTheDocument();
    expect(platform.listApprovals).toHaveBeenCalledWith(true, null, 1);

    act(() => platform.emit.approvalsChanged({ pending: 1 }));
    expect(screen.getByRole("tab", { name: "Approvals (1)" })).toBeInTheDocument();
    act(() => platform.emit.approvalsChanged({ pending: 0 }));
    expect(screen.getByRole("tab", { name: "Approvals" })).toBeInTheDocument();
    expect(screen.queryByTestId("approvals-badge")).not.toBeInTheDocument();
  });

  it("opens the approvals and the audit log", async () => {
    const platform = createFakePlatform();
    platform.approvals.push(makeApproval(1));
    platform.audit.push(makeAuditEntry(1, { simulated: true }));
    const user = userEvent.setup();
    renderWithPlatform(<App />, platform);

    await user.click(await screen.findByRole("tab", { name: "Approvals (1)" }));
    const approvals = screen.getByRole("tabpanel", { name: /Approvals/ });
    expect(await within(approvals).findByTestId("approval")).toHaveTextContent("Pay Invoice 1");

    // The arrow keys move along the tabs.
    await user.keyboard("{ArrowLeft}");
    expect(screen.getByRole("tab", { name: "Active Missions" })).toHaveFocus();
    await user.keyboard("{ArrowRight}{ArrowRight}");
    expect(screen.getByRole("tab", { name: "Audit" })).toHaveFocus();
    expect(screen.getByRole("tab", { name: "Audit" })).toHaveAttribute("aria-selected", "true");
    expect(await within(screen.getByRole("tabpanel", { name: "Audit" })).findByTestId("simulated")).toBeInTheDocument();
  });
});
