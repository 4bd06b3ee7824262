import { render, screen, waitFor, within } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { describe, expect, it } from "vitest";
import type { ActiveMission, AuditEntry } from "../../bindings";
import { PlatformProvider } from "../../platform/context";
import { appError, createFakePlatform, deferred, makeAuditEntry, makeTemplate, renderWithPlatform, type FakePlatform } from "../../test/fakePlatform";
import { AuditView } from "./AuditView";

const MISSION_A = "0190f0c4-0000-7000-8000-00000000000a";
const MISSION_B = "0190f0c4-0000-7000-8000-00000000000b";

function platformWith(entries: AuditEntry[]): FakePlatform {
  const platform = createFakePlatform([makeTemplate(0, { sector: "finance" }), makeTemplate(1, { sector: "wealth" })]);
  platform.audit.push(...entries);
  return platform;
}

function setup(platform: FakePlatform) {
  const user = userEvent.setup();
  const view = renderWithPlatform(<AuditView visible />, platform);
  return { platform, user, view };
}

function rowSeqs(): number[] {
  return screen.queryAllByTestId("audit-row").map((r) => Number(r.dataset.seq));
}

function row(seq: number): HTMLElement {
  const found = screen.getAllByTestId("audit-row").find((r) => r.dataset.seq === String(seq));
  if (!found) throw new Error(`no row #${seq}`);
  return found;
}

function lastQuery(platform: FakePlatform) {
  const call = platform.auditPage.mock.calls[platform.auditPage.mock.calls.length - 1];
  if (!call) throw new Error("auditPage was not called");
  return call[0];
}

