import { beforeEach, describe, expect, it, vi } from "vitest";

// The generated bindings talk to a webview; here they are replaced by hand-driven stand-ins.
const mocks = vi.hoisted(() => {
  type Handler = (event: { payload: unknown }) => void;
  const handlers = new Map<string, Set<Handler>>();
  const unlistened: string[] = [];
  const pendingListens: Array<() => void> = [];
  let deferListen = false;
  function event(name: string) {
    return {
      listen: (cb: Handler) => {
        const register = () => {
          const set = handlers.get(name) ?? new Set<Handler>();
          set.add(cb);
          handlers.set(name, set);
        };
        const unlisten = () => {
          unlistened.push(name);
          handlers.get(name)?.delete(cb);
        };
        if (!deferListen) {
          register();
          return Promise.resolve(unlisten);
        }
        return new Promise<() => void>((resolve) => {
          pendingListens.push(() => {
            register();
            resolve(unlisten);
          });
        });
      },
    };
  }
  return {
    handlers,
    unlistened,
    pendingListens,
    setDeferListen: (v: boolean) => {
      deferListen = v;
    },
    emit: (name: string, payload: unknown) => handlers.get(name)?.forEach((cb) => cb({ payload })),
    commands: {
      librarySearch: vi.fn(),
      libraryFacets: vi.fn(),
      missionDraft: vi.fn(),
      saveMission: vi.fn(),
      listMissions: vi.fn(),
      pickManifests: vi.fn(),
      confirmImport: vi.fn(),
      cancelImport: vi.fn(),
      libraryRendered: vi.fn(),
      listApprovals: vi.fn(),
      decideApproval: vi.fn(),
      auditPage: vi.fn(),
      auditVerify: vi.fn(),
      missionViews: vi.fn(),
      missionEvents: vi.fn(),
      deployMission: vi.fn(),
      stopMission: vi.fn(),
      kafkaStatus: vi.fn(),
    },
    events: {
      importStarted: event("importStarted"),
      importProgress: event("importProgress"),
      importPreviewReady: event("importPreviewReady"),
      importFailed: event("importFailed"),
      libraryChanged: event("libraryChanged"),
      approvalsChanged: event("approvalsChanged"),
      missionsChanged: event("missionsChanged"),
    },
  };
});

vi.mock("../bindings", () => ({ commands: mocks.commands, events: mocks.events }));

import { createTauriPlatform } from "./tauri";

const QUERY = { text: "burn", sector: null, category: null, risk: null };

