import { act, fireEvent, screen, waitFor, within } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { describe, expect, it, vi } from "vitest";
import type { SaveOutcome } from "../../bindings";
import { appError, createFakePlatform, deferred, makeDraft, makeTemplate, renderWithPlatform, type FakePlatform } from "../../test/fakePlatform";
import { MissionConfigModal } from "./MissionConfigModal";

function setup(platform: FakePlatform = createFakePlatform([makeTemplate(1, { name: "Burn Rate Watch" })])) {
  const onClose = vi.fn();
  const onSaved = vi.fn();
  const user = userEvent.setup();
  const view = renderWithPlatform(<MissionConfigModal templateId="tpl-1" onClose={onClose} onSaved={onSaved} />, platform);
  return { platform, onClose, onSaved, user, view };
}

async function field(testId: string) {
  return screen.findByTestId(testId);
}

async function typeInto(user: ReturnType<typeof userEvent.setup>, el: HTMLElement, text: string) {
  await user.clear(el);
  await user.type(el, text);
}

function lastRequest(platform: FakePlatform) {
  const call = platform.saveMission.mock.calls[platform.saveMission.mock.calls.length - 1];
  if (!call) throw new Error("saveMission was not called");
  return call[0];
}

describe("MissionConfigModal", () => {
  it("opens as a modal dialog with the draft's defaults and the caps explained", async () => {
    const { platform } = setup();
    const dialog = screen.getByRole("dialog");
    expect(dialog).toHaveAttribute("aria-modal", "true");
    expect(dialog).toHaveAttribute("data-testid", "mission-config-modal");

    expect(await field("budget-input")).toHaveValue(100);
    expect(screen.getByTestId("ttl-input")).toHaveValue(24);
    expect(screen.getByTestId("steps-input")).toHaveValue(50);
    expect(screen.getByTestId("budget-slider")).toHaveValue("10000");
    expect(dialog).toHaveTextContent("Cap $250.00 — the lower of the global policy ($50,000.00) and this template ($250.00)");
    expect(dialog).toHaveTextContent("Cap 14 d — the lower of the global policy (30 d) and this template (14 d)");
    expect(platform.missionDraft).toHaveBeenCalledWith("tpl-1");
    expect(platform.newRequestId).toHaveBeenCalledTimes(1);
  });

  it("clamps typed values to the cap and to the minimum, and says so", async () => {
    const { user } = setup();
    const budget = await field("budget-input");

    await typeInto(user, budget, "999999");
    expect(budget).toHaveValue(250);
    expect(screen.getByTestId("budget-hint")).toHaveTextContent("Clamped to the cap");

    const steps = screen.getByTestId("steps-input");
    await typeInto(user, steps, "0");
    expect(steps).toHaveValue(1);
    expect(screen.getByTestId("steps-hint")).toHaveTextContent("Raised to the minimum");

    const ttl = screen.getByTestId("ttl-input");
    await typeInto(user, ttl, "1000");
    expect(ttl).toHaveValue(336);
    expect(screen.getByTestId("ttl-slider")).toHaveValue(String(14 * 86_400));

    // A value within range clears the hint.
    await typeInto(user, budget, "120");
    expect(budget).toHaveValue(120);
    expect(screen.queryByTestId("budget-hint")).not.toBeInTheDocument();
  });

  it("binds each slider to its number box", async () => {
    setup();
    const slider = await field("budget-slider");
    fireEvent.change(slider, { target: { value: "5000" } });
    expect(screen.getByTestId("budget-input")).toHaveValue(50);
  });

  it("saves the clamped values and re-sends the same request id within one opening", async () => {
    const { platform, user, onSaved } = setup();
    await typeInto(user, await field("budget-input"), "999999");
    await typeInto(user, screen.getByTestId("ttl-input"), "6");
    await typeInto(user, screen.getByTestId("steps-input"), "5000");

    await user.click(screen.getByTestId("save-mission"));

    expect(await screen.findByTestId("saved-mission-id")).toHaveTextContent(/^0190f0c4-/);
    expect(screen.getByText("Saved")).toBeInTheDocument();
    const first = lastRequest(platform);
    expect(first).toEqual({
      request_id: "00000000-0000-4000-8000-000000000001",
      template_id: "tpl-1",
      template_version: 1,
      budget_cents: 25_000,
      ttl_seconds: 6 * 3600,
      max_steps: 200,
      approval_mode: "Strict",
      threshold_cents: null,
      connections: [],
    });
    expect(onSaved).toHaveBeenCalledTimes(1);

    await user.click(screen.getByTestId("save-mission"));
    await waitFor(() => expect(platform.saveMission).toHaveBeenCalledTimes(2));
    expect(lastRequest(platform).request_id).toBe(first.request_id);
    expect(await screen.findByText(/already saved by this dialog/)).toBeInTheDocument();
    expect(platform.missions).toHaveLength(1);
    expect(screen.getByTestId("close-mission")).toBeInTheDocument();
  });

  it("uses a new request id after reopening", async () => {
    const platform = createFakePlatform([makeTemplate(1)]);
    const first = setup(platform);
    await first.user.click(await field("save-mission"));
    await screen.findByTestId("saved-mission-id");
    first.view.unmount();

    const second = setup(platform);
    await second.user.click(await field("save-mission"));
    await screen.findByTestId("saved-mission-id");

    const [a, b] = platform.saveMission.mock.calls.map((c) => c[0].request_id);
    expect(a).toBeDefined();
    expect(b).toBeDefined();
    expect(a).not.toBe(b);
    expect(platform.missions).toHaveLength(2);
  });

  it("disables Save while saving", async () => {
    const platform = createFakePlatform([makeTemplate(1)]);
    const pending = deferred<SaveOutcome>();
    platform.saveMission.mockReturnValueOnce(pending.promise);
    const { user } = setup(platform);
    const save = await field("save-mission");

    await user.click(save);
    expect(save).toBeDisabled();
    await user.click(save);
    expect(platform.saveMission).toHaveBeenCalledTimes(1);

    const draft = makeDraft();
    await act(async () =>
      pending.resolve({
        created: true,
        mission: {
          id: "m-1",
          template_id: "tpl-1",
          template_name: "Template 1",
          template_version: 1,
          logic_hash: draft.template.logic_hash,
          sector: "finance",
          perimeter: draft.defaults,
          connections: [],
          status: "Ready",
          created_at: "2026-11-25T08:30:00Z",
        },
      }),
    );
    expect(save).toBeEnabled();
    expect(screen.getByTestId("saved-mission-id")).toHaveTextContent("m-1");
  });

  it("Cancel and Escape close without calling the platform", async () => {
    const { platform, user, onClose } = setup();
    await field("budget-input");
    await user.click(screen.getByTestId("cancel-mission"));
    expect(onClose).toHaveBeenCalledTimes(1);

    await user.keyboard("{Escape}");
    expect(onClose).toHaveBeenCalledTimes(2);
    expect(platform.saveMission).not.toHaveBeenCalled();
    expect(platform.missionDraft).toHaveBeenCalledTimes(1);
  });

  it("keeps Tab inside the dialog", async () => {
    const { user } = setup();
    await field("budget-input");
    const save = screen.getByTestId("save-mission");
    act(() => save.focus());
    await user.tab();
    expect(screen.getByRole("dialog")).toContainElement(document.activeElement instanceof HTMLElement ? document.activeElement : null);
    expect(screen.getByTestId("budget-slider")).toHaveFocus();
  });

  it("shows a save error inside the dialog with what to do", async () => {
    const platform = createFakePlatform([makeTemplate(1)]);
    platform.saveMission.mockRejectedValueOnce({
      code: "perimeter_out_of_range",
      message: "the budget must be between 100 and 25000; 30000 was refused",
      details: { field: "budget_cents", limit: 25000, problems: [], audit_seq: null },
    });
    const { user } = setup(platform);
    await user.click(await field("save-mission"));

    const alert = await within(screen.getByRole("dialog")).findByRole("alert");
    expect(alert).toHaveTextContent("A value is outside the allowed range");
    expect(alert).toHaveTextContent("the budget must be between 100 and 25000; 30000 was refused");
    expect(alert).toHaveTextContent("Bring the value back within the cap");
    expect(screen.getByTestId("budget-input")).toHaveAttribute("aria-invalid", "true");
    expect(screen.queryByTestId("saved-mission-id")).not.toBeInTheDocument();
  });

  it("shows a draft error with Cancel", async () => {
    const platform = createFakePlatform([makeTemplate(1)]);
    platform.missionDraft.mockRejectedValueOnce(appError("template_not_found", "no template has the id \"tpl-1\""));
    const { user, onClose } = setup(platform);
    expect(await screen.findByRole("alert")).toHaveTextContent("Template not found");
    await user.click(screen.getByTestId("cancel-mission"));
    expect(onClose).toHaveBeenCalled();
  });
});