describe("AuditView", () => {
  it("shows each record newest first: decision, reason, what authorized it, policies, cost, simulated", async () => {
    const platform = platformWith([
      makeAuditEntry(1),
      makeAuditEntry(2, {
        decision: "Denied",
        reason: "tool outside the mission's sector",
        sector: null,
        grant: null,
        tool_id: "trading.place_order",
        policy_ids: ["sector.isolation", "global.default"],
        cost_cents: 0,
      }),
      makeAuditEntry(3, {
        sector: null,
        grant: "connection to trading granted by alice at 2026-11-25T07:00:00Z",
        simulated: true,
        cost_cents: 1_250,
        dept: null,
      }),
    ]);
    setup(platform);

    await waitFor(() => expect(rowSeqs()).toEqual([3, 2, 1]));
    expect(lastQuery(platform)).toEqual({ mission_id: null, sector: null, before_seq: null, limit: 100 });

    const granted = row(3);
    expect(within(granted).getByTestId("audit-authorized")).toHaveTextContent("connection to trading granted by alice at 2026-11-25T07:00:00Z");
    expect(within(granted).getByTestId("simulated")).toHaveTextContent("simulated");
    expect(granted).toHaveTextContent("$12.50");
    expect(within(granted).getByTitle("Mission 0190f0c4-0000-7000-8000-000000000001")).toHaveTextContent(/^…00000001$/);

    const denied = row(2);
    const decision = within(denied).getByTestId("audit-decision");
    expect(decision).toHaveTextContent("Denied");
    expect(decision).toHaveClass("decision-denied");
    expect(denied).toHaveTextContent("tool outside the mission's sector");
    expect(denied).toHaveTextContent("sector.isolation, global.default");
    expect(denied).toHaveTextContent("trading.place_order");
    expect(within(denied).getByTestId("audit-authorized")).toHaveTextContent("—");
    expect(within(denied).queryByTestId("simulated")).not.toBeInTheDocument();

    // Nothing ran for a refused call: no executor is shown.
    expect(denied).not.toHaveTextContent("live");
    expect(row(1)).toHaveTextContent("live");

    // The sector is named as the library names it.
    await waitFor(() => expect(within(row(1)).getByTestId("audit-authorized")).toHaveTextContent("Sector Finance"));
    expect(within(row(1)).getByTestId("audit-decision")).toHaveClass("decision-allowed");
  });

  it("names the sector a refused call would have needed, not as its authority", async () => {
    const platform = platformWith([
      makeAuditEntry(1, {
        decision: "Denied",
        reason: "trading.place_order belongs to sector trading; only a connection to trading could authorize it",
        sector: "trading",
        grant: null,
        tool_id: "trading.place_order",
        policy_ids: [],
        cost_cents: 0,
      }),
    ]);
    setup(platform);
    await waitFor(() => expect(rowSeqs()).toEqual([1]));
    const cell = within(row(1)).getByTestId("audit-authorized");
    expect(within(cell).getByTestId("would-need")).toHaveTextContent(/^would need Sector (Trading|trading)$/);
  });

  it("sends the mission and sector filters", async () => {
    const platform = platformWith([
      makeAuditEntry(1, { mission_id: MISSION_A, sector: "finance" }),
      makeAuditEntry(2, { mission_id: MISSION_B, sector: "wealth" }),
      makeAuditEntry(3, { mission_id: MISSION_A, sector: "wealth" }),
    ]);
    platform.missions.push(makeMission(MISSION_A, "Burn Rate Watch"), makeMission(MISSION_B, "Ledger Sweep"));
    const { user } = setup(platform);
    await waitFor(() => expect(rowSeqs()).toEqual([3, 2, 1]));

    const mission = screen.getByLabelText("Mission");
    await waitFor(() => expect(within(mission).getAllByRole("option")).toHaveLength(3));
    expect(within(mission).getAllByRole("option").map((o) => o.textContent)).toEqual([
      "All missions",
      "Burn Rate Watch · …0000000a",
      "Ledger Sweep · …0000000b",
    ]);
    await user.selectOptions(mission, MISSION_A);
    await waitFor(() => expect(rowSeqs()).toEqual([3, 1]));
    expect(lastQuery(platform)).toEqual({ mission_id: MISSION_A, sector: null, before_seq: null, limit: 100 });

    const sector = screen.getByLabelText("Sector");
    expect(within(sector).getAllByRole("option").map((o) => o.textContent)).toEqual(["All sectors", "Finance", "Wealth"]);
    await user.selectOptions(sector, "wealth");
    await waitFor(() => expect(rowSeqs()).toEqual([3]));
    expect(lastQuery(platform)).toEqual({ mission_id: MISSION_A, sector: "wealth", before_seq: null, limit: 100 });
    expect(platform.libraryFacets).toHaveBeenCalledWith(null, null);

    await user.selectOptions(mission, "");
    await waitFor(() => expect(rowSeqs()).toEqual([3, 2]));
    expect(lastQuery(platform)).toEqual({ mission_id: null, sector: "wealth", before_seq: null, limit: 100 });
  });

  it("loads older records before the oldest one shown", async () => {
    const platform = platformWith(Array.from({ length: 250 }, (_, i) => makeAuditEntry(i + 1)));
    const { user } = setup(platform);
    await waitFor(() => expect(rowSeqs()).toHaveLength(100));
    expect(rowSeqs()[0]).toBe(250);
    expect(rowSeqs()[99]).toBe(151);

    await user.click(screen.getByTestId("load-older"));
    await waitFor(() => expect(rowSeqs()).toHaveLength(200));
    expect(lastQuery(platform)).toEqual({ mission_id: null, sector: null, before_seq: 151, limit: 100 });

    await user.click(screen.getByTestId("load-older"));
    await waitFor(() => expect(rowSeqs()).toHaveLength(250));
    expect(lastQuery(platform).before_seq).toBe(51);
    expect(rowSeqs()[249]).toBe(1);
    expect(screen.queryByTestId("load-older")).not.toBeInTheDocument();
  });

  it("drops an older page that arrives after the filters changed", async () => {
    const platform = platformWith(Array.from({ length: 150 }, (_, i) => makeAuditEntry(i + 1, { sector: i % 2 ? "finance" : "wealth" })));
    const { user } = setup(platform);
    await waitFor(() => expect(rowSeqs()).toHaveLength(100));
    const older = deferred<{ entries: AuditEntry[]; has_more: boolean }>();
    platform.auditPage.mockReturnValueOnce(older.promise);
    await user.click(screen.getByTestId("load-older"));
    await waitFor(() => expect(within(screen.getByLabelText("Sector")).getAllByRole("option")).toHaveLength(3));
    await user.selectOptions(screen.getByLabelText("Sector"), "wealth");
    await waitFor(() => expect(rowSeqs()).toHaveLength(75));
    older.resolve({ entries: [makeAuditEntry(1000, { sector: "finance" })], has_more: false });
    await older.promise;
    await new Promise((r) => setTimeout(r, 0));
    expect(rowSeqs()).toHaveLength(75);
    expect(rowSeqs()).not.toContain(1000);
  });

  it("reports an intact log with its key fingerprints", async () => {
    const platform = platformWith([makeAuditEntry(1)]);
    platform.auditVerify.mockResolvedValueOnce({
      records: 1234,
      ok: true,
      first_bad: null,
      keys: ["ed25519:7f3a9c", "ed25519:01bb42"],
      anchor: "the keys pinned in /home/op/.config/app.missioncontrol.desktop/audit-trust.json (2 keys, fingerprint 9e2e04d0)",
      extends: null,
    });
    const { user } = setup(platform);
    await user.click(screen.getByRole("button", { name: "Verify log" }));
    const result = await screen.findByTestId("verify-result");
    expect(result).toHaveTextContent("Verified 1,234 records, chain and signatures intact");
    expect(result).toHaveTextContent("Trusted keys: ed25519:7f3a9c, ed25519:01bb42");
    expect(screen.getByTestId("verify-anchor")).toHaveTextContent("Checked against the keys pinned in /home/op/.config");
    expect(result).toHaveClass("notice-success");
  });

  it("reports the first bad record prominently and marks its row", async () => {
    const platform = platformWith([makeAuditEntry(16), makeAuditEntry(17), makeAuditEntry(18)]);
    platform.auditVerify.mockResolvedValueOnce({
      records: 18,
      ok: false,
      first_bad: { seq: 17, problem: "signature does not match" },
      keys: ["ed25519:7f3a9c"],
      anchor: "the keys pinned in audit-trust.json (1 key, fingerprint 01bb42)",
      extends: null,
    });
    const { user } = setup(platform);
    await waitFor(() => expect(rowSeqs()).toEqual([18, 17, 16]));
    await user.click(screen.getByRole("button", { name: "Verify log" }));
    const result = await screen.findByRole("alert");
    expect(result).toHaveTextContent("Record #17 is bad: signature does not match");
    expect(result).toHaveTextContent("Trusted key: ed25519:7f3a9c");
    expect(result).toHaveClass("notice-error");
    expect(row(17)).toHaveClass("audit-bad");
    expect(row(16)).not.toHaveClass("audit-bad");
  });

  it("words an unreadable log", async () => {
    const platform = platformWith([]);
    platform.auditPage.mockRejectedValueOnce(appError("audit_unavailable", "the signing key is not in the keychain"));
    platform.auditVerify.mockRejectedValueOnce(appError("audit_unavailable", "the signing key is not in the keychain"));
    const { user } = setup(platform);
    const notice = await screen.findByTestId("error-notice");
    expect(notice).toHaveAttribute("data-code", "audit_unavailable");
    expect(notice).toHaveTextContent("The audit log cannot be read");
    expect(notice).toHaveTextContent("the signing key is not in the keychain");

    await user.click(screen.getByRole("button", { name: "Verify log" }));
    await waitFor(() => expect(screen.getAllByTestId("error-notice")).toHaveLength(2));

    // Retry reads the (now available) log.
    await user.click(within(notice).getByRole("button", { name: "Retry" }));
    expect(await screen.findByTestId("audit-empty")).toBeInTheDocument();
  });

  it("shows hashes short, full on request", async () => {
    const platform = platformWith([makeAuditEntry(5, { hash: "ab12".repeat(16) })]);
    const { user } = setup(platform);
    await waitFor(() => expect(rowSeqs()).toEqual([5]));
    const cell = within(row(5)).getByTitle(/^hash ab12/);
    expect(cell).toHaveTextContent(/^ab12ab12ab12…$/);
    expect(cell.getAttribute("title")).toContain(`hash ${"ab12".repeat(16)}`);
    const toggle = screen.getByRole("button", { name: "Full hashes" });
    expect(toggle).toHaveAttribute("aria-pressed", "false");
    await user.click(toggle);
    expect(toggle).toHaveAttribute("aria-pressed", "true");
    expect(cell).toHaveTextContent("ab12".repeat(16));
  });

  it("loads nothing until first shown, and keeps its pages when hidden again", async () => {
    const platform = platformWith(Array.from({ length: 150 }, (_, i) => makeAuditEntry(i + 1)));
    const user = userEvent.setup();
    const shown = (visible: boolean) => (
      <PlatformProvider platform={platform}>
        <AuditView visible={visible} />
      </PlatformProvider>
    );
    const view = render(shown(false));
    await new Promise((r) => setTimeout(r, 0));
    expect(platform.auditPage).not.toHaveBeenCalled();
    expect(platform.listMissions).not.toHaveBeenCalled();

    view.rerender(shown(true));
    await waitFor(() => expect(rowSeqs()).toHaveLength(100));
    await user.click(screen.getByTestId("load-older"));
    await waitFor(() => expect(rowSeqs()).toHaveLength(150));
    view.rerender(shown(false));
    view.rerender(shown(true));
    expect(platform.auditPage).toHaveBeenCalledTimes(2);
    expect(rowSeqs()).toHaveLength(150);
  });
  it("names the operation of a record that is not a tool call", async () => {
    const platform = platformWith([
      makeAuditEntry(1, { tool_id: null, action: "mission.save", decision: "Denied", reason: "perimeter_out_of_range: the budget must be between $1 and $250" }),
    ]);
    setup(platform);
    await waitFor(() => expect(rowSeqs()).toEqual([1]));
    expect(row(1)).toHaveTextContent("mission.save");
    expect(row(1)).toHaveTextContent("perimeter_out_of_range");
  });
});

function makeMission(id: string, name: string): ActiveMission {
  return {
    id,
    template_id: "tpl-0",
    template_name: name,
    template_version: 1,
    logic_hash: "ab".repeat(32),
    sector: "finance",
    perimeter: { budget_cents: 10_000, ttl_seconds: 86_400, max_steps: 50, approval_mode: "Strict", threshold_cents: null },
    connections: [],
    status: "Running",
    created_at: "2026-11-25T08:30:00Z",
  };
}
