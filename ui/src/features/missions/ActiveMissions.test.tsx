import { act, fireEvent, screen, waitFor, within } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { afterEach, describe, expect, it, vi } from "vitest";
import type { MissionView } from "../../bindings";
import {
  appError,
  createFakePlatform,
  makeMission,
  makeMissionEvent,
  makeMissionView,
  makeRunRecord,
  renderWithPlatform,
  type FakePlatform,
} from "../../test/fakePlatform";
import { ActiveMissions, MISSION_PAGE_SIZE } from "./ActiveMissions";

const ID1 = makeMission(1).id;
const ID2 = makeMission(2).id;
const JOB = "0190f0c6-0000-7000-8000-0000000000a2";

function setup(views: MissionView[], platform: FakePlatform = createFakePlatform([])) {
  platform.views.push(...views);
  const user = userEvent.setup();
  const view = renderWithPlatform(<ActiveMissions visible refreshToken={0} />, platform);
  return { platform, user, view };
}

/** The row of one mission, once the table shows it. */
async function row(id: string): Promise<HTMLElement> {
  return waitFor(() => {
    const found = screen.getAllByTestId("mission-row").find((el) => el.dataset.missionId === id);
    if (!found) throw new Error(`no row for ${id}`);
    return found;
  });
}

function shownSeqs(): number[] {
  return screen.queryAllByTestId("event-row").map((el) => Number(el.dataset.seq));
}

/** How often the events of `id` were asked for. */
function eventCalls(platform: FakePlatform, id: string): Array<[string, number]> {
  return platform.missionEvents.mock.calls.filter(([m]) => m === id);
}