describe("the Tauri platform", () => {
  beforeEach(() => {
    mocks.handlers.clear();
    mocks.unlistened.length = 0;
    mocks.setDeferListen(false);
  });

  it("resolves with the data of an ok result", async () => {
    const page = { total: 0, offset: 0, templates: [] };
    mocks.commands.librarySearch.mockResolvedValueOnce({ status: "ok", data: page });
    await expect(createTauriPlatform().searchLibrary(QUERY, 0, 200)).resolves.toBe(page);
    expect(mocks.commands.librarySearch).toHaveBeenCalledWith(QUERY, 0, 200);
  });

  it("rejects with the AppError of an error result", async () => {
    const error = { code: "template_changed", message: "changed", details: { field: null, limit: null, problems: [], audit_seq: null } };
    mocks.commands.saveMission.mockResolvedValueOnce({ status: "error", error });
    await expect(
      createTauriPlatform().saveMission({
        request_id: "r",
        template_id: "t",
        template_version: 1,
        budget_cents: 100,
        ttl_seconds: 3600,
        max_steps: 1,
        approval_mode: "Auto",
        threshold_cents: null,
        connections: [],
      }),
    ).rejects.toEqual(error);
  });

  it("rejects with an internal AppError, not an Error, when the command itself throws", async () => {
    mocks.commands.listMissions.mockRejectedValueOnce(new Error("command list_missions not found"));
    await expect(createTauriPlatform().listMissions(null, 50)).rejects.toEqual({
      code: "internal",
      message: "command list_missions not found",
      details: { field: null, limit: null, problems: [], audit_seq: null },
    });
  });

  it("maps cancelImport and pickManifests", async () => {
    mocks.commands.cancelImport.mockResolvedValueOnce({ status: "ok", data: null });
    mocks.commands.pickManifests.mockResolvedValueOnce({ status: "ok", data: null });
    const platform = createTauriPlatform();
    await expect(platform.cancelImport("imp-1")).resolves.toBeUndefined();
    expect(mocks.commands.cancelImport).toHaveBeenCalledWith("imp-1");
    await expect(platform.pickManifests()).resolves.toBeNull();
  });

  it("never lets the startup metric throw", async () => {
    mocks.commands.libraryRendered.mockRejectedValueOnce(new Error("no such command"));
    expect(() => createTauriPlatform().libraryRendered(200)).not.toThrow();
    expect(mocks.commands.libraryRendered).toHaveBeenCalledWith(200);
    mocks.commands.libraryRendered.mockImplementationOnce(() => {
      throw new Error("no webview");
    });
    expect(() => createTauriPlatform().libraryRendered(5)).not.toThrow();
  });

  it("rejects with an internal AppError when an invoke fails with a bare string", async () => {
    // typedError passes anything but an Error through as the error value.
    mocks.commands.confirmImport.mockResolvedValueOnce({ status: "error", error: "command confirm_import not allowed" });
    await expect(createTauriPlatform().confirmImport("imp-1")).rejects.toMatchObject({
      code: "internal",
      message: "command confirm_import not allowed",
    });
  });

  it("delivers the AppError of a failed drop", async () => {
    const failed = vi.fn();
    const off = createTauriPlatform().onImportFailed(failed);
    await Promise.resolve();
    const error = { code: "storage", message: "database is locked", details: { field: null, limit: null, problems: [], audit_seq: null } };
    mocks.emit("importFailed", { error });
    expect(failed).toHaveBeenCalledWith(error);
    off();
    expect(mocks.unlistened).toEqual(["importFailed"]);
  });

  it("delivers event payloads and unsubscribes", async () => {
    const platform = createTauriPlatform();
    const started = vi.fn();
    const progress = vi.fn();
    const changed = vi.fn();
    const offStarted = platform.onImportStarted(started);
    const offProgress = platform.onImportProgress(progress);
    platform.onLibraryChanged(changed);
    await Promise.resolve();

    mocks.emit("importStarted", { files: ["/a.json"] });
    mocks.emit("importProgress", { import_id: null, phase: "reading", done: 1, total: 2 });
    mocks.emit("libraryChanged", {});
    expect(started).toHaveBeenCalledWith(["/a.json"]);
    expect(progress).toHaveBeenCalledWith({ import_id: null, phase: "reading", done: 1, total: 2 });
    expect(changed).toHaveBeenCalledTimes(1);

    offStarted();
    offProgress();
    mocks.emit("importStarted", { files: ["/b.json"] });
    expect(started).toHaveBeenCalledTimes(1);
    expect(mocks.unlistened).toEqual(["importStarted", "importProgress"]);
  });

  it("unsubscribes a listener that is still being set up", async () => {
    mocks.setDeferListen(true);
    const preview = vi.fn();
    const off = createTauriPlatform().onImportPreview(preview);
    off();
    mocks.pendingListens.splice(0).forEach((finish) => finish());
    await Promise.resolve();
    await Promise.resolve();

    mocks.emit("importPreviewReady", { import_id: "imp-1" });
    expect(preview).not.toHaveBeenCalled();
    expect(mocks.unlistened).toEqual(["importPreviewReady"]);
  });

  it("maps the approval and audit commands", async () => {
    const item = { id: "a-1", status: "Approved" };
    const page = { entries: [], has_more: false };
    const report = { records: 3, ok: true, first_bad: null, keys: ["k"] };
    const approvals = { items: [item], next: "2026-12-03T10:00:00Z|0190f0c4-0000-7000-8000-000000000001", pending: 0 };
    mocks.commands.listApprovals.mockResolvedValueOnce({ status: "ok", data: approvals });
    mocks.commands.decideApproval.mockResolvedValueOnce({ status: "ok", data: item });
    mocks.commands.auditPage.mockResolvedValueOnce({ status: "ok", data: page });
    mocks.commands.auditVerify.mockResolvedValueOnce({ status: "ok", data: report });
    const platform = createTauriPlatform();
    const request = { approval_id: "a-1", decision: "Approve" as const, budget_cents: null };
    const query = { mission_id: "m-1", sector: "finance", before_seq: 40, limit: 100 };

    await expect(platform.listApprovals(false, null, 50)).resolves.toEqual(approvals);
    expect(mocks.commands.listApprovals).toHaveBeenCalledWith(false, null, 50);
    await expect(platform.decideApproval(request)).resolves.toBe(item);
    expect(mocks.commands.decideApproval).toHaveBeenCalledWith(request);
    await expect(platform.auditPage(query)).resolves.toBe(page);
    expect(mocks.commands.auditPage).toHaveBeenCalledWith(query);
    await expect(platform.auditVerify()).resolves.toBe(report);
  });

  it("rejects a refused decision with its AppError", async () => {
    const error = { code: "approval_expired", message: "expired", details: { field: null, limit: null, problems: [], audit_seq: null } };
    mocks.commands.decideApproval.mockResolvedValueOnce({ status: "error", error });
    await expect(createTauriPlatform().decideApproval({ approval_id: "a-1", decision: "Deny", budget_cents: null })).rejects.toEqual(error);
  });

  it("delivers approvals-changed payloads", async () => {
    const changed = vi.fn();
    const off = createTauriPlatform().onApprovalsChanged(changed);
    await Promise.resolve();
    mocks.emit("approvalsChanged", { pending: 4 });
    expect(changed).toHaveBeenCalledWith({ pending: 4 });
    off();
    expect(mocks.unlistened).toEqual(["approvalsChanged"]);
  });

  it("maps the mission commands", async () => {
    const view = { mission: { id: "m-1" }, usage: { status: "Running" } };
    const events = [{ seq: 7, mission_id: "m-1" }];
    const kafka = { mode: "embedded", embedded: true, bootstrap_servers: "127.0.0.1:1" };
    mocks.commands.missionViews.mockResolvedValueOnce({ status: "ok", data: { items: [view], next: null } });
    mocks.commands.missionEvents.mockResolvedValueOnce({ status: "ok", data: events });
    mocks.commands.deployMission.mockResolvedValueOnce({ status: "ok", data: view });
    mocks.commands.stopMission.mockResolvedValueOnce({ status: "ok", data: view });
    mocks.commands.kafkaStatus.mockResolvedValueOnce({ status: "ok", data: kafka });
    const platform = createTauriPlatform();

    await expect(platform.missionViews("2026-12-03T10:00:00Z|0190f0c4-0000-7000-8000-000000000001", 50)).resolves.toEqual({
      items: [view],
      next: null,
    });
    expect(mocks.commands.missionViews).toHaveBeenCalledWith("2026-12-03T10:00:00Z|0190f0c4-0000-7000-8000-000000000001", 50);
    await expect(platform.missionEvents("m-1", 6)).resolves.toBe(events);
    expect(mocks.commands.missionEvents).toHaveBeenCalledWith("m-1", 6);
    await expect(platform.deployMission("m-1")).resolves.toBe(view);
    expect(mocks.commands.deployMission).toHaveBeenCalledWith("m-1");
    await expect(platform.stopMission("m-2")).resolves.toBe(view);
    expect(mocks.commands.stopMission).toHaveBeenCalledWith("m-2");
    await expect(platform.kafkaStatus()).resolves.toBe(kafka);
  });

  it("rejects a refused stop and an absent Kafka with their AppErrors", async () => {
    const notActive = { code: "mission_not_active", message: "the mission is Completed", details: { field: null, limit: null, problems: [], audit_seq: null } };
    const noKafka = { code: "kafka_unavailable", message: "Kafka did not start", details: { field: null, limit: null, problems: [], audit_seq: null } };
    mocks.commands.stopMission.mockResolvedValueOnce({ status: "error", error: notActive });
    mocks.commands.kafkaStatus.mockResolvedValueOnce({ status: "error", error: noKafka });
    await expect(createTauriPlatform().stopMission("m-1")).rejects.toEqual(notActive);
    await expect(createTauriPlatform().kafkaStatus()).rejects.toEqual(noKafka);
  });

  it("delivers the mission id of missions-changed", async () => {
    const changed = vi.fn();
    const off = createTauriPlatform().onMissionsChanged(changed);
    await Promise.resolve();
    mocks.emit("missionsChanged", { mission_id: "m-9" });
    expect(changed).toHaveBeenCalledWith("m-9");
    off();
    expect(mocks.unlistened).toEqual(["missionsChanged"]);
  });

  it("makes fresh request ids", () => {
    const platform = createTauriPlatform();
    const a = platform.newRequestId();
    expect(a).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(platform.newRequestId()).not.toBe(a);
  });
});