describe("approval mode", () => {
  it("moves aria-checked, changes the waits line, and shows the threshold only for Threshold", async () => {
    const { user } = setup();
    const strict = await field("mode-Strict");
    const threshold = screen.getByTestId("mode-Threshold");
    const auto = screen.getByTestId("mode-Auto");
    expect(screen.getByRole("radiogroup", { name: "Approval mode" })).toContainElement(strict);

    expect(strict).toHaveAttribute("aria-checked", "true");
    expect(screen.getByTestId("mode-waits")).toHaveTextContent("Every call to a tool with side effects waits for a human (Pay Invoice)");
    expect(screen.queryByTestId("threshold-input")).not.toBeInTheDocument();

    await user.click(threshold);
    expect(threshold).toHaveAttribute("aria-checked", "true");
    expect(strict).toHaveAttribute("aria-checked", "false");
    expect(screen.getByTestId("mode-waits")).toHaveTextContent("Calls costing at least the threshold wait for a human");
    expect(screen.getByTestId("threshold-input")).toBeInTheDocument();

    await user.keyboard("{ArrowRight}");
    expect(auto).toHaveAttribute("aria-checked", "true");
    expect(auto).toHaveFocus();
    expect(screen.getByTestId("mode-waits")).toHaveTextContent("No call waits for a human");
    expect(screen.queryByTestId("threshold-input")).not.toBeInTheDocument();
  });

  it("clamps the threshold to the budget and sends it only in Threshold mode", async () => {
    const { platform, user } = setup();
    await typeInto(user, await field("budget-input"), "80");
    await user.click(screen.getByTestId("mode-Threshold"));

    const input = screen.getByTestId("threshold-input");
    await typeInto(user, input, "500");
    expect(input).toHaveValue(80);
    expect(screen.getByTestId("threshold-hint")).toHaveTextContent("Clamped to the budget");

    // Lowering the budget lowers the threshold with it.
    await typeInto(user, screen.getByTestId("budget-input"), "50");
    expect(screen.getByTestId("threshold-input")).toHaveValue(50);

    await user.click(screen.getByTestId("save-mission"));
    await screen.findByTestId("saved-mission-id");
    expect(lastRequest(platform)).toMatchObject({ approval_mode: "Threshold", budget_cents: 5_000, threshold_cents: 5_000 });
  });

  it("sends no threshold after switching away from Threshold", async () => {
    const { platform, user } = setup();
    await user.click(await field("mode-Threshold"));
    await user.click(screen.getByTestId("mode-Auto"));
    await user.click(screen.getByTestId("save-mission"));
    await screen.findByTestId("saved-mission-id");
    expect(lastRequest(platform)).toMatchObject({ approval_mode: "Auto", threshold_cents: null });
  });
});

describe("sector connections", () => {
  it("starts unticked and sends only the ticked ones", async () => {
    const { platform, user } = setup();
    const wealth = await field("connection-wealth");
    const security = screen.getByTestId("connection-security");
    expect(wealth).not.toBeChecked();
    expect(security).not.toBeChecked();
    expect(screen.getByText("Enables security.scan, security.alert")).toBeInTheDocument();
    expect(screen.getByText(/Tools under an unticked connection will be refused/)).toBeInTheDocument();

    await user.click(security);
    expect(security).toBeChecked();
    await user.click(screen.getByTestId("save-mission"));
    await screen.findByTestId("saved-mission-id");
    expect(lastRequest(platform).connections).toEqual(["security"]);
  });
});