describe("ActiveMissions", () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it("shows spend against budget, steps against the cap, plan progress, status and a live countdown", async () => {
    // Only the clock and the countdown's interval are faked: Testing Library keeps its real timeouts.
    vi.useFakeTimers({ toFake: ["Date", "setInterval", "clearInterval"] });
    vi.setSystemTime(new Date("2026-11-25T08:00:00Z"));
    const running = makeMissionView(1, {
      usage: {
        status: "Running",
        spent_cents: 123,
        reserved_cents: 50,
        steps_used: 12,
        started_at: "2026-11-25T07:00:00Z",
        expires_at: "2026-11-25T08:01:30Z",
      },
      steps_done: 2,
      plan_steps: 5,
    });
    const ready = makeMissionView(2);
    const done = makeMissionView(3, { usage: { status: "Completed", spent_cents: 9_000, steps_used: 40 } });
    const paused = makeMissionView(4, { usage: { status: "Paused", spent_cents: 48_000, steps_used: 150 } });
    setup([running, ready, done, paused]);

    const live = await row(ID1);
    expect(live).toHaveAttribute("data-status", "Running");
    expect(within(live).getByTestId("mission-status")).toHaveTextContent("Running");
    expect(within(live).getByTitle(ID1)).toHaveTextContent("…00000001");
    expect(live).toHaveTextContent("Burn Rate Watch v3");
    expect(within(live).getByTestId("mission-spend")).toHaveTextContent("$1.23 of $500.00");
    expect(within(live).getByTestId("mission-spend")).toHaveTextContent("+$0.50 held by calls in flight");
    const spend = within(live).getByRole("meter", { name: "Spend of mission …00000001" });
    expect(spend).toHaveAttribute("aria-valuenow", "123");
    expect(spend).toHaveAttribute("aria-valuemax", "50000");
    expect(spend).toHaveAttribute("aria-valuetext", "$1.23 of $500.00");
    expect(within(live).getByTestId("mission-steps")).toHaveTextContent("12 of 200");
    expect(within(live).getByRole("meter", { name: "Steps of mission …00000001" })).toHaveAttribute("aria-valuenow", "12");
    expect(within(live).getByTestId("mission-plan")).toHaveTextContent("2 of 5 steps");
    expect(within(live).getByTestId("time-left")).toHaveTextContent("1 min 30 s");
    expect(within(live).getByTestId("stop-mission")).toBeEnabled();
    expect(within(live).queryByTestId("deploy-mission")).not.toBeInTheDocument();

    const waiting = await row(ID2);
    expect(waiting).toHaveAttribute("data-status", "Ready");
    expect(within(waiting).getByTestId("time-left")).toHaveTextContent(/^—$/);
    expect(waiting).toHaveTextContent("TTL 1 d");
    expect(within(waiting).getByTestId("mission-spend")).toHaveTextContent("$0.00 of $500.00");
    expect(within(waiting).getByTestId("deploy-mission")).toBeEnabled();
    expect(within(waiting).queryByTestId("stop-mission")).not.toBeInTheDocument();

    const ended = await row(makeMission(3).id);
    expect(ended).toHaveAttribute("data-status", "Completed");
    expect(within(ended).getByTestId("time-left")).toHaveTextContent(/^ended$/);
    expect(within(ended).queryByRole("button")).not.toBeInTheDocument();

    const held = await row(makeMission(4).id);
    expect(held).toHaveAttribute("data-status", "Paused");
    expect(held).toHaveTextContent("at its budget cap: see Approvals");
    expect(within(held).getByRole("meter", { name: "Spend of mission …00000004" })).toHaveClass("meter-high");
    expect(within(held).getByTestId("stop-mission")).toBeEnabled();

    act(() => vi.advanceTimersByTime(60_000));
    expect(within(live).getByTestId("time-left")).toHaveTextContent("30 s");
    act(() => vi.advanceTimersByTime(30_000));
    expect(within(live).getByTestId("time-left")).toHaveTextContent("time up");
  });

  it("deploys a Ready mission, updates its row and follows its events", async () => {
    const { platform, user } = setup([makeMissionView(1, { usage: { status: "Running" } }), makeMissionView(2)]);
    const ready = await row(ID2);

    await user.click(within(ready).getByTestId("deploy-mission"));

    expect(platform.deployMission).toHaveBeenCalledTimes(1);
    expect(platform.deployMission).toHaveBeenCalledWith(ID2);
    await waitFor(() => expect(ready).toHaveAttribute("data-status", "Running"));
    expect(within(ready).getByTestId("mission-status")).toHaveTextContent("Running");
    expect(within(ready).queryByTestId("deploy-mission")).not.toBeInTheDocument();
    expect(within(ready).getByTestId("stop-mission")).toBeInTheDocument();
    expect(within(ready).getByTestId("time-left")).toHaveTextContent("1 d 0 h");
    expect(ready).toHaveFocus();
    expect(screen.getByTestId("missions-announcement")).toHaveTextContent("Deployed Burn Rate Watch …00000002: Running.");
    expect(await screen.findByTestId("mission-events")).toHaveAttribute("data-mission-id", ID2);
    expect(platform.missionEvents).toHaveBeenCalledWith(ID2, 0);
  });

  it("stops a mission only after confirming; Escape and Cancel leave it running", async () => {
    const running = makeMissionView(1, { usage: { status: "Running", spent_cents: 2_500, steps_used: 7 } });
    const { platform, user } = setup([running]);
    const live = await row(ID1);
    const stop = within(live).getByTestId("stop-mission");

    await user.click(stop);
    let dialog = screen.getByTestId("confirm-stop");
    expect(dialog).toHaveAttribute("role", "dialog");
    expect(dialog).toHaveAccessibleName("Stop Burn Rate Watch …00000001?");
    expect(dialog).toHaveTextContent("recorded as Stopped, with $25.00 spent and 7 steps used");
    expect(within(dialog).getByRole("button", { name: "Cancel" })).toHaveFocus();
    expect(platform.stopMission).not.toHaveBeenCalled();

    await user.keyboard("{Escape}");
    expect(screen.queryByTestId("confirm-stop")).not.toBeInTheDocument();
    expect(stop).toHaveFocus();
    expect(platform.stopMission).not.toHaveBeenCalled();

    await user.keyboard("{Enter}");
    await user.click(within(screen.getByTestId("confirm-stop")).getByRole("button", { name: "Cancel" }));
    expect(screen.queryByTestId("confirm-stop")).not.toBeInTheDocument();
    expect(live).toHaveAttribute("data-status", "Running");
    expect(platform.stopMission).not.toHaveBeenCalled();

    await user.click(stop);
    dialog = screen.getByTestId("confirm-stop");
    await user.click(within(dialog).getByRole("button", { name: "Yes, stop mission" }));

    expect(platform.stopMission).toHaveBeenCalledTimes(1);
    expect(platform.stopMission).toHaveBeenCalledWith(ID1);
    await waitFor(() => expect(live).toHaveAttribute("data-status", "Stopped"));
    expect(screen.queryByTestId("confirm-stop")).not.toBeInTheDocument();
    expect(within(live).queryByTestId("stop-mission")).not.toBeInTheDocument();
    expect(live).toHaveFocus();
    expect(screen.getByTestId("run-record")).toHaveTextContent("stopped by operator");
  });

  it("selects a row by keyboard and lists its events with their mission and job ids", async () => {
    const platform = createFakePlatform([]);
    platform.events.push(
      makeMissionEvent(12, { mission_id: ID2, kind: "job.result", dept: 3, summary: "Dept 3 reported the ledger balanced" }),
      makeMissionEvent(11, { mission_id: ID2, kind: "job.assigned", dept: 1, summary: "Dept 1 assigned step 1 to Dept 3" }),
      makeMissionEvent(10, { mission_id: ID1, kind: "job.assigned", summary: "another mission's event" }),
    );
    const { user } = setup([makeMissionView(1, { usage: { status: "Completed" } }), makeMissionView(2, { usage: { status: "Completed" } })], platform);
    const first = await row(ID1);
    const second = await row(ID2);

    await user.tab();
    expect(screen.getByRole("button", { name: "Refresh" })).toHaveFocus();
    await user.tab();
    expect(first).toHaveFocus();
    await user.keyboard("{ArrowDown}");
    expect(second).toHaveFocus();
    expect(second).toHaveAttribute("tabindex", "0");
    expect(first).toHaveAttribute("tabindex", "-1");
    expect(screen.queryByTestId("mission-events")).not.toBeInTheDocument();
    await user.keyboard("{Enter}");

    expect(second).toHaveAttribute("aria-selected", "true");
    expect(first).toHaveAttribute("aria-selected", "false");
    const panel = await screen.findByTestId("mission-events");
    expect(panel).toHaveAttribute("data-mission-id", ID2);
    await waitFor(() => expect(shownSeqs()).toEqual([11, 12]));
    expect(platform.missionEvents).toHaveBeenCalledWith(ID2, 0);
    const [assigned, result] = within(panel).getAllByTestId("event-row");
    expect(assigned).toHaveAttribute("data-kind", "job.assigned");
    expect(assigned).toHaveAttribute("data-job-id", JOB);
    expect(assigned).toHaveTextContent("Dept 1 assigned step 1 to Dept 3");
    expect(within(assigned!).getByTestId("event-job")).toHaveTextContent("…000000a2");
    expect(within(assigned!).getByTestId("event-job")).toHaveAttribute("title", JOB);
    expect(within(assigned!).getByTestId("event-mission")).toHaveTextContent("…00000002");
    expect(within(assigned!).getByTestId("event-mission")).toHaveAttribute("title", ID2);
    expect(within(assigned!).getAllByRole("cell")[0]).toHaveTextContent(/^11$/);
    expect(result).toHaveAttribute("data-kind", "job.result");
    expect(within(result!).getAllByRole("cell")[3]).toHaveTextContent(/^3$/);
    expect(within(panel).getByTestId("event-count")).toHaveTextContent("2 events");
    expect(panel).not.toHaveTextContent("another mission's event");

    await user.keyboard("{ArrowUp} ");
    await waitFor(() => expect(screen.getByTestId("mission-events")).toHaveAttribute("data-mission-id", ID1));
    await waitFor(() => expect(shownSeqs()).toEqual([10]));
  });

  it("appends only the new events when the selected mission changes, reading after the last seq seen", async () => {
    const platform = createFakePlatform([]);
    platform.events.push(makeMissionEvent(3), makeMissionEvent(5), makeMissionEvent(4, { mission_id: ID2 }));
    const { user } = setup([makeMissionView(1, { usage: { status: "Completed" } }), makeMissionView(2, { usage: { status: "Completed" } })], platform);
    await user.click(within(await row(ID1)).getByTitle(ID1));
    await waitFor(() => expect(shownSeqs()).toEqual([3, 5]));
    expect(eventCalls(platform, ID1)).toEqual([[ID1, 0]]);

    platform.events.push(makeMissionEvent(6, { kind: "job.waiting" }), makeMissionEvent(7, { mission_id: ID2 }), makeMissionEvent(8));
    // Another mission's change reloads the list, not this mission's events.
    act(() => platform.emit.missionsChanged(ID2));
    await waitFor(() => expect(platform.missionViews).toHaveBeenCalledTimes(2));
    expect(eventCalls(platform, ID1)).toHaveLength(1);

    act(() => platform.emit.missionsChanged(ID1));
    await waitFor(() => expect(shownSeqs()).toEqual([3, 5, 6, 8]));
    expect(eventCalls(platform, ID1)).toEqual([
      [ID1, 0],
      [ID1, 5],
    ]);
  });

  it("shows older missions a page at a time, and keeps them through a live refresh", async () => {
    const views = Array.from({ length: MISSION_PAGE_SIZE + 3 }, (_, i) => makeMissionView(i + 1, { usage: { status: "Running" } }));
    const { platform } = setup(views);
    await waitFor(() => expect(screen.getAllByTestId("mission-row")).toHaveLength(MISSION_PAGE_SIZE));
    expect(platform.missionViews).toHaveBeenLastCalledWith(null, MISSION_PAGE_SIZE);
    expect(screen.getByText(`${MISSION_PAGE_SIZE} missions shown · ${MISSION_PAGE_SIZE} live`)).toBeInTheDocument();

    await userEvent.click(screen.getByRole("button", { name: "Show older missions" }));
    await waitFor(() => expect(screen.getAllByTestId("mission-row")).toHaveLength(MISSION_PAGE_SIZE + 3));
    expect(platform.missionViews).toHaveBeenLastCalledWith(`at:${MISSION_PAGE_SIZE}`, MISSION_PAGE_SIZE);
    expect(screen.queryByRole("button", { name: "Show older missions" })).not.toBeInTheDocument();

    // A squad's change reads both pages again: the older missions stay on screen, updated.
    platform.views[MISSION_PAGE_SIZE + 2] = makeMissionView(MISSION_PAGE_SIZE + 3, { usage: { status: "Running", steps_used: 7 } });
    act(() => platform.emit.missionsChanged(views[0]!.mission.id));
    await waitFor(() => expect(screen.getAllByTestId("mission-steps")[MISSION_PAGE_SIZE + 2]).toHaveTextContent("7 of 200"));
    expect(screen.getAllByTestId("mission-row")).toHaveLength(MISSION_PAGE_SIZE + 3);
  });

  it("reloads the list at most once for a burst of changes", async () => {
    const { platform } = setup([makeMissionView(1, { usage: { status: "Running" } })]);
    await row(ID1);
    expect(platform.missionViews).toHaveBeenCalledTimes(1);

    platform.views[0] = makeMissionView(1, { usage: { status: "Running", steps_used: 9 } });
    act(() => {
      for (let i = 0; i < 10; i += 1) platform.emit.missionsChanged(ID1);
    });
    await waitFor(() => expect(within(screen.getByTestId("mission-row")).getByTestId("mission-steps")).toHaveTextContent("9 of 200"));
    expect(platform.missionViews).toHaveBeenCalledTimes(2);
  });

  it("reads on in pages of 500 until a shorter page comes back", async () => {
    const platform = createFakePlatform([]);
    platform.events.push(...Array.from({ length: 501 }, (_, i) => makeMissionEvent(i + 1)));
    const { user } = setup([makeMissionView(1, { usage: { status: "Completed" } })], platform);
    await user.click(within(await row(ID1)).getByTitle(ID1));
    await waitFor(() => expect(screen.getAllByTestId("event-row")).toHaveLength(501));
    expect(eventCalls(platform, ID1)).toEqual([
      [ID1, 0],
      [ID1, 500],
    ]);
  });

  it("asks for a running mission's new events every 2 s when no change event comes", async () => {
    vi.useFakeTimers({ toFake: ["setInterval", "clearInterval"] });
    const platform = createFakePlatform([]);
    platform.events.push(makeMissionEvent(1, { kind: "mission.started" }));
    const { user } = setup([makeMissionView(1, { usage: { status: "Running" } })], platform);
    await user.click(within(await row(ID1)).getByTitle(ID1));
    await waitFor(() => expect(shownSeqs()).toEqual([1]));

    platform.events.push(makeMissionEvent(2, { kind: "job.assigned" }));
    act(() => vi.advanceTimersByTime(1_999));
    expect(eventCalls(platform, ID1)).toHaveLength(1);
    act(() => vi.advanceTimersByTime(1));
    await waitFor(() => expect(shownSeqs()).toEqual([1, 2]));
    expect(eventCalls(platform, ID1)).toEqual([
      [ID1, 0],
      [ID1, 1],
    ]);
  });

  it("marks events still in the outbox, and clears the mark once Kafka has them", async () => {
    const platform = createFakePlatform([]);
    platform.events.push(makeMissionEvent(1), makeMissionEvent(2, { kind: "job.assigned", published: false }));
    const { user } = setup([makeMissionView(1, { usage: { status: "Completed" } })], platform);
    await user.click(within(await row(ID1)).getByTitle(ID1));
    await waitFor(() => expect(shownSeqs()).toEqual([1, 2]));

    const [sent, held] = screen.getAllByTestId("event-row");
    expect(within(sent!).queryByTestId("in-outbox")).not.toBeInTheDocument();
    expect(within(held!).getByTestId("in-outbox")).toHaveTextContent("in outbox");
    expect(held).toHaveClass("event-unpublished");
    expect(screen.getByTestId("outbox-note")).toHaveTextContent("1 event waits in the outbox.");

    // The broker answered: the relay published it. The mark must not stay forever.
    platform.events[1] = { ...platform.events[1]!, published: true };
    act(() => platform.emit.missionsChanged(ID1));
    await waitFor(() => expect(screen.queryByTestId("in-outbox")).not.toBeInTheDocument());
    expect(eventCalls(platform, ID1)).toEqual([
      [ID1, 0],
      [ID1, 1],
    ]);
    expect(shownSeqs()).toEqual([1, 2]);
    expect(screen.queryByTestId("outbox-note")).not.toBeInTheDocument();
  });

  it("keeps the list at the newest event unless the person scrolled up", async () => {
    const platform = createFakePlatform([]);
    platform.events.push(makeMissionEvent(1), makeMissionEvent(2));
    const { user } = setup([makeMissionView(1, { usage: { status: "Completed" } })], platform);
    await user.click(within(await row(ID1)).getByTitle(ID1));
    await waitFor(() => expect(shownSeqs()).toEqual([1, 2]));
    const scroller = screen.getByRole("region", { name: "Events of Burn Rate Watch …00000001, oldest first" });
    // jsdom does no layout: 1000 px of rows in the 800 px box the test setup gives every element.
    Object.defineProperty(scroller, "scrollHeight", { configurable: true, get: () => 1000 });

    scroller.scrollTop = 100;
    fireEvent.scroll(scroller);
    platform.events.push(makeMissionEvent(3));
    act(() => platform.emit.missionsChanged(ID1));
    await waitFor(() => expect(shownSeqs()).toEqual([1, 2, 3]));
    expect(scroller.scrollTop).toBe(100);

    scroller.scrollTop = 200;
    fireEvent.scroll(scroller);
    platform.events.push(makeMissionEvent(4));
    act(() => platform.emit.missionsChanged(ID1));
    await waitFor(() => expect(shownSeqs()).toEqual([1, 2, 3, 4]));
    expect(scroller.scrollTop).toBe(1000);
  });

  it("says which Kafka the squads use", async () => {
    setup([makeMissionView(1)]);
    const line = await screen.findByTestId("kafka-mode");
    expect(line).toHaveTextContent(/^Kafka: embedded \(librdkafka mock cluster\)$/);
    expect(line).toHaveAttribute("title", "Bootstrap servers: 127.0.0.1:39092");
    expect(screen.queryByTestId("kafka-warning")).not.toBeInTheDocument();
  });

  it("warns when Kafka is not available, and still lists the missions", async () => {
    const platform = createFakePlatform([]);
    platform.kafkaStatus.mockRejectedValueOnce(
      appError("kafka_unavailable", "Kafka did not start: broker transport failure. Missions are saved but no squad runs until it does."),
    );
    setup([makeMissionView(1)], platform);
    const warning = await screen.findByTestId("kafka-warning");
    const notice = within(warning).getByTestId("error-notice");
    expect(notice).toHaveClass("notice-warning");
    expect(notice).toHaveAttribute("data-code", "kafka_unavailable");
    expect(notice).toHaveTextContent("Kafka is not available");
    expect(notice).toHaveTextContent("Kafka did not start: broker transport failure.");
    expect(notice).toHaveTextContent("What to do: Missions can still be saved, but no squad runs until Kafka answers");
    expect(screen.queryByTestId("kafka-mode")).not.toBeInTheDocument();
    expect(await row(ID1)).toHaveAttribute("data-status", "Ready");

    await userEvent.click(within(notice).getByRole("button", { name: "Check again" }));
    expect(await screen.findByTestId("kafka-mode")).toHaveTextContent("Kafka: embedded");
    expect(screen.queryByTestId("kafka-warning")).not.toBeInTheDocument();
  });

  it("shows the run record of an ended mission with its failure reason", async () => {
    const mission = makeMission(1);
    const failed = makeMissionView(1, {
      usage: { status: "Failed", spent_cents: 250, steps_used: 9 },
      run: makeRunRecord(mission, {
        status: "Failed",
        profit_cents: -250,
        gas_cents: 250,
        steps: 9,
        duration_ms: 65_000,
        failure_reason: "finance.pay_invoice refused: the Wealth sector is not connected",
      }),
    });
    setup([failed, makeMissionView(2)]);
    const ended = await row(ID1);
    expect(ended).toHaveAttribute("data-status", "Failed");
    expect(within(ended).getByTestId("time-left")).toHaveTextContent(/^ended$/);

    const records = screen.getAllByTestId("run-record");
    expect(records).toHaveLength(1);
    const record = records[0]!;
    expect(record).toHaveAttribute("data-mission-id", ID1);
    expect(record).toHaveTextContent("RunFailed");
    expect(within(record).getByTestId("run-profit")).toHaveTextContent("-$2.50");
    expect(within(record).getByTestId("run-profit")).toHaveClass("roi-negative");
    expect(within(record).getByTestId("run-gas")).toHaveTextContent("$2.50");
    expect(within(record).getByTestId("run-steps")).toHaveTextContent(/^9$/);
    expect(within(record).getByTestId("run-duration")).toHaveTextContent("1 min 05 s");
    expect(within(record).getByTestId("failure-reason")).toHaveTextContent("finance.pay_invoice refused: the Wealth sector is not connected");
  });

  it("says what to do when the core refuses a deploy, and refreshes the list", async () => {
    const platform = createFakePlatform([]);
    platform.deployMission.mockRejectedValueOnce(appError("mission_not_active", "the mission is Running, not Ready"));
    const { user } = setup([makeMissionView(1)], platform);
    await user.click(within(await row(ID1)).getByTestId("deploy-mission"));

    const notice = within(await screen.findByTestId("action-error")).getByTestId("error-notice");
    expect(notice).toHaveAttribute("data-code", "mission_not_active");
    expect(notice).toHaveTextContent("Could not deploy Burn Rate Watch …00000001: the mission is Running, not Ready");
    expect(notice).toHaveTextContent("What to do: Refresh the list to see the mission's status now");
    await waitFor(() => expect(platform.missionViews).toHaveBeenCalledTimes(2));

    await user.click(within(notice).getByRole("button", { name: "Dismiss" }));
    expect(screen.queryByTestId("action-error")).not.toBeInTheDocument();
  });

  it("shows a load failure with its wording", async () => {
    const platform = createFakePlatform([]);
    platform.missionViews.mockRejectedValueOnce(appError("storage", "database is locked"));
    setup([], platform);
    const notice = await screen.findByTestId("error-notice");
    expect(notice).toHaveAttribute("data-code", "storage");
    expect(notice).toHaveTextContent("The library database could not be used");
  });

  it("stops listening when unmounted", async () => {
    const { platform, user, view } = setup([makeMissionView(1, { usage: { status: "Running" } })]);
    await user.click(within(await row(ID1)).getByTitle(ID1));
    await screen.findByTestId("mission-events");
    expect(platform.listenerCount()).toBe(2);
    view.unmount();
    expect(platform.listenerCount()).toBe(0);
  });
});
