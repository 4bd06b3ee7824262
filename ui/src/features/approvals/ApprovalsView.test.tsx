import { act, screen, waitFor, within } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { afterEach, describe, expect, it, vi } from "vitest";
import type { ApprovalItem } from "../../bindings";
import { appError, createFakePlatform, deferred, makeApproval, makeBudgetCap, renderWithPlatform, type FakePlatform } from "../../test/fakePlatform";
import { APPROVAL_PAGE_SIZE, ApprovalsView } from "./ApprovalsView";

function setup(items: ApprovalItem[], platform: FakePlatform = createFakePlatform([])) {
  platform.approvals.push(...items);
  const user = userEvent.setup();
  const view = renderWithPlatform(<ApprovalsView visible />, platform);
  return { platform, user, view };
}

/** The card of one approval, once the list shows it. */
async function card(id: string): Promise<HTMLElement> {
  return waitFor(() => {
    const found = screen.getAllByTestId("approval").find((el) => el.dataset.approvalId === id);
    if (!found) throw new Error(`no card for ${id}`);
    return found;
  });
}

function shownIds(): string[] {
  return screen.queryAllByTestId("approval").map((el) => el.dataset.approvalId ?? "");
}

describe("ApprovalsView", () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it("lists waiting calls with their facts, arguments and a live countdown; an expired one cannot be decided", async () => {
    // Only the clock and the countdown's interval are faked: Testing Library keeps its real timeouts.
    vi.useFakeTimers({ toFake: ["Date", "setInterval", "clearInterval"] });
    vi.setSystemTime(new Date("2026-11-25T08:00:00Z"));
    const soon = makeApproval(1, {
      expires_at: new Date("2026-11-25T08:01:30Z").toISOString(),
      args: '{"amount_cents":9007199254740993,"memo":"a, b: {c}"}',
      args_hash: "0a1b2c3d4e5f" + "9".repeat(52),
    });
    const gone = makeApproval(2, { expires_at: new Date("2026-11-25T07:59:59Z").toISOString() });
    setup([soon, gone]);

    const live = await card(soon.id);
    expect(live).toHaveTextContent("Pay Invoice 1");
    expect(live).toHaveTextContent("Burn Rate Watch");
    expect(live).toHaveTextContent("finance");
    expect(live).toHaveTextContent("Dept2");
    expect(live).toHaveTextContent("$12.50");
    expect(live).toHaveTextContent("High");
    expect(live).toHaveTextContent("Strict mode: every side-effecting call waits for a human");
    expect(within(live).getByTestId("approval-countdown")).toHaveTextContent("expires in 1 min 30 s");
    // Indented for reading, every literal exactly as hashed (no rounding of big integers).
    expect(within(live).getByTestId("approval-args").textContent).toBe('{\n  "amount_cents": 9007199254740993,\n  "memo": "a, b: {c}"\n}');
    const hash = within(live).getByTestId("args-hash");
    expect(hash).toHaveTextContent(/^0a1b2c3d4e5f…$/);
    expect(hash).toHaveAttribute("title", soon.args_hash);
    expect(within(live).getByRole("button", { name: "Approve" })).toBeEnabled();
    expect(within(live).getByRole("button", { name: "Deny" })).toBeEnabled();

    const dead = await card(gone.id);
    expect(within(dead).getByTestId("approval-countdown")).toHaveTextContent("Expired");
    expect(within(dead).getByRole("button", { name: "Approve" })).toBeDisabled();
    expect(within(dead).getByRole("button", { name: "Deny" })).toBeDisabled();
    expect(within(dead).getByTestId("approval-expired-note")).toBeInTheDocument();

    act(() => vi.advanceTimersByTime(60_000));
    expect(within(live).getByTestId("approval-countdown")).toHaveTextContent("expires in 30 s");
    act(() => vi.advanceTimersByTime(30_000));
    expect(within(live).getByTestId("approval-countdown")).toHaveTextContent("Expired");
    expect(within(live).getByRole("button", { name: "Approve" })).toBeDisabled();
    expect(within(live).getByRole("button", { name: "Deny" })).toBeDisabled();
  });

  it("approves exactly the one call, then moves focus to the next one", async () => {
    const items = [makeApproval(1), makeApproval(2), makeApproval(3)];
    const { platform, user } = setup(items);
    const second = await card(items[1]!.id);

    await user.click(within(second).getByRole("button", { name: "Approve" }));

    expect(platform.decideApproval).toHaveBeenCalledTimes(1);
    expect(platform.decideApproval).toHaveBeenCalledWith({ approval_id: items[1]!.id, decision: "Approve", budget_cents: null });
    await waitFor(() => expect(shownIds()).toEqual([items[0]!.id, items[2]!.id]));
    expect(await card(items[2]!.id)).toHaveFocus();
    expect(screen.getByTestId("approval-announcement")).toHaveTextContent("Approved: Pay Invoice 2 for Burn Rate Watch");
    expect(platform.approvals.map((a) => a.status)).toEqual(["Pending", "Approved", "Pending"]);
  });

  it("moves focus to the heading when the last call is decided", async () => {
    const only = makeApproval(1);
    const { user } = setup([only]);
    await user.click(within(await card(only.id)).getByRole("button", { name: "Approve" }));
    expect(await screen.findByTestId("approvals-empty")).toBeInTheDocument();
    expect(screen.getByRole("heading", { name: "Approvals" })).toHaveFocus();
  });

  it("denies only after an inline confirmation, all by keyboard", async () => {
    const items = [makeApproval(1), makeApproval(2)];
    const { platform, user } = setup(items);
    const first = await card(items[0]!.id);
    const deny = within(first).getByRole("button", { name: "Deny" });

    // Tab reaches the toggle, Refresh, the (scrollable) arguments, then the actions.
    await user.tab();
    expect(screen.getByLabelText("Show decided")).toHaveFocus();
    await user.tab();
    expect(screen.getByRole("button", { name: "Refresh" })).toHaveFocus();
    await user.tab();
    expect(within(first).getByTestId("approval-args")).toHaveFocus();
    await user.tab();
    expect(within(first).getByRole("button", { name: "Approve" })).toHaveFocus();
    await user.tab();
    expect(deny).toHaveFocus();
    // Enter opens the confirmation; nothing is decided yet.
    await user.keyboard("{Enter}");
    expect(platform.decideApproval).not.toHaveBeenCalled();
    const confirm = within(first).getByTestId("confirm-refuse");
    expect(confirm).toHaveTextContent("Deny this call? Pay Invoice 1 will not run");
    expect(within(confirm).getByRole("button", { name: "Cancel" })).toHaveFocus();

    // Cancel puts everything back, focus on Deny.
    await user.keyboard("{Enter}");
    expect(within(first).queryByTestId("confirm-refuse")).not.toBeInTheDocument();
    expect(within(first).getByRole("button", { name: "Deny" })).toHaveFocus();
    expect(platform.decideApproval).not.toHaveBeenCalled();

    // Escape cancels too.
    await user.keyboard(" ");
    expect(within(first).getByTestId("confirm-refuse")).toBeInTheDocument();
    await user.keyboard("{Escape}");
    expect(within(first).queryByTestId("confirm-refuse")).not.toBeInTheDocument();

    await user.keyboard("{Enter}");
    await user.keyboard("{Shift>}{Tab}{/Shift}");
    expect(within(first).getByRole("button", { name: "Yes, deny" })).toHaveFocus();
    await user.keyboard(" ");

    expect(platform.decideApproval).toHaveBeenCalledTimes(1);
    expect(platform.decideApproval).toHaveBeenCalledWith({ approval_id: items[0]!.id, decision: "Deny", budget_cents: null });
    await waitFor(() => expect(shownIds()).toEqual([items[1]!.id]));
    expect(await card(items[1]!.id)).toHaveFocus();
  });

  it("raises a budget only above the current one and within the policy's cap", async () => {
    const cap = makeBudgetCap(7, { mission_name: "Ledger Sweep" });
    const { platform, user } = setup([cap]);
    const item = await card(cap.id);
    expect(item).toHaveTextContent("Budget cap reached");
    expect(item).toHaveTextContent("Call cost$25.00");
    expect(item).toHaveTextContent("Budget$100.00");
    expect(within(item).queryByRole("button", { name: "Approve" })).not.toBeInTheDocument();
    const input = within(item).getByLabelText("New budget ($)");
    expect(input).toHaveValue(100);
    expect(item).toHaveTextContent("More than the current $100.00, at most $500.00 (the global policy's cap).");

    // Not above the current budget: refused here, nothing sent.
    await user.click(within(item).getByRole("button", { name: "Raise budget" }));
    expect(within(item).getByTestId("new-budget-problem")).toHaveTextContent("Enter more than the current budget ($100.00).");
    expect(input).toHaveAttribute("aria-invalid", "true");
    expect(input).toHaveFocus();
    expect(platform.decideApproval).not.toHaveBeenCalled();

    // Beyond the cap: clamped to it, and said so.
    await user.clear(input);
    await user.type(input, "900");
    expect(input).toHaveValue(500);
    expect(within(item).getByTestId("new-budget-hint")).toHaveTextContent("Clamped to the global policy's cap ($500.00)");
    expect(within(item).queryByTestId("new-budget-problem")).not.toBeInTheDocument();

    await user.clear(input);
    await user.type(input, "250.5{Enter}");
    expect(platform.decideApproval).toHaveBeenCalledTimes(1);
    expect(platform.decideApproval).toHaveBeenCalledWith({ approval_id: cap.id, decision: "Approve", budget_cents: 25_050 });
    expect(await screen.findByTestId("approval-announcement")).toHaveTextContent("Budget raised to $250.50: Ledger Sweep");
  });

  it("stops a mission at its cap only after confirming", async () => {
    const cap = makeBudgetCap(7, { mission_name: "Ledger Sweep" });
    const { platform, user } = setup([cap]);
    const item = await card(cap.id);

    await user.click(within(item).getByRole("button", { name: "Stop mission" }));
    expect(platform.decideApproval).not.toHaveBeenCalled();
    expect(within(item).getByTestId("confirm-refuse")).toHaveTextContent("Stop “Ledger Sweep”?");
    await user.click(within(item).getByRole("button", { name: "Yes, stop mission" }));

    expect(platform.decideApproval).toHaveBeenCalledWith({ approval_id: cap.id, decision: "Deny", budget_cents: null });
    expect(await screen.findByTestId("approvals-empty")).toBeInTheDocument();
  });

  it("cannot raise a budget already at the policy's cap", async () => {
    const cap = makeBudgetCap(7, { budget_cents: 50_000, max_budget_cents: 50_000 });
    setup([cap]);
    const item = await card(cap.id);
    expect(within(item).getByRole("button", { name: "Raise budget" })).toBeDisabled();
    expect(within(item).getByRole("button", { name: "Stop mission" })).toBeEnabled();
    expect(item).toHaveTextContent("already at the global policy's cap");
  });

  it("shows more waiting requests a page at a time, with the exact count waiting", async () => {
    const { platform } = setup(Array.from({ length: APPROVAL_PAGE_SIZE + 2 }, (_, i) => makeApproval(i + 1)));
    await waitFor(() => expect(shownIds()).toHaveLength(APPROVAL_PAGE_SIZE));
    expect(screen.getByText(`${APPROVAL_PAGE_SIZE + 2} approvals waiting`)).toBeInTheDocument();

    await userEvent.click(screen.getByRole("button", { name: "Show more waiting approvals" }));
    await waitFor(() => expect(shownIds()).toHaveLength(APPROVAL_PAGE_SIZE + 2));
    expect(platform.listApprovals).toHaveBeenLastCalledWith(true, `at:${APPROVAL_PAGE_SIZE}`, APPROVAL_PAGE_SIZE);
    expect(screen.queryByRole("button", { name: "Show more waiting approvals" })).not.toBeInTheDocument();
  });

  it("reloads when the approvals change, and stops listening when unmounted", async () => {
    const { platform, view } = setup([makeApproval(1)]);
    await card(makeApproval(1).id);
    expect(platform.listApprovals).toHaveBeenLastCalledWith(true, null, APPROVAL_PAGE_SIZE);

    platform.approvals.push(makeApproval(2));
    act(() => platform.emit.approvalsChanged({ pending: 2 }));
    await waitFor(() => expect(shownIds()).toEqual([makeApproval(1).id, makeApproval(2).id]));
    expect(platform.listApprovals).toHaveBeenCalledTimes(2);

    view.unmount();
    expect(platform.listenerCount()).toBe(0);
  });

  it("shows the wording of an error from the core and keeps the card", async () => {
    const item = makeApproval(1);
    const { platform, user } = setup([item]);
    const shown = await card(item.id);
    // Someone else decided it meanwhile.
    platform.approvals[0] = { ...item, status: "Approved", decided_by: "alice" };

    await user.click(within(shown).getByRole("button", { name: "Approve" }));

    const notice = await within(shown).findByTestId("error-notice");
    expect(notice).toHaveAttribute("data-code", "approval_decided");
    expect(notice).toHaveTextContent("Someone already decided this approval");
    expect(notice).toHaveTextContent("What to do: Refresh the list to see the decision that stands.");
    expect(shownIds()).toEqual([item.id]);

    await user.click(within(notice).getByRole("button", { name: "Refresh list" }));
    expect(await screen.findByTestId("approvals-empty")).toBeInTheDocument();
  });

  it("marks the budget field when the core refuses the new budget", async () => {
    const cap = makeBudgetCap(7);
    const platform = createFakePlatform([]);
    platform.decideApproval.mockRejectedValueOnce(
      appError("budget_out_of_range", "the global policy allows at most $400.00", [], { field: "budget_cents", limit: 40_000 }),
    );
    const { user } = setup([cap], platform);
    const item = await card(cap.id);
    const input = within(item).getByLabelText("New budget ($)");
    await user.clear(input);
    await user.type(input, "450");
    await user.click(within(item).getByRole("button", { name: "Raise budget" }));

    const notice = await within(item).findByTestId("error-notice");
    expect(notice).toHaveTextContent("The new budget is outside the allowed range");
    expect(notice).toHaveTextContent("the global policy allows at most $400.00");
    expect(input).toHaveAttribute("aria-invalid", "true");
    expect(within(item).getByRole("button", { name: "Raise budget" })).toBeEnabled();
  });

  it("ignores a second press while a decision is on its way", async () => {
    const item = makeApproval(1);
    const platform = createFakePlatform([]);
    const pending = deferred<ApprovalItem>();
    platform.decideApproval.mockReturnValueOnce(pending.promise);
    const { user } = setup([item], platform);
    const approve = within(await card(item.id)).getByRole("button", { name: "Approve" });
    await user.click(approve);
    expect(approve).toBeDisabled();
    await user.click(approve);
    expect(platform.decideApproval).toHaveBeenCalledTimes(1);
    await act(async () => pending.resolve({ ...item, status: "Approved" }));
  });

  it("shows decided approvals on request, pending ones first", async () => {
    const decided = makeApproval(1, { status: "Denied", decided_by: "alice", decided_at: "2026-11-25T08:10:00Z" });
    const waiting = makeApproval(2);
    const { platform, user } = setup([decided, waiting]);
    await card(waiting.id);
    expect(shownIds()).toEqual([waiting.id]);

    await user.click(screen.getByLabelText("Show decided"));
    await waitFor(() => expect(shownIds()).toEqual([waiting.id, decided.id]));
    expect(platform.listApprovals).toHaveBeenLastCalledWith(false, null, APPROVAL_PAGE_SIZE);
    const old = await card(decided.id);
    expect(within(old).getByTestId("approval-status")).toHaveTextContent("Denied");
    expect(old).toHaveTextContent("by alice");
    expect(within(old).queryByRole("button")).not.toBeInTheDocument();
  });

  it("shows a load failure with its wording", async () => {
    const platform = createFakePlatform([]);
    platform.listApprovals.mockRejectedValueOnce(appError("storage", "database is locked"));
    setup([], platform);
    const notice = await screen.findByTestId("error-notice");
    expect(notice).toHaveAttribute("data-code", "storage");
    expect(notice).toHaveTextContent("The library database could not be used");
  });
});
